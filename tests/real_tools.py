"""Real programs the tests drive (nginx, promtool, PostgreSQL, Redis).

Locally a missing tool skips its tests; in CI (CI=true), where .ci/run installs
them, a missing tool fails the run, so those tests can never pass by not running.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

_EXTRA_PATHS = ("/usr/sbin", "/usr/lib/postgresql/15/bin")


def need(program: str) -> str:
    """Absolute path of `program`, or skip (locally) / fail (CI)."""
    found = shutil.which(program)
    if not found:
        for folder in _EXTRA_PATHS:
            candidate = Path(folder) / program
            if candidate.exists():
                found = str(candidate)
                break
    if found:
        return found
    message = f"{program} is not installed (.ci/run installs it from Debian)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
