"""A service's inputs as the provider gets them: components/swarm/service.py's
swarm_service run under the SDK's mocks (tests/test_swarm_service.py, and the
real-swarm tests in tests/e2e/test_swarm.py, which send them to a daemon)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker

from components.host.containers import ContainerSpec, Healthcheck
from components.secrets import secret_env
from components.swarm import service as swarm

SECRET_SIG = "4dabf18193072939515e22adb298388d"  # the SDK's marker of a secret value on the wire


class Recorder(pulumi.runtime.Mocks):
    """Keeps each new resource's inputs, as sent."""

    def __init__(self) -> None:
        self.created: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.created[args.name] = dict(args.inputs)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class _Host:
    """What swarm_service reads of a DockerHost: nothing (the service goes through the provider)."""


def plain(value: Any) -> Any:
    """Inputs with the secret markers taken off."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG) is not None:
            return plain(value["value"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def spec(**changes: Any) -> ContainerSpec:
    """An app replica's ContainerSpec, as components/app/slot.py makes one; `changes` override."""
    base: dict[str, Any] = dict(
        name="prod-app-blue", image="ghcr.io/shia-chatbot/app@sha256:" + "a" * 64, environment="prod",
        service="app", memory_mb=512, slot="blue",
        healthcheck=Healthcheck(test=["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"], interval="5s",
                                timeout="3s", retries=3, start_period="60s"),
        networks=[], host=_Host(), command=["uvicorn", "src.main:app"],
        envs=["ENVIRONMENT=prod", secret_env("SECRET_KEY", "s3cr3t-value")], stop_timeout=30,
        volumes=[docker.ContainerVolumeArgs(volume_name="prod_app_cache", container_path="/cache")],
    )
    return ContainerSpec(**{**base, **changes})


def recorded_service(container: ContainerSpec, placement: swarm.Placement,
                     networks: tuple[tuple[str, list[str]], ...] = (("backend-id", ["app-blue"]),)) -> dict[str, Any]:
    """The Service's inputs (secret markers off); "secret": the top-level inputs that were secret."""
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, preview=False)
    seen: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        made = swarm.swarm_service(container, placement, list(networks), pulumi.ResourceOptions())
        return made.urn.apply(lambda _: seen.update(recorder.created[container.name]))

    program()
    return {**plain(seen), "secret": sorted(k for k, v in seen.items() if isinstance(v, dict) and SECRET_SIG in v)}
