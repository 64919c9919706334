"""Regenerate the README's tables from the code: `make readme` (a test fails when they are stale)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from modelmon.contract.names import metrics_reference
from modelmon.settings import settings_reference

README = Path(__file__).resolve().parents[1] / "README.md"
TABLES = {"metrics": metrics_reference, "settings": settings_reference}


def render(text: str) -> str:
    for name, table in TABLES.items():
        pattern = re.compile(rf"(<!-- {name} table: generated -->\n).*?(<!-- end of {name} table -->)", re.S)
        if not pattern.search(text):
            sys.exit(f"README.md has no generated {name} table markers")
        text = pattern.sub(lambda m, t=table: m.group(1) + t() + "\n" + m.group(2), text)
    return text


if __name__ == "__main__":
    README.write_text(render(README.read_text()))
