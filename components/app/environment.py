"""The environment of the app, the Celery worker and Flower: the guide's
"Critical Variables", built once. Secret values are secret Outputs end to end.

One builder, two forms: `envs()` for a container (secret entries inline, as
secret Outputs) and `swarm_envs()` for a Swarm service (the secret ones apart,
each to become a Swarm secret the image reads through `<NAME>_FILE`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components.data import minio_policies, redis_acl
from components.secrets import EnvVariables, Secrets, SwarmEnv
from settings.model import StackConfig
from settings.secret_names import DATABASE_ROLES
from settings.naming import MINIO_PORT, POSTGRES_PORT, QDRANT_PORT, REDIS_PORT, Naming


@dataclass(frozen=True, kw_only=True)
class AppEnvironment:
    cfg: StackConfig
    naming: Naming
    secrets: Secrets

    def envs(self, database_role: str = "app") -> list[pulumi.Input[str]]:
        """["NAME=value", ...]: the plain entries, then the secret ones as secret
        Outputs. DATABASE_URL logs in as `database_role`: `app` (DML) for the app,
        worker and Flower, `owner` (DDL) for the migrations."""
        return self._variables(database_role).envs()

    def swarm_envs(self, database_role: str = "app") -> SwarmEnv:
        """The same variables for a Swarm service: SwarmEnv(plain=["NAME=value", ...],
        none secret; secrets={"NAME": secret Output}), one Swarm secret per name,
        read by the image through NAME_FILE (docs/app-image.md)."""
        return self._variables(database_role).swarm()

    def _variables(self, database_role: str) -> EnvVariables:
        cfg, n, s = self.cfg, self.naming, self.secrets
        app = cfg.app
        plain = {
            "ENVIRONMENT": cfg.environment,
            "DEBUG": str(app.debug).lower(),
            "LOG_LEVEL": app.log_level,
            "STRUCTLOG_DEV_MODE": str(app.structlog_dev_mode).lower(),
            "QDRANT_URL": f"http://{n.container('qdrant')}:{QDRANT_PORT}",
            "QDRANT_COLLECTION": n.collection,
            "MINIO_ENDPOINT": f"{n.container('minio')}:{MINIO_PORT}",
            "MINIO_USE_SSL": "false",  # backend network only, never leaves the host
            "MINIO_BUCKET": n.bucket("documents"),
            # The app's MinIO user name, fixed in code like SMTP_USER, not a
            # credential: plain, so Swarm needs no secret (nor the image a _FILE) for it.
            "MINIO_ACCESS_KEY": minio_policies.APP_USER,
            "CORS_ORIGINS": ",".join(app.cors_origins),
            "ALLOWED_HOSTS": ",".join(app.allowed_hosts),
            "RATE_LIMIT_PER_MINUTE": str(app.rate_limit_per_minute),
            "RATE_LIMIT_PER_HOUR": str(app.rate_limit_per_hour),
            "DB_POOL_SIZE": str(app.db_pool_size),
            "DB_MAX_OVERFLOW": str(app.db_max_overflow),
            "OPENROUTER_BASE_URL": cfg.openrouter_base_url,
        }
        if cfg.langfuse_host:
            plain["LANGFUSE_HOST"] = cfg.langfuse_host
        if cfg.smtp:
            plain.update({
                "SMTP_HOST": cfg.smtp.host, "SMTP_PORT": str(cfg.smtp.port),
                "SMTP_USER": cfg.smtp.user, "SMTP_FROM_EMAIL": cfg.smtp.from_email,
            })
        secret = {
            "SECRET_KEY": s["secretKey"],
            "DATABASE_URL": pulumi.Output.concat(
                "postgresql+asyncpg://", n.database_role(database_role), ":", s[DATABASE_ROLES[database_role]],
                "@", n.container("postgres"), f":{POSTGRES_PORT}/", n.database,
            ),
            "REDIS_URL": pulumi.Output.concat(
                f"redis://{redis_acl.APP_USER}:", s["redisPassword"], "@", n.container("redis"), f":{REDIS_PORT}/0"
            ),
            "QDRANT_API_KEY": s["qdrantApiKey"],
            "MINIO_SECRET_KEY": s["minioAppPassword"],
            **s.provider_keys,
        }
        return EnvVariables(plain=plain, secret=secret)
