"""PostgreSQL 15: the app's database `<env>_shia_chatbot`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pulumi

from components.host.containers import Healthcheck
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.secrets import secret_env
from components.host.docker_host import DockerHost, in_container

SET_PASSWORD_SCRIPT = (Path(__file__).parent / "scripts" / "postgres-set-password.sh").read_text()


@dataclass(frozen=True, kw_only=True)
class PostgresArgs(DataServiceArgs):
    password: pulumi.Input[str]
    host: DockerHost
    max_connections: int = 200


class Postgres(DataService):
    def __init__(self, name: str, args: PostgresArgs, opts: Optional[pulumi.ResourceOptions] = None):
        naming = args.naming
        # shared_buffers at a quarter of the container's memory, the usual rule;
        # the rest of the guide's tuning is left at postgres defaults until measured.
        shared_buffers = max(32, args.memory_mb // 4)
        spec = DataServiceSpec(
            service="postgres",
            data_path="/var/lib/postgresql/data",
            envs=[
                f"POSTGRES_USER={naming.database_user}",
                f"POSTGRES_DB={naming.database}",
                secret_env("POSTGRES_PASSWORD", args.password),
            ],
            command=[
                "postgres",
                "-c", f"max_connections={args.max_connections}",
                "-c", f"shared_buffers={shared_buffers}MB",
                "-c", "checkpoint_completion_target=0.9",
                "-c", "random_page_cost=1.1",
            ],
            healthcheck=Healthcheck(test=["CMD-SHELL", 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"']),
        )
        self.database = naming.database
        self.user = naming.database_user
        super().__init__("Postgres", name, args, spec, opts)

    def _extend(self, args: PostgresArgs) -> None:
        # Runs whenever the password changes (rotation), on the running server,
        # before anything that connects with the new password (see `ready`).
        self.password_step = args.host.command(
            f"{self.container_name}-set-password",
            create=in_container(self.container_name, SET_PASSWORD_SCRIPT, stdin=True),
            stdin=pulumi.Output.concat(args.password, "\n"),
            triggers=[args.password],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.container]),
        )

    @property
    def ready(self) -> list[pulumi.Resource]:
        """Depend on these to connect: the server is up and has the current password."""
        return [self.container, self.password_step]
