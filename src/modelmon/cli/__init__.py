"""The `modelmon` command: one entry point with a verb per job (`modelmon --help`).

`parser` declares the verbs and options, `commands` does what each verb says, `main` runs one
and turns a ModelmonError into one sentence and exit status 2.

May import: everything in modelmon (it is the top layer), each command lazily.
"""

from __future__ import annotations

from modelmon.cli.main import main

__all__ = ["main"]
