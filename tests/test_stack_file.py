"""Stack files read as the Pulumi CLI reads them (tools/stack_file.py), and the
gate run on them as `make policy` runs it: one line and exit 2 for a file it
cannot use, encrypted values taken as set, secret and unknown.

The gate runs as a subprocess from a copy of the project (tools/ copied, the
rest linked), so each case has its own Pulumi.<stack>.yaml and the committed
ones are never touched.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import harness
import stack_file
from settings.secret_names import SECRET_KEYS
from stack_file import StackFileError, parse_key

ROOT = Path(__file__).resolve().parents[1]
PROD_TEXT = (ROOT / "Pulumi.prod.yaml").read_text()
POLICY_CONFIG = ROOT / "policies" / "config" / "prod.json"


def ciphertext() -> str:
    """What `pulumi config set --secret` writes, made up per run."""
    return base64.b64encode(b"\x00\x00\x01\x00" + secrets.token_bytes(24)).decode()


def with_lines(*lines: str, text: str = PROD_TEXT) -> str:
    return text + "".join(f"  {line}\n" for line in lines)


class Project:
    """A copy of the project to run the gate from, with a stack file of the test's own."""

    def __init__(self, root: Path):
        self.root = root
        (root / "tools").mkdir()
        for source in (ROOT / "tools").glob("*.py"):
            shutil.copy(source, root / "tools" / source.name)  # copied: the tools find the project from their path
        for name in ("Pulumi.yaml", "__main__.py", "components", "settings", "policies", "venv"):
            (root / name).symlink_to(ROOT / name)

    def gate(self, text: str | None, stack: str = "prod") -> subprocess.CompletedProcess:
        """`make policy STACK=<stack>` over `text` as Pulumi.<stack>.yaml (None: no such file)."""
        if text is not None:
            (self.root / f"Pulumi.{stack}.yaml").write_text(text)
        return subprocess.run(
            [sys.executable, "tools/policy_gate.py", "--stack", stack, "--policy-config", str(POLICY_CONFIG)],
            cwd=self.root, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path) -> Project:
    return Project(tmp_path)


def line_of(fragment: str, text: str = PROD_TEXT) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if fragment in line)


END = len(PROD_TEXT.splitlines())  # appended lines start after it


def _without(line: str) -> str:
    assert line in PROD_TEXT
    return PROD_TEXT.replace(line, "")


DOMAIN = line_of("shia-chatbot:domain:")
# The ordinary mistakes: (stack file text, the one line the gate prints). CIPHERTEXT is made per run.
MISTAKES = {
    "broken YAML": (
        PROD_TEXT.replace("shia-chatbot:domain: shia-chatbot.example.org",
                          "shia-chatbot:domain: shia-chatbot.example.org: oops"),
        f"error: Pulumi.prod.yaml:{DOMAIN}:{len('  shia-chatbot:domain: shia-chatbot.example.org') + 1}: "
        "not valid YAML: mapping values are not allowed here"),
    "unclosed quote": (
        with_lines("shia-chatbot:langfuseHost: 'https://cloud.langfuse.com"),
        f"error: Pulumi.prod.yaml:{END + 2}:1: not valid YAML: found unexpected end of stream "
        f"(while scanning a quoted scalar that starts at {END + 1}:{len('  shia-chatbot:langfuseHost: ') + 1})"),
    "a tab": (
        PROD_TEXT.replace("  shia-chatbot:activeSlot: blue", "\tshia-chatbot:activeSlot: blue"),
        f"error: Pulumi.prod.yaml:{line_of('shia-chatbot:activeSlot:')}:1: not valid YAML: a tab character "
        "where YAML expects indentation or a value; YAML indents with spaces only"),
    "no environment": (
        _without("  shia-chatbot:environment: prod\n"),
        "error: Pulumi.prod.yaml: shia-chatbot:environment is required but not set "
        "(Pulumi.yaml declares it without a default, so the CLI refuses the stack)"),
    "an empty file": (
        "",
        "error: Pulumi.prod.yaml: the file is empty; it needs a config: mapping with the stack's settings "
        "(shia-chatbot:environment first)"),
    "only comments": (
        "# prod, to be written\n",
        "error: Pulumi.prod.yaml: the file is empty; it needs a config: mapping with the stack's settings "
        "(shia-chatbot:environment first)"),
    "no config: key": (
        "shia-chatbot:environment: prod\nshia-chatbot:activeSlot: blue\n",
        "error: Pulumi.prod.yaml: no config: mapping (found at the top level: shia-chatbot:environment, "
        "shia-chatbot:activeSlot); the stack's settings go under config:"),
    "config: not a mapping": (
        "config:\n  - shia-chatbot:environment: prod\n",
        "error: Pulumi.prod.yaml:1:1: config: must be a mapping of <namespace>:<name> keys, not a list"),
    "a key ParseKey refuses": (
        with_lines("shia-chatbot:app:debug: true"),
        f"error: Pulumi.prod.yaml:{END + 1}:3: shia-chatbot:app:debug is not a configuration key: keys are "
        "<namespace>:<name> with a single ':' (Pulumi's config.ParseKey)"),
    "a key written twice": (
        with_lines("shia-chatbot:domain: www.shia-chatbot.example.org"),
        f"error: Pulumi.prod.yaml:{END + 1}:3: not valid YAML: mapping key 'shia-chatbot:domain' already "
        f"defined at line {DOMAIN}"),
    "a key with and without its namespace": (
        with_lines("domain: www.shia-chatbot.example.org"),
        f"error: Pulumi.prod.yaml:{END + 1}:3: domain sets shia-chatbot:domain again "
        f"(line {DOMAIN} sets it as shia-chatbot:domain)"),
    "environment at the top level": (
        "environment: prod\n" + PROD_TEXT,
        "error: Pulumi.prod.yaml:1:1: the top-level environment: key imports Pulumi ESC environments, which "
        "the offline tools cannot open; the stack's environment is shia-chatbot:environment under config:"),
    "an encrypted value the program needs": (
        PROD_TEXT.replace("shia-chatbot:domain: shia-chatbot.example.org",
                          "shia-chatbot:domain:\n    secure: CIPHERTEXT"),
        f"error: Pulumi.prod.yaml:{DOMAIN}:3: shia-chatbot:domain is encrypted (secure:), which the offline tools "
        f"cannot decrypt; only the program's secrets ({', '.join(SECRET_KEYS)}) may be, the others are needed "
        "to plan"),
    "a misspelt required key": (
        PROD_TEXT.replace("shia-chatbot:activeSlot:", "shia-chatbot:activeSlott:"),
        "error: Pulumi.prod.yaml: shia-chatbot:activeSlot is required but not set (Pulumi.yaml declares it "
        "without a default, so the CLI refuses the stack); shia-chatbot:activeSlott is set: a typo?"),
    "an emptied secure value": (
        with_lines("shia-chatbot:smtpPassword:\n    secure:"),
        f"error: Pulumi.prod.yaml:{END + 1}:3: shia-chatbot:smtpPassword has an empty secure: value; set it "
        "again with `pulumi config set --secret smtpPassword`"),
    "no such file": (
        None,
        "error: Pulumi.prod.yaml: no such stack file (pulumi stack init, then pulumi config set)"),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_a_stack_file_mistake_is_one_line_and_exit_2(project, case):
    text, line = MISTAKES[case]
    result = project.gate(text.replace("CIPHERTEXT", ciphertext()) if text is not None else None)
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert result.returncode == 2, output
    assert output == line + "\n"


def test_a_program_config_error_keeps_its_run_error_layout(project):
    """Values the program refuses are still reported one line per problem, under the stack."""
    result = project.gate(PROD_TEXT.replace("replicas: 2", "replicas: 0"))
    assert result.returncode == 2 and "Traceback" not in result.stdout + result.stderr
    assert result.stdout == ("Diagnostics:\n  pulumi:pulumi:Stack (shia-chatbot-prod):\n"
                             "    error: invalid stack config:\n"
                             "      shia-chatbot:slots.blue.replicas = 0: Input should be greater than or equal to 1\n")


def test_other_namespaces_and_bare_keys_are_accepted_as_the_cli_accepts_them(project):
    text = PROD_TEXT.replace("shia-chatbot:activeSlot: blue", "activeSlot: blue")  # the project's, per the CLI
    text = with_lines("aws:region: eu-west-1", "docker:host: unix:///var/run/docker.sock",
                      "pulumi:tags:", "    team: platform", "aws:config:profile: deploy", text=text)
    result = project.gate(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✅ shia-chatbot@v0.1.0" in result.stdout


def test_a_namespace_that_misses_the_project_by_a_letter_is_a_warning(project):
    result = project.gate(with_lines("shia-chatbt:hostCpus: 8"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == (f"warning: Pulumi.prod.yaml:{END + 1}: shia-chatbt:hostCpus belongs to "
                                             "no one: did you mean shia-chatbot:hostCpus?")
    assert "warning" not in project.gate(with_lines("aws:region: eu-west-1")).stdout


def test_secure_values_for_every_secret_pass_the_gate_and_are_never_plaintext(project):
    """What `pulumi config set --secret` writes for every optional secret (and the
    registry the password belongs to): the gate judges the plan and passes."""
    lines = [f"shia-chatbot:{key}:\n    secure: {ciphertext()}" for key in SECRET_KEYS]
    text = with_lines(*lines, "shia-chatbot:registry:", "    server: ghcr.io", "    username: deploy-bot")
    result = project.gate(text)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "plaintext" not in output and "Traceback" not in output
    assert "0 mandatory" in result.stdout


# config.ParseKey (sdk/go/common/resource/config/key.go), plus the loader's bare-key rule.
KEYS = [
    ("domain", ("shia-chatbot", "domain")),
    ("shia-chatbot:domain", ("shia-chatbot", "domain")),
    ("aws:region", ("aws", "region")),
    ("pulumi:tags", ("pulumi", "tags")),
    ("aws:config:region", ("aws", "region")),
    ("shia-chatbot:app.debug", ("shia-chatbot", "app.debug")),
    ("shia-chatbot:app:debug", None),
    ("a:b:c:d", None),
]


@pytest.mark.parametrize("key, expected", KEYS, ids=[k for k, _ in KEYS])
def test_keys_parse_as_the_cli_parses_them(key, expected):
    if expected is None:
        with pytest.raises(ValueError):
            parse_key(key)
    else:
        assert parse_key(key) == expected


def test_the_reader_splits_project_encrypted_and_other_keys(tmp_path):
    secret = ciphertext()
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(
        "config:\n"
        "  environment: prod\n"                       # bare: the project's
        "  shia-chatbot:publishFlower: yes\n"         # YAML 1.2, as yaml.v3: a string, not a boolean
        "  shia-chatbot:langfuseHost:\n"              # no value: the empty string, as the CLI
        "  shia-chatbot:smtp:\n    host: smtp.example.org\n    port: 587\n"
        f"  shia-chatbot:openaiApiKey:\n    secure: {secret}\n"
        f"  shia-chatbot:registry:\n    server: ghcr.io\n    username:\n      secure: {secret}\n"
        "  aws:region: eu-west-1\n"
        "  pulumi:tags:\n    since: 2025-01-01\n"   # a date stays text
        f"  aws:secretKey:\n    secure: {secret}\n")
    read = stack_file.read(path)
    assert read.config == {"environment": "prod", "publishFlower": "yes", "langfuseHost": "",
                           "smtp": {"host": "smtp.example.org", "port": 587}}
    assert read.secure == {"shia-chatbot:openaiApiKey", "shia-chatbot:registry", "aws:secretKey"}
    assert read.others == {"aws:region": "eu-west-1", "pulumi:tags": {"since": "2025-01-01"}}
    assert secret not in json.dumps([read.config, read.others])


def test_an_encrypted_secret_is_set_and_secret_to_the_program_and_unknown_in_every_input():
    """`secure:` as the engine would show a secret it cannot know: the program sees the
    key set and secret (registry and its password are both there; nothing is 'plaintext'),
    and what it feeds reaches resources as the unknown sentinel under a secret marker."""
    keys = {f"{harness.PROJECT}:{key}" for key in SECRET_KEYS}
    config = {**harness.stack_config("prod"), "registry": {"server": "ghcr.io", "username": "deploy-bot"}}
    run = harness.run("prod", config, encrypted=keys)
    assert run.error is None, run.error
    unknown_secret = {harness.SECRET_SIG: harness.SECRET_MARK, "value": harness.UNKNOWN}
    app = run.containers()["prod-app-blue-1"]
    assert app.inputs["envs"].count(unknown_secret) == 8  # the provider keys, SMTP_PASSWORD among them
    provider = run.of_type("pulumi:providers:docker")[0]
    assert provider.inputs["registryAuth"] == unknown_secret
    alertmanager = run.containers()["prod-alertmanager"]
    assert [u["content"] for u in alertmanager.inputs["uploads"]] == [unknown_secret, unknown_secret]
    step = run.named("prod-router-config")
    assert step.inputs["connection"] == unknown_secret  # the SSH key is part of it
    for resource in run.resources:
        assert harness.UNKNOWN not in harness.plaintext_strings(resource.inputs), resource.name


def test_the_pack_is_not_given_encrypted_values(project, monkeypatch):
    """The pack's PULUMI_CONFIG carries the plain keys, never ciphertext or a stand-in."""
    import policy_gate

    secret = ciphertext()
    path = project.root / "Pulumi.prod.yaml"
    path.write_text(with_lines(f"shia-chatbot:smtpPassword:\n    secure: {secret}", "aws:region: eu-west-1"))
    monkeypatch.setattr(harness, "ROOT", project.root)
    seen = {}

    class Recording(policy_gate.PolicyPackProcess):
        def __init__(self, *args, config, **kwargs):
            seen.update(config)
            super().__init__(*args, config=config, **kwargs)

    monkeypatch.setattr(policy_gate, "PolicyPackProcess", Recording)
    result = policy_gate.run_gate("prod")
    assert result.exit_code == 0 and result.program_error is None
    assert seen["aws:region"] == "eu-west-1" and seen["shia-chatbot:domain"] == "shia-chatbot.example.org"
    assert "shia-chatbot:smtpPassword" not in seen
    assert secret not in json.dumps(seen) and harness.UNKNOWN not in json.dumps(seen)


def test_declared_keys_count_when_encrypted_and_defaults_fill_the_rest():
    config = {k: v for k, v in harness.stack_config("prod").items() if k != "activeSlot"}
    merged = stack_file.apply_project_config("prod", config, {"shia-chatbot:activeSlot"})
    assert merged["httpsPort"] == 443 and "activeSlot" not in merged
    with pytest.raises(StackFileError, match="shia-chatbot:activeSlot is required"):
        stack_file.apply_project_config("prod", config, {"aws:activeSlot"})


def test_the_committed_stack_files_read_the_same_as_plain_yaml():
    for stack in harness.STACKS:
        plain = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
        read = stack_file.read_stack(stack)
        assert read.secure == frozenset() and read.others == {}
        assert {f"shia-chatbot:{k}": v for k, v in read.config.items()} == plain
