"""modelmon: monitor MLflow models in production with Prometheus and Grafana.

`from modelmon import Monitor` gives the library (modelmon.monitoring.monitor); it is imported on first
use, so the command line's `--help` does not pay for NumPy and the model code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Monitor", "Observed", "__version__"]

if TYPE_CHECKING:
    from modelmon.monitoring.monitor import Monitor, Observed


def __getattr__(name: str) -> Any:
    if name in ("Monitor", "Observed"):
        from modelmon.monitoring import monitor

        return getattr(monitor, name)
    raise AttributeError(f"module 'modelmon' has no attribute {name!r}")
