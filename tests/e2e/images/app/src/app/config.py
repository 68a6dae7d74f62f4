"""The app's settings: the environment variables of docs/app-image.md, read once."""

from __future__ import annotations

import os

VERSION = os.environ.get("APP_VERSION", "0.0.0")
# Docker sets HOSTNAME to the container's id, so a reply says which replica served it.
SERVED_BY = os.environ.get("HOSTNAME", "unknown")

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
QDRANT_URL = os.environ.get("QDRANT_URL", "http://localhost:6333")
QDRANT_API_KEY = os.environ.get("QDRANT_API_KEY", "")
QDRANT_COLLECTION = os.environ.get("QDRANT_COLLECTION", "documents")
MINIO_ENDPOINT = os.environ.get("MINIO_ENDPOINT", "localhost:9000")
MINIO_USE_SSL = os.environ.get("MINIO_USE_SSL", "false").lower() == "true"
MINIO_BUCKET = os.environ.get("MINIO_BUCKET", "documents")
MINIO_ACCESS_KEY = os.environ.get("MINIO_ACCESS_KEY", "")
MINIO_SECRET_KEY = os.environ.get("MINIO_SECRET_KEY", "")
DB_POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "5"))
DB_MAX_OVERFLOW = int(os.environ.get("DB_MAX_OVERFLOW", "2"))
# Each readiness probe of a service gives up after this long.
CHECK_TIMEOUT_S = float(os.environ.get("HEALTH_CHECK_TIMEOUT", "3"))


def version_at_least(wanted: str) -> bool:
    return tuple(map(int, VERSION.split("."))) >= tuple(map(int, wanted.split(".")))
