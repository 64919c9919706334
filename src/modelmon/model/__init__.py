"""The model: loading an MLflow model (and choosing how to call it), finding it behind a
registry URI, and its reference profile built from the training data.

May import: `modelmon.errors`, `modelmon.settings`, `modelmon.contract`, `modelmon.stats`.
"""
