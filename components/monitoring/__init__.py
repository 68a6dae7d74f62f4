"""Monitoring at the environment's level (monitoring.py) and the configs it renders:
Prometheus (prometheus.py), alert rules (rules.py), Alertmanager (alertmanager.py)."""
