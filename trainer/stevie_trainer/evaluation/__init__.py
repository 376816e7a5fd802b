"""Honest evaluation: performance metrics (Sharpe, Sortino, drawdown, trades...), the
baselines (buy-and-hold, the RSI/MA expert, random), evaluation episodes (compiled MLP
policies included), backtest reports and equity plots. No torch."""
