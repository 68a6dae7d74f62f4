"""Docker Swarm on this machine's daemon (a one-node swarm, `docker swarm init`):
the program's swarm steps run for real against it.

The daemon is put in swarm mode for this module only and taken out after, unless
it was already a swarm member (then it is left as found). Skipped without a
Docker daemon; with CI=true that is a failure instead.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from docker_lab import docker, docker_available

from components.host.docker_host import host_script
from components.swarm import nodes as swarm_nodes
from settings.model import NodeConfig

pytestmark = pytest.mark.skipif(not docker_available() and os.environ.get("CI") != "true",
                                reason="no Docker daemon")


@pytest.fixture(scope="module")
def node_name(swarm_node):
    """The node; the labels the tests set are removed after."""
    before = labels(swarm_node)
    yield swarm_node
    for key in set(labels(swarm_node)) - set(before):
        docker("node", "update", "--label-rm", key, swarm_node)


def run_labels_step(nodes: dict[str, NodeConfig]) -> subprocess.CompletedProcess:
    """The step's create script, run as local.Command runs it (sh -c, DOCKER_HOST)."""
    script = host_script("swarm/scripts/node-labels.sh", NODES=swarm_nodes.nodes_text(nodes))
    env = {**os.environ, "DOCKER_HOST": os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")}
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=env, timeout=60)


def labels(name: str) -> dict[str, str]:
    import json
    found = json.loads(docker("node", "inspect", name, "--format", "{{json .Spec.Labels}}").stdout) or {}
    return {k: v for k, v in found.items() if k.startswith("org.shia-chatbot.")}


def node(*roles: str) -> NodeConfig:
    return NodeConfig(docker_host="unix:///var/run/docker.sock", roles=list(roles))


def test_each_role_becomes_a_label_and_a_dropped_role_loses_it(node_name):
    ran = run_labels_step({node_name: node("manager", "edge", "app", "data")})
    assert ran.returncode == 0, ran.stderr
    assert labels(node_name) == {
        "org.shia-chatbot.node": node_name, "org.shia-chatbot.role.manager": "true",
        "org.shia-chatbot.role.edge": "true", "org.shia-chatbot.role.app": "true",
        "org.shia-chatbot.role.data": "true"}
    # Re-running with one role fewer removes that label, and only it; again is a no-op.
    for _ in range(2):
        ran = run_labels_step({node_name: node("manager", "app", "data")})
        assert ran.returncode == 0, ran.stderr
        assert labels(node_name) == {"org.shia-chatbot.node": node_name, "org.shia-chatbot.role.manager": "true",
                                     "org.shia-chatbot.role.app": "true", "org.shia-chatbot.role.data": "true"}
    # The data role never leaves a ready node: its services would start elsewhere on empty volumes.
    ran = run_labels_step({node_name: node("manager", "app")})
    assert ran.returncode != 0 and f"node {node_name} holds the data role and is ready" in ran.stderr
    assert labels(node_name)["org.shia-chatbot.role.data"] == "true"
    docker("node", "update", "--label-rm", "org.shia-chatbot.role.data", node_name)  # as after moving the data
    ran = run_labels_step({node_name: node("manager", "app")})
    assert ran.returncode == 0, ran.stderr
    assert labels(node_name) == {"org.shia-chatbot.node": node_name, "org.shia-chatbot.role.manager": "true",
                                 "org.shia-chatbot.role.app": "true"}
    # A label of someone else's is left alone.
    docker("node", "update", "--label-add", "zone=a", node_name)
    assert run_labels_step({node_name: node("manager", "app")}).returncode == 0
    assert docker("node", "inspect", node_name, "--format", '{{index .Spec.Labels "zone"}}').stdout.strip() == "a"
    docker("node", "update", "--label-rm", "zone", node_name)


def test_the_placement_reads_the_labels_the_step_sets(node_name):
    """A service constrained to a role runs on a node with that role's label,
    and stays pending on a swarm without one."""
    assert run_labels_step({node_name: node("manager", "app")}).returncode == 0
    for role, runs in (("app", True), ("data", False)):
        service = f"e2e-swarm-placement-{role}"
        docker("service", "create", "--detach", "--name", service, "--constraint",
               swarm_nodes.placement_constraint(role), "--placement-pref", f"spread={swarm_nodes.spread()}",
               "--restart-condition", "none", "alpine:3.20.3", "sleep", "60")
        try:
            import time
            deadline = time.monotonic() + 30
            while True:
                state = docker("service", "ps", service, "--format", "{{.CurrentState}} {{.Error}}").stdout
                if runs and state.startswith("Running"):
                    break
                if not runs and "no suitable node" in state:
                    break
                assert time.monotonic() < deadline, state
                time.sleep(0.5)
        finally:
            docker("service", "rm", service, check=False)


def test_a_node_outside_the_swarm_or_in_the_wrong_role_fails_the_step(node_name):
    ran = run_labels_step({node_name: node("manager", "app"), "no-such-node": node("data")})
    assert ran.returncode != 0
    assert "node no-such-node is not in the swarm" in ran.stderr and "docs/swarm.md" in ran.stderr
    ran = run_labels_step({node_name: node("app")})
    assert ran.returncode != 0
    assert f"node {node_name} is a swarm manager but the stack lists it as a worker" in ran.stderr


# ---- a service as the program makes it (components/swarm/service.py), applied as the provider would ----

WEB = "e2e-swarm-web"


def _resource(inputs: dict, name: str = WEB) -> "plan.Resource":
    from engine import plan
    from engine.rules import SERVICE
    return plan.Resource(urn=f"urn:pulumi:e2e::swarm::docker:index/service:Service::{name}", type=SERVICE, name=name,
                         inputs=inputs, custom=True, protect=False, retain_on_delete=False, delete_before_replace=None,
                         replace_on_changes=(), ignore_changes=(), dependencies=(), parent="", aliases=(),
                         id=f"{name}-id")


def _web_inputs(release: str) -> dict:
    from components.host.containers import Healthcheck
    from components.swarm.service import Placement
    from swarm_fixtures import recorded_service, spec
    inputs = recorded_service(
        spec(name=WEB, service="nginx", image="nginx:1.27.2-alpine", slot=None, command=None, volumes=[],
             envs=[f"RELEASE={release}"], stop_timeout=10,
             healthcheck=Healthcheck(test=["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1/ || exit 1"],
                                     interval="2s", timeout="2s", retries=3, start_period="2s")),
        Placement(role="app", replicas=2), networks=(("web-net-id", ["web"]),))
    inputs.pop("secret")
    return inputs


def _running(service: str) -> list[str]:
    return docker("service", "ps", service, "--filter", "desired-state=running",
                  "--format", "{{.CurrentState}}").stdout.split("\n")


def test_a_service_as_the_program_makes_it_converges_resolves_by_task_and_rolls_out_start_first(node_name, measure):
    import json
    import threading
    import time

    from applier import Applier
    from engine import plan
    from engine.rules import NETWORK

    assert run_labels_step({node_name: node("manager", "edge", "app", "data")}).returncode == 0
    network = "e2e-swarm-net"
    network_id = docker("network", "create", "--driver", "overlay", "--attachable", network).stdout.strip()
    applier = Applier()
    applier._remember("urn:network", type=NETWORK, name=network, id=network_id, plan_id="web-net-id")
    first = _resource(_web_inputs("1"))
    try:
        applied = applier.apply([plan.Step("create", first)])
        assert applied.results[0].details["converged_replicas"] == 2
        measure("swarm: 2-task service created and converged", applied.results[0].seconds,
                note="includes the provider's 7 s first wait")
        spec = json.loads(docker("service", "inspect", WEB, "--format", "{{json .Spec}}").stdout)
        task = spec["TaskTemplate"]
        assert task["ContainerSpec"]["Healthcheck"]["Interval"] == 2_000_000_000
        assert task["ContainerSpec"]["ReadOnly"] is True and task["ContainerSpec"]["CapabilityDrop"] == ["ALL"]
        assert task["Placement"]["Constraints"] == ["node.labels.org.shia-chatbot.role.app==true"]
        assert spec["EndpointSpec"]["Mode"] == "dnsrr" and spec["UpdateConfig"]["Order"] == "start-first"
        # Each task answers under tasks.<service> (no virtual IP, no IPVS needed).
        answers = docker("run", "--rm", "--network", network, "alpine:3.20.3", "getent", "ahostsv4", f"tasks.{WEB}",
                         check=False).stdout
        assert len({line.split()[0] for line in answers.splitlines()}) == 2, answers

        # A new release: never fewer running tasks than replicas while it rolls out.
        fewest, stop = [2], threading.Event()

        def watch():
            while not stop.is_set():
                fewest[0] = min(fewest[0], sum(1 for s in _running(WEB) if s.startswith("Running")))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch)
        watcher.start()
        second = _resource(_web_inputs("2"))
        try:
            updated = applier.apply([plan.Step("update", second, first, ("taskSpec",))])
        finally:
            stop.set()
            watcher.join()
        assert updated.results[0].details["update_state"] == "completed"
        measure("swarm: start-first rolling update of 2 tasks", updated.results[0].seconds,
                note=f"fewest running tasks during it: {fewest[0]}")
        assert fewest[0] >= 2, fewest
        envs = docker("ps", "--filter", f"label=com.docker.swarm.service.name={WEB}", "--format", "{{.ID}}").stdout.split()
        for container in envs:
            env = docker("inspect", container, "--format", "{{range .Config.Env}}{{.}} {{end}}").stdout.split()
            assert "RELEASE=2" in env and "RELEASE=1" not in env, env
        applier.apply([plan.Step("delete", second, second)])
        assert docker("service", "inspect", WEB, check=False).returncode != 0
        assert docker("ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={WEB}").stdout.strip() == ""
    finally:
        docker("service", "rm", WEB, check=False)
        time.sleep(2)
        docker("network", "rm", network, check=False)


def _secret_resource(prefix: str, value: str) -> "plan.Resource":
    import base64

    from components.swarm.secrets import content_name
    from engine import plan
    from engine.rules import SECRET
    name = content_name(prefix, value)
    return plan.Resource(urn=f"urn:pulumi:e2e::swarm::docker:index/secret:Secret::{prefix}", type=SECRET, name=prefix,
                         inputs={"name": name, "data": base64.b64encode(value.encode()).decode()}, custom=True,
                         protect=False, retain_on_delete=False, delete_before_replace=False, replace_on_changes=(),
                         ignore_changes=(), dependencies=(), parent="", aliases=(), id=f"{name}-id")


def _reader_inputs(secret: "plan.Resource") -> dict:
    inputs = _web_inputs("1")
    inputs["taskSpec"]["containerSpec"]["secrets"] = [{
        "secretId": secret.id, "secretName": secret.inputs["name"], "fileName": "/run/secrets/token",
        "fileUid": "0", "fileGid": "0", "fileMode": 0o400}]
    return inputs


def _files(service: str) -> set[str]:
    tasks = docker("ps", "--filter", f"label=com.docker.swarm.service.name={service}", "--format", "{{.ID}}").stdout
    return {docker("exec", c, "cat", "/run/secrets/token").stdout for c in tasks.split()}


def test_a_rotated_swarm_secret_is_a_new_secret_a_rolling_update_and_the_old_one_removed_after(node_name, measure):
    """components/swarm/secrets.py's rotation, as `pulumi up` orders it: the new
    secret, the service's in-place update to it (start-first), the old secret
    deleted at the end, which Swarm refuses while a service mounts it."""
    import time

    from applier import Applier, ApplyError
    from engine import plan
    from engine.rules import NETWORK

    assert run_labels_step({node_name: node("manager", "edge", "app", "data")}).returncode == 0
    network = "e2e-swarm-net"
    network_id = docker("network", "create", "--driver", "overlay", "--attachable", network).stdout.strip()
    applier = Applier()
    applier._remember("urn:network", type=NETWORK, name=network, id=network_id, plan_id="web-net-id")
    old_secret, new_secret = _secret_resource("e2e-token", "first-value-0001"), _secret_resource("e2e-token", "second-value-002")
    assert old_secret.inputs["name"] != new_secret.inputs["name"]
    first = _resource(_reader_inputs(old_secret))
    try:
        applier.apply([plan.Step("create", old_secret), plan.Step("create", first)])
        assert _files(WEB) == {"first-value-0001"}
        # The old secret cannot go first: a service mounts it.
        with pytest.raises(ApplyError, match="in use"):
            applier.apply([plan.Step("delete", old_secret, old_secret)])
        second = _resource(_reader_inputs(new_secret))
        started = time.monotonic()
        applier.apply([plan.Step("replace", new_secret, old_secret, ("data", "name")),
                       plan.Step("update", second, first, ("taskSpec",)),
                       plan.Step("delete", old_secret, old_secret)])
        measure("swarm: secret rotation (new secret, rolling update, old removed)", time.monotonic() - started)
        assert _files(WEB) == {"second-value-002"}
        names = docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
        assert new_secret.inputs["name"] in names and old_secret.inputs["name"] not in names
        applier.apply([plan.Step("delete", second, second), plan.Step("delete", new_secret, new_secret)])
        assert new_secret.inputs["name"] not in docker("secret", "ls", "--format", "{{.Name}}").stdout.split()
    finally:
        docker("service", "rm", WEB, check=False)
        time.sleep(2)
        for secret in (old_secret, new_secret):
            docker("secret", "rm", secret.inputs["name"], check=False)
        docker("network", "rm", network, check=False)
