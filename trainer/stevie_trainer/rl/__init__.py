"""Reinforcement learning: SB3 agents (PPO, DQN), behaviour cloning of the expert, the
volatility curriculum, training callbacks, the training session and ``train`` (the
``python -m stevie_trainer train`` command)."""
