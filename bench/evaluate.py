"""How long a full evaluation of the prod program takes under the SDK mocks.

Measures the committed prod stack, then the same stack with 10x the replicas on
both slots, each as the median of several runs in one process (imports paid
once, as a real `pulumi up` pays them once). Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools")]

import harness  # noqa: E402

def measure(label: str, config: dict, runs: int) -> None:
    times, count = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        run = harness.run("prod", config)
        times.append(time.perf_counter() - start)
        assert run.error is None, run.error
        count = len(run.resources)
    print(f"{label:<34} {count:>5} resources  median {statistics.median(times) * 1000:7.1f} ms"
          f"  min {min(times) * 1000:7.1f} ms  max {max(times) * 1000:7.1f} ms")


def cold(runs: int) -> None:
    """A fresh interpreter: imports plus one prod evaluation, as a `pulumi up` pays it."""
    code = "import sys; sys.path[:0]=[%r, %r]; import harness; assert harness.run('prod').error is None" % (
        str(ROOT), str(ROOT / "tools"))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    print(f"{'cold process (imports + prod run)':<34} {'':>15}  median {statistics.median(times) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="evaluations per measurement (median reported)")
    runs = parser.parse_args().runs
    cold(min(runs, 3))
    base = harness.stack_config("prod")
    slot = base["slots"]["blue"]
    both = {**base, "slots": {"blue": slot, "green": {**slot, "image": slot["image"].rsplit(":", 1)[0] + ":1.0.1"}}}
    ten_x = {**both, "slots": {s: {**v, "replicas": v["replicas"] * 10} for s, v in both["slots"].items()},
             # 10x the replicas needs 10x the connection budget; the check would refuse it otherwise.
             "postgresMaxConnections": 5000, "app": {"dbPoolSize": 2, "dbMaxOverflow": 0}}
    measure("prod as committed (1 slot x 2)", base, runs)
    measure("prod, both slots x 2", both, runs)
    measure("prod, both slots x 20 (10x)", ten_x, runs)


if __name__ == "__main__":
    main()
