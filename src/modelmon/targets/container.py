"""The app's image, as compose and Kubernetes both run it: its tag, the port it listens on
inside the container and where it keeps the prediction log. Written once: the Dockerfile, the compose
service and the Kubernetes Deployment all read them here.

May import: `modelmon` (its version).
"""

from __future__ import annotations

from typing import Final

from modelmon import __version__

__all__ = ["APP_IMAGE", "CONTAINER_DATA", "CONTAINER_LOG", "CONTAINER_PORT"]

APP_IMAGE: Final = f"modelmon:{__version__}"  # deploy/Dockerfile's image, the base of every model's

CONTAINER_PORT: Final = 8000
CONTAINER_DATA: Final = "/var/lib/modelmon"
CONTAINER_LOG: Final = f"{CONTAINER_DATA}/predictions.sqlite"
