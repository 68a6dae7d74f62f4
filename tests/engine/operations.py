"""Every operation the docs offer, as the two plans `pulumi up` goes between.

Each Operation names the stack, the config before and after (and the secrets
set with --secret), and what the docs promise it may replace or delete. The
tests (tests/test_operations.py) derive the steps with engine.plan and hold
each operation to those promises; `render()` writes the same steps as the table
in docs/operations.md, which a test keeps equal to this derivation.

    python -m engine.operations --write docs/operations.md   (make docs)
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import harness
from engine import plan
from engine.rules import COMMANDS, CONTAINER

BEGIN = "<!-- operations:begin -->"
END = "<!-- operations:end -->"
OLD_IMAGE = "ghcr.io/shia-chatbot/app:1.0.0"
NEW_IMAGE = "ghcr.io/shia-chatbot/app:1.1.0"
DATA_SERVICES = ("postgres", "redis", "qdrant", "minio")


def provider_key(name: str) -> str:
    """A value for a provider key, made up per run (never a fixture literal)."""
    return "mock-" + hashlib.sha256(f"operations:{name}".encode()).hexdigest()[:32]


def changed(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `config` with `a.b.c` set to `value` (None: removed)."""
    result = copy.deepcopy(config)
    *parents, last = path.split(".")
    node = result
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return result


@dataclass(frozen=True)
class State:
    """A deployed stack: its config and the secrets it has."""

    stack: str
    config: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)

    def run(self, previous: Optional["State"] = None) -> harness.Run:
        return _run(self, previous)


@functools.lru_cache(maxsize=None)
def _cached(stack: str, config: str, secrets: str, previous: str) -> harness.Run:
    import json
    run = harness.run(stack, json.loads(config), secret_config=json.loads(secrets),
                      previous_outputs=json.loads(previous) if previous else None)
    assert run.error is None, f"{stack}: {run.error}"
    return run


def _run(state: State, previous: Optional[State]) -> harness.Run:
    import json
    outputs = json.dumps(_run(previous, None).outputs, sort_keys=True, default=str) if previous else ""
    return _cached(state.stack, json.dumps(state.config, sort_keys=True), json.dumps(state.secrets, sort_keys=True),
                   outputs)


@dataclass(frozen=True)
class Operation:
    """One operation: from `before` (deployed, and deployed on top of `earlier`) to `after`.

    may_replace: container names the docs say it replaces or removes (live
        replicas and data services included only where the docs say so).
    migrates: slots whose image changes, the only ones whose pre-migration
        backup and migration may run.
    """

    name: str
    how: str
    before: State
    after: State
    may_replace: frozenset[str] = frozenset()
    migrates: frozenset[str] = frozenset()
    earlier: Optional[State] = None

    def runs(self) -> tuple[harness.Run, harness.Run]:
        return self.before.run(self.earlier), self.after.run(self.before)

    def steps(self) -> list[plan.Step]:
        before, after = self.runs()
        return plan.derive(before, after)


def _prod() -> State:
    return State("prod", harness.stack_config("prod"))


def _slots(state: State, **slots: Any) -> dict[str, Any]:
    config = copy.deepcopy(state.config)
    for slot, spec in slots.items():
        if spec is None:
            config["slots"].pop(slot, None)
        else:
            config["slots"][slot] = spec
    return config


def _catalog() -> list[Operation]:
    prod = _prod()
    blue = prod.config["slots"]["blue"]
    released = State("prod", _slots(prod, green={"image": NEW_IMAGE, "replicas": blue["replicas"]}))
    switched = State("prod", {**released.config, "activeSlot": "green"})
    retired = State("prod", _slots(switched, blue=None))
    live = {f"prod-app-blue-{i}" for i in range(1, blue["replicas"] + 1)}
    scaled = State("prod", _slots(prod, blue={**blue, "replicas": blue["replicas"] + 1}))

    operations = [
        Operation("release to the idle slot", "make release STACK=prod SLOT=green IMAGE=…", prod, released,
                  migrates=frozenset({"green"})),
        Operation("switch", "make switch STACK=prod SLOT=green", released, switched, earlier=prod,
                  may_replace=frozenset({"prod-worker-blue", "prod-flower"})),
        Operation("roll back", "make rollback STACK=prod SLOT=blue", switched, State("prod", released.config),
                  earlier=released,
                  may_replace=frozenset({"prod-worker-green", "prod-flower"})),
        Operation("retire the old slot", "delete slots.blue, make up STACK=prod", switched, retired,
                  earlier=released, may_replace=frozenset(live)),
        Operation("scale the live slot up", "slots.blue.replicas + 1, make up STACK=prod", prod, scaled),
        Operation("scale the live slot down", "slots.blue.replicas - 1, make up STACK=prod", scaled, prod,
                  earlier=prod, may_replace=frozenset({f"prod-app-blue-{blue['replicas'] + 1}"})),
        Operation("raise memory 4x", "memoryMb.<service> x 4, make up STACK=prod", prod,
                  State("prod", {**prod.config, "memoryMb": {k: v * 4 for k, v in
                                                             harness_defaults("prod")["memoryMb"].items()}})),
        Operation("change an app setting", "app.rateLimitPerHour, make up STACK=prod", prod,
                  State("prod", changed(prod.config, "app.rateLimitPerHour", 900)),
                  may_replace=frozenset(_app(prod))),
        Operation("add a provider key", "pulumi config set --secret openaiApiKey …, make up STACK=prod", prod,
                  State("prod", prod.config, {"openaiApiKey": provider_key("openai")}),
                  may_replace=frozenset(_app(prod))),
        # From level full, which only a stack without off-site copies in S3 may run (settings/load.py).
        Operation("turn alerts on", "monitoring.level full+alerts, make up STACK=stage",
                  State("stage", without_alerts := changed(changed(harness.stack_config("stage"), "backups.offsite",
                                                                   "minio"), "monitoring.level", "full")),
                  State("stage", changed(without_alerts, "monitoring.level", "full+alerts")),
                  may_replace=frozenset({"stage-prometheus"})),
        Operation("turn TLS on", "tls.enabled true and domain, make up STACK=dev",
                  State("dev", harness.stack_config("dev")),
                  State("dev", {**changed(harness.stack_config("dev"), "tls.enabled", True),
                                "domain": "dev.shia-chatbot.example.org"}),
                  may_replace=frozenset({"dev-nginx"})),
        Operation("dev: switch", "make switch SLOT=green (dev)",
                  State("dev", _slots(State("dev", harness.stack_config("dev")),
                                      green={"image": NEW_IMAGE, "replicas": 1})),
                  State("dev", {**_slots(State("dev", harness.stack_config("dev")),
                                         green={"image": NEW_IMAGE, "replicas": 1}), "activeSlot": "green"}),
                  may_replace=frozenset({"dev-worker-blue", "dev-flower"})),
    ]
    for secret in ROTATION_CONSUMERS:
        operations.append(Operation(
            f"rotate {secret}", f"pulumi config set --path rotation.{secret} 1, make up STACK=prod", prod,
            State("prod", changed(prod.config, f"rotation.{secret}", 1)),
            may_replace=frozenset(ROTATION_CONSUMERS[secret](prod))))
    return operations


def harness_defaults(environment: str) -> dict[str, Any]:
    from settings.defaults import defaults_for
    return defaults_for(environment)


def _app(state: State) -> set[str]:
    slot = state.config["activeSlot"]
    return {f"{state.stack}-app-{slot}-{i}" for i in range(1, state.config["slots"][slot]["replicas"] + 1)} | {
        f"{state.stack}-worker-{slot}", f"{state.stack}-flower"}


# What the docs say each rotation restarts (docs/secrets.md).
ROTATION_CONSUMERS: dict[str, Callable[[State], set[str]]] = {
    # The superuser's: set in the running server only; no other container has it.
    "postgresPassword": lambda s: {f"{s.stack}-postgres"},
    "postgresAppPassword": _app,
    "postgresOwnerPassword": lambda s: set(),  # the migration step's input; it re-runs nothing
    "postgresMonitorPassword": lambda s: {f"{s.stack}-postgres-exporter"},
    "postgresBackupPassword": lambda s: set(),  # the backup job reaches the server over its socket
    "redisPassword": lambda s: _app(s) | {f"{s.stack}-redis"},
    "redisAdminPassword": lambda s: {f"{s.stack}-redis"},
    "redisBackupPassword": lambda s: {f"{s.stack}-redis", f"{s.stack}-backup"},
    "redisExporterPassword": lambda s: {f"{s.stack}-redis", f"{s.stack}-redis-exporter"},
    "qdrantApiKey": lambda s: _app(s) | {f"{s.stack}-qdrant", f"{s.stack}-backup"},
    "qdrantReadOnlyApiKey": lambda s: {f"{s.stack}-qdrant", f"{s.stack}-prometheus"},
    "minioRootUser": lambda s: {f"{s.stack}-minio"},
    "minioRootPassword": lambda s: {f"{s.stack}-minio"},
    "minioAppPassword": lambda s: _app(s) | {f"{s.stack}-minio-buckets"},
    "minioBackupPassword": lambda s: {f"{s.stack}-backup", f"{s.stack}-minio-buckets"},
    "secretKey": _app,
    "flowerPassword": lambda s: {f"{s.stack}-flower", f"{s.stack}-prometheus"},
}


@functools.lru_cache(maxsize=None)
def catalog() -> tuple[Operation, ...]:
    return tuple(_catalog())


# ---- the docs table ----------------------------------------------------------

def _generic(name: str, stack: str) -> str:
    return name.replace(f"{stack}-", "<env>-", 1).replace(f"{stack}_", "<env>_", 1)


def summary(operation: Operation) -> str:
    """What `pulumi up` does, in the order it does it, one clause per kind of step."""
    steps = operation.steps()
    stack = operation.before.stack
    if not steps:
        return "nothing"
    parts = []
    for step in steps:
        name = _generic(step.resource.name, stack)
        if step.resource.type in COMMANDS:
            # Every new container's health step runs right after it: said once, under the table.
            if step.script is None or name.endswith("-healthy"):
                continue
            if step.kind == "delete":
                parts.append(f"runs `{name}`'s delete")
            elif step.script == "update":
                parts.append(f"updates `{name}` (its `update` re-runs nothing)")
            else:
                parts.append(f"runs `{name}`")
        elif step.resource.type == CONTAINER:
            verb = {"create": "starts", "update": "updates in place", "delete": "stops and removes",
                    "replace": "replaces (old one first)" if step.delete_first else "replaces (new one first)"}[step.kind]
            keys = f" ({', '.join(step.keys)})" if step.kind == "update" else ""
            parts.append(f"{verb} `{name}`{keys}")
        else:
            verb = {"create": "creates", "update": "updates", "delete": "deletes", "replace": "replaces"}[step.kind]
            parts.append(f"{verb} {step.resource.type.split(':')[-1]} `{name}`")
    return "; ".join(dict.fromkeys(parts))


def render() -> str:
    lines = ["| operation | how | what `pulumi up` does, in order |", "|---|---|---|"]
    for operation in catalog():
        lines.append(f"| {operation.name} | `{operation.how}` | {summary(operation)} |")
    return "\n".join(lines)


def write(path: Path) -> None:
    text = path.read_text()
    begin, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    path.write_text(text[:begin] + "\n" + render() + "\n" + text[end:])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print, or write into a file, the operations table.")
    parser.add_argument("--write", type=Path, metavar="FILE")
    arguments = parser.parse_args()
    if arguments.write:
        write(arguments.write)
    else:
        print(render())
