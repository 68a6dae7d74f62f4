"""The settings every container of the stack shares, so no component forgets one.

Every long-running container gets: restart unless-stopped, a memory limit, log
rotation, no-new-privileges, and labels that say which environment, service and
slot it belongs to. Components add only what is theirs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

LOG_OPTS = {"max-size": "10m", "max-file": "5"}
LABEL_PREFIX = "org.shia-chatbot"


@dataclass(frozen=True, kw_only=True)
class Healthcheck:
    test: Sequence[str]
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 5
    start_period: str = "10s"

    def args(self) -> docker.ContainerHealthcheckArgs:
        return docker.ContainerHealthcheckArgs(
            tests=list(self.test), interval=self.interval, timeout=self.timeout,
            retries=self.retries, start_period=self.start_period,
        )


@dataclass
class ContainerSpec:
    """What differs between our containers; everything else is fixed here."""

    name: str
    image: pulumi.Input[str]
    environment: str
    service: str
    memory_mb: int
    healthcheck: Healthcheck
    networks: Sequence[tuple[pulumi.Input[str], Sequence[str]]]  # (network name, aliases)
    command: Optional[Sequence[str]] = None
    envs: Sequence[pulumi.Input[str]] = field(default_factory=list)
    volumes: Sequence[docker.ContainerVolumeArgs] = field(default_factory=list)
    ports: Sequence[docker.ContainerPortArgs] = field(default_factory=list)
    # Files copied in before the first start; any change replaces the container.
    uploads: Sequence[docker.ContainerUploadArgs] = field(default_factory=list)
    slot: Optional[str] = None
    wait: bool = True
    stop_timeout: int = 30


def hardened_container(
    spec: ContainerSpec, opts: pulumi.ResourceOptions
) -> docker.Container:
    labels = {"environment": spec.environment, "service": spec.service}
    if spec.slot:
        labels["slot"] = spec.slot
    return docker.Container(
        spec.name,
        name=spec.name,
        image=spec.image,
        command=list(spec.command) if spec.command else None,
        envs=list(spec.envs) or None,
        networks_advanced=[
            docker.ContainerNetworksAdvancedArgs(name=net, aliases=list(aliases))
            for net, aliases in spec.networks
        ],
        volumes=list(spec.volumes) or None,
        ports=list(spec.ports) or None,
        uploads=list(spec.uploads) or None,
        healthcheck=spec.healthcheck.args(),
        restart="unless-stopped",
        memory=spec.memory_mb,
        log_driver="json-file",
        log_opts=LOG_OPTS,
        security_opts=["no-new-privileges:true"],
        labels=[
            docker.ContainerLabelArgs(label=f"{LABEL_PREFIX}.{k}", value=v) for k, v in sorted(labels.items())
        ],
        stop_timeout=spec.stop_timeout,
        # Created healthy or not at all: dependants start only after it.
        wait=spec.wait,
        wait_timeout=180,
        opts=opts,
    )


def pulled_image(name: str, ref: str, opts: pulumi.ResourceOptions) -> docker.RemoteImage:
    """Pull `ref` onto the host. Kept locally on delete: a running container may still use it."""
    return docker.RemoteImage(name, name=ref, keep_locally=True, opts=opts)


def labelled_volume(name: str, *, environment: str, service: str, opts: pulumi.ResourceOptions) -> docker.Volume:
    """A named volume carrying the environment and service labels every volume has."""
    return docker.Volume(
        name,
        name=name,
        labels=[
            docker.VolumeLabelArgs(label=f"{LABEL_PREFIX}.environment", value=environment),
            docker.VolumeLabelArgs(label=f"{LABEL_PREFIX}.service", value=service),
        ],
        opts=opts,
    )


def data_volume(name: str, *, environment: str, service: str, parent: pulumi.Resource) -> docker.Volume:
    """A named data volume; in prod it is protected and outlives the stack."""
    prod = environment == "prod"
    return labelled_volume(name, environment=environment, service=service,
                           opts=pulumi.ResourceOptions(parent=parent, protect=prod, retain_on_delete=prod))
