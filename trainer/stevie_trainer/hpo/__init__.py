"""Hyperparameter optimisation with Optuna: the study protocol (torch-free, shared with the
operator), trial workers, significance tests, reports and the finish step."""
