"""Dataset generation and reading, the training stages, evaluation and baselines."""
