"""Ensembles of trained agents: members, voting, backtest and the decision service."""
