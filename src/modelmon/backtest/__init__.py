"""The backtest: scenarios played on a simulated clock through the real rules (promtool's TSDB
and Prometheus), so detection delay and false alarms are measured over days.

May import: `simulate`, `targets` and everything below.
"""
