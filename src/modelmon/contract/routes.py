"""HTTP paths that two parts of a stack agree on, written once.

May import: nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["SLACK_PATH"]

# Where the local Slack stand-in takes Alertmanager's webhook; the native runner writes this URL
# into the webhook file that Alertmanager reads.
SLACK_PATH: Final = "/slack"
