"""The statistics: drift distances, the evidence a window's count gives, calibration and
estimated quality. Pure functions over NumPy arrays; the rules' promtool cases use them as the
independent reference of what Prometheus computes.

May import: `modelmon.errors`, `modelmon.contract`.
"""
