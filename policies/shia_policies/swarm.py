"""Swarm services (runtime `swarm`, docs/swarm.md): the same guarantees as one
host, across nodes. An app slot survives losing a node; a data service stays
with its volume; a failed rollout rolls back; a generated secret reaches an
image that can read a file as a Swarm secret, not an environment variable.

The rules judge `docker:index/service:Service` resources only: a stack on one
Docker host has none, and passes them trivially.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, Mapping, Optional

from pulumi_policy import ReportViolation, Severity, StackValidationArgs

from shia_policies.credentials import _secret_values
from shia_policies.resources import DATA_SERVICES, LABEL_PREFIX
from shia_policies.spec import ADVISORY, MANDATORY, Check, Levels, Rule, Threshold
from shia_policies.stack import PROJECT

SERVICE = "docker:index/service:Service"
SECRETS_DIR = "/run/secrets/"
# What the program writes (components/swarm/nodes.py); the pack keeps its own copy.
_ROLE_LABEL = "node.labels.org.shia-chatbot.role.{}==true"
_SPREAD = "node.labels.org.shia-chatbot.node"
# Images whose entrypoint reads <NAME>_FILE for these variables (docker-library
# postgres docker-entrypoint.sh file_env; MinIO's docker-entrypoint.sh).
# Named like a secret, but not one: the app's MinIO user name (docs/app-image.md).
NOT_SECRET = frozenset({"MINIO_ACCESS_KEY"})
FILE_VARIABLES: dict[str, tuple[str, ...]] = {
    "postgres": ("POSTGRES_PASSWORD",),
    "minio": ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"),
}


class SwarmService:
    """A Service's inputs, with the facts the rules ask about."""

    def __init__(self, props: Mapping[str, Any]):
        self.props = props

    @property
    def name(self) -> str:
        return self.props.get("name") or ""

    @cached_property
    def labels(self) -> dict[str, str]:
        return {e["label"]: e.get("value", "") for e in self.props.get("labels") or []}

    @property
    def service(self) -> str:
        return self.labels.get(f"{LABEL_PREFIX}.service", "")

    @cached_property
    def task(self) -> Mapping[str, Any]:
        return self.props.get("taskSpec") or {}

    @cached_property
    def container(self) -> Mapping[str, Any]:
        return self.task.get("containerSpec") or {}

    @property
    def replicas(self) -> Optional[int]:
        """None for a global service."""
        mode = self.props.get("mode") or {}
        if mode.get("global"):
            return None
        return int((mode.get("replicated") or {}).get("replicas", 1))

    @cached_property
    def constraints(self) -> list[str]:
        return list((self.task.get("placement") or {}).get("constraints") or [])

    @cached_property
    def prefs(self) -> list[str]:
        return list((self.task.get("placement") or {}).get("prefs") or [])

    @cached_property
    def env(self) -> dict[str, str]:
        return dict(self.container.get("env") or {})

    @cached_property
    def secret_files(self) -> set[str]:
        """Where its Swarm secrets are mounted, as absolute paths."""
        return {_absolute(s.get("fileName") or "") for s in self.container.get("secrets") or []}


def _absolute(path: str) -> str:
    """A secret's path: relative ones are under /run/secrets (Docker's, and MinIO's *_FILE)."""
    return path if path.startswith("/") else SECRETS_DIR + path


def services(args: StackValidationArgs) -> list[tuple[Any, SwarmService]]:
    return [(r, SwarmService(r.props)) for r in args.resources if r.resource_type == SERVICE]


def _nodes(c: Check) -> dict[str, list[str]]:
    """Node name -> roles, from the stack's `nodes` config (empty when unset)."""
    raw = c.stack.config.get(f"{PROJECT}:nodes")
    try:
        nodes = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        return {}
    return {name: list((node or {}).get("roles") or []) for name, node in nodes.items()}


def app_spread(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    slots = [(r, s) for r, s in services(args) if s.service == "app"]
    if not slots:
        return
    minimum = c.settings["minReplicas"]
    app_nodes = sorted(n for n, roles in _nodes(c).items() if "app" in roles)
    if len(app_nodes) < minimum:
        report(f"{len(app_nodes)} app node(s) in `nodes` ({', '.join(app_nodes) or 'none'}); {c.env} needs at least "
               f"{minimum}, so losing one leaves every slot running.")
    for resource, slot in slots:
        if slot.replicas is None or slot.replicas < minimum:
            report(f"{slot.name} runs {slot.replicas if slot.replicas is not None else 'one task per node'}; "
                   f"{c.env} needs at least {minimum} replicas.", resource.urn)
        if _ROLE_LABEL.format("app") not in slot.constraints:
            report(f"{slot.name} is not placed on app nodes (constraint {_ROLE_LABEL.format('app')}).", resource.urn)
        if _SPREAD not in slot.prefs:
            report(f"{slot.name} does not spread its tasks over nodes (placement preference {_SPREAD}): "
                   "every replica may land on one node.", resource.urn)


def data_pinned(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    for resource, service in services(args):
        if service.service not in DATA_SERVICES:
            continue
        if service.replicas != 1:
            report(f"{service.name} runs {service.replicas or 'one task per node'}; a data service runs exactly one "
                   "task, beside its volume.", resource.urn)
        if _ROLE_LABEL.format("data") not in service.constraints:
            report(f"{service.name} is not pinned to the data node (constraint {_ROLE_LABEL.format('data')}): "
                   "Swarm could start it on a node without its volume, empty.", resource.urn)
    data_nodes = [n for n, roles in _nodes(c).items() if "data" in roles]
    if services(args) and len(data_nodes) != 1:
        report(f"{len(data_nodes)} data nodes in `nodes`; exactly one holds the data services' volumes.")


def rollback_on_failure(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    for resource, service in services(args):
        update = service.props.get("updateConfig") or {}
        if service.replicas is not None and update.get("failureAction") != "rollback":
            report(f"{service.name}: updateConfig.failureAction is {update.get('failureAction') or 'unset (pause)'}; "
                   "a rollout whose new tasks fail must roll back, not stop half done.", resource.urn)
        tests = (service.container.get("healthcheck") or {}).get("tests") or []
        if not tests or tests[0] == "NONE":
            report(f"{service.name} has no healthcheck: Swarm would count a task that crashes after starting as "
                   "updated.", resource.urn)


def secrets_as_files(c: Check, args: StackValidationArgs, report: ReportViolation) -> None:
    for resource, service in services(args):
        for variable in FILE_VARIABLES.get(service.service, ()):
            if variable in service.env:
                report(f"{service.name} gets {variable} in its environment; its image reads {variable}_FILE: "
                       "mount a Swarm secret and set that instead (`docker service inspect` shows the "
                       "environment to anyone who can reach a manager).", resource.urn)
            path = service.env.get(f"{variable}_FILE")
            if path is not None and _absolute(path) not in service.secret_files:
                report(f"{service.name}: {variable}_FILE={path} is not a Swarm secret mounted in the service.",
                       resource.urn)
        for name, value in service.env.items():
            if name.endswith("_FILE") and _absolute(value) in service.secret_files or name in NOT_SECRET:
                continue
            if service.service not in FILE_VARIABLES and any(True for _ in _secret_values(name, value)):
                report(f"{service.name} gets the secret {name} in its environment; pass it as a Swarm secret "
                       f"({name}_FILE) so `pulumi preview` and `docker service inspect` show no secret.",
                       resource.urn)


_SWARM = Levels(dev=ADVISORY, stage=MANDATORY, prod=MANDATORY,
                why="stage rehearses prod's swarm; a dev swarm is one laptop, worth a note.")

RULES = [
    Rule(
        name="swarm-app-spread",
        concern="swarm",
        description="Each app slot is a replicated service with at least minReplicas replicas, placed on app "
                    "nodes and spread over them, and the stack has at least minReplicas app nodes.",
        remediation="Set slots.<slot>.replicas and the app roles in `nodes`; components/swarm/service.py places "
                    "and spreads the tasks.",
        severity=Severity.HIGH,
        levels=_SWARM,
        thresholds={"minReplicas": Threshold("Fewest replicas of each app slot, and app nodes.",
                                             {"type": "integer", "minimum": 1})},
        check=app_spread,
        stack_wide=True,
    ),
    Rule(
        name="swarm-data-pinned",
        concern="swarm",
        description="PostgreSQL, Redis, Qdrant and MinIO run one task each, pinned to the one data node "
                    "that holds their volumes.",
        remediation="Give exactly one node the data role; components/swarm/service.py pins data services to it.",
        severity=Severity.CRITICAL,
        levels=Levels(dev=MANDATORY, stage=MANDATORY, prod=MANDATORY,
                      why="a data service started away from its volume starts empty, in any environment."),
        check=data_pinned,
        stack_wide=True,
    ),
    Rule(
        name="swarm-rollback-on-failure",
        concern="swarm",
        description="Every replicated service rolls back a failed rollout (updateConfig.failureAction rollback) "
                    "and has a healthcheck Swarm judges new tasks by.",
        remediation="Build services with components/swarm/service.py.",
        severity=Severity.HIGH,
        levels=_SWARM,
        check=rollback_on_failure,
        stack_wide=True,
    ),
    Rule(
        name="swarm-secrets-as-files",
        concern="swarm",
        description="A generated secret reaches a service as a Swarm secret file wherever its image reads "
                    "<NAME>_FILE (PostgreSQL, MinIO, and the app per docs/app-image.md), never in its environment.",
        remediation="Mount a docker.Secret and set <NAME>_FILE=/run/secrets/<file>.",
        severity=Severity.HIGH,
        levels=_SWARM,
        check=secrets_as_files,
        stack_wide=True,
    ),
]
