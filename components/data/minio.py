"""MinIO: object storage with buckets `<env>-documents` and `<env>-backups`, and the
app's and the backup job's users (minio_policies.py); the root credentials stay here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi

from components.data import minio_policies
from components.host.containers import Healthcheck
from components.data.service import DataService, DataServiceArgs, DataServiceSpec
from components.host.docker_host import in_container

BUCKET_PURPOSES = ("documents", "backups")


@dataclass(frozen=True, kw_only=True)
class MinioArgs(DataServiceArgs):
    root_user: pulumi.Input[str]
    root_password: pulumi.Input[str]
    app_password: pulumi.Input[str]
    backup_password: pulumi.Input[str]


class Minio(DataService):
    def __init__(self, name: str, args: MinioArgs, opts: Optional[pulumi.ResourceOptions] = None):
        spec = DataServiceSpec(
            service="minio",
            data_path="/data",
            envs=["MINIO_BROWSER=off"],
            file_secrets={"MINIO_ROOT_USER": args.root_user, "MINIO_ROOT_PASSWORD": args.root_password},
            secret_names_relative=True,
            command=["server", "/data"],
            healthcheck=Healthcheck(test=["CMD", "mc", "ready", "local"]),
        )
        super().__init__("Minio", name, args, spec, opts)

    def _extend(self, args: MinioArgs) -> None:
        self.buckets = {p: args.naming.bucket(p) for p in BUCKET_PURPOSES}
        # Buckets, policies and users are made inside the container with its own
        # root credentials (scripts/minio-users.sh); the users' secrets go in on
        # stdin, so none is in the command. Idempotent; reruns when the container
        # is new or a user's secret changes (rotation: the user's secret is set again).
        # mc reads the alias from MC_HOST_local: the credentials are expanded into
        # its environment, never onto a command line (ps) or into ~/.mc/config.json.
        targets = " ".join(f"local/{b}" for b in self.buckets.values())
        # On a swarm the root credentials are files (Runtime.deploy): read them
        # where the environment does not carry them.
        from_files = ('MINIO_ROOT_USER=${MINIO_ROOT_USER:-$(cat "/run/secrets/$MINIO_ROOT_USER_FILE")} && '
                      'MINIO_ROOT_PASSWORD=${MINIO_ROOT_PASSWORD:-$(cat "/run/secrets/$MINIO_ROOT_PASSWORD_FILE")} && '
                      if args.runtime.swarm else "")
        buckets = (from_files + 'export MC_HOST_local="http://$MINIO_ROOT_USER:$MINIO_ROOT_PASSWORD@127.0.0.1:9000"'
                   f" && mc mb --ignore-existing {targets} && mc version enable local/{self.buckets['backups']}\n")
        self.bucket_step = self.deployed.host.command(
            f"{self.container_name}-buckets",
            create=in_container(self.deployed.target, buckets + minio_policies.USERS_SCRIPT, stdin=True,
                                env=minio_policies.users_step_env(self.buckets["documents"],
                                                                  self.buckets["backups"])),
            stdin=pulumi.Output.secret(pulumi.Output.concat(args.app_password, "\n", args.backup_password, "\n")),
            triggers=[self.container.id, args.app_password, args.backup_password],
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.deployed.ready),
        )

    def _outputs(self) -> dict:
        return {**super()._outputs(), "buckets": self.buckets}
