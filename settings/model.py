"""Typed stack configuration: the one shape every component reads.

Field names are snake_case in Python and camelCase in stack files (the alias).
Unknown keys are refused so a typo never silently falls back to a default.
Every string that reaches a rendered file, an env line, a host path, a URL or
a command has a grammar (settings/values.py), named by its `Shape`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from settings import values

Environment = Literal["dev", "stage", "prod"]
SlotName = Literal["blue", "green"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
BackupSchedule = Literal["none", "daily", "hourly+daily"]
OffsiteKind = Literal["minio", "s3"]
MonitoringLevel = Literal["basic", "full", "full+alerts"]
# `docker`: the stack's one Docker host; `swarm`: a Docker Swarm of `nodes`.
Runtime = Literal["docker", "swarm"]
NodeRole = Literal["manager", "edge", "app", "data"]
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

# S3 bucket names without dots: a dotted name breaks TLS on virtual-hosted URLs.
_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


@dataclass(frozen=True)
class Shape:
    """What the config reference (settings/reference.py) calls a validated string type."""

    name: str


HostName = Annotated[str, Shape("host name"), AfterValidator(values.host_name)]
Host = Annotated[str, Shape("host name or IPv4"), AfterValidator(values.host)]
HostAndPort = Annotated[str, Shape("host[:port]"), AfterValidator(values.host_and_port)]
Origin = Annotated[str, Shape("origin"), AfterValidator(values.origin)]
Url = Annotated[str, Shape("URL"), AfterValidator(values.url)]
Email = Annotated[str, Shape("e-mail address"), AfterValidator(values.email)]
Login = Annotated[str, Shape("user name"), AfterValidator(values.login)]
RegistryLogin = Annotated[str, Shape("user name"), AfterValidator(values.registry_login)]
HostPath = Annotated[str, Shape("host path"), AfterValidator(values.host_path)]
AwsRegion = Annotated[str, Shape("AWS region"), AfterValidator(values.aws_region)]
# A pinned reference: a tag other than `latest`, or a digest.
Image = Annotated[str, Shape("image reference"), AfterValidator(values.image_reference)]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


class SlotConfig(_Model):
    image: Image
    replicas: int = Field(ge=1, le=50)


class AppConfig(_Model):
    debug: bool
    log_level: LogLevel
    structlog_dev_mode: bool
    # Origins and wildcards are also judged per environment (settings/load.py).
    cors_origins: list[Origin] = Field(default_factory=list)
    allowed_hosts: list[Host] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(ge=1)
    rate_limit_per_hour: int = Field(ge=1)
    # None means "2 x hostCpus + 1", the guide's formula, resolved in StackConfig.
    uvicorn_workers: Optional[int] = Field(default=None, ge=1, le=64)
    db_pool_size: int = Field(ge=1, le=200)
    db_max_overflow: int = Field(ge=0, le=200)


class ImagesConfig(_Model):
    postgres: Image
    redis: Image
    qdrant: Image
    minio: Image
    nginx: Image
    prometheus: Image
    alertmanager: Image
    postgres_exporter: Image
    redis_exporter: Image
    node_exporter: Image
    backup_base: Image


class BackupsConfig(_Model):
    schedule: BackupSchedule
    retention_days: int = Field(ge=1, le=3650)
    # Where every verified backup is copied: the stack's own MinIO bucket
    # `<env>-backups`, or an S3 bucket the stack makes in s3Region. Its name is
    # fixed, not generated (after losing a host, and perhaps the Pulumi state,
    # it is what an operator must find): Naming.global_bucket unless s3Bucket
    # overrides it (S3 names are global; someone else may hold ours).
    offsite: OffsiteKind = "minio"
    s3_region: Optional[AwsRegion] = None
    s3_bucket: Optional[str] = None

    @field_validator("s3_bucket")
    @classmethod
    def _bucket_name(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not _S3_BUCKET.fullmatch(v):
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
    alert_email: list[Email] = Field(default_factory=list)


class TlsConfig(_Model):
    enabled: bool
    # Host directory with the certificates (certbot's layout: live/<domain>/...),
    # mounted read-only into nginx.
    certificate_dir: HostPath = "/etc/letsencrypt"
    # certbot --webroot writes its HTTP-01 challenges here; nginx serves them on :80.
    webroot_dir: HostPath = "/var/www/certbot"


class SmtpConfig(_Model):
    host: Host
    port: int = Field(default=587, ge=1, le=65535)
    # A login, not necessarily an address: SES and SendGrid log in as `AKIA...` or `apikey`.
    user: Login
    from_email: Email


class RegistryConfig(_Model):
    """The private registry the images are pulled from; its password is the secret
    `registryPassword` (set both or neither)."""

    server: HostAndPort
    username: RegistryLogin


class NodeConfig(_Model):
    """A Swarm node, keyed in `nodes` by its hostname as `docker node ls` shows it."""

    # How the SSH steps reach the node's daemon (checked like dockerHost).
    docker_host: str
    # The node's SSH host key (`ssh-keyscan -t ed25519 <host>`), for ssh:// hosts.
    host_key: Optional[str] = None
    # What runs there, as node labels the placement constraints read.
    roles: list[NodeRole] = Field(min_length=1)

    @field_validator("roles")
    @classmethod
    def _roles_once(cls, v: list[str]) -> list[str]:
        repeated = sorted({role for role in v if v.count(role) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} listed more than once")
        return v


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
    domain: Optional[HostName] = None
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
    # https outside dev (settings/load.py).
    openrouter_base_url: Url
    langfuse_host: Optional[Url] = None
    smtp: Optional[SmtpConfig] = None
    registry: Optional[RegistryConfig] = None
    # Bump a value to regenerate that secret (RandomPassword keepers).
    rotation: dict[str, int] = Field(default_factory=dict)
    runtime: Runtime = "docker"
    # runtime swarm: the swarm's nodes (settings/load.py checks the roles add up).
    nodes: dict[HostName, NodeConfig] = Field(default_factory=dict)

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
