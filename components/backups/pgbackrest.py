"""pgBackRest for PostgreSQL: its repository on the host, its settings, and how
the server archives its WAL into it.

PostgreSQL runs `archive_command = pgbackrest archive-push %p` (the postgres
image, components/data/postgres-image, carries pgBackRest), so every WAL segment
reaches the repositories as soon as it is full or ARCHIVE_TIMEOUT_SECONDS have
passed: the recovery point of a lost server. The backup container runs the
backups, expiry, verify and restores (components/backups/image/lib/postgres.sh).

Repositories:
- repo1: the volume `<env>_pgbackrest` on the Docker host, mounted into both
  containers at REPOSITORY_PATH (fast restores, no network). This component
  also owns `<env>_postgres_socket`, the server's socket directory both mount.
- repo2: the off-site bucket under `pgbackrest/`, when it speaks TLS (pgBackRest's
  S3 driver knows no plain HTTP): stage and prod's S3; dev's MinIO gets none.

Every setting is a PGBACKREST_* environment variable, the same list for both
containers: no configuration file, and the S3 key reaches pgBackRest only as a
secret variable. Sources: pgBackRest 2.45 configuration reference
(https://pgbackrest.org/configuration.html), "Environment Variables".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from components.backups.offsite import PGBACKREST_PREFIX, OffsiteTarget
from components.host.containers import data_volume, labelled_volume
from components.secrets import secret_env
from settings.model import BackupsConfig
from settings.naming import Naming

REPOSITORY_PATH = "/var/lib/pgbackrest"
DATA_PATH = "/var/lib/postgresql/data"  # the official image's PGDATA
SOCKET_PATH = "/var/run/postgresql"  # the official image's unix_socket_directories
# The postgres user of the official Alpine image (and of the test stand-in):
# pgBackRest runs as it in the backup container, so the repository and a
# restored data directory keep the server's owner.
POSTGRES_UID = 70
# A partly filled WAL segment is archived after this long: the recovery point goal.
ARCHIVE_TIMEOUT_SECONDS = 60
# Past this much unarchived WAL (an unreachable repository), pgBackRest tells
# PostgreSQL a segment is archived and drops it: point-in-time recovery gets a
# gap (and PostgresWalArchivingFailing pages) instead of the server stopping on
# a full disk.
ARCHIVE_QUEUE_MAX = "4GiB"
# Full backups are weekly (lib/postgres.sh); keeping this many reaches back at
# least retentionDays: the oldest kept full is 7 x (count - 1) days old or more.
FULL_BACKUP_PERIOD_DAYS = 7


def retention_full(retention_days: int) -> int:
    """Full backups to keep so that any point of the last `retention_days` can be recovered."""
    return -(-retention_days // FULL_BACKUP_PERIOD_DAYS) + 1


@dataclass(frozen=True, kw_only=True)
class PgBackRestArgs:
    naming: Naming
    config: BackupsConfig
    offsite: OffsiteTarget
    database_user: str  # the role pgBackRest connects as over the local socket


class PgBackRest(pulumi.ComponentResource):
    """The repository volume and the settings both containers share."""

    repository: docker.Volume
    socket_volume: docker.Volume

    def __init__(self, name: str, args: PgBackRestArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:backup:PgBackRest", name, None, opts)
        n = args.naming
        self.stanza = n.env
        self.repository = data_volume(n.volume("pgbackrest"), environment=n.env, service="pgbackrest", parent=self)
        # PostgreSQL's socket directory, shared with the backup container: pgBackRest
        # reaches the server only through a local socket. Not data: the server
        # recreates its socket at every start.
        self.socket_volume = labelled_volume(n.volume("postgres", "socket"), environment=n.env, service="pgbackrest",
                                             opts=pulumi.ResourceOptions(parent=self))
        keep = str(retention_full(args.config.retention_days))
        self._plain = {
            # No configuration file: a package's /etc/pgbackrest.conf (Debian's is
            # root:postgres 0640) is neither read nor needed.
            "CONFIG": "/dev/null",
            "STANZA": self.stanza,
            "PG1_PATH": DATA_PATH,
            "PG1_SOCKET_PATH": SOCKET_PATH,
            "PG1_USER": args.database_user,
            "REPO1_PATH": REPOSITORY_PATH,
            "REPO1_RETENTION_FULL": keep,
            "COMPRESS_TYPE": "zst",
            "ARCHIVE_PUSH_QUEUE_MAX": ARCHIVE_QUEUE_MAX,
            "LOG_LEVEL_CONSOLE": "info",
            "LOG_LEVEL_STDERR": "warn",
            "LOG_LEVEL_FILE": "off",
            # Writable by the server's uid whatever a package made of /var/spool/pgbackrest.
            "LOCK_PATH": "/tmp/pgbackrest",
            "SPOOL_PATH": "/tmp/pgbackrest",
        }
        offsite = args.offsite
        self.has_offsite = offsite.tls
        self._secret: dict[str, pulumi.Output[str]] = {}
        if self.has_offsite:
            self._plain |= {
                "REPO2_TYPE": "s3",
                "REPO2_PATH": f"/{PGBACKREST_PREFIX}",
                "REPO2_S3_BUCKET": offsite.bucket,
                "REPO2_S3_ENDPOINT": offsite.endpoint,
                "REPO2_S3_REGION": offsite.region,
                "REPO2_S3_URI_STYLE": "path" if offsite.path_style else "host",
                "REPO2_RETENTION_FULL": keep,
            }
            self._secret = {"REPO2_S3_KEY": offsite.access_key_id, "REPO2_S3_KEY_SECRET": offsite.secret_access_key}
        self._offsite_key_id = offsite.access_key_id if self.has_offsite else None
        self.register_outputs({"repository": self.repository.name, "stanza": self.stanza})

    def envs(self) -> list[pulumi.Input[str]]:
        """PGBACKREST_* entries for a container's environment; the key pair as secrets."""
        return [*self.plain_envs(), *(secret_env(k, v) for k, v in self.secret_variables().items())]

    def plain_envs(self) -> list[str]:
        """The PGBACKREST_* entries that are not secret, sorted by name."""
        return [f"PGBACKREST_{k}={v}" for k, v in sorted(self._plain.items())]

    def secret_variables(self) -> dict[str, pulumi.Output[str]]:
        """PGBACKREST_* name -> value of the secret ones (the off-site key pair), sorted by name."""
        return {f"PGBACKREST_{k}": v for k, v in sorted(self._secret.items())}

    def config_digest(self) -> pulumi.Output[str]:
        """A digest of the settings PostgreSQL's archive_command reads, and of the
        off-site key's id (not its secret). The postgres container reads its
        environment only at creation (its `envs` are ignored, for the password's
        sake), so this label replaces it when the settings change."""
        key_id = self._offsite_key_id if self._offsite_key_id is not None else pulumi.Output.from_input("")
        return pulumi.Output.unsecret(key_id).apply(lambda key: hashlib.sha256(
            json.dumps({"settings": self._plain, "key": key}, sort_keys=True).encode()).hexdigest()[:16])

    @staticmethod
    def server_options() -> list[str]:
        """`postgres -c` options that archive every WAL segment through pgBackRest."""
        return [
            "archive_mode=on",
            "archive_command='pgbackrest archive-push %p'",
            f"archive_timeout={ARCHIVE_TIMEOUT_SECONDS}",
        ]
