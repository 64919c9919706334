"""What a run on this host needs from it: the engines' binaries and free ports, each missing
one reported as one sentence that says what to do.

May import: `modelmon.errors`.
"""

from __future__ import annotations

import shutil
import socket

from modelmon.errors import ModelmonError

__all__ = ["StackError", "check_port_free", "find_binary", "free_port"]

_INSTALL = ("install it with `sudo apt-get install -y prometheus prometheus-alertmanager victoria-metrics` "
            "(Debian/Ubuntu)")


class StackError(ModelmonError):
    """The native stack cannot start or stopped; the message says what to do."""


def find_binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise StackError(f"{names[0]} is not installed or not on PATH: {_INSTALL}.")


def check_port_free(host: str, port: int, what: str, hint: str | None = None) -> None:
    """Fail with one sentence when `port` is taken, before anything starts."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            hint = hint or f"set MODELMON_{what.upper()}_PORT to another port"
            raise StackError(f"Port {port} on {host} (for {what}) is in use: stop what runs there, or {hint}.") from None


def free_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """A port free on `host` now, the first of `count` consecutive free ones (a fleet's
    replicas and shards take consecutive ports). Another process may take it before it is
    used: for tests, benchmarks and the demo, which bind it at once."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            base: int = probe.getsockname()[1]
        if base + count > 65536:
            continue
        try:
            for port in range(base + 1, base + count):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
                    other.bind((host, port))
        except OSError:
            continue
        return base
    raise StackError(f"Found no {count} consecutive free ports on {host}: stop some servers and try again.")
