"""One blue/green slot of the app, released in the order components/app/release.py
describes: pre-migration backup, migrations, `replicas` uvicorn containers on
both networks, smoke check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.app import release
from components.host.containers import ContainerSpec, Deployed, Healthcheck, pulled_image
from components.host.docker_host import DockerHost
from components.host.runtime import Runtime
from components.secrets import SwarmEnv
from components.swarm.service import Placement
from settings.naming import APP_PORT, Naming


@dataclass(frozen=True, kw_only=True)
class AppSlotArgs:
    naming: Naming
    slot: str
    image: str
    replicas: int
    uvicorn_workers: int
    memory_mb: int
    # The app's variables, the secret ones apart (Runtime.deploy: on a swarm, files).
    env: SwarmEnv
    migration_envs: Sequence[pulumi.Input[str]]  # envs, with the database's owner role (DDL)
    frontend_network: pulumi.Input[str]  # Runtime.network's form
    backend_network: pulumi.Input[str]
    runtime: Runtime
    # nginx's image: its busybox wget probes the replicas in the smoke check.
    probe_image: str
    # The data services (and the backup job) the release steps need running.
    depends_on: Sequence[pulumi.Resource] = ()
    # Shell command that takes a verified PostgreSQL backup, and where it runs.
    backup_command: Optional[str] = None
    backup_host: Optional[DockerHost] = None
    # Another slot's migration: two releases (backup, migration) never run at once.
    migrate_after: Sequence[pulumi.Resource] = ()


class AppSlot(pulumi.ComponentResource):
    image: docker.RemoteImage
    replicas: list[Deployed]
    migration: pulumi.CustomResource
    smoke_check: pulumi.CustomResource

    def __init__(self, name: str, args: AppSlotArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:app:AppSlot", name, None, opts)
        n = args.naming
        self.slot = args.slot
        self.image_ref = args.image
        self.image = pulled_image(f"{n.env}-app-{args.slot}-image", args.image, pulumi.ResourceOptions(parent=self))
        swarm = args.runtime.swarm
        # On a swarm, one service whose tasks are the replicas.
        self.container_names = ([n.app_service(args.slot)] if swarm else
                                [n.app_container(args.slot, i) for i in range(1, args.replicas + 1)])
        step = f"{n.env}-app-{args.slot}"
        host = args.runtime.host

        # 1. A verified backup of the database this image is about to migrate.
        before_migration = list(args.depends_on)
        self.backup = None
        if args.backup_command:
            self.backup = release.pre_migration_backup(
                args.backup_host or host, f"{step}-backup", command=args.backup_command, image=args.image,
                parent=self, after=[*args.depends_on, *args.migrate_after])
            before_migration.append(self.backup)
        # 2. Migrations, once, with the new image.
        self.migration = release.migrate(
            host, f"{step}-migrate", image=args.image, network=n.network("backend"), envs=args.migration_envs,
            memory_mb=args.memory_mb, parent=self, after=[*before_migration, *args.migrate_after, self.image])

        def replica(name: str, aliases: list[str]) -> ContainerSpec:
            return ContainerSpec(
                name=name,
                image=args.runtime.image(self.image),
                environment=n.env,
                service="app",
                slot=args.slot,
                memory_mb=args.memory_mb,
                command=["uvicorn", "src.app.main:app", "--workers", str(args.uvicorn_workers),
                         "--host", "0.0.0.0", "--port", str(APP_PORT)],
                envs=args.env.plain,
                networks=[(args.frontend_network, aliases), (args.backend_network, aliases)],
                # /health touches nothing else: cheap enough every 5 s, and a
                # create (which waits for the first probe) is that short.
                healthcheck=Healthcheck(
                    test=["CMD", "curl", "-f", f"http://localhost:{APP_PORT}/health"],
                    interval="5s", timeout="3s", retries=3, start_period="30s",
                ),
                host=host,
            )

        # 3. The replicas, each created healthy.
        self.replicas = []
        if swarm:
            # Spread over the app nodes; an update (a release to this idle slot,
            # a rotation) rolls task by task, start-first, and rolls back on failure.
            self.replicas.append(args.runtime.deploy(
                replica(self.container_names[0], [n.slot_alias(args.slot)]),
                Placement(role="app", replicas=args.replicas),
                pulumi.ResourceOptions(parent=self, depends_on=[*args.depends_on, self.migration]),
                file_secrets=args.env.secrets, secrets_owner=None))
        # One after the other: a change that replaces them (a rotation, an app
        # setting) takes one down at a time, while nginx finds the others by the
        # slot's DNS name.
        for index, cname in enumerate([] if swarm else self.container_names, start=1):
            aliases = [n.replica_alias(args.slot, index), n.slot_alias(args.slot)]
            previous = self.replicas[-1].ready if self.replicas else []
            self.replicas.append(args.runtime.deploy(
                replica(cname, aliases), Placement(role="app"),
                # A replica keeps its name across image changes; only the idle slot
                # is ever released to, so removing it first costs no traffic.
                pulumi.ResourceOptions(parent=self, delete_before_replace=True,
                                       depends_on=[*args.depends_on, self.migration, *previous]),
                file_secrets=args.env.secrets, secrets_owner=None,
            ))
        # 4. Every replica answers /health?check_services=true on nginx's network path.
        self.smoke_check = release.smoke_check(
            host, f"{step}-smoke", network=n.network("frontend"), probe_image=args.probe_image,
            targets=[] if swarm else [f"{name}:{APP_PORT}" for name in self.container_names], image=args.image,
            replicas=self.replicas, parent=self,
            swarm=(self.container_names[0], args.replicas, APP_PORT) if swarm else None)
        self.register_outputs({"containers": self.container_names, "image": args.image})

    @property
    def containers(self) -> list[pulumi.CustomResource]:
        """The replicas' docker.Containers, or on a swarm the one docker.Service."""
        return [replica.container for replica in self.replicas]
