"""The app's settings: the environment variables of docs/app-image.md, read once."""

from __future__ import annotations

import os
import sys

from src.app import secret_files

# Resolved here too, not only by the entrypoint: a process `docker exec` starts
# (the worker's healthcheck) gets the container's environment, *_FILE unresolved.
try:
    _env = secret_files.resolved(os.environ)
except secret_files.SecretFileError as e:
    sys.exit(f"error: {e}")

VERSION = _env.get("APP_VERSION", "0.0.0")
# Docker sets HOSTNAME to the container's id, so a reply says which replica served it.
SERVED_BY = _env.get("HOSTNAME", "unknown")

DATABASE_URL = _env.get("DATABASE_URL", "")
REDIS_URL = _env.get("REDIS_URL", "redis://localhost:6379/0")
QDRANT_URL = _env.get("QDRANT_URL", "http://localhost:6333")
QDRANT_API_KEY = _env.get("QDRANT_API_KEY", "")
QDRANT_COLLECTION = _env.get("QDRANT_COLLECTION", "documents")
MINIO_ENDPOINT = _env.get("MINIO_ENDPOINT", "localhost:9000")
MINIO_USE_SSL = _env.get("MINIO_USE_SSL", "false").lower() == "true"
MINIO_BUCKET = _env.get("MINIO_BUCKET", "documents")
MINIO_ACCESS_KEY = _env.get("MINIO_ACCESS_KEY", "")
MINIO_SECRET_KEY = _env.get("MINIO_SECRET_KEY", "")
DB_POOL_SIZE = int(_env.get("DB_POOL_SIZE", "5"))
DB_MAX_OVERFLOW = int(_env.get("DB_MAX_OVERFLOW", "2"))
# Each readiness probe of a service gives up after this long.
CHECK_TIMEOUT_S = float(_env.get("HEALTH_CHECK_TIMEOUT", "3"))


def version_at_least(wanted: str) -> bool:
    return tuple(map(int, VERSION.split("."))) >= tuple(map(int, wanted.split(".")))
