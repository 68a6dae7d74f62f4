"""The `<VAR>_FILE` variables of docs/app-image.md: `<VAR>_FILE=/path` gives
`<VAR>` the file's content, one trailing newline stripped; both set is an error.

The image's entrypoint (`python3 /app/src/app/secret_files.py CMD...`) resolves
them for the command it then execs, so every process the container starts sees
plain `<VAR>`: uvicorn, alembic, the Celery worker and Flower, which reads
FLOWER_BASIC_AUTH from its environment itself and ignores FLOWER_BASIC_AUTH_FILE
(it would serve without auth). config.py resolves them again for processes
`docker exec` starts, which skip the entrypoint: the worker's healthcheck
(`celery inspect ping`). Standard library only.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping

# The secret variables of the app's environment (components/app/environment.py,
# components/app/worker.py; tests/test_app_environment.py keeps them equal): only
# these, so an unrelated *_FILE (SSL_CERT_FILE) is left alone.
SECRET_VARIABLES = (
    "SECRET_KEY", "DATABASE_URL", "REDIS_URL", "QDRANT_API_KEY", "MINIO_SECRET_KEY",
    "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "COHERE_API_KEY", "OPENROUTER_API_KEY",
    "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "SMTP_PASSWORD", "FLOWER_BASIC_AUTH",
)


class SecretFileError(Exception):
    pass


def resolved(environ: Mapping[str, str]) -> dict[str, str]:
    """`environ` with each set `<VAR>_FILE` of SECRET_VARIABLES replaced by `<VAR>`
    (empty counts as unset, as in the official images). Raises SecretFileError."""
    env = dict(environ)
    for var in SECRET_VARIABLES:
        path = env.pop(f"{var}_FILE", "")
        if not path:
            continue
        if env.get(var):
            raise SecretFileError(f"both {var} and {var}_FILE are set (but are exclusive)")
        try:
            # newline="": the content as written, \r included.
            with open(path, encoding="utf-8", newline="") as f:
                env[var] = f.read().removesuffix("\n")
        except (OSError, UnicodeDecodeError) as e:
            raise SecretFileError(f"{var}_FILE={path}: {e.strerror if isinstance(e, OSError) else e}") from None
    return env


def main(argv: list[str]) -> None:
    """Exec `argv` (the image's CMD, or the command the container is given) with *_FILE resolved."""
    try:
        env = resolved(os.environ)
    except SecretFileError as e:
        sys.exit(f"error: {e}")
    os.execvpe(argv[0], argv, env)


if __name__ == "__main__":
    main(sys.argv[1:])
