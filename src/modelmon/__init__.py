"""modelmon: monitor MLflow models in production with Prometheus and Grafana."""

__version__ = "0.1.0"
