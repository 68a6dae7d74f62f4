"""The router in a real nginx: switched under load with keep-alive clients, its
replicas found by DNS per request, a broken config refused, TLS, rate limits.

nginx 1.22 with njs (Debian's), the program's own scripts, and a DNS server
standing in for Docker's (tests/nginx_lab.py).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components.router.nginx_config import TlsFiles
from nginx_lab import NJS, Load, Nginx, Resolver, Upstream, free_port, get, wait_for_port
from real_tools import need

# High enough that the load test measures the switch, not the limiter (tested on its own below).
UNLIMITED = 6_000_000
BLUE, GREEN = ("127.0.0.2", "127.0.0.3"), ("127.0.0.4", "127.0.0.5")


@pytest.fixture
def dns():
    resolver = Resolver()
    yield resolver
    resolver.stop()


@pytest.fixture
def upstreams(dns):
    """Two replicas per slot, each on its own address and the same port, as on a Docker network."""
    port = free_port()
    replicas = {"blue": [Upstream("blue", a, port) for a in BLUE], "green": [Upstream("green", a, port) for a in GREEN]}
    dns.set("app-blue", *BLUE)
    dns.set("app-green", *GREEN)
    yield port, replicas
    for slot in replicas.values():
        for replica in slot:
            replica.stop()


@pytest.fixture
def lab():
    # Not pytest's tmp_path: its parents are private to root, and nginx runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="nginx-lab-"))
    root.chmod(0o755)
    need("wget")  # the apply and switch scripts poll the status server with it
    if not Path(NJS).exists():
        need("njs module " + NJS)
    nginx = Nginx(need("nginx"), root)
    yield nginx
    nginx.stop()
    shutil.rmtree(root, ignore_errors=True)


def spec(lab: Nginx, dns: Resolver, app_port: int, http_port: int, **overrides):
    fields = dict(environment="prod", server_name="localhost", http_port=http_port, rate_per_minute=UNLIMITED,
                  resolver=dns.address, app_port=app_port)
    return lab.spec(**{**fields, **overrides})


def test_switch_under_load_fails_no_request_and_reloads_nothing(lab, dns, upstreams, record_property):
    app_port, _ = upstreams
    port = free_port()
    router = spec(lab, dns, app_port, port)
    lab.start(router, slot="blue")
    wait_for_port(port)
    load = Load(port).start()
    switches = {}
    try:
        load.wait_for(1000)
        for target in ("green", "blue"):
            started = time.monotonic()
            result = lab.switch(target)
            done = time.monotonic()
            assert result.returncode == 0, result.stderr
            first = load.first_answer_after(target, started)
            switches[target] = {"step_s": done - started, "first_answer_s": first - started,
                                "started_at": started, "done_at": done}
            load.wait_for(load.count() + 2500)
        load.wait_for(6000)
    finally:
        load.stop()

    assert load.failures == [], load.failures[:5]
    total = len(load.answers)
    to_green, to_blue = switches["green"], switches["blue"]
    before = [a for t, a in load.answers if t < to_green["started_at"]]
    # Once the step returned, every request that started after it met the new slot.
    after_green = [a for t, a in load.answers if to_green["done_at"] < t < to_blue["started_at"]]
    after_blue = [a for t, a in load.answers if t > to_blue["done_at"]]
    assert set(before) == {"blue"}
    assert after_green and set(after_green) == {"green"}
    assert after_blue and set(after_blue) == {"blue"}
    # Nothing was reloaded: a switch is a file, read per request.
    assert "signal process started" not in lab.log.read_text() and "reconfiguring" not in lab.log.read_text()
    for target, figures in switches.items():
        record_property(f"switch_to_{target}_step_ms", round(figures["step_s"] * 1000, 1))
        record_property(f"switch_to_{target}_first_answer_ms", round(figures["first_answer_s"] * 1000, 1))
    record_property("requests", total)
    print(f"\nrouter switch: {total} requests ({load.keepalive} keep-alive POST clients, {load.clients} "
          f"new-connection GET clients), {len(load.failures)} failed; "
          + "; ".join(f"to {t}: step {f['step_s'] * 1000:.0f} ms, first {t} answer "
                      f"{f['first_answer_s'] * 1000:.0f} ms" for t, f in switches.items()))


def test_a_replica_on_a_new_address_gets_its_slots_traffic_without_a_reload(lab, dns, upstreams):
    app_port, replicas = upstreams
    port = free_port()
    router = spec(lab, dns, app_port, port)
    lab.start(router, slot="blue")
    wait_for_port(port)
    # A blue replica comes back on another address; a green one took its old address.
    moved = Upstream("blue", "127.0.0.6", app_port)
    try:
        replicas["blue"][0].stop()
        dns.set("app-blue", "127.0.0.6", BLUE[1])
        time.sleep(1.5)  # the resolver's `valid=1s`
        answers = {get(port)[1] for _ in range(40)}
        assert answers == {"blue"}
        # Every blue replica gone: the slot answers 502, never with green's.
        moved.stop()
        replicas["blue"][1].stop()
        dns.set("app-blue")
        time.sleep(1.5)
        assert {get(port)[0] for _ in range(10)} == {502}
    finally:
        moved.stop()


def test_nginx_starts_while_a_slots_replicas_are_missing(lab, dns, upstreams):
    """Upstream names are resolved per request: a missing replica never stops nginx."""
    app_port, _ = upstreams
    dns.set("app-blue")
    port = free_port()
    lab.start(spec(lab, dns, app_port, port), slot="blue")
    wait_for_port(port)
    assert get(port)[0] == 502
    dns.set("app-blue", *BLUE)
    time.sleep(1.5)
    assert get(port)[1] == "blue"


def test_no_slot_file_serves_nothing_rather_than_guess(lab, dns, upstreams):
    app_port, _ = upstreams
    port = free_port()
    lab.start(spec(lab, dns, app_port, port))
    wait_for_port(port)
    assert get(port)[0] == 503
    assert lab.switch("purple").returncode == 1
    assert lab.switch("green").returncode == 0
    assert get(port)[1] == "green"


def test_a_broken_config_is_refused_and_the_old_one_keeps_serving(lab, dns, upstreams):
    app_port, _ = upstreams
    port = free_port()
    good = spec(lab, dns, app_port, port)
    lab.start(good, slot="blue")
    wait_for_port(port)
    before = lab.config
    broken = spec(lab, dns, app_port, port, client_max_body_size="25 megabytes")
    load = Load(port).start()
    try:
        load.wait_for(200)
        result = lab.apply(broken)
        load.wait_for(load.count() + 500)
    finally:
        load.stop()
    assert result.returncode == 1
    assert "refused by nginx -t" in result.stderr
    assert "client_max_body_size" in result.stderr  # nginx's own reason reaches the operator
    assert lab.config == before
    assert load.failures == []
    assert {a for _, a in load.answers} == {"blue"}


def test_a_new_config_is_served_before_the_step_returns(lab, dns, upstreams):
    app_port, _ = upstreams
    port = free_port()
    first = spec(lab, dns, app_port, port)
    lab.start(first, slot="blue")
    wait_for_port(port)
    second = spec(lab, dns, app_port, port, rate_per_minute=UNLIMITED - 1)
    assert lab.apply(second).returncode == 0
    status, body, _ = get(lab.status_port, "/router")
    assert (status, body) == (200, f"config={second.config_digest} slot=blue\n")


def test_tls_block_passes_nginx_t_and_port_80_redirects(lab, dns, upstreams):
    app_port, _ = upstreams
    openssl = need("openssl")
    cert, key = lab.prefix / "cert.pem", lab.prefix / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    for path in (cert, key):
        path.chmod(0o644)
    http_port, https_port = free_port(), free_port()
    router = spec(lab, dns, app_port, http_port, https_port=https_port,
                  tls=TlsFiles(certificate=str(cert), key=str(key)))
    assert lab.check(router).returncode == 0
    lab.start(router, slot="green")
    wait_for_port(https_port)
    status, _, headers = get(http_port, "/chat?q=1")
    assert status == 301
    assert headers["Location"] == "https://localhost/chat?q=1"
    status, body, headers = get(https_port, https=True)
    assert (status, body) == (200, "green")
    assert headers["X-Served-Slot"] == "green"
    assert "max-age=31536000" in headers["Strict-Transport-Security"]


def test_rate_limit_allows_the_burst_then_answers_429(lab, dns, upstreams):
    app_port, _ = upstreams
    port = free_port()
    limited = spec(lab, dns, app_port, port, rate_per_minute=60)
    lab.start(limited, slot="blue")
    wait_for_port(port)
    statuses = [get(port)[0] for _ in range(limited.burst + 10)]
    # One request at the rate plus the burst pass (nodelay); the rest are refused.
    assert statuses.count(200) in (limited.burst + 1, limited.burst + 2)
    assert set(statuses) == {200, 429}
    assert get(port, "/nginx-health")[0] == 200  # health is never rate limited
