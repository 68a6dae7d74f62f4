"""README, docs/ and Pulumi.yaml agree with the code and the Makefile they describe."""

from __future__ import annotations

import re
import subprocess
import typing

import pytest
import yaml

import harness
from settings import reference
from settings.defaults import defaults_for
from settings.load import ConfigError, parse
from settings.model import StackConfig
from settings.secret_names import SECRET_KEYS

ROOT = harness.ROOT
README = (ROOT / "README.md").read_text()
DOCS = {path.name: path.read_text() for path in sorted((ROOT / "docs").glob("*.md"))}
MAKEFILE = (ROOT / "Makefile").read_text()
TARGETS = set(re.findall(r"^([a-z][a-z0-9-]*):", MAKEFILE, re.M))


def test_config_reference_is_the_generated_one():
    text = DOCS["configuration.md"]
    begin, end = text.index(reference.BEGIN), text.index(reference.END)
    assert text[begin + len(reference.BEGIN):end].strip() == reference.render(), "run: make docs"


def test_reference_write_replaces_only_between_the_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"before\n{reference.BEGIN}\nstale\n{reference.END}\nafter\n")
    reference.write(page)
    assert page.read_text() == f"before\n{reference.BEGIN}\n{reference.render()}\n{reference.END}\nafter\n"


def _stage(**changes) -> dict:
    raw = {"environment": "stage", "dockerHost": "ssh://deploy@stage.example.org",
           "dockerHostKey": harness.stack_config("stage")["dockerHostKey"], "domain": "stage.example.org",
           "activeSlot": "blue", "slots": {"blue": {"image": "ghcr.io/shia-chatbot/app:1.0.0", "replicas": 2}},
           # Its off-site copies in S3 must page someone (settings/load.py).
           "smtp": {"host": "smtp.example.org", "user": "alerts", "fromEmail": "alerts@example.org"},
           "monitoring": {"alertEmail": ["ops@example.org"]}}
    raw.update(changes)
    return {k: v for k, v in raw.items() if v is not None}


def _refused(raw: dict, stack: str) -> str:
    with pytest.raises(ConfigError) as refused:
        parse(raw, stack)
    return str(refused.value)


# What each CONDITIONS cell claims, proven against the loader.
def test_domain_is_required_outside_dev_and_with_tls_as_the_reference_says():
    assert reference.CONDITIONS["domain"][1:] == ("**required**", "**required**")
    assert "shia-chatbot:domain is required in stage" in _refused(_stage(domain=None), "stage")
    prod = {**_stage(domain=None), "environment": "prod"}
    assert "shia-chatbot:domain is required in prod" in _refused(prod, "prod")
    dev = {"environment": "dev", "slots": {"blue": {"image": "ghcr.io/shia-chatbot/app:1.0.0", "replicas": 1}}}
    parse(dev, "dev")
    assert "shia-chatbot:domain is required" in _refused({**dev, "tls": {"enabled": True}}, "dev")


def test_docker_host_key_is_required_for_ssh_hosts_as_the_reference_says():
    assert "shia-chatbot:dockerHostKey is required for an ssh:// dockerHost" in _refused(
        _stage(dockerHostKey=None), "stage")
    parse(_stage(dockerHostKey=None, dockerHost="unix:///var/run/docker.sock"), "stage")


def test_nodes_are_required_with_the_swarm_runtime_as_the_reference_says():
    assert all("**required** with `runtime` `swarm`" in cell for cell in reference.CONDITIONS["nodes"])
    assert "shia-chatbot:nodes is required with shia-chatbot:runtime" in _refused(_stage(runtime="swarm"), "stage")
    host, key = _stage()["dockerHost"], _stage()["dockerHostKey"]
    one_app = {"m1": {"dockerHost": host, "hostKey": key, "roles": ["manager", "edge", "data"]},
               "a1": {"dockerHost": "ssh://deploy@a1.example.org", "hostKey": key, "roles": ["app"]}}
    parse(_stage(runtime="swarm", nodes=one_app), "stage")
    assert "at least two app nodes" in reference.CONDITIONS["nodes"][2]
    prod = {**_stage(runtime="swarm", nodes=one_app), "environment": "prod"}
    assert "prod needs at least 2" in _refused(prod, "prod")
    assert reference.CONDITIONS["nodes.<name>.hostKey"] == reference.CONDITIONS["dockerHostKey"]


def test_flower_cannot_be_published_on_a_swarm_as_the_reference_says():
    assert "`false` with `runtime` `swarm`" in reference.CONDITIONS["publishFlower"][0]
    host, key = _stage()["dockerHost"], _stage()["dockerHostKey"]
    nodes = {"m1": {"dockerHost": host, "hostKey": key, "roles": ["manager", "edge", "data", "app"]}}
    parse(_stage(runtime="swarm", nodes=nodes), "stage")
    assert "shia-chatbot:publishFlower = true binds Flower to 127.0.0.1" in _refused(
        _stage(runtime="swarm", nodes=nodes, publishFlower=True), "stage")


def test_smtp_keys_are_required_only_once_smtp_is_set():
    rows = {line.split("|")[1].strip(): line for line in reference.render().splitlines()[2:]}
    assert "required in `smtp`" in rows["`smtp.host`"] and "**required**" not in rows["`smtp.host`"]
    parse(_stage(), "stage")
    assert "shia-chatbot:smtp.host is required but not set" in _refused(_stage(smtp={"user": "a@b.org",
                                                                                      "fromEmail": "a@b.org"}), "stage")


def test_pulumi_yaml_declares_only_real_keys_with_their_types():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    assert project["name"] == "shia-chatbot"
    assert project["runtime"] == {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}
    fields = {(f.alias or n): f for n, f in StackConfig.model_fields.items()}
    python_type = {"string": str, "integer": int, "boolean": bool}
    for full_key, declaration in project["config"].items():
        key = full_key.split(":", 1)[1]
        # Pulumi's project schema allows only these types.
        assert declaration["type"] in ("string", "integer", "boolean", "array"), full_key
        if key in SECRET_KEYS:
            assert declaration.get("secret") is True, full_key
            continue
        assert key in fields, f"{full_key} is declared but the program has no such key"
        annotation = fields[key].annotation
        allowed = {a for a in (annotation, *typing.get_args(annotation)) if isinstance(a, type)}
        if typing.get_origin(annotation) is typing.Literal or typing.Literal in (
                typing.get_origin(a) for a in typing.get_args(annotation)):
            allowed.add(str)
        assert python_type[declaration["type"]] in allowed, f"{full_key}: {declaration['type']} vs {annotation}"
        if "default" in declaration:
            assert declaration["default"] == defaults_for("prod")[key], full_key
    # The CLI requires a declared key without a default on every stack: each
    # committed stack must set it, or no `pulumi up` would even start.
    for stack in harness.STACKS:
        harness.apply_project_config(stack, harness.stack_config(stack))


def test_required_pulumi_version_is_what_the_prerequisites_check_reads():
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    minimum = project["requiredPulumiVersion"]
    assert re.fullmatch(r">=\d+\.\d+\.\d+", minimum)
    shown = minimum.removeprefix(">=").rsplit(".", 1)[0]  # README states major.minor
    assert f"{shown} or newer" in README


def test_a_declared_key_without_default_is_required_as_the_cli_requires_it():
    with pytest.raises(harness.StackFileError, match=r"^Pulumi\.prod\.yaml: shia-chatbot:activeSlot is required but "
                                                    r"not set \(Pulumi\.yaml declares it without a default"):
        harness.run("prod", {k: v for k, v in harness.stack_config("prod").items() if k != "activeSlot"})


def test_readme_is_short_and_keeps_the_two_commands():
    assert len(README.splitlines()) <= 200
    assert "export PULUMI_CONFIG_PASSPHRASE=change-me && make dev-up" in README
    assert "\nmake test\n" in README
    assert "make test" in (ROOT / ".ci/run").read_text()


@pytest.mark.parametrize("name", ["README.md", *sorted(DOCS)])
def test_every_make_command_shown_is_a_target(name):
    text = README if name == "README.md" else DOCS[name]
    commands = set(re.findall(r"(?:^|`|&& )make ([a-z][a-z0-9-]*)", text, re.M))
    assert commands <= TARGETS, commands - TARGETS


def test_the_docs_show_the_day_two_commands():
    shown = set(re.findall(r"(?:^|`|&& )make ([a-z][a-z0-9-]*)", README + "".join(DOCS.values()), re.M))
    assert {"dev-up", "test", "preview", "policy", "release", "switch", "rollback", "backup", "restore",
            "promote", "up", "help", "docs"} <= shown


@pytest.mark.parametrize("name", ["README.md", *sorted(DOCS)])
def test_relative_links_resolve(name):
    base = ROOT if name == "README.md" else ROOT / "docs"
    text = README if name == "README.md" else DOCS[name]
    for target, anchor in re.findall(r"\]\((?!https?:|mailto:)([^)#\s]*)(?:#([^)\s]+))?\)", text):
        path = (base / target) if target else (base / name)
        assert path.exists(), f"{name}: link to {target} goes nowhere"
        if anchor:
            headings = re.findall(r"^#+ (.+)$", path.read_text(), re.M)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{name}: no heading #{anchor} in {target or name}"


def test_every_doc_is_linked_from_the_readme():
    for name in DOCS:
        assert f"](docs/{name})" in README, f"docs/{name} is not in README's documentation table"


def test_make_help_lists_every_target_with_one_line():
    result = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                            check=True)
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert listed == TARGETS, TARGETS ^ listed
    assert all(len(line.split(None, 1)) == 2 for line in result.stdout.splitlines() if line.strip())
