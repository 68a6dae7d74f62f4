"""The Prometheus and Alertmanager files the program renders, checked by the real tools.

The files are taken from the program's own registrations under the mocks (the
Prometheus container's uploads and the targets steps' stdin), laid out as in
the container, and given to Debian's promtool (2.42) and amtool (0.25).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

import harness
from components.monitoring import alertmanager as am
from components.monitoring import prometheus as mc
from components.monitoring.rules import RulesSpec
from real_tools import need

UNIT_TESTS = Path(__file__).parent / "promtool" / "alerts_test.yml"
# The spec the unit tests' numbers are written for (see the file's header).
UNIT_SPEC = RulesSpec(environment="test",
                      memory_limit_mb={"app": 1024, "redis": 512, "qdrant": 2048, "prometheus": 512},
                      backup_stale_after={"postgres": timedelta(minutes=75), "redis": timedelta(hours=26),
                                          "qdrant": timedelta(hours=26), "minio": timedelta(hours=26)})
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


def prometheus_tree(run: harness.Run, into: Path) -> Path:
    files = uploads(run, "prometheus", mc.CONFIG_DIR)
    prefix = f"{run.stack}-prometheus-targets-"
    for step in run.resources:
        if step.name.startswith(prefix):
            files[mc.targets_file(step.name[len(prefix):])] = step.plain("stdin")
    for relative, content in files.items():
        (into / relative).parent.mkdir(parents=True, exist_ok=True)
        (into / relative).write_text(content)
    return into / mc.CONFIG_FILE


@pytest.mark.parametrize("stack", MONITORED)
def test_promtool_accepts_each_stacks_config_with_its_rules_and_targets(runs, stack, tmp_path):
    promtool = need("promtool")
    output = run_tool(promtool, "check", "config", str(prometheus_tree(runs[stack], tmp_path)))
    assert "is valid prometheus config file syntax" in output
    rule_files = sorted((tmp_path / mc.RULES_DIR).glob("*.yml"))
    if stack == "prod":
        assert f"SUCCESS: {len(rule_files)} rule files found" in output
        assert {f.name for f in rule_files} == {"availability.yml", "app.yml", "resources.yml", "backups.yml"}
    else:
        assert rule_files == []
    # The targets files exist, so promtool read them too instead of warning.
    assert "WARNING" not in output and "does not exist" not in output


def test_promtool_accepts_every_rule_file(runs, tmp_path):
    promtool = need("promtool")
    prometheus_tree(runs["prod"], tmp_path)
    rule_files = sorted(str(f) for f in (tmp_path / mc.RULES_DIR).glob("*.yml"))
    output = run_tool(promtool, "check", "rules", *rule_files)
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", output)]
    assert len(counts) == len(rule_files) == 4
    # 15: the daily and hourly backup cadences each get their own BackupStale/BackupMissing.
    assert sum(counts) == sum(len(g.rules) for g in UNIT_SPEC.groups()) == 15


def test_promtool_rule_unit_tests_pass(tmp_path):
    promtool = need("promtool")
    for name, text in UNIT_SPEC.files().items():
        (tmp_path / name).write_text(text)
    shutil.copy(UNIT_TESTS, tmp_path / UNIT_TESTS.name)
    assert "SUCCESS" in run_tool(promtool, "test", "rules", str(tmp_path / UNIT_TESTS.name))


def _seconds(duration: str) -> int:
    total = 0
    for amount, unit in re.findall(r"(\d+)([hms])", duration):
        total += int(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


def test_every_alert_has_a_firing_and_a_quiet_unit_test_after_its_for(runs):
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    assert tests["rule_files"] == list(UNIT_SPEC.files())
    fires: dict[str, int] = {}
    quiet: dict[str, int] = {}
    for case in tests["tests"]:
        for check in case["alert_rule_test"]:
            seen = fires if check["exp_alerts"] else quiet
            name, at = check["alertname"], _seconds(check["eval_time"])
            seen[name] = max(seen.get(name, 0), at)
            for alert in check["exp_alerts"]:
                assert alert["exp_annotations"]["summary"] and alert["exp_labels"]["severity"], name
    longest_for: dict[str, int] = {}
    for group in UNIT_SPEC.groups():
        for rule in group.rules:
            longest_for[rule.alert] = max(longest_for.get(rule.alert, 0), _seconds(rule.for_))
    assert set(fires) == set(quiet) == set(longest_for)
    for name, for_ in longest_for.items():
        assert quiet[name] > for_, f"{name}: its quiet test must look after its `for` ({for_}s)"
    # What prod deploys is exactly what the unit tests cover.
    prod_rules = uploads(runs["prod"], "prometheus", mc.CONFIG_DIR)
    prod_alerts = {rule["alert"] for name, text in prod_rules.items() if name.startswith(mc.RULES_DIR)
                   for group in yaml.safe_load(text)["groups"] for rule in group["rules"]}
    assert prod_alerts == set(longest_for)


@pytest.mark.parametrize("variant", ["prod", "prod-receivers"])
def test_amtool_accepts_the_alertmanager_config(runs, variant, tmp_path):
    amtool = need("amtool")
    config = tmp_path / am.CONFIG_FILE
    config.write_text(uploads(runs[variant], "alertmanager", am.CONFIG_DIR)[am.CONFIG_FILE])
    output = run_tool(amtool, "check-config", str(config))
    assert "SUCCESS" in output and " - 1 receivers" in output
