"""Blue/green under the mocks: what a release and a switch touch, and in which order.

Two runs of the program are compared resource by resource (type, name, inputs,
options); a difference is what `pulumi up` would create, update or delete.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile

import pytest

import harness

PROD = harness.stack_config("prod")
BLUE = PROD["slots"]["blue"]
GREEN = {"image": "ghcr.io/shia-chatbot/app:1.1.0", "replicas": 2}
COMMAND_TYPES = ("command:local:Command", "command:remote:Command")


def prod(active: str = "blue", green: dict = GREEN) -> dict:
    return {**PROD, "activeSlot": active, "slots": {"blue": BLUE, "green": green}}


def fingerprint(run: harness.Run) -> dict[tuple[str, str], str]:
    assert run.error is None, run.error
    return {
        (r.type, r.name): json.dumps([r.inputs, r.protect, r.retain_on_delete, r.request.deleteBeforeReplace],
                                     sort_keys=True)
        for r in run.resources if r.custom
    }


def changed(before: harness.Run, after: harness.Run) -> set[str]:
    a, b = fingerprint(before), fingerprint(after)
    return {name for (type_, name) in set(a) | set(b) if a.get((type_, name)) != b.get((type_, name))}


@pytest.fixture(scope="module")
def blue_live() -> harness.Run:
    return harness.run("prod", prod())


def test_the_router_config_names_no_slot_and_no_replica(blue_live):
    """A switch or a replica's new address needs no reload: the slot comes from a
    file, the replicas from Docker's DNS (`app-<slot>`), both per request."""
    green_live = harness.run("prod", prod(active="green"))
    bundle = blue_live.named("prod-router-config").plain("stdin")
    assert green_live.named("prod-router-config").plain("stdin") == bundle
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(bundle))) as tar:
        conf = tar.extractfile("default.conf").read().decode()
    assert "proxy_pass http://app-$app_slot:8000;" in conf and "resolver 127.0.0.11 valid=1s" in conf
    assert "prod-app-" not in conf and "blue" not in conf and "green" not in conf
    for slot in ("blue", "green"):
        for replica in (1, 2):
            networks = blue_live.containers()[f"prod-app-{slot}-{replica}"].plain("networksAdvanced")
            assert all(f"app-{slot}" in n["aliases"] and f"app-{slot}-{replica}" in n["aliases"] for n in networks)


def test_switch_touches_only_the_slot_file_worker_and_flower(blue_live):
    green_live = harness.run("prod", prod(active="green"))
    assert changed(blue_live, green_live) == {
        "prod-router-switch",
        "prod-worker-blue", "prod-worker-blue-healthy", "prod-worker-green", "prod-worker-green-healthy",
        "prod-flower", "prod-flower-healthy",
        # The scrape targets (slot labels, the new worker); not Prometheus itself.
        "prod-prometheus-targets-app", "prod-prometheus-targets-celery",
    }
    # Not the nginx container nor its config, no app replica, no data service, no step of a slot.
    assert green_live.named("prod-router-switch").plain("stdin") == "green\n"
    assert green_live.containers()["prod-worker-green"].plain("image") == GREEN["image"]
    assert green_live.containers()["prod-flower"].plain("image") == GREEN["image"]


def test_rollback_restores_exactly_the_previous_plan(blue_live):
    rolled_back = harness.run("prod", prod(active="blue"))
    assert changed(blue_live, rolled_back) == set()


def test_release_to_the_idle_slot_touches_only_that_slot(blue_live):
    released = harness.run("prod", prod(green={**GREEN, "image": "ghcr.io/shia-chatbot/app:1.2.0"}))
    touched = changed(blue_live, released)
    assert touched == {
        "prod-app-green-image", "prod-app-green-1", "prod-app-green-2",
        "prod-app-green-1-healthy", "prod-app-green-2-healthy",
        "prod-app-green-migrate", "prod-app-green-smoke", "prod-app-green-backup",
    }


def test_scaling_the_active_slot_changes_its_replicas_and_smoke_check_only(blue_live):
    # A fifth replica needs a bigger connection budget (checked by the program), hence the raise.
    bigger = {**prod(), "postgresMaxConnections": 600}
    scaled = harness.run("prod", {**bigger, "slots": {"blue": {**BLUE, "replicas": 3}, "green": GREEN}})
    assert changed(harness.run("prod", bigger), scaled) == {
        "prod-app-blue-3", "prod-app-blue-3-healthy", "prod-app-blue-smoke", "prod-prometheus-targets-app"}


def _depends(run: harness.Run, name: str, on: str) -> bool:
    """Whether custom resource `name` lists custom resource `on` among its dependencies."""
    resource = next(r for r in run.resources if r.name == name and r.custom)
    target = next(r for r in run.resources if r.name == on and r.custom)
    # A URN ends in `<parent type>$<type>::<name>` (or `::<type>::<name>` at the root).
    return any(dep.rsplit("::", 1)[1] == on and dep.rsplit("::", 2)[1].endswith(target.type)
               for dep in resource.dependencies)


@pytest.mark.parametrize("active", ["blue", "green"])
def test_the_switch_waits_for_the_target_slots_smoke_check(active):
    run = harness.run("prod", prod(active=active))
    assert _depends(run, "prod-router-switch", f"prod-app-{active}-smoke")
    assert _depends(run, "prod-router-switch", "prod-router-config")
    idle = {"blue": "green", "green": "blue"}[active]
    assert not _depends(run, "prod-router-switch", f"prod-app-{idle}-smoke")


def test_release_steps_run_in_order(blue_live):
    run = blue_live
    for slot in ("blue", "green"):
        for replica in (1, 2):
            assert _depends(run, f"prod-app-{slot}-{replica}", f"prod-app-{slot}-migrate")
            assert _depends(run, f"prod-app-{slot}-smoke", f"prod-app-{slot}-{replica}-healthy")
        # One replica after the other: a replacement never takes the slot down at once.
        assert _depends(run, f"prod-app-{slot}-2", f"prod-app-{slot}-1-healthy")
        for data in ("prod-postgres", "prod-redis"):
            assert _depends(run, f"prod-app-{slot}-migrate", data)
    # Two migrations never run at once: the idle slot's waits for the active one's.
    assert _depends(run, "prod-app-green-migrate", "prod-app-blue-migrate")
    assert _depends(run, "prod-worker-blue", "prod-app-blue-migrate")


def test_migration_runs_with_the_slot_image_on_the_backend_and_secrets_on_stdin(blue_live):
    step = blue_live.named("prod-app-green-migrate")
    assert step.type == "command:remote:Command"  # prod's docker host is ssh://
    create = step.plain("create")
    assert "IMAGE=ghcr.io/shia-chatbot/app:1.1.0" in create
    assert "NETWORK=prod-backend" in create
    assert "--env-file /dev/stdin" in create and "alembic upgrade head" in create
    assert harness.is_secret(step.inputs["stdin"])
    assert "DATABASE_URL=postgresql+asyncpg://" in step.plain("stdin")
    assert "postgresql+asyncpg" not in create
    assert step.plain("triggers") == ["ghcr.io/shia-chatbot/app:1.1.0"]


def test_smoke_check_probes_every_replica_from_the_frontend_network(blue_live):
    create = blue_live.named("prod-app-green-smoke").plain("create")
    assert "TARGETS='prod-app-green-1:8000 prod-app-green-2:8000'" in create
    assert "NETWORK=prod-frontend" in create
    assert "/health?check_services=true" in create


def test_each_release_takes_its_own_backup_one_after_the_other(blue_live):
    for slot in ("blue", "green"):
        step = blue_live.named(f"prod-app-{slot}-backup")
        assert step.plain("create") == f"docker exec prod-backup /opt/shia-backup/bin/backup postgres --reason pre-migration-{slot}"
        assert _depends(blue_live, f"prod-app-{slot}-migrate", f"prod-app-{slot}-backup")
        assert _depends(blue_live, f"prod-app-{slot}-backup", "prod-backup")
    assert _depends(blue_live, "prod-app-green-backup", "prod-app-blue-migrate")


def test_ssh_steps_verify_the_hosts_key(blue_live):
    connection = blue_live.named("prod-app-green-migrate").plain("connection")
    assert connection["host"] == "prod.shia-chatbot.example.org" and connection["user"] == "deploy"
    assert connection["hostKey"] == PROD["dockerHostKey"]


def test_dev_steps_run_locally_against_the_stack_docker_host():
    run = harness.run("dev")
    step = run.named("dev-app-blue-migrate")
    assert step.type == "command:local:Command"
    assert step.plain("environment") == {"DOCKER_HOST": "unix:///var/run/docker.sock"}
