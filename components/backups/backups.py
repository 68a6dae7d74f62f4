"""Backups: the container `<env>-backup`, which backs up every data service on the
schedule in backups.schedule and on demand, and restores one when asked.

The tools do the work: pgBackRest for PostgreSQL (full, differential and
incremental backups, the WAL archive PostgreSQL pushes into, point-in-time
recovery; pgbackrest.py) and restic for the Redis RDB, the Qdrant snapshot and
the MinIO documents (content-addressed, encrypted with the generated
`resticPassword`). Each has a local repository on the host and an off-site one
in the bucket of offsite.py. Our scripts (image/bin, image/lib) only capture
what a tool cannot read itself (an RDB over the replication protocol, a Qdrant
snapshot through its API, a bucket through mc), check the capture by content,
and record the per-service results the alerts read.

Why a container and not a cron job installed on the host: everything it needs
(its image, its volumes, its credentials, its schedule) is then a resource of
the stack, replaced when it changes and removed with the stack; the host keeps
no crontab, script or password file that the stack does not manage; and the
credentials reach it only as secret environment variables, or on a swarm as
Swarm secrets (files under /run/secrets named by `<VAR>_FILE`, which
image/lib/secret-files.sh reads into `<VAR>` for every script: a secret entry would
hide the service's whole task spec, docs/swarm.md). It runs busybox
crond in the foreground; with schedule `none` only the WAL metrics job runs and
the container is there for on-demand and pre-migration backups.

Networks: the internal backend network to reach the data services; when the
off-site copy is in AWS, also a network of its own with egress (backend has
none), shared with no other container.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Optional, Union

import pulumi
import pulumi_docker as docker

from components.backups.pgbackrest import DATA_PATH, FULL_BACKUP_PERIOD_DAYS, REPOSITORY_PATH, SOCKET_PATH, PgBackRest
from components.host.runtime import Runtime
from components.swarm.service import Placement
from components.host.containers import (
    ContainerSpec, Deployed, Healthcheck, data_volume, labelled_volume,
)
from components.host.docker_host import host_script
from components.host.images import built_image
from components.data.minio import Minio
from components.host.networks import labelled_network
from components.backups.offsite import OffsiteTarget, stack_minio_url
from components.data.postgres import Postgres
from components.data.qdrant import Qdrant
from components.data import redis_acl
from components.data.redis import Redis
from components.secrets import Secrets, secret_env
from settings.model import BackupSchedule, BackupsConfig
from settings.naming import POSTGRES_PORT, QDRANT_PORT, REDIS_PORT, Naming

BUILD_CONTEXT = "components/backups/image"

# Paths inside the container (image/Dockerfile installs under HOME).
HOME = "/opt/shia-backup"
BACKUP_COMMAND = f"{HOME}/bin/backup"
RESTORE_COMMAND = f"{HOME}/bin/restore"
WAL_METRICS_COMMAND = f"sh {HOME}/lib/postgres.sh metrics"
BACKUP_DIR = "/backups"
RESTIC_REPOSITORY = f"{BACKUP_DIR}/restic"
BACKUP_STAGING = f"{BACKUP_DIR}/staging"
METRICS_DIR = "/metrics"
METRICS_FILE = "shia_chatbot_backup.prom"  # lib/common.sh writes it
WAL_METRICS_FILE = "shia_chatbot_wal.prom"  # lib/postgres.sh metrics writes it
NETWORK_ALIAS = "backup"  # how the live Redis reaches the temporary one during a restore


# The credentials, passed on a swarm as `<VAR>_FILE` (Runtime.deploy's file_secrets):
# exactly the names image/lib/secret-files.sh resolves (SECRET_VARIABLES there).
FILE_SECRETS = ("RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "PGBACKREST_REPO2_S3_KEY",
                "PGBACKREST_REPO2_S3_KEY_SECRET", "REDISCLI_AUTH", "QDRANT_API_KEY", "MC_HOST_minio")

# A variable of the container: "NAME=value", or (NAME, value) for a credential.
Variable = Union[str, tuple[str, pulumi.Input[str]]]


# What `bin/backup all` covers; the services kept as files in restic (no WAL archive).
BACKED_UP_SERVICES = ("postgres", "redis", "qdrant", "minio")
FILE_SERVICES = ("redis", "qdrant", "minio")


@dataclass(frozen=True)
class Job:
    cron: str
    services: tuple[str, ...]
    reason: str
    period: timedelta  # how often the cron line fires; monitoring derives staleness from it

    def line(self) -> str:
        services = "all" if self.services == BACKED_UP_SERVICES else " ".join(self.services)
        return _cron_line(self.cron, f"{BACKUP_COMMAND} {services} --reason {self.reason}")


def _cron_line(cron: str, command: str) -> str:
    # Output to PID 1's streams, i.e. `docker logs`.
    return f"{cron} {command} >/proc/1/fd/1 2>/proc/1/fd/2\n"


# Daily at the guide's 02:00 UTC, everything: for PostgreSQL a pgBackRest
# differential (a full once a week). Hourly (prod): the services without a WAL
# archive, whose restic snapshots deduplicate; PostgreSQL needs no hourly backup,
# its WAL is archived within archive_timeout (60 s), and pgBackRest 2.45's
# incrementals copy every changed file whole (measured: 22.8 GB over 30 days with
# hourly incrementals, 2.2 GB without; docs/backups.md). At half past, so the
# hourly run never starts with the daily one.
SCHEDULES: dict[str, tuple[Job, ...]] = {
    "none": (),
    "daily": (Job("0 2 * * *", BACKED_UP_SERVICES, "daily", timedelta(days=1)),),
    "hourly+daily": (Job("30 * * * *", FILE_SERVICES, "hourly", timedelta(hours=1)),
                     Job("0 2 * * *", BACKED_UP_SERVICES, "daily", timedelta(days=1))),
}


def backup_periods(schedule: BackupSchedule) -> dict[str, timedelta]:
    """service -> how often the schedule backs it up (the shortest of its jobs)."""
    periods: dict[str, timedelta] = {}
    for job in SCHEDULES[schedule]:
        for service in job.services:
            periods[service] = min(job.period, periods.get(service, job.period))
    return periods


def crontab(schedule: BackupSchedule) -> str:
    """The scheduled backups, and in every stack the WAL archiving metrics each minute."""
    return "".join(job.line() for job in SCHEDULES[schedule]) + _cron_line("* * * * *", WAL_METRICS_COMMAND)


def restic_retention(config: BackupsConfig) -> dict[str, int]:
    """restic's `forget` policy (lib/restic.sh): a snapshot per day for the
    retention, one per hour for the last day where the schedule runs hourly;
    the newest snapshot of every service is kept whatever its age."""
    return {"RESTIC_KEEP_DAILY": config.retention_days,
            "RESTIC_KEEP_HOURLY": 24 if config.schedule == "hourly+daily" else 0}


@dataclass(frozen=True, kw_only=True)
class BackupsArgs:
    naming: Naming
    config: BackupsConfig
    base_image: str  # images.backupBase: the Alpine release of images.postgres
    minio_image: str  # mc comes from it
    redis_image: str  # the Redis tools come from it
    memory_mb: int
    backend_network: pulumi.Input[str]
    postgres: Postgres
    pgbackrest: PgBackRest
    redis: Redis
    qdrant: Qdrant
    minio: Minio
    secrets: Secrets
    offsite: OffsiteTarget
    # On a swarm the job runs on the data node, beside the volumes it backs up
    # (the component's provider is that node's).
    runtime: Runtime


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

        self.image = built_image(
            f"{self.container_name}-image", repository="shia-chatbot-backup", context=BUILD_CONTEXT,
            build_args={"BASE_IMAGE": args.base_image, "MINIO_IMAGE": args.minio_image,
                        "REDIS_IMAGE": args.redis_image},
            opts=child)
        self.data_volume = data_volume(n.volume("backup"), environment=n.env, service="backup", parent=self)
        self.metrics_volume = labelled_volume(n.volume("backup", "metrics"), environment=n.env, service="backup",
                                              opts=child)

        networks: list[tuple[pulumi.Input[str], list[str]]] = [(args.backend_network, [NETWORK_ALIAS])]
        if args.offsite.needs_egress:
            runtime = args.runtime
            egress = labelled_network(n.network("backup-egress"), environment=n.env, overlay=runtime.swarm,
                                      opts=pulumi.ResourceOptions(parent=self, provider=runtime.host.provider)
                                      if runtime.swarm else child)
            networks.append((runtime.network(egress), [NETWORK_ALIAS]))

        if args.runtime.swarm:
            envs, file_secrets = self._swarm_envs(args)
        else:
            envs, file_secrets = self._envs(args), {}
        self.deployed = args.runtime.deploy(
            ContainerSpec(
                name=self.container_name,
                image=self.image.image_name,
                environment=n.env,
                service="backup",
                memory_mb=args.memory_mb,
                envs=envs,
                networks=networks,
                volumes=[
                    docker.ContainerVolumeArgs(volume_name=self.data_volume.name, container_path=BACKUP_DIR),
                    docker.ContainerVolumeArgs(volume_name=self.metrics_volume.name, container_path=METRICS_DIR),
                    docker.ContainerVolumeArgs(volume_name=args.pgbackrest.repository.name,
                                               container_path=REPOSITORY_PATH),
                    docker.ContainerVolumeArgs(volume_name=args.pgbackrest.socket_volume.name,
                                               container_path=SOCKET_PATH),
                    # At the server's own path, as pgBackRest requires; written only
                    # by a restore, while the server is stopped.
                    docker.ContainerVolumeArgs(volume_name=args.postgres.volume.name, container_path=DATA_PATH),
                ],
                healthcheck=Healthcheck(test=["CMD-SHELL", "pgrep -x crond > /dev/null"]),
                host=args.runtime.node_host("data"),
            ),
            Placement(role="data", replicas=1, exclusive=True),
            pulumi.ResourceOptions(parent=self, delete_before_replace=True, depends_on=[
                *args.postgres.ready, *args.redis.ready, *args.qdrant.ready, *args.minio.ready,
                args.minio.bucket_step, *args.offsite.ready,
            ]),
            # Read by root: the scripts (crond's jobs and `docker exec`) run as root.
            file_secrets=file_secrets,
        )
        # Stanza and repositories, checked end to end, whenever either container is new.
        self.init_step = self.deployed.host.command(
            f"{self.container_name}-init",
            create=host_script("backups/scripts/backup-init.sh", BACKUP=self.deployed.target,
                               POSTGRES=args.postgres.deployed.target),
            # On a swarm a new image or setting updates the services in place
            # (their ids stay): those re-run it too.
            triggers=[self.container.id, args.postgres.container.id, *([
                self.image.image_name, args.postgres.image_ref, args.pgbackrest.config_digest()]
                if args.runtime.swarm else [])],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.deployed.ready, *args.postgres.ready]),
        )
        self.register_outputs({"container": self.container.name, "metricsVolume": self.metrics_volume.name,
                               "bucket": self.bucket})

    @property
    def container(self) -> pulumi.CustomResource:
        """The docker.Container, or on a swarm the docker.Service."""
        return self.deployed.container

    @property
    def ready(self) -> list[pulumi.Resource]:
        """Depend on these to back up: the container healthy and its repositories ready."""
        return [*self.deployed.ready, self.init_step]

    def pre_migration_command(self, slot: str) -> str:
        """Run on `deployed.host` before `slot`'s migration; exits 0 only once a
        named restore point is made and the WAL holding it is archived in every
        repository (a base backup first on a new stack), and prints
        `postgres <restore point>`: undoing the migration is a recovery to it.
        Depend on `ready` when calling it."""
        return f"docker exec {self.deployed.target} {BACKUP_COMMAND} postgres --reason pre-migration-{slot}"

    @staticmethod
    def _envs(args: BackupsArgs) -> list[pulumi.Input[str]]:
        """The container's environment on one host: every credential a secret entry."""
        return [v if isinstance(v, str) else secret_env(*v) for v in Backups._variables(args)]

    @staticmethod
    def _swarm_envs(args: BackupsArgs) -> tuple[list[str], dict[str, pulumi.Input[str]]]:
        """On a swarm: the plain entries, and the credentials by name (Swarm secrets)."""
        variables = Backups._variables(args)
        secrets = dict(v for v in variables if not isinstance(v, str))
        unknown = sorted(set(secrets) - set(FILE_SECRETS))
        if unknown:
            raise ValueError(f"the backup image does not read {', '.join(unknown)} from a file (FILE_SECRETS)")
        return [v for v in variables if isinstance(v, str)], secrets

    @staticmethod
    def _variables(args: BackupsArgs) -> list[Variable]:
        """What the scripts read (see their headers), in the container's order."""
        secrets, offsite = args.secrets, args.offsite
        return [
            f"BACKUP_DIR={BACKUP_DIR}",
            f"BACKUP_ENV={args.naming.env}",
            f"BACKUP_SCHEDULE={args.config.schedule}",
            f"BACKUP_STAGING={BACKUP_STAGING}",
            f"METRICS_DIR={METRICS_DIR}",
            f"RETENTION_DAYS={args.config.retention_days}",
            f"BACKUP_CRONTAB={crontab(args.config.schedule)}",
            *args.pgbackrest.plain_envs(),
            *args.pgbackrest.secret_variables().items(),
            f"BACKUP_FULL_EVERY_DAYS={FULL_BACKUP_PERIOD_DAYS}",
            f"PGHOST={SOCKET_PATH}",
            f"PGPORT={POSTGRES_PORT}",
            f"PGUSER={args.postgres.roles['backup']}",
            f"PGDATABASE={args.postgres.database}",
            f"RESTIC_REPOSITORY={RESTIC_REPOSITORY}",
            f"RESTIC_CACHE_DIR={BACKUP_DIR}/.cache/restic",
            ("RESTIC_PASSWORD", secrets["resticPassword"]),
            *(f"{k}={v}" for k, v in sorted(restic_retention(args.config).items())),
            f"RESTIC_OFFSITE_REPOSITORY={offsite.restic_repository}",
            ("AWS_ACCESS_KEY_ID", offsite.access_key_id),
            ("AWS_SECRET_ACCESS_KEY", offsite.secret_access_key),
            f"AWS_DEFAULT_REGION={offsite.region}",
            "REDIS_HOST=redis",
            f"REDIS_PORT={REDIS_PORT}",
            f"REDIS_RESTORE_ADDRESS={NETWORK_ALIAS}",
            f"REDIS_USER={redis_acl.BACKUP_USER}",
            ("REDISCLI_AUTH", secrets["redisBackupPassword"]),
            f"QDRANT_URL=http://qdrant:{QDRANT_PORT}",
            f"QDRANT_COLLECTION={args.qdrant.collection}",
            ("QDRANT_API_KEY", secrets["qdrantApiKey"]),
            f"MINIO_BUCKET={args.minio.buckets['documents']}",
            ("MC_HOST_minio", stack_minio_url(secrets)),
        ]
