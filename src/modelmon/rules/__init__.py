"""Rules: the Prometheus recording and alerting rules generated from a profile and the settings,
and the Alertmanager routing they feed.

May import: `errors`, `settings`, `contract`, `stats`, `model`; never `monitoring` or `serving`
(rules describe the metrics by their names, not by the code that exports them).
"""
