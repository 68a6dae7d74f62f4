"""The offline policy gate end to end: the real program under the SDK mocks,
the real pack process started as the engine starts it, the analyzer protocol.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from google.protobuf import json_format

import harness

ROOT = Path(__file__).resolve().parents[1]
for folder in ("tools", "policies"):
    sys.path.insert(0, str(ROOT / folder))

from policy_gate import PACK_DIR, main, pulumi_config, render, run_gate  # noqa: E402
from policy_pack_client import LEVEL_NAMES, PolicyPackError, PolicyPackProcess  # noqa: E402
from policy_fixtures import generated  # noqa: E402
from shia_policies.catalog import RULES, thresholds  # noqa: E402


@pytest.fixture(scope="session")
def committed() -> Callable[..., Any]:
    """The gate over a committed stack, run once per session and mode. (Each run
    starts its own pack: like the engine, the pack reads the stack's identity and
    config when it starts. It boots while the program runs, so it costs ~0.3 s.)"""
    results: dict[tuple[str, bool], Any] = {}

    def result(stack: str, first_preview: bool = False):
        if (stack, first_preview) not in results:
            results[stack, first_preview] = run_gate(stack, first_preview=first_preview)
        return results[stack, first_preview]
    return result


@pytest.mark.parametrize("first_preview", [False, True], ids=["preview", "first-preview"])
@pytest.mark.parametrize("stack", harness.STACKS)
def test_committed_stacks_have_no_mandatory_violation(committed, stack, first_preview):
    result = committed(stack, first_preview)
    assert result.program_error is None
    assert result.at("mandatory") == [], render(result)
    assert result.exit_code == 0
    if not first_preview:
        assert result.at("advisory") == [], render(result)


def test_first_preview_defers_only_what_depends_on_generated_secrets(committed):
    advisories = committed("prod", first_preview=True).at("advisory")
    assert {d.policy for d in advisories} == {"service-authentication"}
    assert all("can't be known during preview" in d.message for d in advisories)


def with_settings(**changes: Any) -> Callable[[dict], dict]:
    """A config change: `key=value` sets a top-level key, `parent__key=value` a nested one."""
    def apply(settings: dict) -> dict:
        settings = copy.deepcopy(settings)
        for path, value in changes.items():
            *parents, leaf = path.split("__")
            target = settings
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = value
        return settings
    return apply


# (issue rule, case, config change, expected policy or None, program message, gate options)
CORPUS = [
    (1, "debug on", with_settings(app__debug=True), "debug-disabled", None, {}),
    (1, "debug on, first preview", with_settings(app__debug=True), "debug-disabled", None, {"first_preview": True}),
    (2, "INFO logs", with_settings(app__logLevel="INFO"), "log-level-strict", None, {}),
    (3, "app image from another registry", with_settings(slots={"blue": {
        "image": "docker.io/someone/app:1.0.0", "replicas": 2}}), "images-pinned", None, {}),
    (3, "nginx:latest", with_settings(images__nginx="nginx:latest"), None, "must carry a tag other than 'latest'", {}),
    (4, "environment of another stack", with_settings(environment="stage"), None,
     "stack 'prod' must be named 'stage' or start with 'stage-'", {}),
    (5, "HTTP on 8080", with_settings(httpPort=8080), "published-ports", None, {}),
    (6, "Flower published", with_settings(publishFlower=True), "published-ports", None, {}),
    (8, "memory under the floor", with_settings(memoryMb__app=32), None, "below the 64 MiB floor", {}),
    (9, "webroot over the Docker socket's directory", with_settings(tls__webrootDir="/var/run"),
     "container-hardening", None, {}),
    # The program refuses a wildcard outside dev; the policy stays behind it (tests/test_policy_rules.py).
    (12, "CORS wildcard", with_settings(app__corsOrigins=["*"]), None, "a wildcard is refused in prod", {}),
    (12, "CORS wildcard host", with_settings(app__corsOrigins=["https://*.example.org"]), None,
     "a wildcard is refused in prod", {"first_preview": True}),
    (13, "rate limit over the ceiling", with_settings(app__rateLimitPerMinute=600), "rate-limit-ceiling", None, {}),
    (14, "daily backups only", with_settings(backups__schedule="daily"), "backup-policy", None, {}),
    (14, "one week of backups", with_settings(backups__retentionDays=7), "backup-policy", None, {}),
    (15, "no TLS", with_settings(tls__enabled=False), "router-tls", None, {}),
    (16, "plain TCP Docker host", with_settings(dockerHost="tcp://prod.example.org:2375"), None,
     "tcp:// is refused in prod", {}),
    (17, "one replica", with_settings(slots={"blue": {"image": "ghcr.io/shia-chatbot/app:1.0.0", "replicas": 1}}),
     "blue-green-slots", None, {}),
    (17, "active slot not deployed", with_settings(activeSlot="green"), None,
     "the active slot must be one of the deployed slots", {}),
    (18, "API key in plaintext config", with_settings(), None,
     "shia-chatbot:openaiApiKey is stored in plaintext",
     {"secret_config": {"openaiApiKey": generated()}, "plaintext_secrets": True}),
]


def test_the_corpus_covers_fifteen_rules():
    assert len({rule for rule, *_ in CORPUS}) >= 15


@pytest.mark.parametrize("rule, case, change, policy, message, options", CORPUS,
                         ids=[f"{rule}-{case}" for rule, case, *_ in CORPUS])
def test_a_bad_prod_config_is_refused(committed, rule, case, change, policy, message, options):
    result = run_gate("prod", change(harness.stack_config("prod")), **options)
    assert result.exit_code != 0
    if message is not None:
        assert result.program_error is not None and message in result.program_error
        return
    assert result.program_error is None
    # Only what the bad config adds: the committed plan's own findings are not this case's.
    baseline = {(d.policy, d.urn) for d in committed("prod", options.get("first_preview", False)).at("mandatory")}
    added = {(d.policy, d.urn) for d in result.at("mandatory")} - baseline
    assert added and {p for p, _ in added} == {policy}, render(result)


def test_the_pack_describes_every_policy_with_its_level_and_config_schema():
    stage = harness.stack_config("stage")
    with PolicyPackProcess(PACK_DIR, project=harness.PROJECT, stack="stage", config=pulumi_config(stage)) as pack:
        info = pack.info()
    policies = {p.name: p for p in info.policies}
    assert info.name == "shia-chatbot" and info.supportsConfig
    assert list(policies) == [r.name for r in RULES]
    defaults = thresholds("stage")
    for rule in RULES:
        policy = policies[rule.name]
        assert LEVEL_NAMES[policy.enforcementLevel] == rule.levels.stage.value
        assert policy.description == rule.description and policy.remediation_steps == rule.remediation
        assert policy.severity != 0 and list(policy.tags) == [rule.concern]
        schema = json_format.MessageToDict(policy.configSchema.properties)
        assert {k: v["default"] for k, v in schema.items()} == defaults.get(rule.name, {})


def test_a_policy_config_file_changes_a_threshold_and_a_level(tmp_path, capsys):
    config = tmp_path / "prod.json"
    config.write_text(json.dumps({"rate-limit-ceiling": {"maxPerMinute": 30}}))
    assert main(["--stack", "prod", "--policy-config", str(config)]) == 1
    report = capsys.readouterr().out
    assert "- [mandatory]  rate-limit-ceiling  (docker:index/container:Container: prod-app-blue-1)" in report
    assert "RATE_LIMIT_PER_MINUTE=60; the ceiling in prod is 30." in report
    assert "the router allows 60 requests per minute per client; the ceiling is 30." in report

    config.write_text(json.dumps({"rate-limit-ceiling": {"enforcementLevel": "advisory", "maxPerMinute": 30}}))
    assert main(["--stack", "prod", "--policy-config", str(config)]) == 0
    assert "- [advisory]  rate-limit-ceiling  (command:remote:Command: prod-router-config)" in capsys.readouterr().out


def test_all_sets_every_level():
    result = run_gate("prod", with_settings(app__debug=True)(harness.stack_config("prod")),
                      policy_config={"all": "advisory"})
    assert result.at("mandatory") == [] and result.exit_code == 0
    assert "debug-disabled" in result.policies("advisory")


def test_an_invalid_policy_config_is_refused_like_the_engine_does():
    with pytest.raises(PolicyPackError, match=r"rate-limit-ceiling: maxPerMinute: invalid type, expected integer"):
        run_gate("dev", policy_config={"rate-limit-ceiling": {"maxPerMinute": "fast"}})
    with pytest.raises(PolicyPackError, match="'strict' is not a valid level"):
        run_gate("dev", policy_config={"debug-disabled": "strict"})


def test_the_report_reads_like_pulumi_preview():
    result = run_gate("prod", with_settings(app__debug=True)(harness.stack_config("prod")))
    text = render(result)
    assert "Policies:\n    ❌ shia-chatbot@v0.1.0 (local: policies)\n" in text
    assert ("        - [mandatory]  debug-disabled  (docker:index/container:Container: prod-app-blue-1)\n"
            f"          {next(r for r in RULES if r.name == 'debug-disabled').description}\n"
            "          DEBUG=true in prod: debug pages leak settings, SQL and stack traces to clients.\n") in text


def test_the_command_line_exit_status(tmp_path, capsys):
    assert main(["--stack", "dev", "--policy-config", str(PACK_DIR / "config" / "dev.json")]) == 0
    assert "✅ shia-chatbot@v0.1.0" in capsys.readouterr().out
    config = tmp_path / "policy.json"
    config.write_text(json.dumps({"debug-disabled": {"enforcementLevel": "banana"}}))
    assert main(["--stack", "dev", "--policy-config", str(config)]) == 2
    assert "not a valid level" in capsys.readouterr().err


def test_time_to_analyze_the_whole_prod_plan(committed, record_property):
    result = committed("prod")
    record_property("prod_resources", result.resources)
    record_property("prod_analyze_seconds", round(result.analyze_seconds, 3))
    print(f"\nprod plan: {result.resources} resources analyzed in {result.analyze_seconds:.3f}s")
    assert result.resources > 40 and result.analyze_seconds < 5


def test_docs_list_every_policy_with_its_levels():
    readme = (ROOT / "docs" / "policy-pack.md").read_text()
    for rule in RULES:
        row = f"| `{rule.name}` | {rule.levels.dev.value} | {rule.levels.stage.value} | {rule.levels.prod.value} |"
        assert row in readme, row


def test_the_report_names_the_pack_with_its_manifest_version_only(committed):
    report = render(committed("prod", first_preview=True))
    assert "can't run policy" in report  # the SDK's wording, which carries its own "0.0.1"
    versions = set(re.findall(r"shia-chatbot@v([0-9.]+)", report))
    assert versions == {yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())["version"]}
