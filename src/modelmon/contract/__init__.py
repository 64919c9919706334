"""The contract: the names every generated file and every exporter agree on.

Metric names, label values that are bounded by design (invalid-input reasons, predict paths,
log drop reasons), histogram buckets and alert names. Nothing here computes anything; rules,
dashboards, the README's tables and the code that exports the metrics all read them from here.

May import: the standard library only.
"""
