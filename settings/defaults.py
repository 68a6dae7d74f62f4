"""Per-environment defaults: the operations guide's environment table, written once.

A stack file (Pulumi.<stack>.yaml) overrides any of these; objects are merged key
by key, so `app: {corsOrigins: [...]}` in a stack file keeps the other `app` keys.

Rate limits (requests per client IP; the per-hour figure is enforced by the app,
the per-minute one by both nginx and the app):
- dev 600/min, 20000/h: permissive, so load tests and hot-reload loops never trip it.
- stage 120/min, 3000/h: standard, twice prod, so QA scripts pass while the
  limiter is still exercised on every request path.
- prod 60/min, 1000/h: strict, the guide's production figures.

Database pools are per uvicorn worker process, so a replica holds up to
workers x (dbPoolSize + dbMaxOverflow) connections; postgresMaxConnections is
sized so every deployed replica of both slots, the Celery worker and the
backup/migration jobs fit (settings.load checks this budget).
"""

from __future__ import annotations

from typing import Any

# Pinned images shared by every environment. The guide's `qdrant/qdrant:latest`
# is what this fixes: every stack runs exactly these until a reviewed change.
IMAGES: dict[str, str] = {
    # The Alpine release is pinned with the image: pgBackRest comes from that
    # release's packages here and in the backup image (backupBase), and both
    # ends of one repository must run the same pgBackRest version.
    "postgres": "postgres:15.10-alpine3.20",
    "redis": "redis:7.2.6-alpine",
    "qdrant": "qdrant/qdrant:v1.12.4",
    "minio": "minio/minio:RELEASE.2024-10-13T13-34-11Z",
    "nginx": "nginx:1.27.2-alpine",
    # Monitoring (level full and up). Rules and configs are checked with Debian's
    # promtool 2.42 and amtool 0.25, so they use nothing newer than those know.
    "prometheus": "prom/prometheus:v2.54.1",
    "alertmanager": "prom/alertmanager:v0.27.0",
    "postgresExporter": "prometheuscommunity/postgres-exporter:v0.15.0",
    # The -alpine variant: the default one is FROM scratch, with no shell for a healthcheck.
    "redisExporter": "oliver006/redis_exporter:v1.66.0-alpine",
    "nodeExporter": "prom/node-exporter:v1.8.2",
    # The backup job's base (components/backups/image): the Alpine release of
    # `postgres`, for the same pgBackRest (settings.load checks the two agree).
    "backupBase": "alpine:3.20.3",
}

# Memory limits in MiB per container. The app's 2 GiB matches the guide's
# HighMemoryUsage threshold (2e9 bytes); Redis keeps headroom over its maxmemory.
_MEMORY_SMALL = {
    "app": 1024, "worker": 768, "flower": 256, "postgres": 512,
    "redis": 384, "qdrant": 1024, "minio": 512, "nginx": 128,
    "prometheus": 512, "alertmanager": 128, "postgres-exporter": 128, "redis-exporter": 64, "node-exporter": 64,
    "backup": 256,
}
_MEMORY_PROD = {
    "app": 2048, "worker": 1536, "flower": 256, "postgres": 2048,
    "redis": 768, "qdrant": 4096, "minio": 1024, "nginx": 256,
    "prometheus": 1024, "alertmanager": 128, "postgres-exporter": 128, "redis-exporter": 64, "node-exporter": 64,
    "backup": 512,
}

# Off-site backups of stage and prod go to S3 in this region (a stack file may
# set backups.s3Region to keep them near its host); dev copies into its own MinIO.
BACKUP_S3_REGION = "eu-central-1"

ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "dev": {
        "dockerHost": "unix:///var/run/docker.sock",
        "activeSlot": "blue",
        "hostCpus": 2,
        "httpPort": 8080,
        "tls": {"enabled": False},
        "publishFlower": True,
        "allowLiveRelease": True,
        "app": {
            "debug": True,
            "logLevel": "DEBUG",
            "structlogDevMode": True,
            "corsOrigins": ["http://localhost:8080", "http://localhost:3000"],
            "allowedHosts": ["localhost", "127.0.0.1"],
            "rateLimitPerMinute": 600,
            "rateLimitPerHour": 20000,
            "dbPoolSize": 5,
            "dbMaxOverflow": 2,
        },
        "postgresMaxConnections": 150,
        "backups": {"schedule": "none", "retentionDays": 7, "offsite": "minio"},
        "monitoring": {"level": "basic", "retentionDays": 7},
        "memoryMb": _MEMORY_SMALL,
    },
    "stage": {
        "activeSlot": "blue",
        "hostCpus": 2,
        "httpPort": 80,
        "tls": {"enabled": True},
        "publishFlower": False,
        "allowLiveRelease": False,
        "app": {
            "debug": False,
            "logLevel": "INFO",
            "structlogDevMode": False,
            "rateLimitPerMinute": 120,
            "rateLimitPerHour": 3000,
            "dbPoolSize": 5,
            "dbMaxOverflow": 5,
        },
        "postgresMaxConnections": 300,
        "backups": {"schedule": "daily", "retentionDays": 14, "offsite": "s3",
                    "s3Region": BACKUP_S3_REGION},
        # Alerts: its off-site copies must page when the backup job stops (settings/load.py).
        "monitoring": {"level": "full+alerts", "retentionDays": 15},
        "memoryMb": _MEMORY_SMALL,
    },
    "prod": {
        "activeSlot": "blue",
        "hostCpus": 4,
        "httpPort": 80,
        "tls": {"enabled": True},
        "publishFlower": False,
        "allowLiveRelease": False,
        "app": {
            "debug": False,
            "logLevel": "WARNING",
            "structlogDevMode": False,
            "rateLimitPerMinute": 60,
            "rateLimitPerHour": 1000,
            "dbPoolSize": 8,
            "dbMaxOverflow": 4,
        },
        "postgresMaxConnections": 500,
        "backups": {"schedule": "hourly+daily", "retentionDays": 30, "offsite": "s3",
                    "s3Region": BACKUP_S3_REGION},
        "monitoring": {"level": "full+alerts", "retentionDays": 30},
        "memoryMb": _MEMORY_PROD,
    },
}

# Keys every environment shares.
COMMON: dict[str, Any] = {
    "images": IMAGES,
    "httpsPort": 443,
    "openrouterBaseUrl": "https://openrouter.ai/api/v1",
}


def defaults_for(environment: str) -> dict[str, Any]:
    """The merged default tree for one environment (COMMON under the env row)."""
    return deep_merge(COMMON, ENVIRONMENTS[environment])


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Merge override into a copy of base; nested dicts merge, everything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
