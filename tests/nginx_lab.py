"""A real nginx on loopback, driven the way the program drives the one on the host.

The router config is rendered by components/router/nginx_config.py and installed by
components/router/scripts/router-apply.sh, the very file the program runs inside the
nginx container; only ROUTER_CONF and NGINX (the -p/-c/-e flags of a private,
non-root nginx) differ.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from components.router.nginx_config import APPLY_SCRIPT, WORKER_SHUTDOWN_TIMEOUT

MAIN_CONF = """\
worker_processes 2;
pid nginx.pid;
error_log stderr warn;
worker_shutdown_timeout {shutdown};
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    include conf.d/*.conf;
}}
"""

UPSTREAM = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
answer = sys.argv[2].encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle + delayed ACK
    # add 40 ms to every proxied request.
    disable_nagle_algorithm = True
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_unprivileged(cmd: list[str]) -> list[str]:
    # nginx refuses nothing as root, but the program's nginx must not need it.
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


class Upstream:
    """A tiny HTTP server answering its slot's name."""

    def __init__(self, answer: str):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, str(self.port), answer])
        wait_for_port(self.port)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Nginx:
    def __init__(self, nginx: str, root: Path):
        self.nginx = nginx
        self.prefix = root / "nginx"
        (self.prefix / "conf" / "conf.d").mkdir(parents=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "tmp" / sub).mkdir(parents=True)
        (self.prefix / "logs").mkdir()
        (self.prefix / "conf" / "nginx.conf").write_text(MAIN_CONF.format(shutdown=WORKER_SHUTDOWN_TIMEOUT))
        if os.geteuid() == 0:
            shutil.chown(root, "nobody")
            for path in [self.prefix, *self.prefix.rglob("*")]:
                shutil.chown(path, "nobody")
        self.conf = self.prefix / "conf" / "conf.d" / "default.conf"
        self.log = root / "nginx.log"
        self.proc: Optional[subprocess.Popen] = None

    @property
    def command(self) -> str:
        """What NGINX is set to for the apply script."""
        return f"{self.nginx} -p {self.prefix}/ -c conf/nginx.conf -e stderr"

    def check(self, config: str) -> subprocess.CompletedProcess:
        """`nginx -t` on a config, without installing it."""
        self.conf.write_text(config)
        if os.geteuid() == 0:
            shutil.chown(self.conf, "nobody")
        return subprocess.run(_as_unprivileged([*self.command.split(), "-t", "-q"]), capture_output=True, text=True)

    def start(self, config: str) -> None:
        result = self.check(config)
        assert result.returncode == 0, result.stderr
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(_as_unprivileged([*self.command.split(), "-g", "daemon off;"]),
                                         stdout=log, stderr=log)

    def apply(self, config: str) -> subprocess.CompletedProcess:
        """Install a config exactly as the program does: the same script, config on stdin."""
        # `env` sets the two variables after runuser, which resets the environment.
        return subprocess.run(_as_unprivileged(["env", f"ROUTER_CONF={self.conf}", f"NGINX={self.command}",
                                                "sh", "-c", APPLY_SCRIPT]),
                              input=config, capture_output=True, text=True)

    def stop(self) -> None:
        if self.proc:
            # Signal nginx itself: runuser would forward a SIGTERM only after a 2 s grace.
            subprocess.run(_as_unprivileged([*self.command.split(), "-s", "stop"]), capture_output=True)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def get(port: int, path: str = "/", *, https: bool = False, timeout: float = 5.0) -> tuple[int, str, dict]:
    """One request on a new connection (no keep-alive: every request meets the
    current set of workers, so a reload cannot hide behind a reused connection)."""
    if https:
        conn = http.client.HTTPSConnection("localhost", port, timeout=timeout,
                                           context=ssl._create_unverified_context())
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "localhost", "Connection": "close"})
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


@dataclass
class Load:
    """Steady load from several client threads until stopped; records every answer."""

    port: int
    clients: int = 6
    answers: list[tuple[float, str]] = field(default_factory=list)  # (start time, body)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]

    def _client(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, body, _ = get(self.port)
                outcome = body if status == 200 else f"HTTP {status}"
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            with self._lock:
                if outcome in ("blue", "green"):
                    self.answers.append((started, outcome))
                else:
                    self.failures.append(outcome)

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.answers) + len(self.failures)

    def wait_for(self, total: int, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count() < total:
            assert time.monotonic() < deadline, f"load stalled at {self.count()} requests"
            time.sleep(0.01)

    def first_answer_after(self, answer: str, since: float, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with self._lock:
                fresh, seen = self.answers[seen:], len(self.answers)
            for started, body in fresh:
                if started >= since and body == answer:
                    return started
            time.sleep(0.005)
        raise AssertionError(f"no {answer!r} answer within {timeout}s")

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listening on {port}")

