"""The settings every container of the stack shares, so no component forgets one.

Every long-running container gets: restart unless-stopped, a memory limit with
no swap, log rotation, no-new-privileges, all capabilities dropped but
those components/host/hardening.py adds back, a read-only root filesystem
unless that table says why not, a graceful stop on delete, labels
that say which environment, service and slot it belongs to, and a step that
passes only once Docker reports it healthy. Components add only what is theirs.

What the Docker provider (kreuzwerker v4.5) would otherwise get wrong, each
settled here once (tests/test_operations.py derives every operation's steps
with these rules, tests/engine/rules.py names the sources):
- a delete kills the container unless `destroy_grace_seconds` is set, which
  `stop_timeout` is not: every container gets a grace of its stop timeout;
- without `memory_swap`, Docker fixes swap at twice the memory at create and
  the provider reads that back, so every `up` shows a diff and a raise past it
  is refused: swap is set equal to memory (none);
- a healthcheck "update" changes the state only, and durations read back in
  Go's form ("1m0s"): healthchecks are written in that form and a change
  replaces the container;
- `log_opts` read back include the daemon's own json-file options: ours are
  carried by a label (a change replaces the container), the read-back ignored;
- capabilities are read back and a difference replaces the container: the
  Engine API stores them as sent (only the docker CLI adds "CAP_"), so they
  are written once, in one form (components/host/hardening.py);
- `tmpfs` is not ForceNew: a change would reach the state only, the running
  container keeping its old mounts; a change replaces the container;
- `wait` gates only the create that first runs it: a retried `up` after an
  unhealthy create would accept the container, so a step re-checks health
  whenever the container is new, and fails the `up` until it is healthy;
- the provider has no pids limit input: the same step sets it on every new
  container (`docker update --pids-limit`, kept by Docker across restarts)
  before it waits for health.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.host import hardening
from components.host.docker_host import DockerHost, host_script

LOG_OPTS = {"max-size": "10m", "max-file": "5"}
LABEL_PREFIX = "org.shia-chatbot"
WAIT_TIMEOUT_SECONDS = 180
# Shell that sets $limit_mb to the container's own memory limit (cgroup v2, or
# v1 as on Docker 20.10 here), for settings derived from it at start: a memory
# change is then an update in place, not a new command line.
MEMORY_LIMIT_MB = (
    "limit_mb=$(( $(cat /sys/fs/cgroup/memory.max 2>/dev/null || "
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes) / 1048576 ))"
)
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def go_duration(text: str) -> str:
    """A whole-second duration as Go's time.Duration.String() prints it ("60s" -> "1m0s"),
    which is how the provider reads a healthcheck back. Raises ValueError otherwise."""
    match = _DURATION.match(text)
    if not text or not match:
        raise ValueError(f"not a duration in h/m/s: {text!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m}m{s}s" if h else f"{m}m{s}s" if m else f"{s}s"


@dataclass(frozen=True, kw_only=True)
class Healthcheck:
    """Docker 20.10 has no start_interval: the first probe runs one `interval`
    after start, so a `wait`-gated create takes at least that long."""

    test: Sequence[str]
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 5
    start_period: str = "10s"

    def args(self) -> docker.ContainerHealthcheckArgs:
        return docker.ContainerHealthcheckArgs(
            tests=list(self.test), interval=go_duration(self.interval), timeout=go_duration(self.timeout),
            retries=self.retries, start_period=go_duration(self.start_period),
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
    host: DockerHost  # where the health step runs
    command: Optional[Sequence[str]] = None
    envs: Sequence[pulumi.Input[str]] = field(default_factory=list)
    volumes: Sequence[docker.ContainerVolumeArgs] = field(default_factory=list)
    ports: Sequence[docker.ContainerPortArgs] = field(default_factory=list)
    # Files copied in before the first start; any change replaces the container.
    uploads: Sequence[docker.ContainerUploadArgs] = field(default_factory=list)
    slot: Optional[str] = None
    # More labels (under LABEL_PREFIX); labels are immutable, so a change replaces the container.
    labels: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    wait: bool = True
    # Seconds between the stop signal and SIGKILL, on `docker stop` and on delete.
    stop_timeout: int = 30
    # Processes and threads; None: the service's row in components/host/hardening.py.
    pids_limit: Optional[int] = None


@dataclass(frozen=True)
class Deployed:
    """A container (on a swarm, a service: components/host/runtime.py) and what
    gates it: depend on `ready` to use it. A step reaches it on `host` with
    `docker exec <target>` (components/host/docker_host.py in_container)."""

    container: pulumi.CustomResource
    healthy: pulumi.CustomResource
    host: DockerHost
    target: str

    @property
    def ready(self) -> list[pulumi.Resource]:
        # A service is its own gate: the provider waits until its tasks run, and
        # Swarm reports a task running only once its healthcheck passed.
        return [self.container] if self.healthy is self.container else [self.container, self.healthy]


def log_opts_label() -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(LOG_OPTS.items()))


def hardened_container(spec: ContainerSpec, opts: pulumi.ResourceOptions) -> Deployed:
    labels = {**spec.labels, "environment": spec.environment, "service": spec.service, "log-opts": log_opts_label()}
    if spec.slot:
        labels["slot"] = spec.slot
    rights = hardening.for_service(spec.service)
    container = docker.Container(
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
        memory_swap=spec.memory_mb,
        log_driver="json-file",
        log_opts=LOG_OPTS,
        security_opts=["no-new-privileges:true"],
        capabilities=docker.ContainerCapabilitiesArgs(drops=list(hardening.DROP), adds=list(rights.capabilities)),
        read_only=rights.read_only,
        tmpfs=rights.tmpfs_mounts(),
        labels=[
            docker.ContainerLabelArgs(label=f"{LABEL_PREFIX}.{k}", value=v) for k, v in sorted(labels.items())
        ],
        stop_timeout=spec.stop_timeout,
        destroy_grace_seconds=spec.stop_timeout,
        # Created healthy or not at all: dependants start only after it.
        wait=spec.wait,
        wait_timeout=WAIT_TIMEOUT_SECONDS,
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            replace_on_changes=["healthcheck", "tmpfs"], ignore_changes=["logOpts"])),
    )
    healthy = spec.host.command(
        f"{spec.name}-healthy",
        create=host_script("health-gate.sh", NAME=spec.name, TIMEOUT=WAIT_TIMEOUT_SECONDS,
                           PIDS_LIMIT=spec.pids_limit or rights.pids_limit),
        triggers=[container.id],
        opts=pulumi.ResourceOptions(parent=opts.parent, depends_on=[container]),
    )
    return Deployed(container, healthy, spec.host, spec.name)


def pulled_image(name: str, ref: str, opts: pulumi.ResourceOptions) -> docker.RemoteImage:
    """Pull `ref` onto the host. Kept locally on delete: a running container may still use it."""
    return docker.RemoteImage(name, name=ref, keep_locally=True, opts=opts)


def labelled_volume(name: str, *, environment: str, service: str, opts: pulumi.ResourceOptions,
                    volume_name: Optional[str] = None) -> docker.Volume:
    """A named volume carrying the environment and service labels every volume has;
    `volume_name` when Docker's name differs from the resource's (one per swarm node)."""
    return docker.Volume(
        name,
        name=volume_name or name,
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
