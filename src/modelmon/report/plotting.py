"""matplotlib for pictures written to files: imported when first needed, on a backend that
needs no screen. The report and the data exploration both draw through it."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
