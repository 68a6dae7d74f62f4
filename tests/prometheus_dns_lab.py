"""A real Prometheus finding Swarm tasks by DNS, without a swarm.

`run(config_dir, tasks, answering)` runs this file under `unshare --mount --net`
(root only). In a network namespace of its own, a DNS server standing in for
Docker's answers each `tasks.<service>` name of `tasks` with one A record per
task, and NXDOMAIN for any other name (Docker's answer for a service with no
task); each address:port in `answering` is a small /metrics server, so a task
listed but not answering is one that is gone or failing. Prometheus's DNS
discovery reads /etc/resolv.conf and nothing else, so the mount namespace binds
the lab's over it. Prometheus runs `config_dir/prometheus.yml`, and the lab
returns its active targets and alerts once every target was scraped and every
rule group evaluated since.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

DNS_ADDRESS = "127.0.0.53"
API = "http://127.0.0.1:9090/api/v1"
TIMEOUT = 60.0


def run(config_dir: Path, tasks: dict[str, list[str]], answering: list[str]) -> dict:
    """{"targets": [{labels, health}], "alerts": [{labels, state, value}]}."""
    scenario = json.dumps({"config_dir": str(config_dir), "tasks": tasks, "answering": answering})
    result = subprocess.run(["unshare", "--mount", "--net", sys.executable, __file__, scenario],
                            capture_output=True, text=True, timeout=TIMEOUT + 30)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


class _Resolver(BaseResolver):
    def __init__(self, tasks: dict[str, list[str]]):
        self.tasks = tasks

    def resolve(self, request, handler):
        reply = request.reply()
        addresses = self.tasks.get(str(request.q.qname).rstrip("."))
        if addresses is None:
            reply.header.rcode = 3  # NXDOMAIN
        elif request.q.qtype == QTYPE.A:
            for address in addresses:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=0))
        return reply


class _Metrics(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(b"lab_task 1\n")

    def log_message(self, *args):
        pass


def _get(path: str) -> dict:
    with urllib.request.urlopen(f"{API}/{path}", timeout=5) as response:
        return json.load(response)["data"]


def _seconds(timestamp: str) -> float:
    """An RFC 3339 UTC time as Prometheus writes it (up to nanoseconds) in seconds."""
    whole, _, fraction = timestamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(whole + "+00:00").timestamp() + float(f"0.{fraction or 0}")


def _scraped() -> bool:
    """Every target scraped at least once."""
    try:
        targets = _get("targets?state=active")["activeTargets"]
    except OSError:
        return False  # not listening yet
    return bool(targets) and all(t["health"] != "unknown" for t in targets)


def _evaluated_since(moment: float) -> bool:
    return all(_seconds(g["lastEvaluation"]) > moment for g in _get("rules")["groups"])


def _wait(condition, prometheus: subprocess.Popen, deadline: float) -> None:
    while not condition():
        assert time.monotonic() < deadline and prometheus.poll() is None, "Prometheus did not settle"
        time.sleep(0.5)


def _main(scenario: dict) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    resolv = Path(scenario["config_dir"]).parent / "resolv.conf"
    resolv.write_text(f"nameserver {DNS_ADDRESS}\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    DNSServer(_Resolver(scenario["tasks"]), address=DNS_ADDRESS, port=53,
              logger=DNSLogger("-request,-reply,-truncated")).start_thread()
    for target in scenario["answering"]:
        address, port = target.rsplit(":", 1)
        server = http.server.ThreadingHTTPServer((address, int(port)), _Metrics)
        threading.Thread(target=server.serve_forever, daemon=True).start()
    config_dir = Path(scenario["config_dir"])
    prometheus = subprocess.Popen(
        ["prometheus", "--config.file=prometheus.yml", f"--storage.tsdb.path={config_dir.parent / 'tsdb'}",
         "--web.listen-address=127.0.0.1:9090"],
        cwd=config_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        _wait(_scraped, prometheus, deadline)
        scraped = time.time()
        _wait(lambda: _evaluated_since(scraped), prometheus, deadline)
        print(json.dumps({
            "targets": [{"labels": t["labels"], "health": t["health"]}
                        for t in _get("targets?state=active")["activeTargets"]],
            "alerts": [{k: a[k] for k in ("labels", "state", "value")} for a in _get("alerts")["alerts"]],
        }))
    finally:
        prometheus.kill()
        sys.stderr.write(prometheus.communicate()[1][-3000:])


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
