"""A container's settings as a Swarm service: the runtime `swarm` form of
components/host/containers.py's hardened_container.

The same ContainerSpec (and components/host/hardening.py's row) becomes a
`docker.Service`, written the way the provider (kreuzwerker v4.5.0,
`resource_docker_service*.go`) reads it back, so the next `up` plans nothing:
- durations in the provider's short form ("1m", not "60s" or "1m0s");
- `stop_grace_period` and every restart policy field set (unset ones are sent
  as 0 and read back as "0s");
- networks by id (a name reads back as an id: a replacement on every `up`);
- the container's `command` is Docker's Cmd, which a service calls `args`
  (`commands` would replace the image's entrypoint);
- labels on the service, which update in place (container labels are ForceNew).

The service is created and updated health-gated: with `converge_config` the
provider waits until every task runs, and a rolling update runs start-first
(stop-first where a host port is published: two tasks cannot hold it on one
node) and rolls back on failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

from components.host import hardening
from components.host.containers import LABEL_PREFIX, LOG_OPTS, ContainerSpec, go_duration
from components.swarm.nodes import placement_constraint, spread
from settings.model import NodeRole

MIB = 1024 * 1024
# How long `up` waits for a service's tasks to run (the provider deletes a
# service that does not converge on create, and fails the update otherwise).
CONVERGE_TIMEOUT = "3m"
RESTART_DELAY = "5s"  # Swarm's own default, which an unset field would lose
_HMS = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def swarm_duration(seconds: int) -> str:
    """Whole seconds as the provider reads a service's durations back: Go's
    Duration.String() with a trailing "m0s" or "h0m" trimmed (`shortDur`):
    30 -> "30s", 60 -> "1m", 90 -> "1m30s", 3600 -> "1h". Raises ValueError below 0."""
    if seconds < 0:
        raise ValueError(f"negative duration: {seconds}")
    text = go_duration(f"{seconds}s")
    for suffix in ("m0s", "h0m"):
        if text.endswith(suffix):
            text = text[:-2]
    return text


def _seconds(duration: str) -> int:
    """A duration written in h/m/s ("1m30s") in whole seconds."""
    hours, minutes, seconds = (int(g or 0) for g in _HMS.fullmatch(duration).groups())
    return hours * 3600 + minutes * 60 + seconds


@dataclass(frozen=True, kw_only=True)
class Placement:
    """Where a service's tasks run: on nodes with `role` (None: every node),
    `replicas` of them spread over those nodes, or one on each such node when
    `replicas` is None."""

    role: Optional[NodeRole]
    replicas: Optional[int] = 1
    # Never two tasks at once, even during an update (stop-first): a data
    # directory must not be opened by two servers.
    exclusive: bool = False


def _env(entries: Sequence[pulumi.Input[str]]) -> pulumi.Output[dict[str, str]]:
    """"K=V" entries (plain or secret Outputs) as the map a service takes; secret if any entry is."""
    return pulumi.Output.all(*entries).apply(lambda items: dict(item.split("=", 1) for item in items))


def swarm_service(spec: ContainerSpec, placement: Placement, networks: Sequence[tuple[pulumi.Input[str], Sequence[str]]],
                  opts: pulumi.ResourceOptions,
                  secrets: Sequence[docker.ServiceTaskSpecContainerSpecSecretArgs] = ()) -> docker.Service:
    """`spec` as a Swarm service. networks: (network id, aliases); secrets: the
    Swarm secrets it reads as files (components/swarm/secrets.py SecretFile.mount)."""
    rights = hardening.for_service(spec.service)
    labels = {"environment": spec.environment, "service": spec.service, **spec.labels}
    if spec.slot:
        labels["slot"] = spec.slot
    check = spec.healthcheck
    interval, retries = _seconds(check.interval), check.retries
    # After a new task runs, how long the update watches it before the next
    # one: the time its own healthcheck takes to call a healthy task unhealthy.
    # Swarm reports a task running only once it is healthy (the start period
    # is behind it), so waiting that out again would only slow every update.
    monitor = swarm_duration(interval * retries)
    host_ports = list(spec.ports)
    if any(p.ip for p in host_ports):
        # A service's port has no host address: it would listen on every interface.
        raise ValueError(f"{spec.name}: a Swarm service cannot publish on one address ({host_ports[0].ip})")
    order = "stop-first" if host_ports or placement.exclusive else "start-first"
    mounts = [docker.ServiceTaskSpecContainerSpecMountArgs(type="bind" if v.host_path else "volume",
                                                           source=v.host_path or v.volume_name,
                                                           target=v.container_path, read_only=v.read_only)
              for v in spec.volumes]
    mounts += [docker.ServiceTaskSpecContainerSpecMountArgs(
        type="tmpfs", target=path, tmpfs_options=docker.ServiceTaskSpecContainerSpecMountTmpfsOptionsArgs(
            size_bytes=hardening.TMPFS_SIZE_MB * MIB)) for path in rights.tmpfs]
    replicated = placement.replicas is not None
    return docker.Service(
        spec.name,
        name=spec.name,
        labels=[docker.ServiceLabelArgs(label=f"{LABEL_PREFIX}.{k}", value=v) for k, v in sorted(labels.items())],
        task_spec=docker.ServiceTaskSpecArgs(
            container_spec=docker.ServiceTaskSpecContainerSpecArgs(
                image=spec.image,
                args=list(spec.command) if spec.command else None,
                env=_env(spec.envs) if spec.envs else None,
                healthcheck=docker.ServiceTaskSpecContainerSpecHealthcheckArgs(
                    tests=list(check.test), interval=swarm_duration(interval),
                    timeout=swarm_duration(_seconds(check.timeout)), retries=retries,
                    start_period=swarm_duration(_seconds(check.start_period))),
                stop_grace_period=swarm_duration(spec.stop_timeout),
                read_only=rights.read_only,
                cap_drops=list(hardening.DROP),
                cap_adds=list(rights.capabilities) or None,
                mounts=mounts or None,
                secrets=list(secrets) or None,
            ),
            networks_advanceds=[docker.ServiceTaskSpecNetworksAdvancedArgs(id=net, aliases=list(aliases))
                                for net, aliases in networks],
            placement=docker.ServiceTaskSpecPlacementArgs(constraints=[placement_constraint(placement.role)]
                                                          if placement.role else None,
                                                          prefs=[spread()] if replicated else None),
            resources=docker.ServiceTaskSpecResourcesArgs(
                limits=docker.ServiceTaskSpecResourcesLimitsArgs(memory_bytes=spec.memory_mb * MIB)),
            restart_policy=docker.ServiceTaskSpecRestartPolicyArgs(
                condition="any", delay=RESTART_DELAY, max_attempts=0, window="0s"),
            log_driver=docker.ServiceTaskSpecLogDriverArgs(name="json-file", options=dict(LOG_OPTS)),
        ),
        mode=docker.ServiceModeArgs(replicated=docker.ServiceModeReplicatedArgs(replicas=placement.replicas))
        if replicated else docker.ServiceModeArgs(global_=True),
        # No virtual IP: this kernel has no IPVS, and nginx resolves tasks.<name> per request.
        endpoint_spec=docker.ServiceEndpointSpecArgs(
            mode="dnsrr",
            ports=[docker.ServiceEndpointSpecPortArgs(target_port=p.internal, published_port=p.external,
                                                      publish_mode="host", protocol="tcp") for p in host_ports]
            or None),
        update_config=docker.ServiceUpdateConfigArgs(parallelism=1, delay="0s", failure_action="rollback",
                                                     monitor=monitor, max_failure_ratio="0.0", order=order),
        rollback_config=docker.ServiceRollbackConfigArgs(parallelism=1, delay="0s", failure_action="pause",
                                                         monitor=monitor, max_failure_ratio="0.0", order=order),
        # The provider cannot converge a global service (its schema refuses both).
        converge_config=docker.ServiceConvergeConfigArgs(delay="7s", timeout=CONVERGE_TIMEOUT) if replicated else None,
        # A create that asks the registry (it always does) also sets the image's
        # platforms, which the provider reads back: not ours to change.
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            ignore_changes=["taskSpec.placement.platforms"])),
    )
