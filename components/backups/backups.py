"""Backups: the container `<env>-backup`, which backs up every data service on the
schedule in backups.schedule and on demand, and restores one when asked.

Why a container and not a cron job installed on the host: everything it needs
(its image, its volumes, its credentials, its schedule) is then a resource of
the stack, replaced when it changes and removed with the stack; the host keeps
no crontab, script or password file that the stack does not manage; and the
credentials reach it only as secret environment variables. It runs busybox
crond in the foreground; with schedule `none` the crontab is empty and the
container is still there for on-demand and pre-migration backups.

The scripts it runs (image/bin, image/lib) are POSIX sh driven by environment
variables, and the tests run the same files against real PostgreSQL and Redis.
Its image is built on the Docker host from image/Dockerfile over the official
Redis image of the stack's Redis version (Debian variant), with the PostgreSQL
client of the server's major version.

Networks: the internal backend network to reach the data services; when the
off-site copy is in AWS, also a network of its own with egress (backend has
none), shared with no other container.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.host.containers import (
    ContainerSpec, Deployed, Healthcheck, data_volume, hardened_container, labelled_volume,
)
from components.host.docker_host import DockerHost
from components.data.minio import Minio
from components.host.networks import labelled_network
from components.backups.offsite import OffsiteTarget, stack_minio_url
from components.data.postgres import Postgres
from components.data.qdrant import Qdrant
from components.data.redis import Redis
from components.secrets import Secrets, secret_env
from settings.model import BackupSchedule, BackupsConfig
from settings.naming import POSTGRES_PORT, QDRANT_PORT, REDIS_PORT, Naming

_SOURCE = Path(__file__).parent / "image"
# The build context as the Docker provider sees it: relative to the project
# directory, where Pulumi runs the program, so state does not hold a local path.
BUILD_CONTEXT = "components/backups/image"

# Paths inside the container (image/Dockerfile installs under HOME).
HOME = "/opt/shia-backup"
BACKUP_COMMAND = f"{HOME}/bin/backup"
RESTORE_COMMAND = f"{HOME}/bin/restore"
BACKUP_DIR = "/backups"
METRICS_DIR = "/metrics"
METRICS_FILE = "shia_chatbot_backup.prom"  # lib/common.sh writes it
REDIS_SOURCE_DIR = "/sources/redis"  # the Redis data volume, read-only
REDIS_DUMP = "dump.rdb"  # redis-server's default dbfilename
NETWORK_ALIAS = "backup"  # how the live Redis reaches the temporary one during a restore


# What `bin/backup all` covers.
BACKED_UP_SERVICES = ("postgres", "redis", "qdrant", "minio")


@dataclass(frozen=True)
class Job:
    cron: str
    services: str
    reason: str
    period: timedelta  # how often the cron line fires; monitoring derives staleness from it

    def line(self) -> str:
        # Output to PID 1's streams, i.e. `docker logs`.
        return f"{self.cron} {BACKUP_COMMAND} {self.services} --reason {self.reason} >/proc/1/fd/1 2>/proc/1/fd/2"


# Daily at the guide's 02:00 UTC, everything. Hourly: Postgres only, the data
# that changes by the minute; at half past, so it never starts with the daily run.
SCHEDULES: dict[str, tuple[Job, ...]] = {
    "none": (),
    "daily": (Job("0 2 * * *", "all", "daily", timedelta(days=1)),),
    "hourly+daily": (Job("30 * * * *", "postgres", "hourly", timedelta(hours=1)),
                     Job("0 2 * * *", "all", "daily", timedelta(days=1))),
}


def backup_periods(schedule: BackupSchedule) -> dict[str, timedelta]:
    """service -> how often the schedule backs it up (the shortest of its jobs)."""
    periods: dict[str, timedelta] = {}
    for job in SCHEDULES[schedule]:
        for service in (BACKED_UP_SERVICES if job.services == "all" else job.services.split(",")):
            periods[service] = min(job.period, periods.get(service, job.period))
    return periods


def crontab(schedule: BackupSchedule) -> str:
    return "".join(f"{job.line()}\n" for job in SCHEDULES[schedule])


def image_tag(build_args: dict[str, str]) -> str:
    """A tag from the build context and args: any change makes a new tag, and so
    a new container (a fixed tag would rebuild the image under the old one)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in _SOURCE.rglob("*") if p.is_file()):
        digest.update(path.relative_to(_SOURCE).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    for key, value in sorted(build_args.items()):
        digest.update(f"{key}={value}\0".encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class BackupsArgs:
    naming: Naming
    config: BackupsConfig
    base_image: str  # images.backupBase: the Redis tools of the server's version
    minio_image: str
    memory_mb: int
    backend_network: pulumi.Input[str]
    postgres: Postgres
    redis: Redis
    qdrant: Qdrant
    minio: Minio
    secrets: Secrets
    offsite: OffsiteTarget
    host: DockerHost


class Backups(pulumi.ComponentResource):
    image: docker.Image
    data_volume: docker.Volume
    # `<env>_backup_metrics`, holding METRICS_FILE (Prometheus text format):
    # shia_chatbot_backup_last_status{service} 1 or 0,
    # shia_chatbot_backup_last_success_timestamp_seconds{service} and
    # shia_chatbot_backup_last_duration_seconds{service}, for service in postgres,
    # redis, qdrant, minio and offsite. Mount it read-only into node-exporter's
    # textfile collector.
    metrics_volume: docker.Volume
    deployed: Deployed

    def __init__(self, name: str, args: BackupsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:backup:Backups", name, None, opts)
        n = args.naming
        child = pulumi.ResourceOptions(parent=self)
        self.container_name = n.container("backup")
        self.bucket = args.offsite.bucket

        build_args = {"BASE_IMAGE": args.base_image, "MINIO_IMAGE": args.minio_image}
        self.image = docker.Image(
            f"{self.container_name}-image",
            image_name=f"shia-chatbot-backup:{image_tag(build_args)}",
            build=docker.DockerBuildArgs(context=BUILD_CONTEXT, dockerfile=f"{BUILD_CONTEXT}/Dockerfile",
                                         args=build_args),
            skip_push=True,
            opts=child,
        )
        self.data_volume = data_volume(n.volume("backup"), environment=n.env, service="backup", parent=self)
        self.metrics_volume = labelled_volume(n.volume("backup", "metrics"), environment=n.env, service="backup",
                                              opts=child)

        networks: list[tuple[pulumi.Input[str], list[str]]] = [(args.backend_network, [NETWORK_ALIAS])]
        if args.offsite.needs_egress:
            egress = labelled_network(n.network("backup-egress"), environment=n.env, opts=child)
            networks.append((egress.name, [NETWORK_ALIAS]))

        self.deployed = hardened_container(
            ContainerSpec(
                name=self.container_name,
                image=self.image.image_name,
                environment=n.env,
                service="backup",
                memory_mb=args.memory_mb,
                envs=self._envs(args),
                networks=networks,
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self.data_volume.name, container_path=BACKUP_DIR),
                    docker.ContainerVolumeArgs(volume_name=self.metrics_volume.name, container_path=METRICS_DIR),
                    docker.ContainerVolumeArgs(volume_name=args.redis.volume.name, container_path=REDIS_SOURCE_DIR,
                                               read_only=True),
                ],
                healthcheck=Healthcheck(test=["CMD-SHELL", "pgrep -x crond > /dev/null"]),
                host=args.host,
            ),
            pulumi.ResourceOptions(parent=self, delete_before_replace=True, depends_on=[
                *args.postgres.ready, *args.redis.ready, *args.qdrant.ready, *args.minio.ready,
                args.minio.bucket_step, *args.offsite.ready,
            ]),
        )
        self.register_outputs({"container": self.container.name, "metricsVolume": self.metrics_volume.name,
                               "bucket": self.bucket})

    @property
    def container(self) -> docker.Container:
        return self.deployed.container

    @property
    def ready(self) -> list[pulumi.Resource]:
        return self.deployed.ready

    def pre_migration_command(self, slot: str) -> str:
        """Run on the Docker host before `slot`'s migration; exits 0 only once a
        Postgres backup has been written, read back in full and copied off-site,
        and prints the set's name (`<time>-pre-migration-<slot>`). Depend on
        `ready` when calling it."""
        return f"docker exec {self.container_name} {BACKUP_COMMAND} postgres --reason pre-migration-{slot}"

    @staticmethod
    def _envs(args: BackupsArgs) -> list[pulumi.Input[str]]:
        """What the scripts read (see their headers); every credential a secret."""
        secrets = args.secrets
        return [
            f"BACKUP_DIR={BACKUP_DIR}",
            f"METRICS_DIR={METRICS_DIR}",
            f"RETENTION_DAYS={args.config.retention_days}",
            f"BACKUP_CRONTAB={crontab(args.config.schedule)}",
            "PGHOST=postgres",
            f"PGPORT={POSTGRES_PORT}",
            f"PGUSER={args.postgres.user}",
            f"PGDATABASE={args.postgres.database}",
            secret_env("PGPASSWORD", secrets["postgresPassword"]),
            "REDIS_HOST=redis",
            f"REDIS_PORT={REDIS_PORT}",
            f"REDIS_RDB={REDIS_SOURCE_DIR}/{REDIS_DUMP}",
            f"REDIS_RESTORE_ADDRESS={NETWORK_ALIAS}",
            secret_env("REDISCLI_AUTH", secrets["redisPassword"]),
            f"QDRANT_URL=http://qdrant:{QDRANT_PORT}",
            f"QDRANT_COLLECTION={args.qdrant.collection}",
            secret_env("QDRANT_API_KEY", secrets["qdrantApiKey"]),
            f"MINIO_BUCKET={args.minio.buckets['documents']}",
            secret_env("MC_HOST_minio", stack_minio_url(secrets)),
            f"OFFSITE_TARGET=offsite/{args.offsite.bucket}",
            secret_env("MC_HOST_offsite", args.offsite.mc_host),
        ]
