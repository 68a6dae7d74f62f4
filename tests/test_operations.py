"""Every operation the docs offer, held to its promises under the engine's rules.

For each one (tests/engine/operations.py) the steps `pulumi up` takes are derived
from the two plans with the engine's and the providers' rules
(tests/engine/rules.py, each with its source), then checked: Docker would accept
every create; nothing stateful and no live replica is replaced or removed
unless the docs say so; migrations run for an image change only; every
container stops gracefully; a running container never keeps a setting its
state says it changed; and the `up` after it plans nothing.
"""

from __future__ import annotations

import pytest

import harness
from engine import operations, plan, rules
from engine.operations import DATA_SERVICES
from engine.rules import COMMANDS, CONTAINER, VOLUME, NETWORK

CATALOG = {operation.name: operation for operation in operations.catalog()}
NAMES = list(CATALOG)


@pytest.fixture(scope="module", params=NAMES)
def operation(request) -> operations.Operation:
    return CATALOG[request.param]


def test_docker_accepts_every_create(operation):
    before, _ = operation.runs()
    assert plan.clashes(before, operation.steps()) == []


def test_nothing_stateful_is_replaced_or_removed_unless_the_docs_say_so(operation):
    stack = operation.before.stack
    data = {f"{stack}-{service}" for service in DATA_SERVICES}
    for step in operation.steps():
        if step.kind not in ("replace", "delete"):
            continue
        resource = step.resource
        assert resource.type not in (VOLUME, NETWORK), f"{operation.name}: {step}"
        if resource.type == CONTAINER and resource.container_name in data:
            assert resource.container_name in operation.may_replace, f"{operation.name}: {step}"


def test_no_live_replica_is_replaced_or_removed_unless_the_docs_say_so(operation):
    live_slot = operation.before.config.get("activeSlot", "blue")
    for step in operation.steps():
        resource = step.resource
        if step.kind in ("replace", "delete") and resource.type == CONTAINER and resource.label("slot") == live_slot:
            assert resource.container_name in operation.may_replace, f"{operation.name}: {step}"


def test_migrations_and_their_backups_run_for_an_image_change_only(operation):
    for step in operation.steps():
        name = step.resource.name
        if step.resource.type in COMMANDS and (name.endswith("-migrate") or name.endswith("-backup")):
            slot = name.rsplit("-", 2)[-2]
            # Their `update` runs nothing (components/app/release.py); `create` is the real thing.
            assert step.script != "create" or slot in operation.migrates, f"{operation.name}: {step} runs create"


def test_every_container_stops_gracefully(operation):
    for step in operation.steps():
        if step.resource.type == CONTAINER and step.kind in ("replace", "delete"):
            old = step.old.inputs
            grace, stop = int(old.get("destroyGraceSeconds") or 0), int(old.get("stopTimeout") or 0)
            assert grace > 0 and grace >= stop, f"{operation.name}: {step}: grace {grace}s, stop timeout {stop}s"


def test_no_running_container_keeps_a_setting_its_state_says_changed(operation):
    state_only = rules.TYPES[CONTAINER].state_only - {"destroyGraceSeconds", "wait", "waitTimeout"}
    for step in operation.steps():
        if step.resource.type == CONTAINER and step.kind == "update":
            assert not set(step.keys) & state_only, f"{operation.name}: {step}"


def test_the_next_up_plans_nothing(operation):
    _, after = operation.runs()
    again = operation.after.run(operation.after)
    assert [str(s) for s in plan.derive(after, again)] == []


@pytest.mark.parametrize("stack", harness.STACKS)
def test_an_up_without_changes_plans_nothing(stack):
    state = operations.State(stack, harness.stack_config(stack))
    first, second = state.run(), state.run(state)
    assert [str(s) for s in plan.derive(first, second)] == []


def test_a_host_with_json_file_options_in_daemon_json_plans_nothing_new():
    """daemon.json's log-opts are merged into every container and read back."""
    state = operations.State("prod", harness.stack_config("prod"))
    host = rules.Host(daemon_log_opts={"max-size": "10m", "max-file": "3", "compress": "true"})
    assert [str(s) for s in plan.derive(state.run(), state.run(state), host=host)] == []


def test_the_docs_table_is_the_derived_one():
    text = (harness.ROOT / "docs" / "operations.md").read_text()
    begin, end = text.index(operations.BEGIN), text.index(operations.END)
    assert text[begin + len(operations.BEGIN):end].strip() == operations.render(), "run: make docs"


@pytest.mark.parametrize("stack", harness.STACKS)
def test_an_up_from_nothing_creates_every_resource_after_what_it_depends_on(stack):
    """The first `up` of a new stack, which the real-engine scenarios apply (tests/e2e)."""
    run = operations.State(stack, harness.stack_config(stack)).run()
    steps = plan.derive(plan.nothing(stack), run)
    assert {s.kind for s in steps} == {"create"}
    assert sorted(s.resource.urn for s in steps) == sorted(u for u, r in plan.resources(run).items() if r.custom)
    position = {s.resource.urn: i for i, s in enumerate(steps)}
    for step in steps:
        assert all(position[d] < position[step.resource.urn] for d in step.resource.dependencies if d in position)
    assert plan.clashes(plan.nothing(stack), steps) == []


def test_destroy_deletes_dependants_first_and_refuses_protected_prod_data():
    run = operations.State("dev", harness.stack_config("dev")).run()
    steps = plan.derive(run, plan.nothing("dev"))
    assert {s.kind for s in steps} == {"delete"}
    position = {s.resource.urn: i for i, s in enumerate(steps)}
    for step in steps:
        assert all(position[d] > position[step.resource.urn] for d in step.resource.dependencies if d in position)
    with pytest.raises(plan.ProtectedChange):
        plan.derive(operations.State("prod", harness.stack_config("prod")).run(), plan.nothing("prod"))
