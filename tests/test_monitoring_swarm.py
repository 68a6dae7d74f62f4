"""runtime swarm: the scrape config and the tasks rules, rendered from their specs
(the Swarm services that will carry them are not built yet). Prometheus finds
the tasks by DNS; the job names and labels must be the docker runtime's, so
that every rule reads both alike."""

from __future__ import annotations

import re

import yaml

from components.monitoring import prometheus as mc
from components.monitoring.rules import RulesSpec
from settings.naming import Naming

PROD = Naming("prod")
MEMORY = {"app": 1024, "redis": 512, "qdrant": 2048, "prometheus": 512}


def spec(slots=("blue", "green"), active="green", swarm: bool = True) -> mc.PrometheusSpec:
    return mc.PrometheusSpec(naming=PROD, flower_user=PROD.flower_user, alerting=True,
                             swarm=mc.SwarmSlots(slots=slots, active_slot=active) if swarm else None)


def jobs(rendered: mc.PrometheusSpec) -> dict[str, dict]:
    return {job["job_name"]: job for job in yaml.safe_load(rendered.render())["scrape_configs"]}


def relabelled(job: dict) -> dict[str, dict[str, str]]:
    """DNS name -> the labels Prometheus's relabelling gives the targets found under it
    (action replace: the regex must match the joined source labels in full)."""
    found = {}
    for name in job["dns_sd_configs"][0]["names"]:
        labels: dict[str, str] = {}
        for rule in job["relabel_configs"]:
            value = ";".join({mc.DNS_NAME_LABEL: name, **labels}.get(s, "") for s in rule["source_labels"])
            if re.fullmatch(rule["regex"], value):
                labels[rule["target_label"]] = rule["replacement"]
        found[name] = labels
    return found


def test_app_slots_flower_and_node_exporter_are_found_by_dns():
    found = jobs(spec())
    assert {name: (job["dns_sd_configs"], "file_sd_configs" in job or "static_configs" in job)
            for name, job in found.items() if "dns_sd_configs" in job} == {
        "app": ([{"names": ["tasks.prod-app-blue", "tasks.prod-app-green"], "type": "A", "port": 8000,
                  "refresh_interval": "15s"}], False),
        "celery": ([{"names": ["tasks.prod-flower"], "type": "A", "port": 5555, "refresh_interval": "15s"}], False),
        "node": ([{"names": ["tasks.prod-node-exporter"], "type": "A", "port": 9100, "refresh_interval": "15s"}],
                 False),
    }
    assert found["celery"]["basic_auth"] == {"username": "prod-ops", "password_file": mc.FLOWER_PASSWORD_FILE}
    # A new task is seen within a refresh and a scrape: no slower than the scrapes themselves.
    assert mc.TASKS_REFRESH == mc.SCRAPE_INTERVAL


def test_no_targets_files_on_swarm():
    assert not spec().reads_targets_files and spec(swarm=False).reads_targets_files
    assert "file_sd_configs" not in spec().render() and f"{mc.TARGETS_DIR}/" not in spec().render()


def test_the_tasks_get_the_labels_the_docker_runtime_gives_its_containers():
    found = jobs(spec())
    docker = mc.ScrapeTargets(slots={"blue": ["prod-app-blue-1"], "green": ["prod-app-green-1"]},
                              active_slot="green", worker="prod-worker-green", flower="prod-flower").groups()
    by_slot = {g.labels["slot"]: g.labels for g in docker["app"]}
    assert relabelled(found["app"]) == {
        f"tasks.prod-app-{slot}": {**by_slot[slot], "container": f"prod-app-{slot}"} for slot in ("blue", "green")}
    # Flower's target describes the worker of the live slot, as on docker.
    assert relabelled(found["celery"]) == {"tasks.prod-flower": docker["celery"][0].labels}
    assert relabelled(found["node"]) == {"tasks.prod-node-exporter": {"container": "prod-node-exporter"}}


def test_a_name_matches_only_itself():
    regex = jobs(spec())["app"]["relabel_configs"][0]["regex"]
    assert re.fullmatch(regex, "tasks.prod-app-blue")
    for other in ("tasksXprod-app-blue", "tasks.prod-app-blue2", "tasks.stage-app-blue"):
        assert not re.fullmatch(regex, other)


def test_the_other_jobs_and_their_order_are_the_docker_runtimes():
    swarm, docker = jobs(spec()), jobs(spec(swarm=False))
    assert list(swarm) == list(docker)
    for name in ("prometheus", "postgres", "redis", "qdrant", "alertmanager"):
        assert swarm[name] == docker[name], name
    assert yaml.safe_load(spec().render())["alerting"] == yaml.safe_load(spec(swarm=False).render())["alerting"]


def test_a_switch_moves_the_active_label_and_the_workers_labels_only():
    before, after = jobs(spec(active="blue")), jobs(spec(active="green"))
    assert {n for n in before if before[n] != after[n]} == {"app", "celery"}
    assert before["app"]["dns_sd_configs"] == after["app"]["dns_sd_configs"]
    assert [r for r in before["app"]["relabel_configs"] if r["target_label"] != "active"] == [
        r for r in after["app"]["relabel_configs"] if r["target_label"] != "active"]
    assert relabelled(after["celery"])["tasks.prod-flower"] == {"container": "prod-worker-green", "slot": "green"}


def test_the_tasks_rule_counts_each_deployed_slot_against_its_replicas():
    rules = RulesSpec(environment="prod", memory_limit_mb=MEMORY, backup_stale_after={}, wal_archiving=False,
                      slot_replicas={"green": 3, "blue": 2})
    (group,) = yaml.safe_load(rules.files()["tasks.yml"])["groups"]
    assert [(r["alert"], r["labels"], r["expr"], r["for"]) for r in group["rules"]] == [
        ("SlotTasksBelowReplicas", {"severity": "warning", "slot": "blue"},
         'sum by (slot) (up{job="app", slot="blue"}) < 2', "5m"),
        ("SlotTasksBelowReplicas", {"severity": "warning", "slot": "blue", "data": "absent"},
         'absent(up{job="app", slot="blue"})', "5m"),
        ("SlotTasksBelowReplicas", {"severity": "warning", "slot": "green"},
         'sum by (slot) (up{job="app", slot="green"}) < 3', "5m"),
        ("SlotTasksBelowReplicas", {"severity": "warning", "slot": "green", "data": "absent"},
         'absent(up{job="app", slot="green"})', "5m"),
    ]
    # The twin names the DNS name the app job asks.
    assert "(tasks.prod-app-blue)" in group["rules"][1]["annotations"]["description"]
    assert "tasks.prod-app-blue" in jobs(spec())["app"]["dns_sd_configs"][0]["names"]
    # Every job a rule selects is scraped on swarm too.
    selected = {job for text in rules.files().values() for job in re.findall(r'job="(\w+)"', text)}
    assert selected and selected <= set(jobs(spec()))


def test_the_docker_runtime_renders_no_tasks_rules():
    rules = RulesSpec(environment="prod", memory_limit_mb=MEMORY, backup_stale_after={}, wal_archiving=False)
    assert "tasks.yml" not in rules.files()
