"""Reading the program's resources the way the rules need them.

During a first preview the generated passwords are unknown. The SDK's property
proxy raises UnknownValueError when a check touches one, and the SDK turns the
rest of that check into an advisory "can't run during preview" note. So the
readers here skip unknown list entries and keep the first error: a check
reports everything it can decide from known values, and only then, if a fact
it needs is still unknown, raises that error (Env.settle does).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import tarfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Iterable, Mapping, Optional, Sequence

from pulumi_policy.proxy import UnknownValueError

CONTAINER = "docker:index/container:Container"
SERVICE = "docker:index/service:Service"
VOLUME = "docker:index/volume:Volume"
NETWORK = "docker:index/network:Network"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
DOCKER_PROVIDER = "pulumi:providers:docker"
LOCAL_COMMAND = "command:local:Command"
COMMANDS = (LOCAL_COMMAND, "command:remote:Command")
STACK = "pulumi:pulumi:Stack"

LABEL_PREFIX = "org.shia-chatbot"
# Containers that run the app image with the app's environment.
APP_SERVICES = ("app", "worker", "flower")
DATA_SERVICES = ("postgres", "redis", "qdrant", "minio")
ROUTER_CONFIG_SUFFIX = "-router-config"
ROUTER_SWITCH_SUFFIX = "-router-switch"
SLOT_NAMES = ("blue", "green")


def known_items(seq: Optional[Sequence[Any]]) -> tuple[list[Any], Optional[UnknownValueError]]:
    """The known entries of a list, and the error for the first unknown one."""
    items: list[Any] = []
    unknown: Optional[UnknownValueError] = None
    for index in range(len(seq or ())):
        try:
            items.append(seq[index])
        except UnknownValueError as error:
            unknown = unknown or error
    return items, unknown


def label_map(props: Mapping[str, Any]) -> dict[str, str]:
    entries, _ = known_items(props.get("labels"))
    return {e["label"]: e.get("value", "") for e in entries}


@dataclass(frozen=True)
class Env:
    """A container's `envs` ("KEY=VALUE" entries), known entries only."""

    values: Mapping[str, str]
    unknown: Optional[UnknownValueError]

    @classmethod
    def of(cls, props: Mapping[str, Any]) -> "Env":
        entries, unknown = known_items(props.get("envs"))
        values = {}
        for entry in entries:
            key, _, value = entry.partition("=")
            values[key] = value  # a later entry wins, as in Docker
        return cls(values, unknown)

    def get(self, key: str) -> Optional[str]:
        """The value of `key` among the known entries, else None."""
        return self.values.get(key)

    def settle(self, *keys: str) -> None:
        """Raise the first unknown entry if one of `keys` is not among the known
        entries: it may be that entry, so the check cannot finish during
        preview. Call it after reporting what the known entries show, and
        before reporting a key as unset. An unknown entry is assumed not to
        redefine a key that is already known."""
        if self.unknown is not None and any(key not in self.values for key in keys):
            raise self.unknown


_MIB = 1024 * 1024
# What a Swarm restart policy's condition amounts to on a container.
_RESTART = {"any": "always", "on-failure": "on-failure", "none": "no"}


def service_as_container(props: Mapping[str, Any]) -> dict[str, Any]:
    """A Swarm service's inputs (docker:index/service:Service, kreuzwerker
    v4.5 schema) in a container's shape, so every container rule judges a
    service's tasks too: its containerSpec, resources, restart policy, log
    driver, networks and published ports under the container's input names.
    What a service cannot have (securityOpts: no-new-privileges has no field
    in this provider nor in Docker 20.10's service API) is absent."""
    task = props.get("taskSpec") or {}
    spec = task.get("containerSpec") or {}
    volumes, tmpfs = [], {}
    for mount in known_items(spec.get("mounts"))[0]:
        kind = mount.get("type")
        if kind == "tmpfs":
            tmpfs[mount.get("target")] = ""
        elif kind in ("volume", "bind"):
            volumes.append({"volumeName" if kind == "volume" else "hostPath": mount.get("source"),
                            "containerPath": mount.get("target"), "readOnly": bool(mount.get("readOnly"))})
    limits = (task.get("resources") or {}).get("limits") or {}
    log = task.get("logDriver") or {}
    return {
        "name": props.get("name"),
        "image": spec.get("image"),
        "labels": props.get("labels"),
        "command": spec.get("args"),
        "envs": [f"{k}={v}" for k, v in (spec.get("env") or {}).items()],
        "healthcheck": spec.get("healthcheck"),
        "restart": _RESTART.get((task.get("restartPolicy") or {}).get("condition") or "any"),
        "memory": int(limits.get("memoryBytes") or 0) // _MIB,
        "logDriver": log.get("name"),
        "logOpts": log.get("options") or {},
        "capabilities": {"drops": spec.get("capDrops"), "adds": spec.get("capAdds")},
        "readOnly": spec.get("readOnly"),
        "volumes": volumes,
        "tmpfs": tmpfs,
        "networksAdvanced": [{"name": n.get("id") or n.get("name"), "aliases": n.get("aliases")}
                             for n in known_items(task.get("networksAdvanceds"))[0]],
        "ports": [{"internal": p.get("targetPort"), "external": p.get("publishedPort"), "protocol": p.get("protocol")}
                  for p in known_items((props.get("endpointSpec") or {}).get("ports"))[0]],
    }


class Container:
    """A docker container's inputs, with the facts the rules ask about; or a
    Swarm service's (`swarm`), seen as its tasks' container."""

    def __init__(self, props: Mapping[str, Any], swarm_service: Optional[Mapping[str, Any]] = None):
        self.props = props
        self.swarm = swarm_service is not None
        self._service_props = swarm_service or {}

    @classmethod
    def of(cls, resource_type: str, props: Mapping[str, Any]) -> Optional["Container"]:
        if resource_type == SERVICE:
            return cls(service_as_container(props), props)
        return cls(props) if resource_type == CONTAINER else None

    @cached_property
    def secret_files(self) -> set[str]:
        """A service's Swarm secrets, by where they are mounted (relative: under /run/secrets)."""
        spec = ((self._service_props.get("taskSpec") or {}).get("containerSpec") or {})
        paths = (s.get("fileName") or "" for s in known_items(spec.get("secrets"))[0])
        return {p if p.startswith("/") else f"/run/secrets/{p}" for p in paths if p}

    def from_secret_file(self, key: str) -> bool:
        """Whether `key` comes from a mounted Swarm secret (`<key>_FILE` naming one)."""
        path = self.env.get(f"{key}_FILE")
        return bool(path) and (path if path.startswith("/") else f"/run/secrets/{path}") in self.secret_files

    @property
    def replicas(self) -> Optional[int]:
        """How many run: 1 for a container; a service's replicas, None for a global one."""
        if not self.swarm:
            return 1
        mode = self._service_props.get("mode") or {}
        return None if mode.get("global") else int((mode.get("replicated") or {}).get("replicas", 1))

    @cached_property
    def name(self) -> str:
        return self.props.get("name") or ""

    @cached_property
    def image(self) -> str:
        return self.props.get("image") or ""

    @cached_property
    def labels(self) -> dict[str, str]:
        return label_map(self.props)

    @cached_property
    def command(self) -> list[str]:
        return known_items(self.props.get("command"))[0]

    @cached_property
    def env(self) -> Env:
        return Env.of(self.props)

    @cached_property
    def service(self) -> str:
        """The label the program sets; else a guess from the image and command,
        so a container that lost its label is still judged."""
        labelled = self.labels.get(f"{LABEL_PREFIX}.service")
        if labelled:
            return labelled
        repository = self.image.split("@")[0].rsplit("/", 1)[-1].split(":")[0]
        words = " ".join(self.command)
        if "celery" in words:
            return "flower" if re.search(r"\bflower\b", words) else "worker"
        if "uvicorn" in words:
            return "app"
        return repository

    @cached_property
    def slot(self) -> Optional[str]:
        return self.labels.get(f"{LABEL_PREFIX}.slot")

    @cached_property
    def ports(self) -> list[Mapping[str, Any]]:
        return known_items(self.props.get("ports"))[0]

    @property
    def publishes(self) -> bool:
        return bool(self.ports) or bool(self.props.get("publishAllPorts"))

    @property
    def long_running(self) -> bool:
        """False for one-shot containers (removed on exit, or not kept running)."""
        return not self.props.get("rm") and self.props.get("mustRun", True) is not False


def containers(resources: Iterable[Any]) -> list[tuple[Any, Container]]:
    """(resource, Container) for every container and Swarm service among a stack policy's resources."""
    found = ((r, Container.of(r.resource_type, r.props)) for r in resources)
    return [(r, container) for r, container in found if container is not None]


class RouterConfig:
    """The nginx config the router config step installs. Its stdin is a base64
    tar of the router's files (components/router/nginx_config.py `bundle`);
    `text` is its default.conf."""

    def __init__(self, text: str):
        self.text = text

    @classmethod
    def from_bundle(cls, stdin: str) -> "RouterConfig":
        """The default.conf in a step's stdin; empty when there is none to read."""
        try:
            with tarfile.open(fileobj=io.BytesIO(base64.b64decode(stdin, validate=False))) as tar:
                member = tar.extractfile("default.conf")
                return cls(member.read().decode() if member else "")
        except (binascii.Error, tarfile.TarError, KeyError, ValueError):
            return cls("")

    @staticmethod
    def is_router_step(resource_type: str, name: str) -> bool:
        """`<env>-router-config`, or on a swarm `<env>-router-config-<edge node>`."""
        return resource_type in COMMANDS and re.search(rf"{ROUTER_CONFIG_SUFFIX}(-[\w.-]+)?$", name) is not None

    @staticmethod
    def is_switch_step(resource_type: str, name: str) -> bool:
        return resource_type in COMMANDS and re.search(rf"{ROUTER_SWITCH_SUFFIX}(-[\w.-]+)?$", name) is not None

    @cached_property
    def proxied_names(self) -> list[str]:
        """The host part of every proxy_pass (`app-$app_slot`)."""
        return re.findall(r"^\s*proxy_pass\s+https?://([^:/;\s]+)", self.text, re.M)

    @cached_property
    def server_blocks(self) -> list[str]:
        """The text of every top-level `server { ... }` block."""
        blocks: list[str] = []
        for match in re.finditer(r"(?m)^\s*server\s*\{", self.text):
            depth, start = 0, match.end() - 1
            for index in range(start, len(self.text)):
                depth += {"{": 1, "}": -1}.get(self.text[index], 0)
                if depth == 0:
                    blocks.append(self.text[start:index + 1])
                    break
        return blocks

    @cached_property
    def rate_per_minute(self) -> Optional[float]:
        """The request rate of the first `limit_req_zone`, per minute."""
        match = re.search(r"\blimit_req_zone\b[^;]*\brate=(\d+(?:\.\d+)?)r/([sm])", self.text)
        if not match:
            return None
        return float(match[1]) * (60 if match[2] == "s" else 1)

    @cached_property
    def limits_requests(self) -> bool:
        return re.search(r"^\s*limit_req\s+zone=", self.text, re.M) is not None


def listens(block: str) -> list[tuple[int, str]]:
    """(port, flags) of each `listen` directive in an nginx block."""
    found = []
    for address, flags in re.findall(r"^\s*listen\s+([^\s;]+)([^;]*);", block, re.M):
        port = address.rsplit(":", 1)[-1]
        if port.isdigit():
            found.append((int(port), flags))
    return found
