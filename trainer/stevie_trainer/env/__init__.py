"""The trading simulator: the numba kernel (fills, costs, rewards, observations), the market
as the kernel sees it, a run's prepared markets, ``TradingEnv`` (gymnasium) and
``VecTradingEnv`` (a Stable-Baselines3 ``VecEnv`` over the same kernel)."""
