"""The two kinds of error modelmon reports, each in one shape.

`ModelmonError`: something the user can fix (a model that cannot load, a port in use, a bad
setting). Every module's own error derives from it, and the command line prints its message
as one sentence with exit status 2, never a traceback.

`ApiError`: a refused HTTP request. Validation, feedback and the server raise or return it,
and it always renders the same JSON body: `error` (what was refused), `reason` (a bounded
value, also the label of the counter that counts it), `field` (where, or null), `message`
(a sentence a client can act on), and optionally `errors` (every problem found) and extras.
Its subclass `InvalidInputError` is a request whose inputs were refused: its reason is one of
`contract.reasons` and is counted in `modelmon_invalid_requests_total`; the library core
(`Monitor`) catches only that one.

May import: `modelmon.contract`.
"""

from __future__ import annotations

from typing import Any

from modelmon.contract.reasons import InvalidReason


class ModelmonError(Exception):
    """Something the user can fix; the message says what to do."""


class ApiError(Exception):
    """A refused request: HTTP status and the documented JSON body."""

    def __init__(self, status: int, error: str, reason: str, field: str | None, message: str,
                 errors: list[dict[str, Any]] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.reason = reason
        self.field = field
        self.message = message
        self.errors = errors
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error, "reason": self.reason, "field": self.field,
                               "message": self.message}
        if self.errors is not None:
            out["errors"] = self.errors
        out.update(self.extra)
        return out


class InvalidInputError(ApiError):
    """A request whose inputs were refused; `reason` is the label it is counted under
    (`modelmon_invalid_requests_total`)."""

    reason: InvalidReason


def invalid_input(status: int, reason: InvalidReason, field: str | None, message: str,
                  errors: list[dict[str, Any]] | None = None) -> InvalidInputError:
    """A request whose inputs were refused; `errors` lists every problem (at least this one)."""
    return InvalidInputError(status, "invalid_input", reason, field, message,
                        errors or [{"field": field, "reason": reason, "message": message}])


# The body's JSON Schema, for the OpenAPI documentation of every error answer.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "reason", "field", "message"],
    "properties": {
        "error": {"type": "string"},
        "reason": {"type": "string"},
        "field": {"type": ["string", "null"]},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
