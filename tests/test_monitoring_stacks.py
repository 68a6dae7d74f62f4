"""Monitoring under the mocks: what each level deploys, how, and what a switch touches."""

from __future__ import annotations

import json
import re

import pytest
import yaml

import harness
from components.monitoring import alertmanager as am
from components.monitoring import prometheus as mc
from settings.defaults import ENVIRONMENTS, IMAGES

FULL = {"prometheus", "postgres-exporter", "redis-exporter", "node-exporter"}
EXPECTED = {"dev": set(), "stage": FULL | {"alertmanager"}, "prod": FULL | {"alertmanager"}}
PROD = harness.stack_config("prod")
STAGE = harness.stack_config("stage")
RULE_FILES = ["app.yml", "availability.yml", "backups.yml", "resources.yml", "wal_archiving.yml"]
GREEN = {"image": "ghcr.io/shia-chatbot/app:1.1.0", "replicas": 2}
SMTP = {"host": "smtp.example.org", "user": "alerts", "fromEmail": "alerts@example.org"}


@pytest.fixture(scope="module", params=harness.STACKS)
def run(request) -> harness.Run:
    result = harness.run(request.param)
    assert result.error is None, result.error
    return result


@pytest.fixture(scope="module", params=["stage", "prod"])
def monitored(request) -> harness.Run:
    """A committed stack that runs Prometheus."""
    result = harness.run(request.param)
    assert result.error is None, result.error
    return result


def ok(stack: str, config: dict, **kw) -> harness.Run:
    result = harness.run(stack, config, **kw)
    assert result.error is None, result.error
    return result


def both_slots(active: str = "blue", blue_replicas: int = 2) -> dict:
    return {**PROD, "activeSlot": active, "postgresMaxConnections": 600,
            "slots": {"blue": {**PROD["slots"]["blue"], "replicas": blue_replicas}, "green": GREEN}}


def uploads(run: harness.Run, service: str) -> dict[str, dict]:
    """file -> the upload as registered (content may carry a secret marker)."""
    return {u["file"]: u for u in run.containers()[f"{run.stack}-{service}"].inputs.get("uploads", [])}


def content(upload: dict) -> str:
    return harness.unwrap(upload["content"])


def targets(run: harness.Run, job: str) -> list[dict]:
    return json.loads(run.named(f"{run.stack}-prometheus-targets-{job}").plain("stdin"))


def test_each_stack_runs_its_level_as_committed(run):
    env = run.stack
    names = {f"{env}-{s}" for s in EXPECTED[env]}
    assert {n for n in run.containers() if n.removeprefix(f"{env}-") in EXPECTED["prod"]} == names
    assert run.outputs["monitoring"]["level"] == ENVIRONMENTS[env]["monitoring"]["level"]
    assert set(run.outputs["monitoring"]["containers"]) == names
    steps = {r.name for r in run.resources if r.name.startswith(f"{env}-prometheus-targets-")}
    assert steps == (set() if env == "dev" else {f"{env}-prometheus-targets-app", f"{env}-prometheus-targets-celery"})


def test_monitoring_containers_are_internal_pinned_and_publish_nothing(monitored):
    run, env = monitored, monitored.stack
    for service in EXPECTED[env]:
        c = run.containers()[f"{env}-{service}"]
        image_key = re.sub(r"-(\w)", lambda m: m[1].upper(), service)
        assert c.plain("image") == IMAGES[image_key], service
        assert not c.plain("ports"), f"{service} must not publish a host port"
        assert c.request.deleteBeforeReplace, service
        networks = [n["name"] for n in c.plain("networksAdvanced")]
        if service == "alertmanager":
            # Its own way out to the SMTP server and the webhook; backend has none.
            assert networks == [f"{env}-backend", f"{env}-alerting"]
            assert run.named(f"{env}-alerting").plain("internal") in (None, False)
        else:
            assert networks == [f"{env}-backend"], service


def test_prometheus_keeps_its_data_for_the_configured_retention(monitored):
    run, env = monitored, monitored.stack
    prometheus = run.containers()[f"{env}-prometheus"]
    days = ENVIRONMENTS[env]["monitoring"]["retentionDays"]
    assert f"--storage.tsdb.retention.time={days}d" in prometheus.plain("command")
    assert [(v["volumeName"], v["containerPath"]) for v in prometheus.plain("volumes")] == [
        (f"{env}_prometheus_tsdb", "/prometheus")]


def _prometheus_config(run: harness.Run) -> dict:
    return yaml.safe_load(content(uploads(run, "prometheus")[f"{mc.CONFIG_DIR}/{mc.CONFIG_FILE}"]))


def _rule_files(run: harness.Run) -> list[str]:
    return sorted(f.rsplit("/", 1)[1] for f in uploads(run, "prometheus") if f.startswith(f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/"))


def test_rules_and_alertmanager_with_alerts(monitored):
    run, env = monitored, monitored.stack
    config = _prometheus_config(run)
    assert config["rule_files"] == ["rules/*.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [f"{env}-alertmanager:9093"]
    assert _rule_files(run) == RULE_FILES
    assert config["global"]["external_labels"] == {"environment": env}


def test_level_full_scrapes_without_rules_or_alertmanager():
    # Allowed only where the off-site copies are not in S3 (settings/load.py).
    run = ok("stage", {**STAGE, "backups": {"offsite": "minio"}, "monitoring": {"level": "full"}})
    config = _prometheus_config(run)
    assert "rule_files" not in config and "alerting" not in config and _rule_files(run) == []
    assert "stage-alertmanager" not in run.containers() and "stage-prometheus" in run.containers()


@pytest.mark.parametrize("stack", ["stage", "prod"])
def test_a_stack_with_offsite_copies_pages_when_its_backup_job_stops_or_keeps_failing(stack):
    """Issue 12, kind 2: every stack whose backups go off-site to S3 mails its alerts
    to someone, and has rules for a job that fails, stops or never ran, per service
    and for the off-site step (settings/load.py refuses it otherwise)."""
    run = ok(stack, harness.stack_config(stack))
    assert ENVIRONMENTS[stack]["backups"]["offsite"] == "s3"
    (receiver,) = yaml.safe_load(content(uploads(run, "alertmanager")[f"{am.CONFIG_DIR}/{am.CONFIG_FILE}"]))["receivers"]
    assert receiver["email_configs"], "nobody would be paged"
    rules = yaml.safe_load(content(uploads(run, "prometheus")[f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/backups.yml"]))
    covered: dict[str, set[str]] = {}
    for rule in rules["groups"][0]["rules"]:
        services = set(re.findall(r'service=~?"([^"]+)"', rule["expr"])) or {"*"}
        covered.setdefault(rule["alert"], set()).update(s for group in services for s in group.split("|"))
    services = {"postgres", "redis", "qdrant", "minio"}
    services |= {f"offsite-{s}" for s in services}
    assert covered == {"BackupFailed": {"*"}, "BackupStale": services, "BackupMissing": services}


def test_flower_drops_a_silent_worker_so_that_celery_worker_down_fires():
    """A killed worker stays `online` in Flower's metrics unless Flower drops it once
    its heartbeats stop (components/monitoring/rules.py, CeleryWorkerDown)."""
    run = ok("prod", PROD)
    envs = [e for e in run.containers()["prod-flower"].inputs["envs"] if isinstance(e, str)]
    assert "FLOWER_PURGE_OFFLINE_WORKERS=60" in envs
    rules = yaml.safe_load(content(uploads(run, "prometheus")[f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/availability.yml"]))
    (celery,) = [r for r in rules["groups"][0]["rules"] if r["alert"] == "CeleryWorkerDown"]
    assert "for over 60 s" in celery["annotations"]["description"]


def test_every_job_a_rule_selects_is_scraped():
    run = ok("prod", PROD)
    files = uploads(run, "prometheus")
    config = yaml.safe_load(content(files[f"{mc.CONFIG_DIR}/{mc.CONFIG_FILE}"]))
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    selected = set()
    for name, upload in files.items():
        if f"/{mc.RULES_DIR}/" in name:
            for group in yaml.safe_load(content(upload))["groups"]:
                for rule in group["rules"]:
                    selected |= set(re.findall(r'job="(\w+)"', rule["expr"]))
    assert selected and selected <= jobs


def test_every_replica_of_every_deployed_slot_is_scraped_with_its_slot():
    run = ok("prod", both_slots(active="green"))
    assert targets(run, "app") == [
        {"targets": [f"prod-app-{slot}-{i}:8000"],
         "labels": {"container": f"prod-app-{slot}-{i}", "slot": slot, "active": str(slot == "green").lower()}}
        for slot in ("blue", "green") for i in (1, 2)
    ]
    # The worker reports through Flower, both of the active slot.
    assert targets(run, "celery") == [
        {"targets": ["prod-flower:5555"], "labels": {"container": "prod-worker-green", "slot": "green"}}]


def _monitoring_inputs(run: harness.Run) -> dict[str, str]:
    """Every monitoring resource but the targets steps, by name -> its inputs."""
    owned = ("prod-prometheus", "prod-alertmanager", "prod-postgres-exporter", "prod-redis-exporter",
             "prod-node-exporter", "prod_prometheus", "prod_alertmanager", "prod_node_exporter", "prod-alerting")
    return {r.name: json.dumps([r.inputs, r.request.deleteBeforeReplace], sort_keys=True)
            for r in run.resources if r.custom and r.name.startswith(owned)
            and not r.name.startswith("prod-prometheus-targets-")}


@pytest.mark.parametrize("change", ["switch", "scale"])
def test_a_switch_or_a_replica_change_rewrites_only_the_targets(change):
    before = ok("prod", both_slots())
    after = ok("prod", both_slots(active="green") if change == "switch" else both_slots(blue_replicas=3))
    assert _monitoring_inputs(before) == _monitoring_inputs(after)
    assert targets(before, "app") != targets(after, "app")
    assert (targets(before, "celery") != targets(after, "celery")) is (change == "switch")
    # The step writes into the running Prometheus, again whenever that container is new.
    step = after.named("prod-prometheus-targets-app")
    assert step.plain("create").startswith("docker exec -i prod-prometheus sh -c ")
    assert "mv /etc/prometheus/targets/app.json.next /etc/prometheus/targets/app.json" in step.plain("create")
    prometheus = next(r for r in after.resources if r.name == "prod-prometheus" and r.custom)
    assert step.plain("triggers") == [prometheus.id]


def test_exporters_and_prometheus_hold_their_credentials_only_as_secrets():
    run = ok("prod", PROD)
    for service, variable in (("postgres-exporter", "DATA_SOURCE_PASS"), ("redis-exporter", "REDIS_PASSWORD")):
        envs = run.containers()[f"prod-{service}"].inputs["envs"]
        secret = [e for e in envs if harness.is_secret(e)]
        assert [harness.unwrap(e).split("=", 1)[0] for e in secret] == [variable]
        assert not any(variable in e for e in envs if isinstance(e, str))
    files = uploads(run, "prometheus")
    for name in (mc.QDRANT_API_KEY_FILE, mc.FLOWER_PASSWORD_FILE):
        assert harness.is_secret(files[f"{mc.CONFIG_DIR}/{name}"]["content"]), name
    assert not harness.is_secret(files[f"{mc.CONFIG_DIR}/{mc.CONFIG_FILE}"]["content"])


def test_node_exporter_serves_the_backup_textfile_and_the_volume_disk_read_only():
    run = ok("prod", PROD)
    node = run.containers()["prod-node-exporter"]
    mounts = {v["containerPath"]: (v["volumeName"], v.get("readOnly")) for v in node.plain("volumes")}
    assert mounts == {mc.DISK_PROBE_PATH: ("prod_node_exporter_probe", True), "/textfile": ("prod_backup_metrics", True)}
    assert node.plain("command") == ["--collector.disable-defaults", "--collector.filesystem",
                                     "--collector.textfile", "--collector.textfile.directory=/textfile"]


# Prod backs up Redis, Qdrant and MinIO hourly and everything daily (components/backups/backups.py):
# each service is stale after its own period plus the time a run may take.
@pytest.mark.parametrize("schedule, stale_after", [
    ("hourly+daily", {"minio|offsite-minio|offsite-qdrant|offsite-redis|qdrant|redis": 4500,
                      "offsite-postgres|postgres": 93600}),
    ("daily", {"minio|offsite-minio|offsite-postgres|offsite-qdrant|offsite-redis|postgres|qdrant|redis": 93600}),
    ("none", None),
])
def test_backup_staleness_follows_each_services_schedule(schedule, stale_after):
    run = ok("prod", {**PROD, "backups": {"schedule": schedule}})
    files = uploads(run, "prometheus")
    backups = files.get(f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/backups.yml")
    # WAL archiving runs whatever the schedule, and is watched.
    assert f"{mc.CONFIG_DIR}/{mc.RULES_DIR}/wal_archiving.yml" in files
    if stale_after is None:
        assert backups is None
        return
    rules = yaml.safe_load(content(backups))["groups"][0]["rules"]
    stale = {re.search(r'service=~"([^"]+)"', r["expr"])[1]: int(r["expr"].rsplit("> ", 1)[1])
             for r in rules if r["alert"] == "BackupStale"}
    assert stale == stale_after


def test_receivers_come_from_config_and_secrets_stay_secret():
    webhook, password = "https://hooks.example.org/T0/B0/secret-part", "smtp-secret-value"
    run = ok("prod", {**PROD, "smtp": SMTP, "monitoring": {"alertEmail": ["ops@example.org", "oncall@example.org"]}},
             secret_config={"alertWebhookUrl": webhook, "smtpPassword": password})
    files = uploads(run, "alertmanager")
    config_upload = files[f"{am.CONFIG_DIR}/{am.CONFIG_FILE}"]
    assert harness.is_secret(config_upload["content"]), "the webhook URL is in it"
    config = yaml.safe_load(content(config_upload))
    assert config["global"]["smtp_smarthost"] == "smtp.example.org:587"
    assert config["global"]["smtp_auth_password_file"] == am.SMTP_PASSWORD_FILE
    (receiver,) = config["receivers"]
    assert [e["to"] for e in receiver["email_configs"]] == ["ops@example.org", "oncall@example.org"]
    assert [w["url"] for w in receiver["webhook_configs"]] == [webhook]
    assert harness.is_secret(files[am.SMTP_PASSWORD_FILE]["content"])
    assert content(files[am.SMTP_PASSWORD_FILE]) == password
    for r in run.resources:
        for text in harness.plaintext_strings(r.inputs):
            assert webhook not in text and password not in text, (r.type, r.name)


def test_committed_prod_mails_its_alerts_to_on_call():
    run = ok("prod", PROD)
    config = yaml.safe_load(content(uploads(run, "alertmanager")[f"{am.CONFIG_DIR}/{am.CONFIG_FILE}"]))
    (receiver,) = config["receivers"]
    assert [e["to"] for e in receiver["email_configs"]] == PROD["monitoring"]["alertEmail"]
    assert config["global"]["smtp_smarthost"] == f"{PROD['smtp']['host']}:{PROD['smtp']['port']}"


def test_without_a_receiver_alertmanager_still_runs_with_an_empty_one():
    # Only where the off-site copies are not in S3 (settings/load.py).
    without = {k: v for k, v in PROD.items() if k not in ("smtp", "monitoring")}
    run = ok("prod", {**without, "backups": {"offsite": "minio"}})
    config = yaml.safe_load(content(uploads(run, "alertmanager")[f"{am.CONFIG_DIR}/{am.CONFIG_FILE}"]))
    assert config["receivers"] == [{"name": am.RECEIVER}] and "global" not in config


def test_alert_email_without_smtp_is_refused():
    without_smtp = {k: v for k, v in PROD.items() if k != "smtp"}
    result = harness.run("prod", {**without_smtp, "monitoring": {"alertEmail": ["ops@example.org"]}})
    assert "shia-chatbot:monitoring.alertEmail" in str(result.error) and "smtp" in str(result.error)
    result = harness.run("prod", {**PROD, "monitoring": {"alertEmail": ["not-an-address"]}})
    assert 'shia-chatbot:monitoring.alertEmail[0] = "not-an-address": must be an e-mail address' in str(result.error)


def test_the_webhook_url_must_be_set_as_a_secret():
    result = harness.run("prod", PROD, secret_config={"alertWebhookUrl": "https://hooks.example.org/x"},
                         plaintext_secrets=True)
    assert "alertWebhookUrl is stored in plaintext" in str(result.error)
