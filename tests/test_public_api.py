"""The public API is what `modelmon.__all__` says, and it covers every name the README and the
examples import from `modelmon` itself."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import modelmon

REPO = Path(__file__).resolve().parents[1]
_FROM_MODELMON = re.compile(r"^\s*from modelmon import ([\w, ]+)", re.M)


def _documented_names() -> set[str]:
    texts = [REPO / "README.md", *sorted((REPO / "examples").glob("*.py"))]
    return {name.strip() for path in texts for found in _FROM_MODELMON.findall(path.read_text())
            for name in found.split(",")}


def test_every_name_the_readme_and_examples_import_is_public_and_importable() -> None:
    documented = _documented_names()
    assert "Monitor" in documented  # the README's library section, as a user copies it
    assert documented <= set(modelmon.__all__)
    for name in documented:
        assert getattr(modelmon, name) is not None


def test_every_public_name_resolves() -> None:
    assert set(modelmon.__all__) == {*modelmon._PUBLIC, "__version__"}
    for name in modelmon.__all__:
        assert getattr(modelmon, name) is not None, name
    assert issubclass(modelmon.SettingsError, modelmon.ModelmonError)
    assert issubclass(modelmon.ModelLoadError, modelmon.ModelmonError)


def test_importing_modelmon_stays_light() -> None:
    """`import modelmon` and its command line (so `modelmon --help`) load neither NumPy nor the
    model code, nor prometheus_client, which `modelmon serve --workers` must configure first."""
    code = ("import sys, modelmon, modelmon.cli; "
            "print(sorted(m for m in ('numpy', 'modelmon.monitoring', 'prometheus_client') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
