"""Targets: a stack rendered for where it runs. The layout of its parts and ports, the
Prometheus and Alertmanager files, docker-compose, Kubernetes (Prometheus Operator), Grafana
dashboards, and the native runner that starts the real binaries on one host.

May import: `rules`, `ruletests` and everything below; never `simulate`, `backtest`, `report`,
`workshop` or `cli`.
"""
