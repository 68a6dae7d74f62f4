"""The GitHub workflows: actionlint-clean, and wired to the commands README gives."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

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
    step = next(s for s in preview["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert step["with"]["command"] == "preview"
    assert step["with"]["policyPacks"] == "policies"
    assert step["with"]["comment-on-pr"] is True
    assert step["if"] == "env.HAS_CREDENTIALS == 'true'"
    assert preview["environment"] == "preview-${{ matrix.stack }}"
    test_job = wf["jobs"]["test"]
    assert any(s.get("run") == "bash .ci/run" for s in test_job["steps"])


def test_main_deploys_stage_with_the_pack():
    wf = load("deploy-stage.yml")
    assert wf["on"] == {"push": {"branches": ["main"]}}
    step = next(s for s in wf["jobs"]["up"]["steps"] if s.get("uses", "").startswith("pulumi/actions@"))
    assert (step["with"]["command"], step["with"]["stack-name"], step["with"]["policyPacks"]) == ("up", "stage", "policies")


def test_prod_is_manual_approved_scanned_and_uses_the_readme_steps():
    wf = load("deploy-prod.yml")
    assert set(wf["on"]) == {"workflow_dispatch"}
    assert wf["on"]["workflow_dispatch"]["inputs"]["action"]["options"] == ["release", "switch"]
    job = wf["jobs"]["deploy"]
    assert job["environment"] == "production"
    scan = next(s for s in job["steps"] if s.get("uses", "").startswith("aquasecurity/trivy-action@"))
    assert scan["with"]["severity"] == "CRITICAL" and scan["with"]["exit-code"] == "1"
    assert scan["if"] == "inputs.action == 'release'"
    assert job["if"] == "github.ref == 'refs/heads/main'"
    names = [step.get("name", "") for step in job["steps"]]
    script = next(s["run"] for s in job["steps"] if "make release-config" in s.get("run", ""))
    assert "make switch-config STACK=prod" in script
    record = names.index("Record it on main")
    deploy = next(i for i, step in enumerate(job["steps"]) if "make up STACK=prod" in step.get("run", ""))
    # Recorded on main first, then deployed with the pack enforced.
    assert names.index(next(n for n in names if n.startswith("Write the release"))) < record < deploy
    assert "--policy-pack policies --policy-pack-config policies/config/prod.json" in job["steps"][deploy]["run"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_make_target_a_workflow_calls_exists(workflow):
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):", (harness.ROOT / "Makefile").read_text(), re.M))
    data = yaml.safe_load(workflow.read_text())
    scripts = [step.get("run", "") for job in data["jobs"].values() for step in job["steps"]]
    called = {t for script in scripts for t in re.findall(r"(?:^|[\s;&|])make ([a-z][a-z0-9-]*)", script)}
    assert called, "each workflow drives the Makefile"
    assert called <= targets, called - targets
