"""The real-engine tests' measurements: every figure a scenario records with the
`measure` fixture is printed at the end of the run (pytest's terminal summary,
so it shows with -q too) and written to tests/e2e/results/measurements.json,
beside the run's apply log (apply.log) and load records (load-*.jsonl)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest

RESULTS = Path(__file__).resolve().parent / "results"
_MEASURED: dict[str, dict] = {}


class Measurements:
    def __init__(self, request):
        self._request = request

    def __call__(self, name: str, value, unit: str = "s", note: str = "") -> None:
        value = round(value, 3) if isinstance(value, float) else value
        _MEASURED[name] = {"value": value, "unit": unit, "note": note, "test": self._request.node.nodeid}
        self._request.node.user_properties.append((name, value))


@pytest.fixture
def measure(request) -> Measurements:
    return Measurements(request)


def pytest_sessionstart(session):
    # This run's apply log and load records only.
    for stale in [*RESULTS.glob("load-*.jsonl"), RESULTS / "apply.log", RESULTS / "measurements.json"]:
        stale.unlink(missing_ok=True)


def pytest_terminal_summary(terminalreporter):
    if not _MEASURED:
        return
    terminalreporter.section("real-engine measurements")
    for name, entry in _MEASURED.items():
        note = f"  ({entry['note']})" if entry["note"] else ""
        terminalreporter.write_line(f"{name:<58} {entry['value']!s:>10} {entry['unit']}{note}")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "measurements.json"
    path.write_text(json.dumps({"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "machine": {"cpus": __import__("os").cpu_count(), "python": platform.python_version()},
                                "measurements": _MEASURED}, indent=2) + "\n")
    terminalreporter.write_line(f"written to {path}")


@pytest.fixture(scope="session", autouse=True)
def images():
    """Every image the plans name, built (or found cached) once for the session; no
    daemon skips, and fails under CI=true."""
    from docker_lab import docker_available
    if not docker_available():
        message = "no Docker daemon answers `docker info`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}, and CI=true: the real-engine tests must run in CI")
        pytest.skip(message)
    built = subprocess.run([sys.executable, str(Path(__file__).resolve().parent / "images" / "build.py")],
                           capture_output=True, text=True, timeout=1500)
    print(built.stdout)
    assert built.returncode == 0, f"build.py failed:\n{built.stdout}\n{built.stderr}"


@pytest.fixture(scope="module")
def swarm_node():
    """This machine's daemon as a one-node swarm for the module: its hostname.
    Put in swarm mode here and taken out after, unless it already was a swarm
    member (then it is left in it)."""
    from docker_lab import docker
    state = docker("info", "--format", "{{.Swarm.LocalNodeState}}").stdout.strip()
    formed_here = state != "active"
    if formed_here:
        docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    name = docker("node", "inspect", "self", "--format", "{{.Description.Hostname}}").stdout.strip()
    yield name
    if formed_here:
        docker("swarm", "leave", "--force")
