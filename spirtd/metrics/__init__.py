"""Prometheus metrics: the [metrics] settings and the HTTP endpoint that
serves a registry. What the families are, and where their numbers come
from, is the daemon's (spirtd/daemon/metrics.py)."""
