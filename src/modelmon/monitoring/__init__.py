"""Monitoring, the library core: validating rows, observing them into Prometheus metrics,
exposing them, the prediction log and late labels (feedback).

`modelmon.Monitor` is this package's face for a team's own app. Nothing here knows HTTP.

May import: `modelmon.errors`, `modelmon.settings`, `modelmon.contract`, `modelmon.stats`,
`modelmon.model`.
"""
