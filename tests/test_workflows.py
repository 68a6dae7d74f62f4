"""The GitHub workflows: actionlint-clean, wired to the commands README gives,
credentials only where the state is opened, third-party actions pinned, and
safe to re-run (the record-on-main and stack checks run here, in bash)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import yaml

import harness
from real_tools import need

WORKFLOWS = sorted((harness.ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = str(Path(harness.ROOT / "venv" / "bin" / "actionlint"))


def load(name: str) -> dict:
    data = yaml.safe_load((harness.ROOT / ".github" / "workflows" / name).read_text())
    data["on"] = data.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return data


def actionlint(*paths: str) -> subprocess.CompletedProcess:
    need("shellcheck")  # so actionlint also checks every `run:` script
    return subprocess.run([ACTIONLINT, "-shellcheck", "shellcheck", *paths], capture_output=True, text=True)


def test_workflows_pass_actionlint():
    assert [w.name for w in WORKFLOWS] == ["deploy-prod.yml", "deploy-stage.yml", "pull-request.yml"]
    result = actionlint(*map(str, WORKFLOWS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_does_refuse_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.event.pull_request.title }}\n"
                      "      - uses: actions/checkout@v4\n")
    result = actionlint(str(broken))
    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout  # script injection
    assert "node20" in result.stdout  # a retired action runtime


def step_named(job: dict, name: str) -> dict:
    return next(s for s in job["steps"] if s.get("name") == name)


def test_pull_requests_run_the_gate_without_secrets_and_preview_with_the_pack():
    wf = load("pull-request.yml")
    assert set(wf["on"]) == {"pull_request"}
    gate = wf["jobs"]["policy-gate"]
    runs = [s.get("run", "") for s in gate["steps"]]
    assert "make policy STACK=${{ matrix.stack }}" in runs
    assert "make policy STACK=${{ matrix.stack }} FIRST_PREVIEW=1" in runs
    assert "secrets." not in yaml.safe_dump(gate)
    preview = wf["jobs"]["preview"]
    assert preview["strategy"]["matrix"]["stack"] == ["stage", "prod"]
    step = next(s for s in preview["steps"] if "command" in s.get("with", {}))
    assert step["uses"].startswith("pulumi/actions@")
    assert step["with"]["command"] == "preview"
    assert step["with"]["policyPacks"] == "policies"
    assert step["with"]["comment-on-pr"] is True
    assert "upsert" not in step["with"]  # a pull request never creates a stack
    # Only with credentials, and only against a stack that exists.
    assert step_named(preview, "The stack exists")["if"] == "env.HAS_CREDENTIALS == 'true'"
    assert step["if"] == "steps.stack.outputs.exists == 'true'"
    assert preview["environment"] == "preview-${{ matrix.stack }}"
    test_job = wf["jobs"]["test"]
    assert any(s.get("run") == "bash .ci/run" for s in test_job["steps"])


def test_main_deploys_stage_with_the_pack_never_creating_the_stack():
    wf = load("deploy-stage.yml")
    assert wf["on"] == {"push": {"branches": ["main"]}}
    job = wf["jobs"]["up"]
    names = [step.get("name", "") for step in job["steps"]]
    check = names.index("The stage stack exists")
    assert job["steps"][check]["run"] == "tools/stack_exists.sh stage error"
    deploy = next(i for i, step in enumerate(job["steps"]) if step.get("run") == "make up STACK=stage PULUMI_FLAGS=--yes")
    assert check < deploy
    assert not any("upsert" in (step.get("with") or {}) for step in job["steps"])
    # A re-run deploys main as it is now, never an older push over a newer one.
    assert job["steps"][0]["with"]["ref"] == "main"


def test_every_pulumi_command_of_the_makefile_runs_the_policy_pack():
    """CI deploys through `make up`; the pack is the Makefile's, not each workflow's to remember."""
    recipes = re.findall(r"^\t@?(?:[A-Z_]+=\S+ )*pulumi (?:up|preview)\b.*$", (harness.ROOT / "Makefile").read_text(), re.M)
    assert len(recipes) >= 4
    assert all("$(PACK)" in line for line in recipes), recipes
    assert "PACK := --policy-pack policies --policy-pack-config policies/config/$(ENVIRONMENT).json" in \
        (harness.ROOT / "Makefile").read_text()


def test_prod_is_manual_approved_scanned_and_uses_the_readme_steps():
    wf = load("deploy-prod.yml")
    assert set(wf["on"]) == {"workflow_dispatch"}
    assert wf["on"]["workflow_dispatch"]["inputs"]["action"]["options"] == ["release", "switch"]
    job = wf["jobs"]["deploy"]
    assert job["environment"] == "production"
    assert job["if"] == "github.ref == 'refs/heads/main'"
    names = [step.get("name", "") for step in job["steps"]]
    script = next(s["run"] for s in job["steps"] if "make release-config" in s.get("run", ""))
    assert "make switch-config STACK=prod" in script
    index = {n: names.index(n) for n in ("The prod stack exists", "Preview with the policy pack", "Record it on main")}
    write = names.index(next(n for n in names if n.startswith("Write the release")))
    deploy = next(i for i, step in enumerate(job["steps"]) if "make up STACK=prod" in step.get("run", ""))
    # The stack checked, the change written and previewed (a refusal stops
    # there), recorded on main, then deployed with the pack enforced.
    assert index["The prod stack exists"] < write < index["Preview with the policy pack"] \
        < index["Record it on main"] < deploy
    assert job["steps"][index["The prod stack exists"]]["run"] == "tools/stack_exists.sh prod error"
    assert job["steps"][index["Preview with the policy pack"]]["run"] == "make preview STACK=prod"
    assert job["steps"][deploy]["run"] == "make up STACK=prod PULUMI_FLAGS=--yes"
    # The change is written onto main's tip, even on a re-run of an older dispatch.
    assert job["steps"][0]["uses"].startswith("actions/checkout@") and job["steps"][0]["with"]["ref"] == "main"


def test_prod_scans_apart_from_the_deploy_credentials_and_reads_a_private_registry():
    wf = load("deploy-prod.yml")
    scan_job, deploy = wf["jobs"]["scan"], wf["jobs"]["deploy"]
    assert deploy["needs"] == "scan" and scan_job["if"] == deploy["if"]
    # No environment: the deploy secrets never reach the scanner's runner.
    assert "environment" not in scan_job
    assert set(re.findall(r"secrets\.(\w+)", yaml.safe_dump(scan_job))) == {"REGISTRY_USERNAME", "REGISTRY_PASSWORD"}
    scan = next(s for s in scan_job["steps"] if s.get("uses", "").startswith("aquasecurity/trivy-action@"))
    assert scan["with"]["severity"] == "CRITICAL" and scan["with"]["exit-code"] == "1"
    assert scan["if"] == "inputs.action == 'release'"
    assert scan["env"] == {"TRIVY_USERNAME": "${{ secrets.REGISTRY_USERNAME }}",
                           "TRIVY_PASSWORD": "${{ secrets.REGISTRY_PASSWORD }}"}
    assert not any("trivy" in s.get("uses", "") for s in deploy["steps"])


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_make_target_a_workflow_calls_exists(workflow):
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (harness.ROOT / "Makefile").read_text(), re.M))
    data = yaml.safe_load(workflow.read_text())
    scripts = [step.get("run", "") for job in data["jobs"].values() for step in job["steps"]]
    called = {t for script in scripts for t in re.findall(r"(?:^|[\s;&|])make ([a-z][a-z0-9-]*)", script)}
    assert called, "each workflow drives the Makefile"
    assert called <= targets, called - targets


# --- Credentials where the state is opened, and nowhere else ---------------

# What opening the S3 state backend takes; the secrets among them go to the
# steps that open it and to no other.
BACKEND_ENV = {
    "PULUMI_BACKEND_URL": "${{ vars.PULUMI_BACKEND_URL }}",
    "AWS_REGION": "${{ vars.AWS_REGION }}",
    "AWS_ACCESS_KEY_ID": "${{ secrets.AWS_ACCESS_KEY_ID }}",
    "AWS_SECRET_ACCESS_KEY": "${{ secrets.AWS_SECRET_ACCESS_KEY }}",
    "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
}
BACKEND_SECRETS = {name for name, value in BACKEND_ENV.items() if "secrets." in value}
# A command's position in a script: not inside an echo'd message or a comment.
_COMMAND = r"(?:^|[;&|(!]|\bthen\b|\bdo\b|\belse\b|\bif\b|\belif\b)\s*"


def state_targets() -> set[str]:
    """The Makefile targets that run the pulumi CLI, in their recipe or a prerequisite's."""
    rules: dict[str, tuple[list[str], str]] = {}
    target = None
    for line in (harness.ROOT / "Makefile").read_text().splitlines():
        rule = re.match(r"([a-z][a-z0-9-]*):(?!=)(.*)", line)
        if rule:
            target = rule[1]
            rules[target] = (rule[2].split("##")[0].split(), "")  # `## text` is `make help`'s line
        elif line.startswith("\t") and target:
            rules[target] = (rules[target][0], rules[target][1] + line + "\n")

    def opens(name: str) -> bool:
        prerequisites, recipe = rules[name]
        return bool(re.search(r"^\t@?(?:[A-Z_]+=\S+ )*pulumi\s", recipe, re.M)) or any(p in rules and opens(p) for p in prerequisites)

    return {name for name in rules if opens(name)}


STATE_TARGETS = state_targets()


def test_the_makefile_targets_that_open_the_state_are_found():
    assert {"up", "preview", "release-config", "release", "switch-config", "switch", "rollback"} <= STATE_TARGETS
    assert not {"test", "policy", "promote", "setup"} & STATE_TARGETS


def opens_state(step: dict) -> bool:
    if step.get("uses", "").startswith("pulumi/actions@"):
        return "command" in step.get("with", {})  # without one it only installs the CLI
    script = step.get("run", "")
    # tools/stack_exists.sh runs `pulumi stack select`.
    return bool(re.search(_COMMAND + r"(?:pulumi|tools/stack_exists\.sh)\s", script, re.M)) or any(
        re.search(_COMMAND + rf"make\s+{re.escape(target)}(?:\s|$)", script, re.M) for target in STATE_TARGETS)


def all_steps(wf: dict) -> Iterator[tuple[str, dict, dict]]:
    for job_id, job in wf["jobs"].items():
        for step in job["steps"]:
            yield job_id, job, step


def effective_env(wf: dict, job: dict, step: dict) -> dict:
    return {**wf.get("env", {}), **job.get("env", {}), **step.get("env", {})}


def describe(step: dict) -> str:
    return step.get("name") or step.get("uses") or step["run"].splitlines()[0]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_step_that_opens_the_state_has_the_backend_and_its_credentials(workflow):
    wf = load(workflow.name)
    opening = [(job_id, job, step) for job_id, job, step in all_steps(wf) if opens_state(step)]
    assert opening, "each workflow opens the state"
    for job_id, job, step in opening:
        env = effective_env(wf, job, step)
        wrong = {name: env.get(name) for name, value in BACKEND_ENV.items() if env.get(name) != value}
        assert not wrong, f"{job_id}: {describe(step)}: {wrong}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_the_backend_credentials_reach_no_other_step(workflow):
    wf = load(workflow.name)
    assert not BACKEND_SECRETS & set(wf.get("env", {}))
    for job_id, job, step in all_steps(wf):
        assert not BACKEND_SECRETS & set(job.get("env", {})), job_id
        if not opens_state(step):
            leaked = BACKEND_SECRETS & set(effective_env(wf, job, step))
            assert not leaked, f"{job_id}: {describe(step)} gets {leaked}"


THIRD_PARTY_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?!actions/|\./|docker://)(\S+)(.*)$", re.M)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_third_party_actions_are_pinned_to_a_commit_named_by_its_version(workflow):
    """In every job: those holding deploy secrets, and the others too."""
    wf = load(workflow.name)
    for job_id, job, step in all_steps(wf):
        uses = step.get("uses", "")
        if uses and not uses.startswith(("actions/", "./", "docker://")):
            # A tag can be moved to other code (trivy-action's were, in March 2026); a commit cannot.
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", uses), f"{job_id}: {uses}"
    # Comments are not in the parsed YAML: the version each commit stands for, from the text.
    pins = THIRD_PARTY_USES.findall(workflow.read_text())
    assert pins
    for uses, rest in pins:
        assert re.fullmatch(r"\s+# v\d+\.\d+\.\d+", rest), f"{uses}{rest}: no trailing '# vX.Y.Z'"


# --- The shell of the steps that make re-runs safe, run here ---------------


def run_step(step: dict, cwd: Path, env: dict[str, str], scratch: Path) -> subprocess.CompletedProcess:
    """A `run:` step as GitHub's Linux runner runs it: bash -e on the script."""
    script = scratch / "step.sh"
    script.write_text(step["run"])
    return subprocess.run([need("bash"), "-e", str(script)], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


class Origin:
    """A bare `origin` whose main holds Pulumi.prod.yaml, and checkouts of it made
    as actions/checkout makes them (one commit, depth 1, on a local main)."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {"PATH": os.environ["PATH"], "HOME": str(root), "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
        self.bare = root / "origin.git"
        self.git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        self.git(self.bare, "config", "uploadpack.allowAnySHA1InWant", "true")
        seed = root / "seed"
        self.git(root, "init", "-q", "-b", "main", str(seed))
        shutil.copy(harness.ROOT / "Pulumi.prod.yaml", seed / "Pulumi.prod.yaml")
        self.git(seed, "add", "Pulumi.prod.yaml")
        self.commit(seed, "seed", "README.md", "the repository\n")
        self.git(seed, "push", "-q", str(self.bare), "HEAD:main")
        self.first = self.main()
        self.checkouts = self.records = 0

    def git(self, cwd: Path, *args: str) -> str:
        done = subprocess.run([need("git"), *args], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
        return done.stdout.strip()

    def commit(self, work: Path, message: str, path: str, text: str) -> None:
        (work / path).write_text(text)
        self.git(work, "add", path)
        self.git(work, "-c", "user.name=someone", "-c", "user.email=someone@example.org", "commit", "-q", "-m", message)

    def checkout(self, sha: str = "refs/heads/main") -> Path:
        self.checkouts += 1
        work = self.root / f"checkout-{self.checkouts}"
        self.git(self.root, "init", "-q", "-b", "main", str(work))
        self.git(work, "remote", "add", "origin", self.bare.as_uri())
        self.git(work, "fetch", "-q", "--depth", "1", "origin", sha)
        self.git(work, "checkout", "-q", "-B", "main", "FETCH_HEAD")
        return work

    def main(self) -> str:
        return self.git(self.bare, "rev-parse", "main")

    def log(self) -> list[str]:
        return self.git(self.bare, "log", "--format=%s", "main").splitlines()

    def file_on_main(self, path: str) -> str:
        return self.git(self.bare, "show", f"main:{path}")

    def someone_pushes(self) -> str:
        work = self.checkout()
        self.commit(work, "someone else's change", "NOTES.md", "pushed while prod deployed\n")
        self.git(work, "push", "-q", "origin", "HEAD:main")
        return self.main()


def switch_to_green(work: Path) -> None:
    """What `make switch-config STACK=prod SLOT=green` writes."""
    config = work / "Pulumi.prod.yaml"
    text = config.read_text()
    assert "shia-chatbot:activeSlot: blue\n" in text
    config.write_text(text.replace("shia-chatbot:activeSlot: blue\n", "shia-chatbot:activeSlot: green\n"))


RECORD_STEP = step_named(load("deploy-prod.yml")["jobs"]["deploy"], "Record it on main")


@pytest.fixture
def origin(tmp_path):
    return Origin(tmp_path)


def record(origin: Origin, work: Path, run_id: str = "7") -> subprocess.CompletedProcess:
    origin.records += 1
    # Each attempt an hour after the last, as a re-run is: the same change
    # committed again is then a different commit, as it would be.
    when = f"2026-05-01T{9 + origin.records:02d}:00:00+00:00"
    env = origin.env | {"ACTION": "switch", "SLOT": "green", "IMAGE": "", "RUN_ID": run_id,
                        "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    return run_step(RECORD_STEP, work, env, origin.root)


def test_record_on_main_commits_and_pushes_the_change(origin):
    work = origin.checkout()
    switch_to_green(work)
    done = record(origin, work)
    assert done.returncode == 0, done.stdout + done.stderr
    assert origin.log() == ["prod: switch green (run 7)", "seed"]
    assert "shia-chatbot:activeSlot: green" in origin.file_on_main("Pulumi.prod.yaml")


def test_a_new_dispatch_after_a_failed_deploy_has_nothing_to_commit_and_succeeds(origin):
    first = origin.checkout()
    switch_to_green(first)
    assert record(origin, first).returncode == 0
    recorded = origin.main()
    # `pulumi up` failed; the same switch is dispatched again from main.
    again = origin.checkout()
    assert "activeSlot: green" in (again / "Pulumi.prod.yaml").read_text()  # make switch-config: no change
    done = record(origin, again, run_id="8")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to commit" in done.stdout
    assert origin.main() == recorded


def test_a_rerun_from_the_first_attempts_commit_adds_nothing(origin):
    first = origin.checkout()
    switch_to_green(first)
    assert record(origin, first).returncode == 0
    recorded = origin.main()
    # Checked out at the dispatched commit, without the first attempt's record.
    rerun = origin.checkout(origin.first)
    switch_to_green(rerun)
    done = record(origin, rerun)
    assert done.returncode == 0, done.stdout + done.stderr
    assert origin.main() == recorded and origin.log() == ["prod: switch green (run 7)", "seed"]
    assert origin.git(rerun, "rev-parse", "HEAD") == recorded  # what `make up` then deploys is main


@pytest.mark.parametrize("recorded_before", [True, False], ids=["first-attempt-recorded", "not-recorded-yet"])
def test_a_rerun_after_main_moved_on_still_succeeds(origin, recorded_before):
    if recorded_before:
        first = origin.checkout()
        switch_to_green(first)
        assert record(origin, first).returncode == 0
    rerun = origin.checkout(origin.first)
    switch_to_green(rerun)
    origin.someone_pushes()  # main moves on after this run's checkout
    done = record(origin, rerun)
    assert done.returncode == 0, done.stdout + done.stderr
    expected = (["someone else's change", "prod: switch green (run 7)", "seed"] if recorded_before
                else ["prod: switch green (run 7)", "someone else's change", "seed"])
    assert origin.log() == expected  # one record of the switch, and nothing of main's lost
    assert "shia-chatbot:activeSlot: green" in origin.file_on_main("Pulumi.prod.yaml")
    assert origin.git(rerun, "rev-parse", "HEAD") == origin.main()


class FakePulumi:
    """A `pulumi` on PATH that answers `stack select` as the CLI does (its
    message for a missing stack is the automation API's StackNotFoundError cue)."""

    ANSWERS = {
        "exists": (0, ""),
        "missing": (255, "error: no stack named 'organization/shia-chatbot/{stack}' found"),
        "denied": (255, "error: read s3://state-bucket/.pulumi/meta.yaml: AccessDenied: Access Denied"),
    }

    def __init__(self, scratch: Path, answer: str, stack: str):
        status, message = self.ANSWERS[answer]
        self.scratch = scratch
        (scratch / "bin").mkdir()
        (scratch / "message").write_text(message.format(stack=stack) + "\n" if message else "")
        self.calls = scratch / "calls"
        pulumi = scratch / "bin" / "pulumi"
        pulumi.write_text(f'#!/bin/sh\necho "$*" >> "{self.calls}"\ncat "{scratch}/message" >&2\nexit {status}\n')
        pulumi.chmod(0o755)
        self.output = scratch / "github_output"
        self.output.touch()
        self.env = {"PATH": f"{scratch / 'bin'}:{os.environ['PATH']}", "PULUMI_BACKEND_URL": "s3://state-bucket",
                    "STACK": stack, "GITHUB_OUTPUT": str(self.output)}

    def run(self, step: dict) -> subprocess.CompletedProcess:
        return run_step(step, self.scratch, self.env, self.scratch)


PREVIEW_STACK_STEP = step_named(load("pull-request.yml")["jobs"]["preview"], "The stack exists")
STACK_EXISTS = {"run": f"{harness.ROOT / 'tools' / 'stack_exists.sh'} \"$STACK\" error"}


def init_command(stack: str) -> str:
    return f"pulumi stack init {stack} --secrets-provider passphrase"


@pytest.mark.parametrize("stack", ["prod", "stage"])
@pytest.mark.parametrize("answer", ["exists", "missing", "denied"])
def test_a_deploy_refuses_a_missing_stack_with_the_command_that_creates_it(tmp_path, stack, answer):
    pulumi = FakePulumi(tmp_path, answer, stack)
    done = pulumi.run(STACK_EXISTS)
    assert pulumi.calls.read_text() == f"stack select {stack}\n"  # selects, never creates
    if answer == "exists":
        assert (done.returncode, done.stdout) == (0, ""), done.stderr
        return
    assert pulumi.ANSWERS[answer][1].split(":")[0] in done.stderr or answer == "missing"
    if answer == "missing":
        assert done.returncode == 3
        assert f"::error::stack {stack} does not exist in s3://state-bucket." in done.stdout
        assert init_command(stack) in done.stdout and f"encryptionsalt line it writes into Pulumi.{stack}.yaml" in done.stdout
    else:  # not a missing stack: no advice to create one
        assert done.returncode == 1 and "stack init" not in done.stdout


@pytest.mark.parametrize("stack,answer", [("prod", "exists"), ("prod", "missing"), ("stage", "missing"),
                                          ("prod", "denied")])
def test_a_pull_request_previews_only_a_stack_that_exists(tmp_path, stack, answer):
    pulumi = FakePulumi(tmp_path, answer, stack)
    pulumi.env["PATH"] = f"{harness.ROOT / 'tools'}:{pulumi.env['PATH']}"
    step = {**PREVIEW_STACK_STEP, "run": PREVIEW_STACK_STEP["run"].replace("tools/stack_exists.sh", "stack_exists.sh")}
    done = pulumi.run(step)
    assert pulumi.calls.read_text() == f"stack select {stack}\n"
    if answer == "denied":  # a broken backend fails the job rather than skip the preview
        assert done.returncode == 1 and "AccessDenied" in done.stderr
        return
    assert done.returncode == 0, done.stdout + done.stderr
    assert pulumi.output.read_text() == f"exists={'true' if answer == 'exists' else 'false'}\n"
    if answer == "missing":
        assert f"::warning::stack {stack} does not exist in s3://state-bucket" in done.stdout
        assert init_command(stack) in done.stdout
