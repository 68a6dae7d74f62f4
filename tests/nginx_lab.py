"""A real nginx on loopback, driven the way the program drives the one on the host.

The router's files are rendered by components/router/nginx_config.py and
installed by components/router/scripts/router-apply.sh; the slot is written by
router-switch.sh: the very files the program runs inside the nginx container.
What the lab supplies instead of the host: a private, non-root nginx prefix,
njs loaded from Debian's module path, and a DNS server standing in for Docker's
(app-<slot> -> the slot's replicas, each a small HTTP server on its own
loopback address), so the config resolves its upstreams per request as it does
behind 127.0.0.11.
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

from dnslib import QTYPE, RR, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from components.router.nginx_config import (
    APPLY_SCRIPT, CONF_FILE, SLOT_FILE, SWITCH_SCRIPT, WORKER_SHUTDOWN_TIMEOUT, RouterSpec,
)

NJS = "/usr/lib/nginx/modules/ngx_http_js_module.so"  # Debian's libnginx-mod-http-js

MAIN_CONF = """\
load_module {njs};
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
answer = sys.argv[3].encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle + delayed ACK
    # add 40 ms to every proxied request.
    disable_nagle_algorithm = True
    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
    do_GET = do_POST = _answer
    def log_message(self, *a):
        pass
ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), H).serve_forever()
"""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _as_unprivileged(cmd: list[str]) -> list[str]:
    # nginx refuses nothing as root, but the program's nginx must not need it.
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


class Upstream:
    """A replica: a tiny HTTP server on its own loopback address, answering its slot's name."""

    def __init__(self, answer: str, address: str, port: int):
        self.address, self.port, self.answer = address, port, answer
        self.proc = subprocess.Popen([sys.executable, "-c", UPSTREAM, address, str(port), answer])
        wait_for_port(port, address)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Resolver(BaseResolver):
    """Docker's embedded DNS, as far as nginx asks it: a name, its replicas' addresses."""

    def __init__(self):
        self.names: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.port = free_port()
        self.server = DNSServer(self, address="127.0.0.1", port=self.port, logger=DNSLogger("-request,-reply,-truncated"))
        self.server.start_thread()

    def set(self, name: str, *addresses: str) -> None:
        with self.lock:
            self.names[name] = list(addresses)

    def resolve(self, request, handler):
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        with self.lock:
            addresses = list(self.names.get(name, ()))
        if request.q.qtype == QTYPE.A:
            for address in addresses:
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=600))
        if not addresses:
            reply.header.rcode = 3  # NXDOMAIN, as Docker answers a name no container holds
        return reply

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop()


class Nginx:
    def __init__(self, nginx: str, root: Path):
        self.nginx = nginx
        self.prefix = root / "nginx"
        self.conf_dir = self.prefix / "conf" / "conf.d"
        self.conf_dir.mkdir(parents=True)
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.prefix / "tmp" / sub).mkdir(parents=True)
        (self.prefix / "logs").mkdir()
        (self.prefix / "conf" / "nginx.conf").write_text(MAIN_CONF.format(njs=NJS, shutdown=WORKER_SHUTDOWN_TIMEOUT))
        if os.geteuid() == 0:
            shutil.chown(root, "nobody")
            for path in [self.prefix, *self.prefix.rglob("*")]:
                shutil.chown(path, "nobody")
        self.log = root / "nginx.log"
        self.status_port = free_port()
        self.proc: Optional[subprocess.Popen] = None

    @property
    def command(self) -> str:
        """What NGINX is set to for the apply script."""
        return f"{self.nginx} -p {self.prefix}/ -c conf/nginx.conf -e stderr"

    def spec(self, **fields) -> RouterSpec:
        """A RouterSpec for this lab: its conf dir and status port."""
        return RouterSpec(conf_dir=str(self.conf_dir), status_port=self.status_port, **fields)

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}/router"

    def _chown(self) -> None:
        if os.geteuid() == 0:
            for path in [self.conf_dir, *self.conf_dir.rglob("*")]:
                shutil.chown(path, "nobody")

    def check(self, spec: RouterSpec) -> subprocess.CompletedProcess:
        """`nginx -t` on a spec's files, without starting nginx."""
        for name, text in spec.files().items():
            (self.conf_dir / name).write_text(text)
        self._chown()
        return subprocess.run(_as_unprivileged([*self.command.split(), "-t", "-q"]), capture_output=True, text=True)

    def start(self, spec: RouterSpec, slot: Optional[str] = None) -> None:
        result = self.check(spec)
        assert result.returncode == 0, result.stderr
        if slot:
            (self.conf_dir / SLOT_FILE).write_text(slot + "\n")
            self._chown()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(_as_unprivileged([*self.command.split(), "-g", "daemon off;"]),
                                         stdout=log, stderr=log)

    def _script(self, script: str, stdin: str, **env: str) -> subprocess.CompletedProcess:
        # `env` sets the variables after runuser, which resets the environment.
        return subprocess.run(_as_unprivileged(["env", f"PATH={os.environ['PATH']}",
                                                *(f"{k}={v}" for k, v in env.items()), "sh", "-c", script]),
                              input=stdin, capture_output=True, text=True)

    def apply(self, spec: RouterSpec) -> subprocess.CompletedProcess:
        """Install a spec's files exactly as the program does: the same script, the bundle on stdin."""
        return self._script(APPLY_SCRIPT, spec.bundle(), ROUTER_DIR=str(self.conf_dir), NGINX=self.command,
                            STATUS_URL=self.status_url, EXPECT=spec.config_digest,
                            NGINX_PID_FILE=str(self.prefix / "nginx.pid"))

    def switch(self, slot: str) -> subprocess.CompletedProcess:
        """Make `slot` the served one as the program does: router-switch.sh, the slot on stdin."""
        return self._script(SWITCH_SCRIPT, f"{slot}\n", SLOT_FILE=str(self.conf_dir / SLOT_FILE),
                            STATUS_URL=self.status_url)

    @property
    def config(self) -> str:
        return (self.conf_dir / CONF_FILE).read_text()

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
    """One request on a new connection."""
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
    """Steady load until stopped, recording every answer: `clients` threads that
    open a new connection per GET, and `keepalive` threads that POST over one
    kept-alive connection each (a reset there is a failed request: clients do not
    retry a POST)."""

    port: int
    clients: int = 4
    keepalive: int = 4
    answers: list[tuple[float, str]] = field(default_factory=list)  # (start time, body)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self):
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        self._threads += [threading.Thread(target=self._keepalive_client, daemon=True) for _ in range(self.keepalive)]

    def _record(self, started: float, outcome: str) -> None:
        with self._lock:
            if outcome in ("blue", "green"):
                self.answers.append((started, outcome))
            else:
                self.failures.append(outcome)

    def _client(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, body, _ = get(self.port)
                outcome = body if status == 200 else f"HTTP {status}"
            except OSError as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            self._record(started, outcome)

    def _keepalive_client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                conn.request("POST", "/", body=b"{}", headers={"Host": "localhost", "Content-Type": "application/json"})
                response = conn.getresponse()
                body = response.read().decode()
                outcome = body if response.status == 200 else f"HTTP {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = f"keep-alive POST: {type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            self._record(started, outcome)
        conn.close()

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

    def answers_since(self, since: float) -> set[str]:
        with self._lock:
            return {body for started, body in self.answers if started >= since}

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listening on {host}:{port}")
