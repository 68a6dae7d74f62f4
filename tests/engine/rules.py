"""How the engine and the providers change what they own: one table, with sources.

Every fact here was read in the source named beside it (the versions this
project pins: pulumi-docker 5.2 = kreuzwerker/terraform-provider-docker v4.5,
pulumi-command 1.2, pulumi-random 4.x, the Pulumi engine 3.2xx) and is listed in
../shared/reference/real-engine-facts.md. plan.py derives steps with it; the
real-engine applier (tests/e2e) executes the same steps.

Input keys are the camelCase names the program registers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
IMAGE = "docker:index/image:Image"
SERVICE = "docker:index/service:Service"
SECRET = "docker:index/secret:Secret"
SERVICE_CONFIG = "docker:index/serviceConfig:ServiceConfig"
LOCAL_COMMAND = "command:local:Command"
REMOTE_COMMAND = "command:remote:Command"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
COMMANDS = (LOCAL_COMMAND, REMOTE_COMMAND)


@dataclass(frozen=True)
class TypeRules:
    """What a change to a resource of one type does.

    update_in_place: inputs the provider updates without replacing; any other
        input's change replaces (`replace_only` inverts that for types whose
        provider replaces on a few keys only).
    state_only: inputs whose "update" changes the state and nothing on the
        host: the running object keeps the old value.
    delete_before_replace: the provider's default (the program's option wins
        when it sets one).
    nested_replaces: paths inside an in-place key whose change replaces
        (a Terraform ForceNew field inside a block that is not ForceNew).
    named_delete_first: an autonamed type whose replacement deletes first
        when the program gives `name` (pulumi-terraform-bridge
        nameRequiresDeleteBeforeReplace): two objects cannot hold one name.
    """

    type: str
    source: str
    update_in_place: frozenset[str] = frozenset()
    replace_only: Optional[frozenset[str]] = None
    state_only: frozenset[str] = frozenset()
    delete_before_replace: bool = False
    nested_replaces: frozenset[str] = frozenset()
    named_delete_first: bool = False

    def replaces(self, key: str, old: Any = None, new: Any = None) -> bool:
        """Whether a change of `key` (from `old` to `new`) replaces the resource."""
        if self.replace_only is not None:
            return key in self.replace_only
        if key not in self.update_in_place:
            return True
        return any(_at(old, path) != _at(new, path) for path in self.nested_replaces
                   if path.split(".")[0] == key)

    def deletes_first(self, inputs: dict[str, Any]) -> bool:
        return self.delete_before_replace or (self.named_delete_first and bool(inputs.get("name")))


def _at(value: Any, path: str) -> Any:
    for part in path.split(".")[1:]:
        value = value.get(part) if isinstance(value, dict) else None
    return value


_KREUZWERKER = "kreuzwerker/terraform-provider-docker v4.5.0 internal/provider/"
TYPES: dict[str, TypeRules] = {rules.type: rules for rules in (
    TypeRules(
        CONTAINER,
        source=_KREUZWERKER + "resource_docker_container.go (ForceNew on every other input), "
        "resource_docker_container_funcs.go resourceDockerContainerUpdate; "
        "pulumi/pulumi-docker provider/resources.go (DeleteBeforeReplace: true)",
        update_in_place=frozenset({
            "restart", "maxRetryCount", "memory", "memorySwap", "memoryReservation", "cpuShares", "cpuSet",
            "cpuPeriod", "cpuQuota", "destroyGraceSeconds", "healthcheck", "wait", "waitTimeout", "mustRun",
            "start", "attach", "logs", "rm", "removeVolumes", "init", "tmpfs", "containerReadRefreshTimeoutMilliseconds",
            "deviceReadBps", "deviceReadIops", "deviceWriteBps", "deviceWriteIops",
        }),
        # resourceDockerContainerUpdate calls ContainerUpdate for resources and the
        # restart policy only; these merely change the state.
        state_only=frozenset({"healthcheck", "tmpfs", "init", "destroyGraceSeconds", "wait", "waitTimeout"}),
        delete_before_replace=True,
    ),
    TypeRules(NETWORK, source=_KREUZWERKER + "resource_docker_network.go (ForceNew on all but scope)",
              update_in_place=frozenset({"scope"}), named_delete_first=True),
    TypeRules(VOLUME, source=_KREUZWERKER + "resource_docker_volume.go (ForceNew on every input)"),
    TypeRules(REMOTE_IMAGE, source=_KREUZWERKER + "resource_docker_image.go (name, triggers, pull_triggers ForceNew)",
              update_in_place=frozenset({"keepLocally", "forceRemove", "build"})),
    TypeRules(IMAGE, source="pulumi/pulumi-docker provider/provider.go Diff/Update (any change rebuilds in place)",
              replace_only=frozenset()),
    TypeRules(SERVICE, source=_KREUZWERKER + "resource_docker_service.go (name, auth ForceNew; inside task_spec: "
              "networks_advanced, container_spec labels, hosts, sysctl ForceNew), resource_docker_service_funcs.go "
              "resourceDockerServiceUpdate (ServiceUpdate); pulumi/pulumi-docker provider/resources.go (autonamed)",
              update_in_place=frozenset({"labels", "taskSpec", "updateConfig", "rollbackConfig", "endpointSpec",
                                         "convergeConfig", "mode"}),
              nested_replaces=frozenset({"taskSpec.networksAdvanceds", "taskSpec.containerSpec.labels",
                                         "taskSpec.containerSpec.hosts", "taskSpec.containerSpec.sysctl"}),
              named_delete_first=True),
    TypeRules(SECRET, source=_KREUZWERKER + "resource_docker_secret.go (name, data, labels ForceNew; no Update)",
              named_delete_first=True),
    TypeRules(SERVICE_CONFIG, source=_KREUZWERKER + "resource_docker_config.go (every input ForceNew)",
              named_delete_first=True),
    TypeRules(LOCAL_COMMAND, source="pulumi/pulumi-command provider/pkg/provider/common/inputs.go "
              "(triggers: replaceOnChanges), local/commandController.go (Update runs `update`, else `create`)",
              replace_only=frozenset({"triggers"})),
    TypeRules(REMOTE_COMMAND, source="pulumi/pulumi-command provider/pkg/provider/common/inputs.go, "
              "remote/commandController.go (as the local command)", replace_only=frozenset({"triggers"})),
    TypeRules(RANDOM_PASSWORD, source="pulumi/pulumi-random (every input ForceNew)"),
)}
# Any other type (AWS, providers): replaced on a change of its identity only.
_IDENTITY = frozenset({"name", "bucket", "user"})


def rules_for(type_: str) -> TypeRules:
    return TYPES.get(type_) or TypeRules(type_, source="identity keys only (not modelled further)",
                                         replace_only=_IDENTITY)


# ---- what a provider reads back after creating ---------------------------------
# A bridged provider diffs the program's new inputs against the state it read
# back (Terraform's plan), not against the old inputs. Where the read-back
# differs from what was sent, every later `up` shows a diff.

_GO_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def go_duration(text: str) -> str:
    """How Go's time.Duration.String() prints a whole-second duration ("60s" -> "1m0s")."""
    match = _GO_DURATION.match(text)
    if not match or not text:
        return text
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total == 0:
        return "0s"
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


@dataclass(frozen=True)
class Host:
    """What the Docker host adds on its own: daemon.json's json-file log options
    (merged into every container's LogConfig at create, read back by the provider)."""

    daemon_log_opts: dict[str, str] = field(default_factory=dict)


def read_back(type_: str, inputs: dict[str, Any], host: Host = Host()) -> dict[str, Any]:
    """The state a provider records after creating `inputs` (source: kreuzwerker
    resource_docker_container_funcs.go resourceDockerContainerRead)."""
    if type_ != CONTAINER:
        return inputs
    state = dict(inputs)
    health = state.get("healthcheck")
    if isinstance(health, dict):
        state["healthcheck"] = {k: go_duration(v) if k in ("interval", "timeout", "startPeriod", "startInterval")
                                else v for k, v in health.items()}
    # MemorySwap: Docker sets 2 x memory when it is not given; the provider reads it back.
    if "memory" in state and "memorySwap" not in state:
        state["memorySwap"] = int(state["memory"]) * 2
    if "logOpts" in state and host.daemon_log_opts:
        state["logOpts"] = {**host.daemon_log_opts, **state["logOpts"]}
    return state
