"""The Celery worker and Flower, both on the active slot's image.

The worker's name carries the slot, so a switch starts the new worker beside
the old one and removes the old one at the end of the update (a new logical
name is a create, and the old one's delete comes last); queued tasks wait in
Redis meanwhile. Flower's name is fixed: it publishes a port in dev, which two
containers cannot hold, so a switch replaces it, the old one first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.host.containers import ContainerSpec, Deployed, Healthcheck
from components.host.runtime import Runtime
from components.secrets import EnvVariables, SwarmEnv
from components.swarm.service import Placement
from settings.model import SLOT_NAMES, WORKER_CONCURRENCY
from settings.naming import FLOWER_PORT, Naming

# Flower (2.1.0 and later) drops the metrics of a worker whose heartbeats stopped
# this long ago; before that a killed worker stayed "online" in them for good, and
# CeleryWorkerDown (components/monitoring/rules.py) could not fire.
FLOWER_PURGE_OFFLINE_WORKERS = timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class CeleryArgs:
    naming: Naming
    slot: str
    image: docker.RemoteImage
    # The app's variables, the secret ones apart (Runtime.deploy: on a swarm, files).
    env: SwarmEnv
    memory_mb: int
    runtime: Runtime
    frontend_network: pulumi.Input[str]
    backend_network: pulumi.Input[str]
    # The app's LOG_LEVEL; the worker's own --loglevel follows it (the guide's
    # fixed `info` would log below prod's WARNING).
    log_level: str = "INFO"
    depends_on: Sequence[pulumi.Resource] = ()


class Worker(pulumi.ComponentResource):
    deployed: Deployed

    def __init__(self, name: str, args: CeleryArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:app:Worker", name, None, opts)
        n = args.naming
        self.container_name = n.slot_container("worker", args.slot)
        self.deployed = args.runtime.deploy(
            ContainerSpec(
                name=self.container_name,
                image=args.runtime.image(args.image),
                environment=n.env,
                service="worker",
                slot=args.slot,
                memory_mb=args.memory_mb,
                command=["celery", "-A", "src.app.tasks", "worker", f"--loglevel={args.log_level.lower()}",
                         f"--concurrency={WORKER_CONCURRENCY}"],
                envs=args.env.plain,
                # frontend for egress to the LLM providers; backend for Redis/Postgres.
                networks=[(args.backend_network, ["worker"]), (args.frontend_network, ["worker"])],
                # Each probe starts a Python process (about half a second of CPU):
                # every 15 s, which is also how long a create waits for the first.
                healthcheck=Healthcheck(
                    test=["CMD-SHELL", 'celery -A src.app.tasks inspect ping -d "celery@$HOSTNAME" --timeout 10'],
                    interval="15s", timeout="12s", retries=3, start_period="30s",
                ),
                host=args.runtime.host,
                # A worker finishing a task gets time to do so before SIGKILL.
                stop_timeout=120,
            ),
            Placement(role="app"),
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
            file_secrets=args.env.secrets, secrets_owner=None,
        )
        self.register_outputs({"container": self.deployed.container.name})

    @property
    def container(self) -> pulumi.CustomResource:
        """The docker.Container, or on a swarm the docker.Service."""
        return self.deployed.container


def flower_variables(user: str, password: pulumi.Input[str]) -> EnvVariables:
    """Flower's own variables, beside the app's: plain FLOWER_PURGE_OFFLINE_WORKERS
    (seconds), secret FLOWER_BASIC_AUTH ("user:password"). `.envs()` for the
    container, `.swarm()` for a service (added to the app's AppEnvironment.swarm_envs())."""
    return EnvVariables(
        plain={"FLOWER_PURGE_OFFLINE_WORKERS": str(int(FLOWER_PURGE_OFFLINE_WORKERS.total_seconds()))},
        secret={"FLOWER_BASIC_AUTH": pulumi.Output.concat(user, ":", password)},
    )


@dataclass(frozen=True, kw_only=True)
class FlowerArgs(CeleryArgs):
    user: str
    password: pulumi.Input[str]
    publish: bool


class Flower(pulumi.ComponentResource):
    deployed: Deployed

    def __init__(self, name: str, args: FlowerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("shia-chatbot:app:Flower", name, None, opts)
        n = args.naming
        self.container_name = n.container("flower")
        env = args.env + flower_variables(args.user, args.password).swarm()
        networks = [(args.backend_network, ["flower"])]
        ports = []
        if args.publish:
            # dev only: loopback, behind basic auth. A published internal-only
            # network cannot carry the port, hence the frontend attachment.
            networks.append((args.frontend_network, ["flower"]))
            ports = [docker.ContainerPortArgs(internal=FLOWER_PORT, external=FLOWER_PORT, ip="127.0.0.1")]
        self.deployed = args.runtime.deploy(
            ContainerSpec(
                name=self.container_name,
                image=args.runtime.image(args.image),
                environment=n.env,
                service="flower",
                slot=args.slot,
                memory_mb=args.memory_mb,
                command=["celery", "-A", "src.app.tasks", "flower", f"--port={FLOWER_PORT}"],
                envs=env.plain,
                networks=networks,
                ports=ports,
                healthcheck=Healthcheck(
                    test=["CMD", "curl", "-fs", "-o", "/dev/null", f"http://localhost:{FLOWER_PORT}/healthcheck"],
                    interval="10s", timeout="5s", retries=3, start_period="20s",
                ),
                host=args.runtime.host,
            ),
            Placement(role="app"),
            # The provider replaces containers old-one-first (a published port and a
            # name cannot be held twice). Stacks made before Flower's name was fixed
            # know it as <env>-flower-<slot>: the same resource, replaced once.
            pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on), aliases=[
                pulumi.Alias(name=n.slot_container("flower", slot)) for slot in SLOT_NAMES]),
            file_secrets=env.secrets, secrets_owner=None,
        )
        self.register_outputs({"container": self.deployed.container.name})

    @property
    def container(self) -> pulumi.CustomResource:
        """The docker.Container, or on a swarm the docker.Service."""
        return self.deployed.container
