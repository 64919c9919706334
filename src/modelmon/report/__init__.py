"""Reports: the dashboard's panels drawn from a real Prometheus into PNG, JSON and HTML, and the
exploration of a training CSV against its profile.

May import: `targets` and everything below.
"""
