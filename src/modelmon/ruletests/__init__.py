"""Rule tests: the promtool unit-test documents shipped with every stack, built from synthetic
exporter inputs and a Python model of each alert (the independent reference).

May import: the layers below `targets`: `rules`, `model`, `stats`, `contract`,
`settings`, `errors`.
"""
