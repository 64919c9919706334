"""YAML as the generated files write it: multi-line PromQL as literal blocks, keys in order.
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlDumper(yaml.SafeDumper):
    pass


def represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def dump_yaml(document: Any) -> str:
    """Readable YAML: multi-line PromQL as literal blocks, keys in the order written."""
    return yaml.dump(document, Dumper=YamlDumper, sort_keys=False, width=120, allow_unicode=True)
