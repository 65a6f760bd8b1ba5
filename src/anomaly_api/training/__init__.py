"""Training: split, fit, threshold tuning, evaluation and saving a model version."""
