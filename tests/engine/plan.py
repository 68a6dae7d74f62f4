"""The steps `pulumi up` takes from one mocked plan to the next, by the engine's rules.

    steps = derive(before, after)            # harness.Run, harness.Run
    state = applied(before)                  # what the providers recorded
    steps = derive(nothing("dev"), run)      # the first `up` of a new stack

What the engine does (pulumi/pulumi pkg/resource/deploy/step_generator.go):
- a URN only in the new plan is created; only in the old one, deleted at the
  end of the update, after every create and update (an alias carries a URN over);
- a URN in both is diffed by its provider: the new inputs against the state the
  provider recorded (a bridged provider plans against its read-back state);
  `ignoreChanges` paths are left out; a change of a key the provider cannot
  update, or of a `replaceOnChanges` path, replaces the resource;
- a replacement deletes first when the provider asks for it (the program's
  `deleteBeforeReplace` option wins when given), else creates the new one first
  and deletes the old at the end;
- steps follow the dependency order of the new plan; deletes run in reverse
  dependency order;
- a protected resource is never replaced or deleted: the update fails instead.
Command resources run a script: `create` when created or replaced, `update`
(or `create` when there is none) on an update, `delete` when deleted.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

import harness
from engine import rules
from engine.rules import COMMANDS, CONTAINER

COMPONENT_PREFIX = "shia-chatbot:"


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]  # secret markers removed; unknowns are harness.UNKNOWN
    custom: bool
    protect: bool
    retain_on_delete: bool
    delete_before_replace: Optional[bool]  # the program's option, None when it sets none
    replace_on_changes: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    dependencies: tuple[str, ...]
    parent: str
    aliases: tuple[str, ...]
    id: str

    @property
    def container_name(self) -> Optional[str]:
        return self.inputs.get("name") if self.type == CONTAINER else None

    def label(self, key: str) -> Optional[str]:
        for entry in self.inputs.get("labels") or []:
            if entry.get("label") == f"org.shia-chatbot.{key}":
                return entry.get("value")
        return None

    @property
    def host_ports(self) -> set[tuple[str, int]]:
        return {(p.get("ip", "0.0.0.0"), int(p["external"])) for p in self.inputs.get("ports") or []
                if p.get("external")}


def resources(run: harness.Run) -> dict[str, Resource]:
    """Every registered resource by URN (the mock monitor's URN scheme)."""
    found = {}
    for registered, request in ((r, r.request) for r in run.resources):
        if registered.type == "pulumi:pulumi:Stack":
            continue
        parent = request.parent
        type_ = registered.type
        if parent:
            type_ = parent.split("::")[2].split("$")[-1] + "$" + type_
        urn = f"urn:pulumi:{run.stack}::{harness.PROJECT}::{type_}::{registered.name}"
        found[urn] = Resource(
            urn=urn, type=registered.type, name=registered.name, inputs=harness.unwrap(registered.inputs),
            custom=registered.custom, protect=registered.protect, retain_on_delete=registered.retain_on_delete,
            delete_before_replace=request.deleteBeforeReplace if request.deleteBeforeReplaceDefined else None,
            replace_on_changes=tuple(request.replaceOnChanges), ignore_changes=tuple(request.ignoreChanges),
            dependencies=tuple(sorted(set(request.dependencies) | {
                urn for deps in request.propertyDependencies.values() for urn in deps.urns})),
            parent=parent, aliases=tuple(request.aliasURNs), id=registered.id,
        )
    return found


@dataclass(frozen=True)
class Step:
    """One step of `pulumi up`. kind: create, update, replace, delete."""

    kind: str
    resource: Resource  # the new one (the old one for a delete)
    old: Optional[Resource] = None
    keys: tuple[str, ...] = ()  # the inputs that differ
    delete_first: bool = False  # replace: the old one goes before the new one is made

    @property
    def script(self) -> Optional[str]:
        """For a command: which of its scripts this step runs (create, update or delete)."""
        if self.resource.type not in COMMANDS:
            return None
        if self.kind in ("create", "replace"):
            return "create"
        if self.kind == "update":
            return "update" if self.resource.inputs.get("update") is not None else "create"
        return "delete" if self.resource.inputs.get("delete") is not None else None

    def __str__(self) -> str:
        first = " (delete first)" if self.delete_first else ""
        keys = f" [{', '.join(self.keys)}]" if self.keys else ""
        return f"{self.kind}{first} {self.resource.type.split(':')[-1]} {self.resource.name}{keys}"


class ProtectedChange(Exception):
    """The engine refuses to replace or delete a protected resource."""


def _path_in(key: str, paths: Iterable[str]) -> bool:
    return any(key == path.split(".")[0].split("[")[0] for path in paths)


def _differing(old: dict[str, Any], new: dict[str, Any], ignored: tuple[str, ...]) -> tuple[str, ...]:
    keys = sorted(set(old) | set(new))
    return tuple(k for k in keys if not _path_in(k, ignored) and
                 (harness.UNKNOWN in json.dumps(new.get(k)) or _canonical(old.get(k)) != _canonical(new.get(k))))


def _canonical(value: Any) -> Any:
    # Protobuf Structs carry numbers as floats; the providers do not care.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def nothing(stack: str) -> harness.Run:
    """A stack with no resources: `derive(nothing(s), run)` is the first `up` of a
    new stack (every resource created), `derive(run, nothing(s))` its `destroy`
    (every resource deleted, dependants first; protected ones refused)."""
    return harness.Run(stack=stack, resources=[], outputs={})


def applied(run: harness.Run, host: rules.Host = rules.Host()) -> dict[str, dict[str, Any]]:
    """The state the providers record once `run` is applied: URN -> read-back inputs."""
    return {urn: rules.read_back(r.type, r.inputs, host) for urn, r in resources(run).items()}


def _order(new: dict[str, Resource]) -> list[str]:
    """The new plan's URNs, dependencies first (ties by URN, so the order is stable)."""
    ordered: list[str] = []
    seen: set[str] = set()

    def visit(urn: str) -> None:
        if urn in seen or urn not in new:
            return
        seen.add(urn)
        for dependency in sorted(new[urn].dependencies):
            visit(dependency)
        if new[urn].parent in new:
            visit(new[urn].parent)
        ordered.append(urn)

    for urn in sorted(new):
        visit(urn)
    return ordered


def _with_ids(resource: Resource, same_id: dict[str, str]) -> Resource:
    if not same_id:
        return resource
    text = json.dumps(resource.inputs)
    for new_id, old_id in same_id.items():
        if new_id != old_id:
            text = text.replace(json.dumps(new_id)[1:-1], json.dumps(old_id)[1:-1])
    return dataclasses.replace(resource, inputs=json.loads(text))


def derive(before: harness.Run, after: harness.Run, *, host: rules.Host = rules.Host(),
           state: Optional[dict[str, dict[str, Any]]] = None) -> list[Step]:
    """The steps from `before` (as applied: `state`, default its read-back) to `after`."""
    old, new = resources(before), resources(after)
    state = applied(before, host) if state is None else state
    aliases = {alias: urn for urn, r in new.items() for alias in r.aliases}
    steps: list[Step] = []
    deletes_at_end: list[Step] = []
    kept: set[str] = set()
    # A resource updated in place (or unchanged) keeps its id; the mocks give it a
    # new one whenever an input changed, so its dependents would see a change the
    # engine never shows them. Ids are put back as the walk goes.
    same_id: dict[str, str] = {}
    for urn in _order(new):
        resource = _with_ids(new[urn], same_id)
        previous_urn = urn if urn in old else next((a for a, u in aliases.items() if u == urn and a in old), None)
        if not resource.custom:
            if previous_urn:
                kept.add(previous_urn)
            continue
        if previous_urn is None:
            steps.append(Step("create", resource))
            continue
        kept.add(previous_urn)
        previous = old[previous_urn]
        keys = _differing(state.get(previous_urn, previous.inputs), resource.inputs, resource.ignore_changes)
        if not keys:
            same_id[resource.id] = previous.id
            continue
        type_rules = rules.rules_for(resource.type)
        before_inputs = state.get(previous_urn, previous.inputs)
        replacing = [k for k in keys if type_rules.replaces(k, before_inputs.get(k), resource.inputs.get(k))
                     or _path_in(k, resource.replace_on_changes)]
        if not replacing:
            steps.append(Step("update", resource, previous, keys))
            same_id[resource.id] = previous.id
            continue
        if previous.protect:
            raise ProtectedChange(f"{urn}: replacing a protected resource ({', '.join(replacing)})")
        first = resource.delete_before_replace
        if first is None:
            first = type_rules.deletes_first(resource.inputs)
        replace = Step("replace", resource, previous, keys, delete_first=first)
        steps.append(replace)
        if not first:
            deletes_at_end.append(Step("delete", previous, previous))
    for urn in reversed(_order(old)):
        if urn in kept or not old[urn].custom:
            continue
        if old[urn].protect:
            raise ProtectedChange(f"{urn}: deleting a protected resource")
        deletes_at_end.append(Step("delete", old[urn], old[urn]))
    return steps + deletes_at_end


# ---- what the steps do to a Docker host ---------------------------------------

def _ports_collide(a: tuple[str, int], b: tuple[str, int]) -> bool:
    """Docker refuses a binding on a port another container binds on the same
    address or on 0.0.0.0 (all addresses)."""
    return a[1] == b[1] and (a[0] == b[0] or "0.0.0.0" in (a[0], b[0]))


@dataclass
class Occupancy:
    """Container names and host ports held while the steps run, by holder
    (a URN; `<URN>#old` for the old one of a create-first replacement)."""

    names: dict[str, str] = field(default_factory=dict)
    ports: dict[tuple[str, int], str] = field(default_factory=dict)

    def clashes(self, resource: Resource) -> list[str]:
        found = []
        if resource.container_name in self.names:
            found.append(f"name {resource.container_name} is held by {self.names[resource.container_name]}")
        for port in resource.host_ports:
            found += [f"host port {port[0]}:{port[1]} is held by {holder}"
                      for taken, holder in self.ports.items() if _ports_collide(port, taken)]
        return found

    def add(self, holder: str, resource: Resource) -> None:
        self.names[resource.container_name] = holder
        for port in resource.host_ports:
            self.ports[port] = holder

    def release(self, holder: str) -> None:
        self.names = {n: h for n, h in self.names.items() if h != holder}
        self.ports = {p: h for p, h in self.ports.items() if h != holder}

    def rename(self, holder: str, new: str) -> None:
        self.names = {n: (new if h == holder else h) for n, h in self.names.items()}
        self.ports = {p: (new if h == holder else h) for p, h in self.ports.items()}


def clashes(before: harness.Run, steps: list[Step]) -> list[str]:
    """Every container create Docker would refuse: its name or a host port still held."""
    taken = Occupancy()
    for urn, resource in resources(before).items():
        if resource.type == CONTAINER:
            taken.add(urn, resource)
    replaced_first = set()
    found = []
    for step in steps:
        resource = step.resource
        if resource.type != CONTAINER:
            continue
        urn = resource.urn
        if step.kind == "update":
            continue
        if step.kind == "delete":
            taken.release(urn + "#old" if urn in replaced_first else urn)
            continue
        if step.kind == "replace" and step.delete_first:
            taken.release(urn)
        elif step.kind == "replace":
            taken.rename(urn, urn + "#old")
            replaced_first.add(urn)
        found += [f"{step}: {problem}" for problem in taken.clashes(resource)]
        taken.add(urn, resource)
    return found
