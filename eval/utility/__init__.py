"""Utility: does synthetic data help an outcome classifier on real held-out trials?

texts (the classifier's label-blind input) -> splits (real train/test per phase) -> model (which
encoder) -> scorer (probe: frozen encoder + logistic regression, or finetune) -> metrics (bootstrap
CIs) -> run (every setting of every phase) -> results (the typed metrics.json).
"""
