"""The Prometheus and Alertmanager files the program renders, checked by the real tools.

The files are taken from the program's own registrations under the mocks (the
Prometheus container's uploads and the targets steps' stdin), laid out as in
the container, and given to Debian's promtool (2.42) and amtool (0.25). The
alert rules' unit tests (tests/promtool/*_test.yml) run in promtool, and every
rendered alert must have a firing, a quiet and an absent-series case there.
The runtime swarm form (DNS discovery and the tasks rules, not yet deployed by
the program) is rendered from its specs and held to the same tools; its rules'
unit tests are tests/promtool/swarm/*_test.yml.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from datetime import timedelta
from typing import Iterator
from pathlib import Path

import pytest
import yaml

import harness
import prometheus_dns_lab
from components.monitoring import alertmanager as am
from components.monitoring import prometheus as mc
from components.monitoring.rules import ABSENT, RuleGroup, RulesSpec, backup_stale_after
from settings.naming import Naming
from real_tools import need

UNIT_TESTS = sorted((Path(__file__).parent / "promtool").glob("*_test.yml"))
# The spec the unit tests' numbers are written for (see alerts_test.yml's header).
UNIT_SPEC = RulesSpec(environment="test",
                      memory_limit_mb={"app": 1024, "redis": 512, "qdrant": 2048, "prometheus": 512},
                      # The cases' figures: PostgreSQL on the hourly threshold, the rest daily.
                      # Which service is hourly is the schedule's business (test_monitoring_stacks);
                      # the rules' logic is the same for any of them.
                      backup_stale_after={
                          **dict.fromkeys(("postgres", "offsite-postgres"), timedelta(minutes=75)),
                          **dict.fromkeys(("redis", "qdrant", "minio", "offsite-redis", "offsite-qdrant",
                                           "offsite-minio"), timedelta(hours=26))},
                      wal_archiving=True)
RULE_FILES = {"availability.yml", "app.yml", "resources.yml", "backups.yml", "wal_archiving.yml"}
# runtime swarm: the same, with slots blue (2 replicas) and green (1) deployed;
# prod, whose names the cases' descriptions show.
SWARM_UNIT_SPEC = dataclasses.replace(UNIT_SPEC, environment="prod", slot_replicas={"blue": 2, "green": 1})
SWARM_UNIT_TESTS = sorted((Path(__file__).parent / "promtool" / "swarm").glob("*_test.yml"))
SWARM_GROUPS = [g for g in SWARM_UNIT_SPEC.groups() if g.name not in {d.name for d in UNIT_SPEC.groups()}]
CASE_NAME = re.compile(r"(?P<alert>[A-Za-z]+) (?P<kind>fires|quiet|absent): .+")
MONITORED = ("stage", "prod")
WITH_RECEIVERS = {"smtp": {"host": "smtp.example.org", "user": "alerts", "fromEmail": "alerts@example.org"},
                  "monitoring": {"alertEmail": ["ops@example.org"]}}


def run_tool(*args: str) -> str:
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def runs() -> dict[str, harness.Run]:
    out = {stack: harness.run(stack) for stack in MONITORED}
    out["prod-receivers"] = harness.run(
        "prod", {**harness.stack_config("prod"), **WITH_RECEIVERS},
        secret_config={"smtpPassword": "smtp-pass", "alertWebhookUrl": "https://hooks.example.org/T0/B0"})
    for run in out.values():
        assert run.error is None, run.error
    return out


def uploads(run: harness.Run, container: str, root: str) -> dict[str, str]:
    """Path below `root` -> content, as uploaded into the container."""
    return {str(Path(u["file"]).relative_to(root)): u["content"]
            for u in run.containers()[f"{run.stack}-{container}"].plain("uploads")}


def _write(files: dict[str, str], into: Path) -> Path:
    """Lays out Prometheus's config directory: path below it -> content."""
    for relative, content in files.items():
        (into / relative).parent.mkdir(parents=True, exist_ok=True)
        (into / relative).write_text(content)
    return into / mc.CONFIG_FILE


def prometheus_tree(run: harness.Run, into: Path) -> Path:
    files = uploads(run, "prometheus", mc.CONFIG_DIR)
    prefix = f"{run.stack}-prometheus-targets-"
    for step in run.resources:
        if step.name.startswith(prefix):
            files[mc.targets_file(step.name[len(prefix):])] = step.plain("stdin")
    return _write(files, into)


def swarm_tree(into: Path) -> Path:
    """runtime swarm: prod's Prometheus tree with slots blue and green deployed, green
    live: no targets files; the credentials as placeholders."""
    n = Naming("prod")
    spec = mc.PrometheusSpec(naming=n, flower_user=n.flower_user, alerting=True,
                             swarm=mc.SwarmSlots(slots=("blue", "green"), active_slot="green"))
    assert not spec.reads_targets_files
    return _write({mc.CONFIG_FILE: spec.render(), mc.QDRANT_API_KEY_FILE: "key\n",
                   mc.FLOWER_PASSWORD_FILE: "password\n",
                   **{f"{mc.RULES_DIR}/{name}": text for name, text in SWARM_UNIT_SPEC.files().items()}}, into)


def test_the_unit_tests_are_written_for_prods_services_and_thresholds():
    prod = backup_stale_after("hourly+daily")
    assert set(UNIT_SPEC.backup_stale_after) == set(prod)
    assert set(UNIT_SPEC.backup_stale_after.values()) == set(prod.values())


@pytest.mark.parametrize("stack", MONITORED)
def test_promtool_accepts_each_stacks_config_with_its_rules_and_targets(runs, stack, tmp_path):
    promtool = need("promtool")
    output = run_tool(promtool, "check", "config", str(prometheus_tree(runs[stack], tmp_path)))
    assert "is valid prometheus config file syntax" in output
    rule_files = sorted((tmp_path / mc.RULES_DIR).glob("*.yml"))
    # Both page: each keeps off-site copies (settings/load.py).
    assert f"SUCCESS: {len(rule_files)} rule files found" in output
    assert {f.name for f in rule_files} == RULE_FILES
    # The targets files exist, so promtool read them too instead of warning.
    assert "WARNING" not in output and "does not exist" not in output


def test_promtool_accepts_the_swarm_config_with_its_rules(tmp_path):
    promtool = need("promtool")
    output = run_tool(promtool, "check", "config", str(swarm_tree(tmp_path)))
    assert "is valid prometheus config file syntax" in output
    assert f"SUCCESS: {len(RULE_FILES) + 1} rule files found" in output
    assert re.search(r"Checking .*/tasks\.yml\n  SUCCESS: 4 rules found", output), output
    assert "WARNING" not in output


def test_a_real_prometheus_finds_the_tasks_by_dns_and_counts_them_against_the_replicas(tmp_path):
    """The swarm tree in a real Prometheus (tests/prometheus_dns_lab.py), its scrapes and
    DNS refreshes every second and the tasks rules' `for` 0: idle blue has two tasks in
    DNS, one of them gone; live green (1 replica) has none."""
    need("prometheus")
    if os.geteuid() != 0:
        pytest.skip("the DNS lab needs root for its mount and network namespaces")
    config = swarm_tree(tmp_path / "conf")
    fast = yaml.safe_load(config.read_text())
    fast["global"].update(scrape_interval="1s", evaluation_interval="1s")
    for job in fast["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            sd["refresh_interval"] = "1s"
    config.write_text(yaml.safe_dump(fast))
    tasks_rules = config.parent / mc.RULES_DIR / "tasks.yml"
    tasks_rules.write_text(tasks_rules.read_text().replace("for: 5m", "for: 0s"))
    seen = prometheus_dns_lab.run(config.parent, tasks={
        "tasks.prod-app-blue": ["127.0.0.11", "127.0.0.12"], "tasks.prod-flower": ["127.0.0.13"],
        "tasks.prod-node-exporter": ["127.0.0.14", "127.0.0.15"],
    }, answering=["127.0.0.11:8000", "127.0.0.13:5555", "127.0.0.14:9100", "127.0.0.15:9100"])
    found = {(t["labels"].pop("job"), t["labels"].pop("instance")): (t["labels"], t["health"])
             for t in seen["targets"] if t["labels"]["job"] in ("app", "celery", "node")}
    blue = {"container": "prod-app-blue", "slot": "blue", "active": "false"}
    assert found == {
        ("app", "127.0.0.11:8000"): (blue, "up"), ("app", "127.0.0.12:8000"): (blue, "down"),
        ("celery", "127.0.0.13:5555"): ({"container": "prod-worker-green", "slot": "green"}, "up"),
        ("node", "127.0.0.14:9100"): ({"container": "prod-node-exporter"}, "up"),
        ("node", "127.0.0.15:9100"): ({"container": "prod-node-exporter"}, "up"),
    }
    alerts = {(a["labels"]["slot"], a["labels"].get("data")): (a["state"], float(a["value"]))
              for a in seen["alerts"] if a["labels"]["alertname"] == "SlotTasksBelowReplicas"}
    assert alerts == {("blue", None): ("firing", 1.0), ("green", "absent"): ("firing", 1.0)}


def test_promtool_accepts_every_rule_file(runs, tmp_path):
    promtool = need("promtool")
    prometheus_tree(runs["prod"], tmp_path)
    rule_files = sorted(str(f) for f in (tmp_path / mc.RULES_DIR).glob("*.yml"))
    output = run_tool(promtool, "check", "rules", *rule_files)
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", output)]
    assert len(counts) == len(rule_files) == len(RULE_FILES)
    # 24: the daily and hourly backup cadences each get their own BackupStale/BackupMissing,
    # and every alert that reports a figure has its twin for absent series.
    assert sum(counts) == sum(len(g.rules) for g in UNIT_SPEC.groups()) == 24


@pytest.mark.parametrize("spec, unit_tests, files", [(UNIT_SPEC, UNIT_TESTS, 2), (SWARM_UNIT_SPEC, SWARM_UNIT_TESTS, 1)],
                         ids=["docker", "swarm"])
def test_promtool_rule_unit_tests_pass(tmp_path, spec, unit_tests, files):
    promtool = need("promtool")
    for name, text in spec.files().items():
        (tmp_path / name).write_text(text)
    for tests in unit_tests:
        shutil.copy(tests, tmp_path / tests.name)
    output = run_tool(promtool, "test", "rules", *(str(tmp_path / t.name) for t in unit_tests))
    assert output.count("SUCCESS") == len(unit_tests) == files


def _seconds(duration: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def _cases(spec: RulesSpec, paths: list[Path]) -> Iterator[tuple[str, str, dict]]:
    """(alert, kind, case) of every unit test case, named "<Alert> <kind>: ..."."""
    for path in paths:
        tests = yaml.safe_load(path.read_text())
        assert set(tests["rule_files"]) <= set(spec.files()), path.name
        for case in tests["tests"]:
            name = CASE_NAME.fullmatch(case["name"])
            assert name, f"{path.name}: {case['name']!r} is not named '<Alert> fires|quiet|absent: …'"
            yield name["alert"], name["kind"], case


SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!=|=)\s*"([^"]*)"')


def _selectors(expr: str) -> set[str]:
    """The series selectors of an expression (every selector here has matchers)."""
    return {m[0] for m in SELECTOR.finditer(expr)}


def _matches(selector: str, series: str) -> bool:
    name, matchers = SELECTOR.fullmatch(selector).groups()
    series_name, labels = SELECTOR.fullmatch(series).groups()
    values = {k: v for k, _, v in MATCHER.findall(labels)}
    ok = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "=~": lambda a, b: re.fullmatch(b, a) is not None}
    return name == series_name and all(ok[op](values.get(k, ""), v) for k, op, v in MATCHER.findall(matchers))


def _unmatched(selectors: set[str], case: dict) -> set[str]:
    """The selectors no live input series of a case matches (a series that goes stale is not live)."""
    live = [s["series"] for s in case["input_series"] if "stale" not in str(s["values"])]
    return {sel for sel in selectors if not any(_matches(sel, series) for series in live)}


def _checks(case: dict, alert: str) -> list[dict]:
    checks = [c for c in case["alert_rule_test"] if c["alertname"] == alert]
    assert checks, f"{case['name']}: checks no {alert}"
    return checks


def _assert_three_cases_each(groups: list[RuleGroup], spec: RulesSpec, paths: list[Path]) -> dict[str, list]:
    """Every alert of `groups` has a firing, a quiet and an absent-series case in
    `paths`, which test `spec`'s rule files; alert -> its rules."""
    rules: dict[str, list] = {}
    for group in groups:
        for rule in group.rules:
            rules.setdefault(rule.alert, []).append(rule)
    reads = {alert: set().union(*(_selectors(r.expr) for r in of)) for alert, of in rules.items()}
    longest_for = {alert: max(_seconds(r.for_) for r in of) for alert, of in rules.items()}
    seen: dict[str, set[str]] = {alert: set() for alert in rules}
    for alert, kind, case in _cases(spec, paths):
        assert alert in rules, f"{case['name']}: no such alert is rendered"
        checks, unmatched = _checks(case, alert), _unmatched(reads[alert], case)
        for check in checks:
            for fired in check["exp_alerts"]:
                assert fired["exp_annotations"]["summary"] and fired["exp_labels"]["severity"], case["name"]
        if kind == "fires":
            assert any(c["exp_alerts"] for c in checks), f"{case['name']}: {alert} never expected to fire"
        elif kind == "quiet":
            # Quiet with what it reads present, looked at after its longest `for` (not merely pending).
            assert not unmatched, f"{case['name']}: no series for {unmatched}"
            assert all(not c["exp_alerts"] for c in checks), case["name"]
            assert max(_seconds(c["eval_time"]) for c in checks) > longest_for[alert], (
                f"{case['name']}: must look after {alert}'s `for` ({longest_for[alert]}s)")
        else:
            # A series it reads never there, or gone stale (a failed scrape, a vanished file), and it fires.
            assert unmatched, f"{case['name']}: every series {alert} reads is there"
            assert any(c["exp_alerts"] for c in checks), f"{case['name']}: {alert} must fire"
        seen[alert].add(kind)
    missing = {alert: sorted({"fires", "quiet", "absent"} - kinds) for alert, kinds in seen.items()
               if kinds != {"fires", "quiet", "absent"}}
    assert not missing, f"alerts without these unit test cases: {missing}"
    return rules


def test_every_rendered_alert_has_a_firing_a_quiet_and_an_absent_series_case(runs):
    """Kind 4 of issue 12: every alert fires when its series are absent, and no rule
    can skip a case: the alerts are enumerated from what the program renders."""
    rules = _assert_three_cases_each(UNIT_SPEC.groups(), UNIT_SPEC, UNIT_TESTS)
    # What the stacks deploy is exactly what the unit tests cover.
    for stack in MONITORED:
        deployed = {rule["alert"] for name, text in uploads(runs[stack], "prometheus", mc.CONFIG_DIR).items()
                    if name.startswith(mc.RULES_DIR) for group in yaml.safe_load(text)["groups"]
                    for rule in group["rules"]}
        assert deployed == set(rules), stack


def test_every_swarm_alert_has_a_firing_a_quiet_and_an_absent_series_case():
    """The runtime swarm rules, held to the same three cases."""
    rules = _assert_three_cases_each(SWARM_GROUPS, SWARM_UNIT_SPEC, SWARM_UNIT_TESTS)
    assert set(rules) == {"SlotTasksBelowReplicas"}
    twins = [r for r in rules["SlotTasksBelowReplicas"] if r.labels.get("data") == ABSENT["data"]]
    assert [r.labels["slot"] for r in twins] == ["blue", "green"]
    for rule in twins:
        assert re.fullmatch(r"absent\(.+\)", rule.expr), rule.labels
        assert "$value" not in rule.annotations["description"] + rule.annotations["summary"], rule.labels


def test_the_twins_for_absent_series_say_so_and_show_no_value():
    """An alert that reports a figure fires on absent series through a rule of the same
    name labelled data="absent": absent() has no figure to show, only labels."""
    twins = [r for g in UNIT_SPEC.groups() for r in g.rules if r.labels.get("data") == ABSENT["data"]]
    assert {r.alert for r in twins} == {"HighErrorRate", "HighMemoryUsage", "DataDiskAlmostFull", "DataDiskFillingUp",
                                        "PostgresWalArchiveFailing", "PostgresWalArchiveBacklog"}
    for rule in twins:
        assert re.fullmatch(r"absent\(.+\)", rule.expr), rule.alert
        assert "$value" not in rule.annotations["description"] + rule.annotations["summary"], rule.alert


@pytest.mark.parametrize("variant", ["prod", "prod-receivers"])
def test_amtool_accepts_the_alertmanager_config(runs, variant, tmp_path):
    amtool = need("amtool")
    config = tmp_path / am.CONFIG_FILE
    config.write_text(uploads(runs[variant], "alertmanager", am.CONFIG_DIR)[am.CONFIG_FILE])
    output = run_tool(amtool, "check-config", str(config))
    assert "SUCCESS" in output and " - 1 receivers" in output
