"""modelmon: monitor MLflow models in production with Prometheus and Grafana.

The public API is `__all__`: the library for a team's own app (`Monitor`, what `observe`
returns), the settings, and the errors a caller may catch. Everything else is reached through
its subpackage (`modelmon.rules`, `modelmon.targets`, ...), whose `__init__` says what it is.
The names are imported on first use, so the command line's `--help` does not pay for NumPy and
the model code.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_PUBLIC = {
    "Monitor": "modelmon.monitoring.monitor",
    "Observed": "modelmon.monitoring.monitor",
    "Settings": "modelmon.settings",
    "load_settings": "modelmon.settings",
    "ModelmonError": "modelmon.errors",
    "ApiError": "modelmon.errors",
    "SettingsError": "modelmon.settings",
    "ModelLoadError": "modelmon.model.signature",
    "ModelSourceError": "modelmon.model.source",
    "ProfileError": "modelmon.model.reference",
    "PredictionLogError": "modelmon.monitoring.predictionstore",
}
__all__ = [
    "ApiError", "ModelLoadError", "ModelSourceError", "ModelmonError", "Monitor", "Observed", "PredictionLogError",
    "ProfileError", "Settings", "SettingsError", "__version__", "load_settings",
]

if TYPE_CHECKING:
    from modelmon.errors import ApiError, ModelmonError
    from modelmon.model.reference import ProfileError
    from modelmon.model.signature import ModelLoadError
    from modelmon.model.source import ModelSourceError
    from modelmon.monitoring.monitor import Monitor, Observed
    from modelmon.monitoring.predictionstore import PredictionLogError
    from modelmon.settings import Settings, SettingsError, load_settings


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'modelmon' has no attribute {name!r}")
