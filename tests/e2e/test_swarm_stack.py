"""The whole platform with `runtime: swarm` on this machine's daemon as a
one-node swarm (the node has every role): the program's plan applied with the
providers' rules (applier.py), then a release, a switch and a roll back under
load, and a destroy.

What one node cannot show (a node lost, tasks spread over nodes) is measured on
the three-node Docker-in-Docker swarm (tests/e2e/dind/, docs/swarm.md).
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any

import pytest

from applier import Applier, Stack
from docker_lab import docker
from test_scenarios import (APP_1_0, APP_1_1, LOAD_CLIENT, Load, failures, log_line, request, slots, sweep,
                            wait_for)

import harness
from components.host import hardening

ENV = "dev"
PORT = 8080  # dev's httpPort, published in host mode on the edge node


def services(env: str = ENV) -> dict[str, dict]:
    """The env's services as the daemon has them, by name."""
    names = docker("service", "ls", "--filter", f"name={env}-", "--format", "{{.Name}}").stdout.split()
    return {s["Spec"]["Name"]: s for s in json.loads(docker("service", "inspect", *names).stdout)} if names else {}


def swarm_sweep(env: str = ENV) -> None:
    """Services and secrets first (a secret cannot go while a service mounts it),
    then what sweep() removes."""
    names = list(services(env))
    if names:
        docker("service", "rm", *names)
    deadline = time.monotonic() + 60
    while docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name", "--filter",
                 f"name={env}-").stdout.strip():
        assert time.monotonic() < deadline, "service tasks still present"
        time.sleep(0.5)
    for secret in docker("secret", "ls", "--format", "{{.Name}}").stdout.split():
        if secret.startswith(f"{env}-"):
            docker("secret", "rm", secret)
    sweep(env)


def swarm_config(node: str) -> dict[str, Any]:
    config = copy.deepcopy(harness.stack_config("dev"))
    config.update({
        "runtime": "swarm", "publishFlower": False,
        "nodes": {node: {"dockerHost": "unix:///var/run/docker.sock", "roles": ["manager", "edge", "app", "data"]}},
        "slots": {"blue": {"image": APP_1_0, "replicas": 2}},
        "monitoring": {**config.get("monitoring", {}), "level": "full+alerts"},
        # Two slots of two replicas on 2 cores; and within postgresMaxConnections.
        # All load comes from one client address: a per-client limit would answer 429.
        "app": {**config.get("app", {}), "uvicornWorkers": 2, "rateLimitPerMinute": 1_000_000},
    })
    return config


class SwarmStack:
    def __init__(self, node: str):
        self.stack = Stack(ENV, Applier(log=log_line))
        self.config = swarm_config(node)
        self.first = None
        self.error = None

    def up(self, label: str, config: dict[str, Any]):
        applied = self.stack.up(label, config, parallel=True)
        self.config = config
        log_line(f"== swarm {ENV}: {label}: {applied.seconds:.1f}s\n" + "\n".join(applied.summary()))
        return applied

    def require(self) -> None:
        if self.error is not None:
            pytest.fail(f"the swarm stack was not deployed: {self.error}")


@pytest.fixture(scope="module")
def swarm_stack(swarm_node):
    swarm_sweep()
    deployed = SwarmStack(swarm_node)
    try:
        deployed.first = deployed.up("up from nothing", deployed.config)
    except Exception as error:  # noqa: BLE001 - reported by each test through require()
        deployed.error = error
    yield deployed
    docker("rm", "-f", LOAD_CLIENT, check=False)
    swarm_sweep()


def slot_of_task(short_id: str) -> str:
    """The slot whose service runs the task container `short_id` (X-Served-By)."""
    name = docker("inspect", "--format", '{{index .Config.Labels "com.docker.swarm.service.name"}}',
                  short_id, check=False).stdout.strip()
    return name.removeprefix(f"{ENV}-app-") if name.startswith(f"{ENV}-app-") else ""


def test_swarm_up_from_nothing_runs_every_service_placed_and_serves(swarm_stack, measure):
    swarm_stack.require()
    applied = swarm_stack.first
    measure("swarm dev: up from nothing, wall", applied.seconds)
    found = services()
    assert set(found) == {f"{ENV}-{s}" for s in (
        "postgres", "redis", "qdrant", "minio", "backup", "app-blue", "worker-blue", "flower", "nginx",
        "node-exporter")}
    running = {name: docker("service", "ps", name, "--filter", "desired-state=running", "--format",
                            "{{.CurrentState}}").stdout.split("\n")[0] for name in found}
    assert all(state.startswith("Running") for state in running.values()), running
    spec = {name: s["Spec"] for name, s in found.items()}
    # Data pinned to the data node, one task, never two at once; the slot spread over app nodes.
    for data in ("postgres", "redis", "qdrant", "minio", "backup"):
        s = spec[f"{ENV}-{data}"]
        assert s["TaskTemplate"]["Placement"]["Constraints"] == ["node.labels.org.shia-chatbot.role.data==true"]
        assert s["Mode"]["Replicated"]["Replicas"] == 1 and s["UpdateConfig"]["Order"] == "stop-first"
    app = spec[f"{ENV}-app-blue"]
    assert app["Mode"]["Replicated"]["Replicas"] == 2 and app["UpdateConfig"]["Order"] == "start-first"
    assert app["UpdateConfig"]["FailureAction"] == "rollback" and app["EndpointSpec"]["Mode"] == "dnsrr"
    assert "Global" in spec[f"{ENV}-nginx"]["Mode"]
    assert spec[f"{ENV}-nginx"]["EndpointSpec"]["Ports"][0]["PublishMode"] == "host"
    # The superuser's and MinIO's root secrets are files, not environment entries.
    postgres_env = spec[f"{ENV}-postgres"]["TaskTemplate"]["ContainerSpec"]["Env"]
    assert "POSTGRES_PASSWORD_FILE=/run/secrets/postgres-password" in postgres_env
    assert not [e for e in postgres_env if e.startswith("POSTGRES_PASSWORD=")]
    minio = spec[f"{ENV}-minio"]["TaskTemplate"]["ContainerSpec"]
    assert {s["File"]["Name"] for s in minio["Secrets"]} == {"/run/secrets/minio-root-user", "/run/secrets/minio-root-password"}
    assert "MINIO_ROOT_USER_FILE=minio-root-user" in minio["Env"]  # MinIO reads it under /run/secrets
    # Each task with its service's rights, as the daemon reports them.
    for name, s in spec.items():
        container = s["TaskTemplate"]["ContainerSpec"]
        rights = hardening.for_service(s["Labels"]["org.shia-chatbot.service"])
        assert container.get("CapabilityDrop") == ["ALL"], name
        assert sorted(container.get("CapabilityAdd") or []) == sorted(rights.capabilities), name
        assert bool(container.get("ReadOnly")) == rights.read_only, name
    status, headers, body = request(PORT, "/health?check_services=true")
    assert status == 200, body
    assert json.loads(body)["services"] == dict.fromkeys(["postgres", "redis", "qdrant", "minio"], "ok")
    assert headers["x-served-slot"] == "blue" and slot_of_task(headers["x-served-by"]) == "blue"
    # An up right after plans nothing: every input is written as the provider reads it back.
    assert [str(s) for s in swarm_stack.stack.planned(swarm_stack.config)[1]] == []


def prometheus(path: str) -> Any:
    answer = docker("exec", f"{ENV}-prometheus", "wget", "-q", "-O", "-", f"http://localhost:9090{path}",
                    check=False).stdout
    return json.loads(answer)["data"] if answer else None


def test_swarm_prometheus_finds_the_tasks_by_dns_and_watches_the_replicas(swarm_stack):
    swarm_stack.require()
    wanted = {"prometheus", "app", "celery", "postgres", "redis", "qdrant", "node", "alertmanager"}

    def targets() -> list[dict]:
        found = (prometheus("/api/v1/targets") or {}).get("activeTargets", [])
        return found if {t["labels"]["job"] for t in found} == wanted and all(
            t["health"] == "up" for t in found) else []

    found = wait_for("every target found and up", targets, 90, pause=3)
    apps = [t["labels"] for t in found if t["labels"]["job"] == "app"]
    # One target per task of the slot's service, labelled as on one host.
    assert len(apps) == 2 and all(a["slot"] == "blue" and a["active"] == "true" for a in apps), apps
    assert [t["labels"]["job"] for t in found].count("node") == 1  # one node, one node-exporter task

    def below_replicas() -> list[dict]:
        return [r for g in prometheus("/api/v1/rules")["groups"] for r in g["rules"]
                if r["name"] == "SlotTasksBelowReplicas"]

    # Quiet once an evaluation has seen both tasks (the first may have seen one: pending, under its `for`).
    wait_for("SlotTasksBelowReplicas evaluated quiet", lambda: (rules := below_replicas()) and all(
        r["health"] == "ok" and r["state"] == "inactive" for r in rules), 60, pause=3)


def test_swarm_release_switch_and_roll_back_under_load_lose_no_request(swarm_stack, measure):
    swarm_stack.require()
    load = Load(swarm_stack, url="http://nginx").start()
    released = slots(swarm_stack.config, green={"image": APP_1_1, "replicas": 2})
    try:
        time.sleep(3)
        release = swarm_stack.up("release 1.1.0 to green", released)
        switch = swarm_stack.up("switch to green", {**released, "activeSlot": "green"})
        time.sleep(2)
        served_after_switch = request(PORT, "/health")[1].get("x-served-slot")
        rollback = swarm_stack.up("roll back to blue", released)
        time.sleep(2)
    finally:
        records = load.stop()
    assert served_after_switch == "green"
    # The release touched nothing live: green's service, secrets and steps,
    # and Prometheus's config (it scrapes green now).
    touched = {r.name for r in release.results} - {f"{ENV}-prometheus-config"}
    assert touched and all("green" in name for name in touched), touched
    # The switch: the router's switch step, the worker (named per slot, with
    # its secrets), Flower (the active slot's image) and Prometheus's config
    # (the active label): no data service, no app slot.
    switched = {r.name for r in switch.results if not r.name.startswith(f"{ENV}-worker-")}
    assert switched <= {f"{ENV}-router-switch-{n}" for n in swarm_stack.config["nodes"]} | {
        f"{ENV}-flower", f"{ENV}-prometheus-config"}, switched
    by_kind = {kind: [r for r in records if r["kind"] == kind] for kind in ("keepalive", "fresh")}
    assert all(len(v) >= 1000 for v in by_kind.values()), {k: len(v) for k, v in by_kind.items()}
    failed = failures(records)
    measure("swarm dev: requests during release, switch and roll back", len(records), unit="requests",
            note=f"{len(by_kind['keepalive'])} kept-alive, {len(by_kind['fresh'])} new-connection; "
                 f"{len(failed)} failed")
    assert not failed, f"{len(failed)} failed: {failed[:5]}"
    measure("swarm dev: release to the idle slot, wall", release.seconds)
    measure("swarm dev: switch, wall", switch.seconds)
    measure("swarm dev: roll back, wall", rollback.seconds)
