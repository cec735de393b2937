"""Hyperparameter search (``zoo tune``) on Optuna: the glue between its studies and the zoo's runs."""
