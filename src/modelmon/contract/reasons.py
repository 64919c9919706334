"""Why an input was refused: the bounded values of the `reason` label of
`modelmon_invalid_requests_total`, as a Literal type, so that a misspelt reason fails mypy where
it is written instead of a KeyError where it is counted.

May import: the standard library only (the error tree imports it, and `modelmon serve --workers`
needs prometheus_client not yet imported when the command line starts).
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = ["INVALID_REASONS", "InvalidReason"]

InvalidReason = Literal[
    "empty_body", "invalid_json", "body_too_large", "batch_too_large", "empty_batch",
    "missing_field", "extra_field", "wrong_type", "not_finite", "out_of_bounds",
    # the collector's POST /observe: not one prediction (or request id) per row
    "length_mismatch", "wrong_request_ids",
    # a client's X-Request-ID header that cannot name a prediction (too long, or other characters)
    "invalid_request_id",
]
INVALID_REASONS: tuple[InvalidReason, ...] = get_args(InvalidReason)
