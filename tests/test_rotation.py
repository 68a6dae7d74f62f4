"""Rotating one secret (bumping `rotation.<name>`) changes that secret and its consumers only."""

from __future__ import annotations

import json

import pytest

import harness
from components.data.redis_acl import sha256_hex
from components.secrets import password_resource_name
from settings.secret_names import ROTATABLE
from settings.naming import Naming

PROD = harness.stack_config("prod")
PROD_NAMES = Naming("prod")


def _fingerprints(run: harness.Run) -> dict[tuple[str, str], str]:
    assert run.error is None, run.error
    return {(r.type, r.name): json.dumps(r.inputs, sort_keys=True) for r in run.resources if r.custom}


def _consumers(run: harness.Run, value: str) -> set[str]:
    """What holds VALUE, or its SHA-256 digest (Redis' app and exporter users)."""
    forms = (value, sha256_hex(value))
    return {r.name for r in run.resources
            if r.custom and r.type != "random:index/randomPassword:RandomPassword"
            and any(form in json.dumps(harness.unwrap(r.inputs)) for form in forms)}


@pytest.fixture(scope="module")
def base() -> harness.Run:
    return harness.run("prod", PROD)


@pytest.mark.parametrize("secret", sorted(ROTATABLE))
def test_rotating_one_secret_changes_it_and_its_consumers_only(base, secret):
    rotated = harness.run("prod", {**PROD, "rotation": {secret: 1}})
    before, after = _fingerprints(base), _fingerprints(rotated)
    changed = {name for key in set(before) | set(after) if before.get(key) != after.get(key) for (_, name) in [key]}
    password = password_resource_name(PROD_NAMES, secret)
    resource = next(r for r in base.resources if r.name == password)
    old = harness.mock_password(password, int(resource.plain("length")), resource.plain("keepers"))
    new_resource = next(r for r in rotated.resources if r.name == password)
    new = harness.mock_password(password, int(new_resource.plain("length")), new_resource.plain("keepers"))
    assert old != new
    consumers = _consumers(base, old)
    assert consumers, f"{secret} has no consumer"
    assert consumers == _consumers(rotated, new)
    assert {password} | consumers <= changed
    # Anything else that moves is a step re-run only because a container it acts
    # on was recreated (new id in its triggers): same command, same input.
    for name in changed - {password} - consumers:
        a = next(r for r in base.resources if r.name == name and r.custom)
        b = next(r for r in rotated.resources if r.name == name and r.custom)
        assert a.type in ("command:local:Command", "command:remote:Command"), name
        assert {k: v for k, v in a.inputs.items() if k != "triggers"} == \
               {k: v for k, v in b.inputs.items() if k != "triggers"}, name
    # State never moves on a rotation, and nginx is neither reloaded nor replaced.
    assert not any(name.endswith("_data") or name.startswith("prod-nginx") or name.startswith("prod-router")
                   for name in changed)


def test_a_rotation_leaves_the_router_alone():
    """Replicas come back on new addresses; nginx finds them by DNS, no reload."""
    rotated = harness.run("prod", {**PROD, "rotation": {"redisPassword": 1}})
    base = harness.run("prod", PROD)
    for step in ("prod-router-config", "prod-router-switch"):
        assert base.named(step).inputs == rotated.named(step).inputs, step


def test_rotating_the_database_password_does_not_restart_the_database(base):
    """The image reads POSTGRES_PASSWORD only to initialise an empty data
    directory: the container ignores its change; the set-password step applies it."""
    postgres = base.containers()["prod-postgres"]
    assert "envs" in postgres.request.ignoreChanges


def test_rotating_the_database_password_also_sets_it_in_the_running_server(base):
    rotated = harness.run("prod", {**PROD, "rotation": {"postgresPassword": 1}})
    step = rotated.named("prod-postgres-set-password")
    assert "ALTER ROLE" in step.plain("create")
    assert harness.is_secret(step.inputs["stdin"])
    # The app's new containers wait for the new password to be in the database.
    app = next(r for r in rotated.resources if r.name == "prod-app-blue-1" and r.custom)
    assert any(d.endswith("::prod-postgres-set-password") for d in app.dependencies)


def test_rotating_a_role_password_reruns_the_roles_step_before_the_app(base):
    rotated = harness.run("prod", {**PROD, "rotation": {"postgresAppPassword": 1}})
    step = rotated.named("prod-postgres-roles")
    assert "CREATE ROLE" in step.plain("create") and "APP_ROLE=prod_shia_chatbot_app" in step.plain("create")
    assert harness.is_secret(step.inputs["stdin"])
    app = next(r for r in rotated.resources if r.name == "prod-app-blue-1" and r.custom)
    assert any(d.endswith("::prod-postgres-roles") for d in app.dependencies)


def test_known_consumers_of_each_secret(base):
    def consumers_of(secret: str) -> set[str]:
        name = password_resource_name(PROD_NAMES, secret)
        r = next(x for x in base.resources if x.name == name)
        return _consumers(base, harness.mock_password(name, int(r.plain("length")), r.plain("keepers")))

    app = {"prod-app-blue-1", "prod-app-blue-2", "prod-worker-blue", "prod-flower", "prod-app-blue-migrate"}
    # The superuser's password reaches PostgreSQL's own container and its step only.
    assert consumers_of("postgresPassword") == {"prod-postgres", "prod-postgres-set-password"}
    assert app - {"prod-app-blue-migrate"} | {"prod-postgres-roles"} == consumers_of("postgresAppPassword")
    assert consumers_of("postgresOwnerPassword") == {"prod-app-blue-migrate", "prod-postgres-roles"}
    assert consumers_of("postgresMonitorPassword") == {"prod-postgres-exporter", "prod-postgres-roles"}
    assert consumers_of("postgresBackupPassword") == {"prod-postgres-roles"}
    assert app | {"prod-redis"} <= consumers_of("redisPassword")
    assert "prod-flower" in consumers_of("flowerPassword")
    assert app <= consumers_of("secretKey") and "prod-postgres" not in consumers_of("secretKey")
