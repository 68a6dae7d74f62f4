"""Each container's capabilities, root filesystem and tmpfs mounts as the
committed stacks register them (components/host/hardening.py)."""

from __future__ import annotations

import re

import pytest

import harness
from components.host import hardening
from settings.defaults import ENVIRONMENTS

ROOT_ENTRYPOINT = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
# service -> (capabilities added back, read-only root, tmpfs paths)
EXPECTED = {
    "app": ([], True, ["/tmp"]),
    "worker": ([], True, ["/tmp"]),
    "flower": ([], True, ["/tmp"]),
    "postgres": (ROOT_ENTRYPOINT, True, ["/tmp"]),
    "redis": (["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"], True, []),
    "qdrant": ([], False, []),
    "minio": ([], True, ["/root/.minio", "/tmp"]),
    "nginx": (["CHOWN", "NET_BIND_SERVICE", "SETGID", "SETUID"], True, ["/tmp", "/var/cache/nginx", "/var/run"]),
    "prometheus": ([], False, []),
    "alertmanager": ([], False, []),
    "postgres-exporter": ([], True, []),
    "redis-exporter": ([], True, []),
    "node-exporter": ([], True, []),
    "backup": (ROOT_ENTRYPOINT, True, ["/etc/crontabs", "/tmp"]),
}


@pytest.fixture(scope="module", params=harness.STACKS)
def run(request) -> harness.Run:
    result = harness.run(request.param)
    assert result.error is None, result.error
    return result


def service_of(container: harness.Registered) -> str:
    return next(item["value"] for item in container.plain("labels") if item["label"] == "org.shia-chatbot.service")


def test_every_container_drops_all_and_adds_back_only_its_own(run):
    seen = set()
    for name, c in run.containers().items():
        service = service_of(c)
        seen.add(service)
        adds, read_only, tmpfs = EXPECTED[service]
        capabilities = c.plain("capabilities")
        assert capabilities["drops"] == ["ALL"], name
        assert capabilities.get("adds") == adds, name
        assert bool(c.plain("readOnly")) is read_only, name
        mounts = c.plain("tmpfs") or {}
        assert sorted(mounts) == tmpfs, name
        assert all(options == hardening.TMPFS_OPTIONS for options in mounts.values()), name
        # Not ForceNew in the provider: without this a new mount would never reach the container.
        assert "tmpfs" in c.request.replaceOnChanges, name
        assert not c.plain("user"), name  # the images' own users (see hardening.py)
    # prod runs monitoring: every row of the table is exercised by some stack.
    if run.stack == "prod":
        assert seen == set(EXPECTED)


def test_every_service_with_a_memory_limit_has_a_row():
    services = set(ENVIRONMENTS["prod"]["memoryMb"])
    assert services == set(hardening.SERVICES) == set(EXPECTED)
    with pytest.raises(KeyError):
        hardening.for_service("unknown")


def test_a_writable_root_always_says_why():
    for service, reason in hardening.writable_roots().items():
        assert not EXPECTED[service][1] and len(reason) > 40, service
    assert {s for s, row in EXPECTED.items() if not row[1]} == set(hardening.writable_roots())



def test_every_container_gets_its_pids_limit_before_its_health_is_awaited(run):
    """The provider has no pids input: each container's health step sets it
    first (`docker update`), and re-runs whenever the container is new."""
    for name, c in run.containers().items():
        service = service_of(c)
        expected = 512
        if service == "postgres":  # a process per connection, and its own
            expected = int(re.search(r"max_connections=(\d+)", " ".join(c.plain("command")))[1]) + 64
        step = run.named(f"{name}-healthy")
        script = step.plain("create")
        assert f"PIDS_LIMIT={expected}\n" in script, name
        # The limit is set before the wait, so a failing health check still leaves it set.
        assert script.index('docker update --pids-limit "$PIDS_LIMIT" "$NAME"') < script.index("docker inspect"), name


def test_the_one_off_containers_of_a_release_run_with_the_same_rights(run):
    """Migrations run the app image with the app's row; the smoke probe with none at all."""
    app = hardening.run_flags(hardening.for_service("app"))
    assert app == ("--cap-drop ALL --read-only --tmpfs /tmp:rw,noexec,nosuid,nodev,size=64m --pids-limit 512")
    steps = {r.name: r.plain("create") for r in run.of_type("command:local:Command") + run.of_type("command:remote:Command")}
    migrations = [script for name, script in steps.items() if name.endswith("-migrate")]
    smokes = [script for name, script in steps.items() if name.endswith("-smoke")]
    assert migrations and smokes
    for migrate in migrations:
        assert f"RIGHTS='{app}'" in migrate and "no-new-privileges:true ${RIGHTS}" in migrate
    for smoke in smokes:
        assert "RIGHTS='--cap-drop ALL --read-only --pids-limit 16'" in smoke and "${RIGHTS}" in smoke
