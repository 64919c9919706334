"""Serving: the FastAPI server for any MLflow model (`modelmon serve`), the collector for
models served by others (`modelmon collect`), and what they share: reading request bodies,
micro-batching, following a registry alias, worker processes.

May import: the layers below it (`errors`, `settings`, `contract`, `stats`, `model`,
`monitoring`); never `rules` or anything above.
"""
