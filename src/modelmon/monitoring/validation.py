"""Request validation generated from the model signature.

One pydantic model per served model, built once at start-up, gives both the checks and the
OpenAPI schema shown in /docs. Every rejection carries a bounded `reason` (one of
`contract.reasons.INVALID_REASONS`, the label of `modelmon_invalid_requests_total`), the offending field, and a sentence a client can act on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Optional

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import PydanticCustomError

from modelmon.errors import ApiError, invalid_input
from modelmon.model.signature import Feature

_PYTHON_TYPES = {"integer": int, "float": float, "boolean": bool, "string": str}
_KIND_WORDS = {"integer": "an integer", "float": "a number", "boolean": "true or false", "string": "a string"}
_BOUND_ERRORS = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}


def _reject_non_finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise PydanticCustomError("not_finite", "must be a finite number, got {value}", {"value": str(value)})
    return value


def _whole_floats_are_integers(value: Any) -> Any:
    """JSON has one number type: 3.0 is the integer 3 (JSON Schema agrees); 3.5 is not.

    The JSON parser reads an integer beyond 64 bits as a float (-2**63 - 1 comes back as
    -2**63): past the safe-integer bound of an int64 input either way, so refused as sent."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


# What the model's column type can hold: a value past it would overflow when typed. An int64
# input is held to the integers a double holds exactly (2**53 - 1, JSON's safe integers): the
# model computes in float64 anyway, and a client that reads the schema's bound as a double (as
# JSON parsers do) then never takes a value past it for a valid one.
_SAFE_INTEGER = 2**53 - 1
_DTYPE_RANGES = {
    "int64": (-_SAFE_INTEGER, _SAFE_INTEGER),
    "int32": (-(2**31), 2**31 - 1),
    "float32": (-3.4028234e38, 3.4028234e38),
}


def _bounds(feature: Feature) -> tuple[float | None, float | None]:
    """Declared bounds, else what the column type can hold."""
    low, high = _DTYPE_RANGES.get(feature.dtype, (None, None))
    return (feature.minimum if feature.minimum is not None else low,
            feature.maximum if feature.maximum is not None else high)


def _field_type(feature: Feature) -> Any:
    constraints: dict[str, Any] = {"allow_inf_nan": False} if feature.kind == "float" else {}
    minimum, maximum = _bounds(feature)
    if minimum is not None:
        constraints["ge"] = minimum
    if maximum is not None:
        constraints["le"] = maximum
    annotated: Any = Annotated[_PYTHON_TYPES[feature.kind], Field(**constraints)]
    if feature.kind == "integer":
        annotated = Annotated[annotated, BeforeValidator(_whole_floats_are_integers), BeforeValidator(_reject_non_finite)]
    elif feature.kind == "float":
        annotated = Annotated[annotated, BeforeValidator(_reject_non_finite)]
    return Optional[annotated] if feature.nullable else annotated  # noqa: UP045 - a runtime type


def record_model(model_name: str, features: Sequence[Feature], strict: bool = True) -> type[BaseModel]:
    """A pydantic model of one input row: JSON types are strict, so "12" is not an integer."""
    # An input that may be missing may be null or left out; any other is required.
    fields: dict[str, Any] = {f.name: (_field_type(f), None if f.nullable else ...) for f in features}
    title = "".join(part.capitalize() for part in model_name.replace("-", "_").split("_")) + "Record"
    return create_model(title, __config__=ConfigDict(extra="forbid", strict=strict), **fields)


class RequestValidator:
    """Turns a request body or query string into typed columns, or raises an ApiError (`invalid_input`)."""

    def __init__(self, model_name: str, features: Sequence[Feature], max_batch_rows: int = 1000) -> None:
        self.features = tuple(features)
        self.max_batch_rows = max_batch_rows
        self.record = record_model(model_name, features)
        self._rows = TypeAdapter(list[self.record])  # type: ignore[name-defined]
        self._query = TypeAdapter(record_model(model_name, features, strict=False))
        self._kinds = {f.name: f.kind for f in features}

    # -- entry points -------------------------------------------------------------------------
    def parse_body(self, body: bytes) -> tuple[dict[str, list[Any]], bool]:
        """Columns of the rows in a JSON body, and whether it was a batch."""
        if not body.strip():
            raise invalid_input(400, "empty_body", None, "The request body is empty; send a JSON object.")
        document = load_json(body)
        if not isinstance(document, dict):
            raise invalid_input(
                422, "wrong_type", "body",
                "The body must be a JSON object: one record, or {\"instances\": [records]}.",
            )
        if "instances" not in document:
            return self._validate([document], batch=False), False
        extra = sorted(set(document) - {"instances"})
        if extra:
            raise invalid_input(422, "extra_field", extra[0], f"'{extra[0]}' is not allowed beside 'instances'.")
        rows = document["instances"]
        if not isinstance(rows, list):
            raise invalid_input(422, "wrong_type", "instances", "'instances' must be a list of records.")
        return self.batch(rows, "instances"), True

    def batch(self, rows: list[Any], field: str) -> dict[str, list[Any]]:
        """Columns of a batch that came in `field`: at least one record, at most the limit."""
        if not rows:
            raise invalid_input(422, "empty_batch", field, f"'{field}' is empty; send at least one record.")
        if len(rows) > self.max_batch_rows:
            raise invalid_input(
                413, "batch_too_large", field,
                f"'{field}' has {len(rows)} records; the limit is {self.max_batch_rows} per request (the "
                "server's max_batch_rows setting, --max-batch-rows).",
            )
        return self._validate(rows, batch=True)

    def columns(self, rows: list[Any]) -> dict[str, list[Any]]:
        """Typed columns of rows already parsed (the library's `Monitor.observe`), or an
        ApiError naming the first invalid field."""
        return self._validate(rows, batch=True)

    def parse_query(self, params: Mapping[str, str]) -> dict[str, list[Any]]:
        """One record from a query string (the workshop's generator used GET)."""
        try:
            record = self._query.validate_python(dict(params))
        except ValidationError as exc:
            raise self._invalid(exc, batch=False) from None
        return {name: [getattr(record, name)] for name in self._kinds}

    # -- helpers ------------------------------------------------------------------------------
    def _validate(self, rows: list[Any], batch: bool) -> dict[str, list[Any]]:
        columns = self._plain_columns(rows)
        if columns is not None:
            return columns
        try:
            records = self._rows.validate_python(rows)
        except ValidationError as exc:
            raise self._invalid(exc, batch) from None
        return {name: [getattr(r, name) for r in records] for name in self._kinds}

    def _plain_columns(self, rows: list[Any]) -> dict[str, list[Any]] | None:
        """Columns at once when every row is already exactly right (JSON ints for integers,
        finite numbers within bounds, no missing or extra key), as large batches usually are.
        None sends the rows through pydantic, which accepts the rest and words the errors."""
        width = len(self._kinds)
        try:
            if any(len(row) != width for row in rows):
                return None
            columns = {name: [row[name] for row in rows] for name in self._kinds}
        except (KeyError, TypeError):
            return None
        for feature in self.features:
            values = columns[feature.name]
            if feature.kind == "integer":
                if not all(type(v) is int for v in values):
                    return None
            elif feature.kind == "float":
                if not all(type(v) is float or type(v) is int for v in values):
                    return None
                if not all(math.isfinite(v) for v in values):
                    return None
            else:
                return None  # strings and booleans: let pydantic check them
            low, high = _bounds(feature)
            if (low is not None and min(values) < low) or (high is not None and max(values) > high):
                return None
        return columns

    def _invalid(self, exc: ValidationError, batch: bool) -> ApiError:
        errors = [self._describe(e, batch) for e in exc.errors(include_url=False)]
        first = errors[0]
        return invalid_input(422, first["reason"], first["field"], first["message"], errors)

    def _describe(self, error: Mapping[str, Any], batch: bool) -> dict[str, Any]:
        loc = list(error["loc"])
        index = loc.pop(0) if batch and loc and isinstance(loc[0], int) else None
        if not batch and loc and isinstance(loc[0], int):
            loc.pop(0)
        kind = error["type"]
        value = error.get("input")
        if not loc:
            where = f"instances[{index}]" if index is not None else "body"
            return _entry(where, "wrong_type", f"'{where}' must be a JSON object (a record), got {_short(value)}.")
        name = str(loc[0])
        where = f"instances[{index}].{name}" if index is not None else name
        if kind == "missing":
            return _entry(where, "missing_field", f"'{name}' is required.")
        if kind == "extra_forbidden":
            expected = ", ".join(self._kinds)
            return _entry(where, "extra_field", f"'{name}' is not an input of this model; inputs are: {expected}.")
        if kind in ("not_finite", "finite_number"):
            return _entry(where, "not_finite", f"'{name}' must be a finite number, got {value}.")
        if kind in _BOUND_ERRORS:
            bound = next(iter(error.get("ctx", {}).values()), "its bound")
            relation = ">=" if kind.startswith("greater") else "<="
            return _entry(where, "out_of_bounds", f"'{name}' must be {relation} {bound}, got {value!r}.")
        expected = _KIND_WORDS.get(self._kinds.get(name, ""), "a record")
        return _entry(where, "wrong_type", f"'{name}' must be {expected}, got {_short(value)}.")


def _entry(field_name: str, reason: str, message: str) -> dict[str, Any]:
    return {"field": field_name, "reason": reason, "message": message}


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def load_json(body: bytes) -> Any:
    """orjson for speed; the standard parser only to tell NaN/Infinity apart from garbage."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as fast_error:
        try:
            return json.loads(body)  # accepts NaN and Infinity, which validation then names
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise invalid_input(400, "invalid_json", "body", f"The body is not valid JSON ({fast_error}).") from None


def request_schema(validator: RequestValidator, example: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI request body for POST /predict: one record, or a batch of them."""
    record = validator.record.model_json_schema()
    batch = {
        "title": "Batch",
        "type": "object",
        "additionalProperties": False,
        "required": ["instances"],
        "properties": {
            "instances": {"type": "array", "items": record, "minItems": 1, "maxItems": validator.max_batch_rows}
        },
    }
    return {
        "required": True,
        "content": {"application/json": {"schema": {"oneOf": [record, batch]}, "example": dict(example)}},
    }


def scoring_schema(validator: RequestValidator, example: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAPI request body for POST /invocations: MLflow's record formats (`dataframe_split`,
    `inputs` and CSV are read too; their shapes are beyond what JSON Schema can tie to the
    signature, so the description names them)."""
    record = validator.record.model_json_schema()
    records = {"type": "array", "items": record, "minItems": 1, "maxItems": validator.max_batch_rows}
    formats = [{"title": key, "type": "object", "additionalProperties": False, "required": [key],
                "properties": {key: records}} for key in ("dataframe_records", "instances")]
    return {
        "required": True,
        "description": "MLflow's scoring request: dataframe_records or instances (records), dataframe_split "
                       "({columns, data}), inputs (columns by name), or Content-Type text/csv (a header row).",
        "content": {"application/json": {"schema": {"oneOf": formats},
                                         "example": {"dataframe_records": [dict(example)]}}},
    }

