"""`make` targets check their tools first and say what is missing and where to get it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK = [sys.executable, str(ROOT / "tools" / "prerequisites.py")]


def fake_bin(tmp_path: Path, **scripts: str) -> Path:
    """A directory of fake commands (name -> shell body), plus the real basics the checks call."""
    folder = tmp_path / "bin"
    folder.mkdir(parents=True)
    for name in ("sh", "env", "awk", "make", "cat", "uname"):
        real = shutil.which(name)
        if real:
            (folder / name).symlink_to(real)
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    return folder


def run_check(target: str, path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": str(path), "HOME": os.environ.get("HOME", "/root"), **env}
    return subprocess.run([*CHECK, target], capture_output=True, text=True, env=environ, cwd=ROOT)


def test_a_missing_pulumi_cli_is_named_with_where_to_get_it(tmp_path):
    result = run_check("pulumi", fake_bin(tmp_path))
    assert result.returncode == 1
    assert "missing: pulumi (the Pulumi CLI, 3.219.0 or newer) is not on PATH" in result.stderr
    assert "https://get.pulumi.com" in result.stderr


def test_an_old_pulumi_cli_is_refused_with_the_minimum(tmp_path):
    result = run_check("pulumi", fake_bin(tmp_path, pulumi="echo v3.150.0"))
    assert result.returncode == 1
    assert "pulumi 3.150.0 is too old: 3.219.0 or newer is needed" in result.stderr


def test_a_recent_pulumi_cli_passes_silently(tmp_path):
    result = run_check("pulumi", fake_bin(tmp_path, pulumi="echo v3.272.0"))
    assert (result.returncode, result.stderr) == (0, "")


def test_dev_up_needs_a_reachable_docker_daemon_and_the_passphrase(tmp_path):
    folder = fake_bin(tmp_path, pulumi="echo v3.272.0",
                      docker="echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock' >&2; exit 1")
    result = run_check("dev-up", folder)
    assert result.returncode == 1
    assert "docker cannot reach its daemon (Cannot connect to the Docker daemon" in result.stderr
    assert "PULUMI_CONFIG_PASSPHRASE is not set" in result.stderr
    passing = run_check("dev-up", fake_bin(tmp_path / "ok", pulumi="echo v3.272.0", docker="echo 20.10.24"),
                        PULUMI_CONFIG_PASSPHRASE="x")
    assert (passing.returncode, passing.stderr) == (0, "")


def test_make_dev_up_stops_at_the_check_before_building_anything(tmp_path):
    folder = fake_bin(tmp_path)
    (folder / "python3").symlink_to(sys.executable)
    result = subprocess.run(["make", "--no-print-directory", "dev-up", "VENV=" + str(tmp_path / "venv")],
                            capture_output=True, text=True, cwd=ROOT,
                            env={"PATH": str(folder), "HOME": os.environ.get("HOME", "/root")})
    assert result.returncode != 0
    assert "missing: pulumi" in result.stderr
    assert "No such file or directory" not in result.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("target", ["nonsense", ""])
def test_an_unknown_target_is_a_usage_error(target, tmp_path):
    result = run_check(target, fake_bin(tmp_path))
    assert result.returncode == 2 and "usage:" in result.stderr
