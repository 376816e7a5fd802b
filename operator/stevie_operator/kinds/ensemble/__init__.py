"""The Ensemble kind: members, backtest Job, decision service."""
