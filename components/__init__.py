"""One ComponentResource per service or concern; `__main__.py` wires them together.

Each folder is one concern and holds its components, templates and scripts:

    secrets.py   every generated secret and provider key
    host/        the Docker host (provider, steps run on it), networks, the
                 settings every container shares
    data/        PostgreSQL, Redis, Qdrant, MinIO: one hardened container and a
                 named volume each
    app/         blue/green slots and their release steps, the app environment,
                 the Celery worker and Flower
    router/      nginx, its rendered config and the step that applies it
    backups/     the backup job's container, its image, the off-site copy
    monitoring/  Prometheus, exporters, alert rules, Alertmanager
    swarm/       runtime swarm: node role labels, a container's settings as a
                 Swarm service, Swarm secrets (docs/swarm.md)
"""
