"""The plan of a three-node prod swarm (runtime `swarm`) under the SDK's mocks:
what runs where, how it is updated and reached, where its secrets are, which
host every node-local resource and step is on, and the policy pack over it in
its own process. The same program and inputs on one node are applied to a real
swarm in tests/e2e/test_swarm_stack.py.
"""

from __future__ import annotations

import copy
import json

import pytest

import harness
from policy_gate import render, run_gate
from swarm_fixtures import SECRET_SIG
from test_config_validation import PROD, node, with_

SERVICE = "docker:index/service:Service"
DATA = ("postgres", "redis", "qdrant", "minio", "backup")
# Each role on its own node, so a resource or step on the wrong one shows.
NODES = {"m1": {**node("m1", "manager"), "dockerHost": PROD["dockerHost"]}, "e1": node("e1", "edge"),
         "d1": node("d1", "data"), "a1": node("a1", "app"), "a2": node("a2", "app")}


def three_node_prod() -> dict:
    return with_(runtime="swarm", nodes=copy.deepcopy(NODES))


@pytest.fixture(scope="module")
def run() -> harness.Run:
    result = harness.run("prod", three_node_prod())
    assert result.error is None, result.error
    return result


def service(run: harness.Run, name: str) -> harness.Registered:
    return run.named(name, SERVICE)


def _provider_name(reference: str) -> str:
    """`urn:pulumi:stack::project::pulumi:providers:docker::<name>::<id>` -> <name>."""
    return reference.split("::")[3]


def test_every_long_running_service_is_a_swarm_service_but_prometheus_and_its_exporters(run):
    services = {r.name for r in run.of_type(SERVICE)}
    assert services == {f"prod-{s}" for s in (*DATA, "app-blue", "worker-blue", "flower", "nginx", "node-exporter")}
    # Prometheus, Alertmanager and two exporters stay containers on the manager, by their volumes.
    containers = {r.name: r for r in run.of_type("docker:index/container:Container")}
    assert set(containers) == {f"prod-{s}" for s in ("prometheus", "alertmanager", "postgres-exporter",
                                                     "redis-exporter")}
    assert {run_host(run, c) for c in containers.values()} == {PROD["dockerHost"]}


def run_host(run: harness.Run, resource: harness.Registered) -> str:
    by_name = {r.name: r.plain("host") for r in run.of_type("pulumi:providers:docker")}
    return by_name[_provider_name(resource.provider)]


def test_data_services_run_one_task_pinned_to_the_data_node_never_two_at_once(run):
    for name in DATA:
        s = service(run, f"prod-{name}")
        assert s.plain("mode") == {"replicated": {"replicas": 1}}, name
        assert s.plain("taskSpec")["placement"]["constraints"] == ["node.labels.org.shia-chatbot.role.data==true"]
        assert s.plain("updateConfig")["order"] == "stop-first", name
        # Made through the manager, the only node that can.
        assert run_host(run, s) == PROD["dockerHost"]
    # Their volumes and the built PostgreSQL image live on the data node, protected in prod.
    d1 = NODES["d1"]["dockerHost"]
    for volume in ("prod_postgres_data", "prod_redis_data", "prod_qdrant_data", "prod_minio_data",
                   "prod_pgbackrest_data", "prod_backup_data"):
        resource = run.named(volume, "docker:index/volume:Volume")
        assert run_host(run, resource) == d1, volume
        assert resource.protect and resource.retain_on_delete, volume
    assert run_host(run, run.named("prod-postgres-image", "docker:index/image:Image")) == d1


def test_a_slot_is_one_service_of_its_replicas_spread_over_the_app_nodes_rolled_start_first(run):
    app = service(run, "prod-app-blue")
    replicas = three_node_prod()["slots"]["blue"]["replicas"]
    assert app.plain("mode") == {"replicated": {"replicas": replicas}}
    placement = app.plain("taskSpec")["placement"]
    assert placement == {"constraints": ["node.labels.org.shia-chatbot.role.app==true"],
                         "prefs": ["node.labels.org.shia-chatbot.node"]}
    update = app.plain("updateConfig")
    assert (update["order"], update["failureAction"]) == ("start-first", "rollback")
    assert app.plain("endpointSpec") == {"mode": "dnsrr"}
    assert app.plain("convergeConfig") == {"delay": "7s", "timeout": "3m"}
    # nginx resolves the slot's alias on the frontend network, per request.
    aliases = [n["aliases"] for n in app.plain("taskSpec")["networksAdvanceds"]]
    assert aliases == [["app-blue"], ["app-blue"]]
    for name in ("prod-worker-blue", "prod-flower"):
        assert service(run, name).plain("taskSpec")["placement"]["constraints"] == [
            "node.labels.org.shia-chatbot.role.app==true"]


def test_nginx_runs_on_every_edge_node_publishing_in_host_mode(run):
    nginx = service(run, "prod-nginx")
    assert nginx.plain("mode") == {"global": True}
    assert nginx.plain("taskSpec")["placement"]["constraints"] == ["node.labels.org.shia-chatbot.role.edge==true"]
    ports = nginx.plain("endpointSpec")["ports"]
    assert {(p["targetPort"], p["publishedPort"], p["publishMode"]) for p in ports} == {
        (80, 80, "host"), (443, 443, "host")}
    # Its config volume and both steps are on the edge node, e1 (the service itself is made on the manager).
    assert run_host(run, run.named("prod_nginx_conf-e1", "docker:index/volume:Volume")) == NODES["e1"]["dockerHost"]
    assert run_host(run, nginx) == PROD["dockerHost"]
    for step in ("prod-router-config-e1", "prod-router-switch-e1"):
        assert run.named(step).plain("connection")["host"] == "e1.example.org"


def test_node_exporter_runs_on_every_node_with_a_probe_volume_on_each(run):
    exporter = service(run, "prod-node-exporter")
    assert exporter.plain("mode") == {"global": True}
    assert "constraints" not in exporter.plain("taskSpec")["placement"]
    volumes = {r.name: run_host(run, r) for r in run.of_type("docker:index/volume:Volume")
               if r.name.startswith("prod_node_exporter_probe-")}
    assert volumes == {f"prod_node_exporter_probe-{n}": NODES[n]["dockerHost"] for n in NODES}


def test_steps_that_reach_a_data_service_run_on_the_data_node_into_its_healthy_task(run):
    for step, service_name in (("prod-postgres-set-password", "prod-postgres"), ("prod-postgres-roles", "prod-postgres"),
                               ("prod-minio-buckets", "prod-minio"), ("prod-backup-init", "prod-backup"),
                               ("prod-app-blue-backup", "prod-backup")):
        command = run.named(step)
        assert command.plain("connection")["host"] == "d1.example.org", step
        assert f"label=com.docker.swarm.service.name={service_name} --filter health=healthy" in command.plain(
            "create"), step
    # Migrations and the smoke check run on the manager, on the attachable overlay networks.
    for step in ("prod-app-blue-migrate", "prod-app-blue-smoke"):
        assert run.named(step).plain("connection")["host"] == "prod.shia-chatbot.example.org"
    assert "SWARM_SERVICE=prod-app-blue" in run.named("prod-app-blue-smoke").plain("create")


def test_the_app_s_secrets_are_swarm_secret_files_and_its_task_spec_stays_readable(run):
    for name in ("prod-app-blue", "prod-worker-blue", "prod-flower", "prod-postgres", "prod-minio"):
        s = service(run, name)
        # One secret entry would make the SDK mark the whole taskSpec secret (preview hides the image).
        assert not harness.is_secret(s.inputs["taskSpec"]), name
        env = s.plain("taskSpec")["containerSpec"]["env"]
        mounts = {m["fileName"] for m in s.plain("taskSpec")["containerSpec"]["secrets"]}
        files = {k: v for k, v in env.items()
                 if k.endswith("_FILE") and (v in mounts or f"/run/secrets/{v}" in mounts)}
        assert files, name
        assert len(files) == len(mounts), (name, files, mounts)
        for variable in files:
            assert variable.removesuffix("_FILE") not in env, (name, variable)
    app_env = service(run, "prod-app-blue").plain("taskSpec")["containerSpec"]["env"]
    assert {"DATABASE_URL_FILE", "REDIS_URL_FILE", "SECRET_KEY_FILE", "QDRANT_API_KEY_FILE",
            "MINIO_SECRET_KEY_FILE"} <= set(app_env)
    assert "FLOWER_BASIC_AUTH_FILE" in service(run, "prod-flower").plain("taskSpec")["containerSpec"]["env"]
    # A secret's name carries a digest of its value, so a rotation makes a new one beside the old.
    secrets = [r for r in run.of_type("docker:index/secret:Secret") if r.name == "prod-app-blue-database-url"]
    assert len(secrets) == 1 and secrets[0].plain("name").startswith("prod-app-blue-database-url-")
    assert harness.is_secret(secrets[0].inputs["data"])


def test_no_service_carries_a_secret_in_its_inputs(run):
    """Not the task spec, nor anything in it (the pgBackRest key pair in PostgreSQL's
    environment, say): a preview shows every service whole."""
    for s in run.of_type(SERVICE):
        assert SECRET_SIG not in json.dumps(s.inputs), s.name


def test_one_host_stacks_have_no_swarm_resource():
    plain = harness.run("prod")
    assert plain.error is None
    assert not plain.of_type(SERVICE) and not plain.of_type("docker:index/secret:Secret")


def test_the_policy_pack_passes_the_three_node_prod_plan():
    result = run_gate("prod", {**harness.stack_config("prod"), **three_node_prod()})
    assert result.program_error is None, result.program_error
    assert result.at("mandatory") == [], render(result)

