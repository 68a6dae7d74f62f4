"""A container's settings as a Swarm service (components/swarm/service.py),
under the SDK's mocks: the inputs the provider gets, written the way it reads
them back (tests assert the forms /work/notes/swarm-provider-facts.md names)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_docker as docker
import pytest

from components.host import hardening
from components.secrets import secret_env
from components.swarm import service as swarm
from components.swarm.nodes import nodes_text, placement_constraint, spread
from settings.model import NodeConfig
from swarm_fixtures import Recorder, plain, recorded_service as _create, spec as _spec


@pytest.fixture(scope="module")
def app() -> dict[str, Any]:
    return _create(_spec(), swarm.Placement(role="app", replicas=3))


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (5, "5s"), (60, "1m"), (90, "1m30s"), (120, "2m"),
                                           (3600, "1h"), (3660, "1h1m"), (5400, "1h30m")])
def test_durations_are_written_as_the_provider_reads_them_back(seconds, text):
    assert swarm.swarm_duration(seconds) == text


def test_a_secret_in_the_environment_makes_the_whole_task_spec_secret(app):
    """The SDK marks a top-level input secret when anything inside it is: a
    secret env var hides the image and every setting of the task from
    `pulumi preview`. Hence Swarm secrets (files) wherever the image reads
    `*_FILE` (docs/swarm.md)."""
    assert app["secret"] == ["taskSpec"]
    assert _create(_spec(envs=["ENVIRONMENT=prod"]), swarm.Placement(role="app"))["secret"] == []


def test_a_slot_is_one_replicated_service_spread_over_the_app_nodes(app):
    assert app["name"] == "prod-app-blue"
    assert app["mode"] == {"replicated": {"replicas": 3}}
    placement = app["taskSpec"]["placement"]
    assert placement["constraints"] == ["node.labels.org.shia-chatbot.role.app==true"]
    assert placement["prefs"] == ["node.labels.org.shia-chatbot.node"]
    # No virtual IP (no IPVS here): nginx resolves tasks.prod-app-blue.
    assert app["endpointSpec"] == {"mode": "dnsrr"}
    assert app["taskSpec"]["networksAdvanceds"] == [{"id": "backend-id", "aliases": ["app-blue"]}]


def test_updates_are_health_gated_start_first_and_roll_back(app):
    update = app["updateConfig"]
    assert update["order"] == "start-first" and update["failureAction"] == "rollback"
    assert update["parallelism"] == 1 and update["maxFailureRatio"] == "0.0"
    # 5 s x 3 retries: how long its healthcheck takes to call a healthy task
    # unhealthy (Swarm runs a task only once healthy: the start period is past).
    assert update["monitor"] == "15s"
    assert app["rollbackConfig"]["order"] == "start-first"
    assert app["convergeConfig"] == {"delay": "7s", "timeout": "3m"}


def test_the_container_settings_carry_over_in_the_read_back_form(app):
    spec = app["taskSpec"]["containerSpec"]
    assert spec["args"] == ["uvicorn", "src.main:app"] and "commands" not in spec  # Cmd, not the entrypoint
    assert spec["env"]["ENVIRONMENT"] == "prod"
    assert spec["healthcheck"] == {"tests": ["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"],
                                   "interval": "5s", "timeout": "3s", "retries": 3, "startPeriod": "1m"}
    assert spec["stopGracePeriod"] == "30s"
    assert spec["readOnly"] is True and spec["capDrops"] == ["ALL"] and "capAdds" not in spec
    assert {m["type"]: m["target"] for m in spec["mounts"]} == {"volume": "/cache", "tmpfs": "/tmp"}
    tmpfs = next(m for m in spec["mounts"] if m["type"] == "tmpfs")
    assert tmpfs["tmpfsOptions"] == {"sizeBytes": hardening.TMPFS_SIZE_MB * 1024 * 1024}
    task = app["taskSpec"]
    assert task["resources"] == {"limits": {"memoryBytes": 512 * 1024 * 1024}}
    assert task["restartPolicy"] == {"condition": "any", "delay": "5s", "maxAttempts": 0, "window": "0s"}
    assert task["logDriver"]["options"] == {"max-size": "10m", "max-file": "5"}
    labels = {entry["label"]: entry["value"] for entry in app["labels"]}
    assert labels == {"org.shia-chatbot.environment": "prod", "org.shia-chatbot.service": "app",
                      "org.shia-chatbot.slot": "blue"}


def test_a_secret_env_entry_keeps_the_whole_env_secret():
    pulumi.runtime.set_mocks(Recorder(), preview=False)
    seen = {}

    @pulumi.runtime.test
    def program():
        env = swarm._env(["A=1", secret_env("B", "x")])
        return pulumi.Output.all(env, pulumi.Output.from_input(env.is_secret())).apply(
            lambda v: seen.update(value=v[0], secret=v[1]))

    program()
    assert seen == {"value": {"A": "1", "B": "x"}, "secret": True}


def test_nginx_is_global_on_the_edge_with_host_ports_and_stops_first():
    nginx = _create(_spec(name="prod-nginx", service="nginx", slot=None, command=None, envs=[], volumes=[],
                          ports=[docker.ContainerPortArgs(internal=80, external=80),
                                 docker.ContainerPortArgs(internal=443, external=443)]),
                    swarm.Placement(role="edge", replicas=None))
    assert nginx["mode"] == {"global": True}
    assert nginx["taskSpec"]["placement"] == {"constraints": ["node.labels.org.shia-chatbot.role.edge==true"]}
    assert nginx["endpointSpec"]["ports"] == [
        {"targetPort": 80, "publishedPort": 80, "publishMode": "host", "protocol": "tcp"},
        {"targetPort": 443, "publishedPort": 443, "publishMode": "host", "protocol": "tcp"}]
    # Two tasks cannot hold a host port on one node; the provider cannot converge a global service.
    assert nginx["updateConfig"]["order"] == "stop-first" and "convergeConfig" not in nginx
    assert nginx["taskSpec"]["containerSpec"]["capAdds"] == list(hardening.for_service("nginx").capabilities)


def test_the_node_labels_step_input_is_sorted_and_stable():
    nodes = {"a2": NodeConfig(docker_host="unix:///x", roles=["app"]),
             "m1": NodeConfig(docker_host="unix:///x", roles=["edge", "manager", "data"])}
    assert nodes_text(nodes) == "a2 app\nm1 data,edge,manager"
    assert placement_constraint("data") == "node.labels.org.shia-chatbot.role.data==true"
    assert spread() == "node.labels.org.shia-chatbot.node"


# ---- what `pulumi up` does to a service, by the provider's rules (tests/engine/rules.py) ----

def test_a_new_image_or_env_is_a_rolling_update_and_a_new_network_or_container_label_a_replacement():
    from engine.rules import SECRET, SERVICE, rules_for

    rules = rules_for(SERVICE)
    task = {"containerSpec": {"image": "app@sha256:1", "env": {"A": "1"}}, "networksAdvanceds": [{"id": "n1"}]}

    def changed(**parts):
        new = {**task, **parts}
        return rules.replaces("taskSpec", task, new)

    assert not changed(containerSpec={"image": "app@sha256:2", "env": {"A": "1"}})
    assert not changed(containerSpec={"image": "app@sha256:1", "env": {"A": "2"}})
    assert changed(networksAdvanceds=[{"id": "n2"}])
    assert changed(containerSpec={**task["containerSpec"], "labels": [{"label": "x", "value": "y"}]})
    assert not rules.replaces("mode") and not rules.replaces("labels") and not rules.replaces("endpointSpec")
    assert rules.replaces("name") and rules.replaces("auth")
    # An explicit name: the old service goes first (a new one cannot take its name).
    assert rules.deletes_first({"name": "prod-app-blue"}) and not rules.deletes_first({})
    # Swarm secrets are immutable: new data is a new secret, created before the old one goes unless named.
    assert rules_for(SECRET).replaces("data") and not rules_for(SECRET).deletes_first({})


def test_a_swarm_secret_is_named_by_its_content_made_before_the_old_one_goes_and_kept_secret(monkeypatch):
    import base64

    from components.swarm import secrets as swarm_secrets

    made = {}
    real = docker.Secret

    def capture(resource_name, **kwargs):
        made["opts"] = kwargs["opts"]
        return real(resource_name, **kwargs)

    monkeypatch.setattr(swarm_secrets.docker, "Secret", capture)
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, preview=False)
    seen = {}

    @pulumi.runtime.test
    def program():
        file = swarm_secrets.swarm_secret("prod-postgres-password", "postgres-password", "0123456789abcdef",
                                          pulumi.ResourceOptions())
        assert file.path == "/run/secrets/postgres-password"
        return pulumi.Output.all(file.secret.name, file.secret.name.is_secret(), file.secret.data.is_secret()) \
            .apply(lambda v: seen.update(name=v[0], name_secret=v[1], data_secret=v[2],
                                         inputs=recorder.created["prod-postgres-password"]))

    program()
    assert seen["name"] == swarm_secrets.content_name("prod-postgres-password", "0123456789abcdef")
    assert seen["name"].startswith("prod-postgres-password-") and len(seen["name"].rsplit("-", 1)[1]) == 16
    assert seen["name_secret"] is False and seen["data_secret"] is True  # preview names it, never shows it
    assert base64.b64decode(plain(seen["inputs"]["data"])) == b"0123456789abcdef"
    # Create-first: with an explicit name the bridge would delete first, and Swarm refuses to
    # delete a secret a service still mounts.
    assert made["opts"].delete_before_replace is False
    # A new value, a new name: the two can exist side by side.
    assert swarm_secrets.content_name("p", "a") != swarm_secrets.content_name("p", "b")


def test_on_a_swarm_the_two_networks_are_attachable_overlays_and_backend_stays_internal():
    from components.host.networks import Networks, NetworksArgs
    from settings.naming import Naming

    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, preview=False)
    seen = {}

    @pulumi.runtime.test
    def program():
        networks = Networks("prod-networks", NetworksArgs(naming=Naming("prod"), overlay=True))
        return pulumi.Output.all(networks.frontend_id, networks.backend_id).apply(
            lambda ids: seen.update(ids=ids, frontend=recorder.created["prod-frontend"],
                                    backend=recorder.created["prod-backend"]))

    program()
    assert seen["frontend"]["driver"] == "overlay" and seen["frontend"]["attachable"] is True
    assert "internal" not in seen["frontend"]
    assert seen["backend"]["driver"] == "overlay" and seen["backend"]["internal"] is True
    assert seen["ids"] == ["prod-frontend-id", "prod-backend-id"]  # what services name them by


def test_a_swarm_stack_labels_its_nodes_on_the_manager_and_has_a_host_per_node():
    import harness
    from test_config_validation import swarm

    run = harness.run("prod", swarm())
    assert run.error is None, run.error
    step = run.named("prod-swarm-nodes-labels")
    assert step.type == "command:remote:Command"
    assert step.plain("connection")["host"] == "prod.shia-chatbot.example.org"  # the manager, m1
    assert "NODES='a1 app\na2 app\nm1 data,edge,manager'" in step.plain("create")
    providers = {r.name: r.plain("host") for r in run.of_type("pulumi:providers:docker")}
    assert providers["prod-swarm-nodes-a1-host"] == "ssh://deploy@a1.example.org"
    assert providers["prod-swarm-nodes-m1-host"] == providers["prod-docker-host"]
    # One host, no swarm: none of it.
    assert not any("swarm" in r.name for r in harness.run("prod").resources)


@pytest.mark.parametrize("digest, named", [
    ("ghcr.io/shia-chatbot/app@sha256:" + "b" * 64, "ghcr.io/shia-chatbot/app@sha256:" + "b" * 64),
    ("", "ghcr.io/shia-chatbot/app:1.0.0"),  # a local image: no registry, no digest
])
def test_a_service_names_a_pulled_image_by_its_registry_digest(digest, named):
    from components.host.runtime import Runtime

    class Pulled:  # what Runtime.image reads of a docker.RemoteImage
        name = pulumi.Output.from_input("ghcr.io/shia-chatbot/app:1.0.0")
        repo_digest = pulumi.Output.from_input(digest)

    pulumi.runtime.set_mocks(Recorder(), preview=False)
    seen = {}

    @pulumi.runtime.test
    def program():
        on_swarm = Runtime(host=None, nodes=object()).image(Pulled())
        on_host = Runtime(host=None).image(Pulled())
        return pulumi.Output.all(on_swarm, on_host).apply(lambda v: seen.update(swarm=v[0], host=v[1]))

    program()
    # On one host the tag as before; a container's image is not rewritten by Docker.
    assert seen == {"swarm": named, "host": "ghcr.io/shia-chatbot/app:1.0.0"}
