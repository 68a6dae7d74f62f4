"""What a switch and a config reload cost clients that keep their connections alive.

Runs the lab nginx of the tests (tests/nginx_lab.py: nginx with njs, the
program's own apply and switch scripts, a DNS server standing in for Docker's)
under load from clients that POST over kept-alive connections, then does N
switches, then N config reloads, and prints requests and failures for each.
Asserts nothing: tests/test_router_nginx.py holds the switch to 0 failures.

    venv/bin/python bench/router_keepalive.py [--times 10] [--clients 16]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools"), str(ROOT / "tests")]

from nginx_lab import Load, Nginx, Resolver, Upstream, free_port, wait_for_port  # noqa: E402

REPLICAS = {"blue": ("127.0.0.2", "127.0.0.3"), "green": ("127.0.0.4", "127.0.0.5")}


def measure(label: str, nginx: Nginx, port: int, clients: int, times: int, action) -> None:
    load = Load(port, clients=0, keepalive=clients).start()
    try:
        load.wait_for(2000)
        started = load.count()
        for index in range(times):
            result = action(index)
            assert result.returncode == 0, result.stderr
            time.sleep(0.3)
        load.wait_for(load.count() + 2000)
    finally:
        load.stop()
    print(f"{label:<24} {times:>3} times  {load.count() - started:>7} requests  {len(load.failures):>4} failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="router-bench-"))
    root.chmod(0o755)
    dns, app_port = Resolver(), free_port()
    upstreams = [Upstream(slot, address, app_port) for slot, addresses in REPLICAS.items() for address in addresses]
    for slot, addresses in REPLICAS.items():
        dns.set(f"app-{slot}", *addresses)
    nginx = Nginx(shutil.which("nginx") or "/usr/sbin/nginx", root)
    port = free_port()

    def spec(rate: int):
        return nginx.spec(environment="prod", server_name="localhost", http_port=port, rate_per_minute=rate,
                          resolver=dns.address, app_port=app_port)

    try:
        nginx.start(spec(6_000_000), slot="blue")
        wait_for_port(port)
        measure("switch (slot file)", nginx, port, args.clients, args.times,
                lambda i: nginx.switch(("green", "blue")[i % 2]))
        measure("config change (reload)", nginx, port, args.clients, args.times,
                lambda i: nginx.apply(spec(6_000_000 - 1 - i)))
    finally:
        nginx.stop()
        dns.stop()
        for upstream in upstreams:
            upstream.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
