"""`make bench` runs: the benchmark measures; this only checks it still can."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_benchmark_runs_and_reports_every_measurement():
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "evaluate.py"), "--runs", "1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "cold process (imports + prod run)", "prod as committed (1 slot x 2)", "prod, both slots x 2",
        "prod, both slots x 20 (10x)"]
