"""Rows out of a scoring request, in the formats model servers speak.

MLflow's scoring protocol (`mlflow models serve`'s `/invocations`) takes `dataframe_split`,
`dataframe_records`, `instances` or `inputs` in JSON, or a CSV table; KServe's v1 protocol is
`instances`, its v2 (the open inference protocol) is `inputs` as tensors. modelmon's own
`/invocations` reads requests with this, and `modelmon collect` reads the requests KServe
logged with it, so both accept exactly the same bodies.
"""

from __future__ import annotations

import csv
import io
from typing import Any

# The JSON keys of MLflow's scoring protocol, one per request.
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


class PayloadError(ValueError):
    """A payload that cannot be read as rows or answers; the message says why."""


def request_rows(data: Any, names: list[str]) -> list[Any]:
    """The rows of a logged request: KServe's v1 protocol (`{"instances": [...]}`, each a
    record or a list in the signature's order), the v2 / open inference protocol (`inputs`:
    one tensor of shape [rows, columns], or one named tensor per input), or MLflow's
    `dataframe_split` / `dataframe_records`."""
    if not isinstance(data, dict):
        raise PayloadError("the request body is not a JSON object")
    if "instances" in data:
        rows = data["instances"]
        if not isinstance(rows, list):
            raise PayloadError("'instances' is not a list")
        return [dict(zip(names, row)) if isinstance(row, list) else row for row in rows]
    if "dataframe_records" in data:
        rows = data["dataframe_records"]
        if not isinstance(rows, list):
            raise PayloadError("'dataframe_records' is not a list")
        return rows
    if "dataframe_split" in data:
        split = data["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("data"), list):
            raise PayloadError("'dataframe_split' needs 'columns' and 'data'")
        columns = split.get("columns") or names
        return [dict(zip(columns, row)) for row in split["data"]]
    if "inputs" in data:
        inputs = data["inputs"]
        if isinstance(inputs, dict):  # MLflow: columns by name
            return _column_rows(inputs)
        if isinstance(inputs, list) and inputs and all(isinstance(t, dict) and "data" in t for t in inputs):
            return _tensor_rows(inputs, names)  # the open inference protocol's tensors
        if isinstance(inputs, list):  # MLflow: rows, as records or in the signature's order
            return [dict(zip(names, row)) if isinstance(row, list) else row for row in inputs]
        raise PayloadError("'inputs' is neither columns by name, rows nor tensors")
    raise PayloadError("the request has none of 'instances', 'inputs', 'dataframe_split', 'dataframe_records'")


def _column_rows(columns: dict[str, Any]) -> list[Any]:
    if not all(isinstance(v, list) for v in columns.values()):
        raise PayloadError("each column in 'inputs' must be a list")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise PayloadError("the columns in 'inputs' have different lengths")
    return [{name: values[i] for name, values in columns.items()} for i in range(lengths.pop() if lengths else 0)]


def _tensor_rows(tensors: Any, names: list[str]) -> list[Any]:
    if not isinstance(tensors, list) or not tensors or not all(isinstance(t, dict) for t in tensors):
        raise PayloadError("'inputs' is not a list of tensors")
    by_name = {t.get("name"): t for t in tensors}
    if len(tensors) == 1 and tensors[0].get("name") not in names:
        tensor = tensors[0]
        shape, flat = tensor.get("shape"), tensor_values(tensor.get("data"))
        width = shape[-1] if isinstance(shape, list) and len(shape) == 2 else len(names)
        if not width or len(flat) % width:
            raise PayloadError("the input tensor's data does not fill its shape")
        return [dict(zip(names, flat[i:i + width])) for i in range(0, len(flat), width)]
    if set(names) - set(by_name):
        raise PayloadError(f"'inputs' lacks a tensor for {', '.join(sorted(set(names) - set(by_name)))}")
    columns = {name: tensor_values(by_name[name].get("data")) for name in names}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise PayloadError("the input tensors have different lengths")
    return [{name: columns[name][i] for name in names} for i in range(lengths.pop())]


def tensor_values(data: Any) -> list[Any]:
    """A tensor's data, flattened row by row."""
    if not isinstance(data, list):
        raise PayloadError("a tensor's 'data' is not a list")
    out: list[Any] = []
    for item in data:
        out.extend(tensor_values(item) if isinstance(item, list) else [item])
    return out


def csv_rows(body: bytes) -> list[dict[str, Any]]:
    """Records of a CSV table with a header row (MLflow's `text/csv`); numbers as numbers (an
    integer as int), an empty cell as missing."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PayloadError("the CSV body is not UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise PayloadError("the CSV body has no header row")
    rows = []
    for record in reader:
        if None in record:
            raise PayloadError(f"CSV row {reader.line_num} has more cells than the header")
        rows.append({k: _cell(v) for k, v in record.items()})
    return rows


def _cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
