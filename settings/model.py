"""Typed stack configuration: the one shape every component reads.

Field names are snake_case in Python and camelCase in stack files (the alias).
Unknown keys are refused so a typo never silently falls back to a default.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

Environment = Literal["dev", "stage", "prod"]
SlotName = Literal["blue", "green"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
BackupSchedule = Literal["none", "daily", "hourly+daily"]
OffsiteKind = Literal["minio", "s3"]
MonitoringLevel = Literal["basic", "full", "full+alerts"]
Service = Literal[
    "app", "worker", "flower", "postgres", "redis", "qdrant", "minio", "nginx",
    # Monitoring, from level full (alertmanager: full+alerts only).
    "prometheus", "alertmanager", "postgres-exporter", "redis-exporter", "node-exporter",
    # The backup job's container (components/backups/backups.py).
    "backup",
]

SLOT_NAMES: tuple[str, ...] = ("blue", "green")
WORKER_CONCURRENCY = 4  # celery --concurrency, the guide's figure
RESERVED_CONNECTIONS = 10  # migrations, backups, exporters, an operator's psql

# A reference is pinned when it names a digest, or when its last path component
# carries a tag (the registry part may hold a port, `registry:5000/app`).
_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
_TAGGED = re.compile(r"^[^\s@]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
# S3 bucket names without dots: a dotted name breaks TLS on virtual-hosted URLs.
_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def image_is_pinned(ref: str) -> bool:
    """True when `ref` carries a digest or a tag other than `latest`."""
    if _DIGEST.search(ref):
        return True
    last = ref.rsplit("/", 1)[-1]
    return bool(_TAGGED.match(last)) and not last.endswith(":latest")


def _check_image(ref: str) -> str:
    if not image_is_pinned(ref):
        raise ValueError("must carry a tag other than 'latest' (name:1.2.3) or a digest (name@sha256:...)")
    return ref


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SlotConfig(_Model):
    image: str
    replicas: int = Field(ge=1, le=50)

    @field_validator("image")
    @classmethod
    def _pinned(cls, v: str) -> str:
        return _check_image(v)


class AppConfig(_Model):
    debug: bool
    log_level: LogLevel
    structlog_dev_mode: bool
    cors_origins: list[str] = Field(default_factory=list)
    allowed_hosts: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(ge=1)
    rate_limit_per_hour: int = Field(ge=1)
    # None means "2 x hostCpus + 1", the guide's formula, resolved in StackConfig.
    uvicorn_workers: Optional[int] = Field(default=None, ge=1, le=64)
    db_pool_size: int = Field(ge=1, le=200)
    db_max_overflow: int = Field(ge=0, le=200)


class ImagesConfig(_Model):
    postgres: str
    redis: str
    qdrant: str
    minio: str
    nginx: str
    prometheus: str
    alertmanager: str
    postgres_exporter: str
    redis_exporter: str
    node_exporter: str

    @field_validator("*")
    @classmethod
    def _pinned(cls, v: str) -> str:
        return _check_image(v)


class BackupsConfig(_Model):
    schedule: BackupSchedule
    retention_days: int = Field(ge=1, le=3650)
    # Where every verified backup is copied: the stack's own MinIO bucket
    # `<env>-backups`, or an S3 bucket the stack makes in s3Region. Its name is
    # fixed, not generated (after losing a host, and perhaps the Pulumi state,
    # it is what an operator must find): Naming.global_bucket unless s3Bucket
    # overrides it (S3 names are global; someone else may hold ours).
    offsite: OffsiteKind = "minio"
    s3_region: Optional[str] = None
    s3_bucket: Optional[str] = None

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not _S3_BUCKET.match(v):
            raise ValueError("must be 3-63 lowercase letters, digits or '-', starting and ending with a letter or digit")
        return v

    @model_validator(mode="after")
    def _s3_complete(self) -> "BackupsConfig":
        if self.offsite == "s3" and not self.s3_region:
            raise ValueError("offsite 's3' needs s3Region")
        return self


class MonitoringConfig(_Model):
    level: MonitoringLevel
    # How long Prometheus keeps samples (--storage.tsdb.retention.time).
    retention_days: int = Field(ge=1, le=3650)
    # Alert e-mail recipients (level full+alerts), sent through `smtp`. A webhook
    # receiver is added when the secret `alertWebhookUrl` is set.
    alert_email: list[str] = Field(default_factory=list)

    @field_validator("alert_email")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        for address in v:
            if not _EMAIL.match(address):
                raise ValueError(f"{address!r} is not an e-mail address")
        return v


class TlsConfig(_Model):
    enabled: bool
    # Host directory with the certificates (certbot's layout: live/<domain>/...),
    # mounted read-only into nginx.
    certificate_dir: str = "/etc/letsencrypt"
    # certbot --webroot writes its HTTP-01 challenges here; nginx serves them on :80.
    webroot_dir: str = "/var/www/certbot"


class SmtpConfig(_Model):
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    user: str
    from_email: str


class StackConfig(_Model):
    environment: Environment
    docker_host: str
    # The ssh:// host's public key (`ssh-keyscan -t ed25519 <host>`): the SSH
    # steps send secrets on stdin, so they must know whom they talk to.
    docker_host_key: Optional[str] = None
    active_slot: SlotName
    slots: dict[SlotName, SlotConfig] = Field(min_length=1)
    app: AppConfig
    images: ImagesConfig
    backups: BackupsConfig
    monitoring: MonitoringConfig
    domain: Optional[str] = None
    host_cpus: int = Field(ge=1, le=256)
    postgres_max_connections: int = Field(ge=20, le=5000)
    http_port: int = Field(ge=1, le=65535)
    https_port: int = Field(ge=1, le=65535)
    tls: TlsConfig
    publish_flower: bool
    # Off: changing the live slot's image, or switching to an unreleased one, is
    # refused (settings/release_guard.py). On in dev, where one slot iterates.
    allow_live_release: bool
    memory_mb: dict[Service, int]
    openrouter_base_url: str
    langfuse_host: Optional[str] = None
    smtp: Optional[SmtpConfig] = None
    # Bump a value to regenerate that secret (RandomPassword keepers).
    rotation: dict[str, int] = Field(default_factory=dict)

    @field_validator("memory_mb")
    @classmethod
    def _memory_positive(cls, v: dict[str, int]) -> dict[str, int]:
        for service, mb in v.items():
            if mb < 64:
                raise ValueError(f"{service}: {mb} MiB is below the 64 MiB floor")
        return v

    @property
    def uvicorn_workers(self) -> int:
        return self.app.uvicorn_workers or 2 * self.host_cpus + 1

    def connection_budget(self) -> int:
        """Worst-case Postgres connections: every replica of every slot at full
        pool, the Celery worker's processes, and RESERVED for jobs and admins."""
        per_process = self.app.db_pool_size + self.app.db_max_overflow
        replicas = sum(slot.replicas for slot in self.slots.values())
        return replicas * self.uvicorn_workers * per_process + WORKER_CONCURRENCY * per_process + RESERVED_CONNECTIONS

    @property
    def active(self) -> SlotConfig:
        return self.slots[self.active_slot]

    @property
    def public_url(self) -> str:
        if self.tls.enabled:
            port = "" if self.https_port == 443 else f":{self.https_port}"
            return f"https://{self.domain}{port}"
        port = "" if self.http_port == 80 else f":{self.http_port}"
        return f"http://{self.domain or 'localhost'}{port}"
