"""Check the tools a Makefile target needs before it starts, and say where to get a missing one.

    python3 tools/prerequisites.py TARGET    # test | pulumi | dev-up

Standard library only: it runs before the venv exists. Prints one line per
missing or too-old tool, each with how to install it, and exits 1 if any; prints
nothing and exits 0 when all is there. The Pulumi CLI's minimum version is the
`requiredPulumiVersion` of Pulumi.yaml (the CLI enforces it too, from 3.219).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

ROOT = Path(__file__).resolve().parents[1]
PYTHON_MIN = (3, 11)  # what CI runs; the code needs 3.10 (kw_only dataclasses)
INSTALL_PULUMI = "curl -fsSL https://get.pulumi.com | sh  (other ways: https://www.pulumi.com/docs/install/)"


def pulumi_minimum() -> tuple[int, ...]:
    """Pulumi.yaml's `requiredPulumiVersion: ">=X.Y.Z"` as a tuple."""
    match = re.search(r'^requiredPulumiVersion:\s*"?>=\s*([0-9.]+)"?\s*$', (ROOT / "Pulumi.yaml").read_text(), re.M)
    if not match:
        raise SystemExit("Pulumi.yaml has no requiredPulumiVersion: \">=X.Y.Z\"")
    return version_tuple(match[1])


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def shown(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _run(*command: str) -> Optional[subprocess.CompletedProcess]:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def check_python() -> Optional[str]:
    if sys.version_info[:2] < PYTHON_MIN:
        return (f"python3 {sys.version.split()[0]} is too old: {shown(PYTHON_MIN)} or newer is needed "
                "(Debian/Ubuntu: apt install python3; elsewhere https://www.python.org/downloads/)")
    return None


def check_venv() -> Optional[str]:
    # Debian and Ubuntu ship venv without ensurepip until python3-venv is installed.
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
    except ImportError:
        return "python3 cannot create a venv: install python3-venv (apt install python3-venv)"
    return None


def check_pulumi() -> Optional[str]:
    minimum = pulumi_minimum()
    if shutil.which("pulumi") is None:
        return f"pulumi (the Pulumi CLI, {shown(minimum)} or newer) is not on PATH: {INSTALL_PULUMI}"
    result = _run("pulumi", "version")
    found = version_tuple(result.stdout) if result and result.returncode == 0 else ()
    if found < minimum:
        return (f"pulumi {shown(found) or '(unknown version)'} is too old: {shown(minimum)} or newer is needed "
                f"(Pulumi.yaml requiredPulumiVersion): {INSTALL_PULUMI}")
    sdk = installed_sdk()
    if sdk and found < sdk:
        # Not fatal: an SDK newer than the engine may use engine features the CLI lacks.
        print(f"warning: pulumi {shown(found)} is older than the Python SDK {shown(sdk)} in venv/; "
              f"upgrade the CLI: {INSTALL_PULUMI}", file=sys.stderr)
    return None


def installed_sdk() -> tuple[int, ...]:
    """The pulumi Python SDK's version in venv/, or () before `make setup`."""
    found = sorted((ROOT / "venv" / "lib").glob("python3*/site-packages/pulumi-*.dist-info"))
    return version_tuple(found[-1].name.split("-", 1)[1]) if found else ()


def check_docker() -> Optional[str]:
    if shutil.which("docker") is None:
        return "docker (the Docker CLI and Engine) is not on PATH: https://docs.docker.com/engine/install/"
    result = _run("docker", "info", "--format", "{{.ServerVersion}}")
    if result is None or result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1] if result else "no answer"
        return f"docker cannot reach its daemon ({reason}): start Docker, or join the docker group"
    return None


def check_passphrase() -> Optional[str]:
    if not (os.environ.get("PULUMI_CONFIG_PASSPHRASE") or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        return ("PULUMI_CONFIG_PASSPHRASE is not set: the dev stack's secrets are encrypted with it "
                "(export PULUMI_CONFIG_PASSPHRASE=…, and keep it: the stack needs the same one every time)")
    return None


CHECKS: dict[str, tuple[Callable[[], Optional[str]], ...]] = {
    "test": (check_python, check_venv),
    "pulumi": (check_python, check_venv, check_pulumi),
    "dev-up": (check_python, check_venv, check_pulumi, check_docker, check_passphrase),
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: python3 tools/prerequisites.py {{{'|'.join(CHECKS)}}}", file=sys.stderr)
        return 2
    problems = [p for p in (check() for check in CHECKS[argv[0]]) if p]
    for problem in problems:
        print(f"missing: {problem}", file=sys.stderr)
    if problems:
        print("Prerequisites: README.md, \"Prerequisites\".", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
