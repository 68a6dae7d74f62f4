"""PostgreSQL 15: the app's database `<env>_shia_chatbot`, archiving its WAL through pgBackRest.

The image is the pinned official one plus pgBackRest (postgres-image/). Besides
its data volume the container mounts pgBackRest's repository (for
archive-push) and shares its socket directory on a volume: pgBackRest in the
backup container reaches the server only over that socket.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import pulumi
import pulumi_docker as docker

from components.backups.pgbackrest import DATA_PATH, REPOSITORY_PATH, SOCKET_PATH, PgBackRest
from components.host import hardening
from components.host.containers import MEMORY_LIMIT_MB, Healthcheck
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.host.docker_host import in_container
from settings.secret_names import DATABASE_ROLES

SET_PASSWORD_SCRIPT = (Path(__file__).parent / "scripts" / "postgres-set-password.sh").read_text()
ROLES_SCRIPT = (Path(__file__).parent / "scripts" / "postgres-roles.sh").read_text()


@dataclass(frozen=True, kw_only=True)
class PostgresArgs(DataServiceArgs):
    password: pulumi.Input[str]  # the superuser's
    role_passwords: Mapping[str, pulumi.Input[str]]  # DATABASE_ROLES' purpose -> that role's password
    archive: PgBackRest
    max_connections: int = 200


class Postgres(DataService):
    def __init__(self, name: str, args: PostgresArgs, opts: Optional[pulumi.ResourceOptions] = None):
        naming = args.naming
        swarm = args.runtime.swarm
        archive_secrets = args.archive.secret_variables()
        # pgBackRest reads no <VAR>_FILE: on a swarm the server's environment
        # gets the key pair from the secret files, for archive_command.
        from_files = "".join(f'export {v}="$(cat "${v}_FILE")" && ' for v in archive_secrets) if swarm else ""
        spec = DataServiceSpec(
            service="postgres",
            data_path=DATA_PATH,
            build_context="components/data/postgres-image",
            envs=[
                f"POSTGRES_USER={naming.database_user}",
                f"POSTGRES_DB={naming.database}",
                *(args.archive.plain_envs() if swarm else args.archive.envs()),
            ],
            # Read by the entrypoint as root, before it drops to postgres; on a
            # swarm the off-site key pair too, exported by the command below.
            file_secrets={"POSTGRES_PASSWORD": args.password, **(archive_secrets if swarm else {})},
            secrets_read_at_init_only=("POSTGRES_PASSWORD",),
            volumes=[
                docker.ContainerVolumeArgs(volume_name=args.archive.repository.name, container_path=REPOSITORY_PATH),
                docker.ContainerVolumeArgs(volume_name=args.archive.socket_volume.name, container_path=SOCKET_PATH),
            ],
            labels={"pgbackrest-config": args.archive.config_digest()},
            # shared_buffers at a quarter of the container's memory, the usual rule,
            # read from the cgroup at start: a memory change is then an update in
            # place (it takes effect at the next restart) instead of a new command
            # line, which would replace the database. The rest of the guide's
            # tuning is left at postgres defaults until measured. Through the
            # image's entrypoint, which runs the server as postgres.
            command=[
                "sh", "-c",
                f"{MEMORY_LIMIT_MB} && {from_files}exec docker-entrypoint.sh postgres"
                f" -c max_connections={args.max_connections}"
                ' -c shared_buffers="$((limit_mb / 4))MB"'
                " -c checkpoint_completion_target=0.9 -c random_page_cost=1.1"
                + "".join(f" -c {option}" for option in PgBackRest.server_options()),
            ],
            healthcheck=Healthcheck(test=["CMD-SHELL", 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"']),
            # The image applies POSTGRES_* only when it initialises an empty data
            # directory; a rotated password is set by `<env>-postgres-set-password`.
            env_read_at_init_only=True,
            # A max_connections change is a new command line, a new container, so a new limit.
            pids_limit=hardening.postgres_pids_limit(args.max_connections),
        )
        self.database = naming.database
        self.user = naming.database_user
        self.roles = {purpose: naming.database_role(purpose) for purpose in DATABASE_ROLES}
        super().__init__("Postgres", name, args, spec, opts)

    def _extend(self, args: PostgresArgs) -> None:
        # Runs whenever the password changes (rotation), on the running server,
        # before anything that connects with the new password (see `ready`).
        self.password_step = self.deployed.host.command(
            f"{self.container_name}-set-password",
            create=in_container(self.deployed.target, SET_PASSWORD_SCRIPT, stdin=True),
            stdin=pulumi.Output.concat(args.password, "\n"),
            triggers=[args.password],
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.deployed.ready),
        )
        # The login roles and their grants: re-run when a password rotates or the
        # script (the roles' definition) changes; every run is idempotent.
        passwords = [args.role_passwords[purpose] for purpose in DATABASE_ROLES]
        self.roles_step = self.deployed.host.command(
            f"{self.container_name}-roles",
            create=in_container(self.deployed.target, ROLES_SCRIPT, stdin=True,
                                env={f"{purpose.upper()}_ROLE": role for purpose, role in self.roles.items()}),
            stdin=pulumi.Output.concat(*(x for p in passwords for x in (p, "\n"))),
            triggers=[*passwords, hashlib.sha256(ROLES_SCRIPT.encode()).hexdigest()],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*self.deployed.ready, self.password_step]),
        )

    @property
    def ready(self) -> list[pulumi.Resource]:
        """Depend on these to connect: the server is up, healthy, and its roles have the current passwords."""
        return [*self.deployed.ready, self.password_step, self.roles_step]
