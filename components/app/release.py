"""The named steps of a blue/green release, each a command on the Docker host.

A slot's release runs, in this order (components/app/slot.py wires it):
  1. pre-migration backup of PostgreSQL (the backup component's own script)
  2. migrations: `alembic upgrade head`, once, with the slot's image
  3. the slot's replicas start and are healthy (container healthchecks)
  4. smoke check: /health?check_services=true on every replica, from the frontend
     network (nginx's path to the replicas), with nginx's own image as the probe
and the switch (components/router/router.py) depends on step 4 of the target slot.

Steps 1 and 2 run when, and only when, the slot's image changes (their
trigger); any other change to them (the app's environment on stdin after a
rotation, the SSH connection) runs their `update`, which runs nothing. Step 4
runs again whenever the image or a replica is new. A switch changes none of
them, so switching back and forth never re-runs a migration.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi

from components.host import hardening
from components.host.containers import Deployed
from components.host.docker_host import DockerHost, host_script


def _unchanged(name: str) -> str:
    # pulumi-command runs `update` for any change but the triggers'; without one
    # it would run `create` (the migration, the backup) again.
    return f"echo '{name}: same image, nothing to run again'"


def env_file(envs: Sequence[pulumi.Input[str]]) -> pulumi.Output[str]:
    """KEY=VALUE lines for `docker run --env-file /dev/stdin`; secret if any entry is."""
    return pulumi.Output.all(*envs).apply(lambda entries: "".join(f"{e}\n" for e in entries))


def pre_migration_backup(
    host: DockerHost, name: str, *, command: str, image: str, parent: pulumi.Resource,
    after: Sequence[pulumi.Resource],
) -> pulumi.CustomResource:
    return host.command(
        name,
        create=command,
        update=_unchanged(name),
        triggers=[image],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(after)),
    )


def migrate(
    host: DockerHost, name: str, *, image: str, network: str, envs: Sequence[pulumi.Input[str]],
    memory_mb: int, parent: pulumi.Resource, after: Sequence[pulumi.Resource],
) -> pulumi.CustomResource:
    return host.command(
        name,
        create=host_script("app/scripts/migrate.sh", NAME=name, IMAGE=image, NETWORK=network, MEMORY_MB=memory_mb,
                           RIGHTS=hardening.run_flags(hardening.for_service("app"))),
        update=_unchanged(name),
        stdin=env_file(envs),
        triggers=[image],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(after)),
    )


def smoke_check(
    host: DockerHost, name: str, *, network: str, probe_image: str, targets: Sequence[str], image: str,
    replicas: Sequence[Deployed], parent: pulumi.Resource, attempts: int = 10, pause_seconds: int = 3,
    swarm: Optional[tuple[str, int, int]] = None,
) -> pulumi.CustomResource:
    """targets: "host:port" to probe; swarm: (service, replicas, port) to probe
    every running task of a Swarm service instead, found when the step runs."""
    found = dict(zip(("SWARM_SERVICE", "REPLICAS", "PORT"), swarm)) if swarm else {}
    return host.command(
        name,
        create=host_script("app/scripts/smoke-check.sh", NETWORK=network, PROBE_IMAGE=probe_image,
                           RIGHTS=hardening.run_flags(hardening.PROBE),
                           TARGETS=" ".join(targets), ATTEMPTS=attempts, PAUSE=pause_seconds, **found),
        triggers=[image, *[r.container.id for r in replicas]],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[x for r in replicas for x in r.ready]),
    )

