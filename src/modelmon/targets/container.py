"""The app's image, as compose and Kubernetes both run it: the port it listens on inside the
container and where it keeps the prediction log. Written once: the Dockerfile, the compose
service and the Kubernetes Deployment all read them here.

May import: nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["CONTAINER_DATA", "CONTAINER_LOG", "CONTAINER_PORT"]

CONTAINER_PORT: Final = 8000
CONTAINER_DATA: Final = "/var/lib/modelmon"
CONTAINER_LOG: Final = f"{CONTAINER_DATA}/predictions.sqlite"
