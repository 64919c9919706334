"""The files modelmon keeps beside a model's `MLmodel`, named once.

May import: nothing.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MODEL_CONFIG_FILE", "ORIGIN_FILE", "PROFILE_FILE"]

MODEL_CONFIG_FILE: Final = "modelmon.yaml"  # what the team says about the model (name, inputs)
PROFILE_FILE: Final = "reference_profile.json"  # the reference profile `modelmon profile` writes
# A folder fetched from a tracking server: the registry's identity (name, version, alias).
ORIGIN_FILE: Final = "modelmon-origin.json"
