"""The workshop notebook runs top to bottom, headless."""

from __future__ import annotations

import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from .conftest import REPO

NOTEBOOK = REPO / "notebooks" / "workshop.ipynb"


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow  # close to two minutes: with the other walk-throughs in `make test-slow`
@pytest.mark.skipif(not shutil.which("prometheus"), reason="Prometheus is not installed (make test installs it)")
def test_notebook_runs_and_shows_the_alert():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)
    assert "[1000, 1000] -> 1" in text and "[2000, 5000] -> 1" in text
    assert "successful stores over the last 30s" in text
    assert "[FIRING" in text and "ModelLowPositiveRate" in text
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 3
