"""Hyperparameter search with Optuna, over a training function the `tune` stage hands in."""
