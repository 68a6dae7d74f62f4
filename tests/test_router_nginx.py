"""The rendered router config in a real nginx: validated, switched under load, refused when broken."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from components.router.nginx_config import RouterSpec, TlsFiles
from nginx_lab import Load, Nginx, Upstream, free_port, get, wait_for_port
from real_tools import need

# High enough that the load test measures the switch, not the limiter (tested on its own below).
UNLIMITED = 6_000_000


@pytest.fixture
def upstreams():
    servers = {"blue": Upstream("blue"), "green": Upstream("green")}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture
def lab():
    # Not pytest's tmp_path: its parents are private to root, and nginx runs as nobody.
    root = Path(tempfile.mkdtemp(prefix="nginx-lab-"))
    root.chmod(0o755)
    nginx = Nginx(need("nginx"), root)
    yield nginx
    nginx.stop()
    shutil.rmtree(root, ignore_errors=True)


def spec(slot: str, upstream: Upstream, port: int, **overrides) -> RouterSpec:
    fields = dict(environment="prod", slot=slot, upstream_servers=[upstream.address], server_name="localhost",
                  http_port=port, rate_per_minute=UNLIMITED)
    return RouterSpec(**{**fields, **overrides})


def test_switch_under_load_fails_no_request(lab, upstreams, record_property):
    port = free_port()
    blue, green = (spec(s, upstreams[s], port).render() for s in ("blue", "green"))
    lab.start(blue)
    wait_for_port(port)
    load = Load(port).start()
    try:
        load.wait_for(1000)
        switches = {}
        for target, config in (("green", green), ("blue", blue)):
            started = time.monotonic()
            result = lab.apply(config)
            applied = time.monotonic()
            assert result.returncode == 0, result.stderr
            first = load.first_answer_after(target, started)
            switches[target] = {"apply_s": applied - started, "first_answer_s": first - started,
                                "started_at": started, "applied_at": applied}
            # Serve at least 2000 requests and 1.5 s on each slot before moving on.
            load.wait_for(load.count() + 2000)
            time.sleep(max(0.0, applied + 1.5 - time.monotonic()))
        load.wait_for(5000)
    finally:
        load.stop()

    assert load.failures == [], load.failures[:5]
    total = len(load.answers)
    assert total >= 5000
    to_green, to_blue = switches["green"], switches["blue"]
    before = [a for t, a in load.answers if t < to_green["started_at"]]
    # Old workers finish what they hold; a request started a moment after the
    # reload signal may still meet one. Half a second later, none may.
    settled_green = [a for t, a in load.answers if to_green["applied_at"] + 0.5 < t < to_blue["started_at"]]
    settled_blue = [a for t, a in load.answers if t > to_blue["applied_at"] + 0.5]
    assert set(before) == {"blue"}
    assert settled_green and set(settled_green) == {"green"}
    assert settled_blue and set(settled_blue) == {"blue"}
    for target, figures in switches.items():
        record_property(f"switch_to_{target}_apply_ms", round(figures["apply_s"] * 1000, 1))
        record_property(f"switch_to_{target}_first_answer_ms", round(figures["first_answer_s"] * 1000, 1))
    record_property("requests", total)
    record_property("failures", len(load.failures))
    print(f"\nrouter switch: {total} requests, {len(load.failures)} failed; "
          + "; ".join(f"to {t}: apply {f['apply_s'] * 1000:.0f} ms, first {t} answer "
                      f"{f['first_answer_s'] * 1000:.0f} ms" for t, f in switches.items()))


def test_a_broken_config_is_refused_and_the_old_one_keeps_serving(lab, upstreams):
    port = free_port()
    good = spec("blue", upstreams["blue"], port).render()
    lab.start(good)
    wait_for_port(port)
    broken = RouterSpec(environment="prod", slot="green", upstream_servers=["no-such-replica.invalid:8000"],
                        server_name="localhost", http_port=port, rate_per_minute=UNLIMITED).render()
    load = Load(port).start()
    try:
        load.wait_for(200)
        result = lab.apply(broken)
        load.wait_for(load.count() + 500)
    finally:
        load.stop()
    assert result.returncode == 1
    assert "refused by nginx -t" in result.stderr
    assert "no-such-replica.invalid" in result.stderr  # nginx's own reason reaches the operator
    assert lab.conf.read_text() == good
    assert load.failures == []
    assert {a for _, a in load.answers} == {"blue"}
    assert get(port)[1] == "blue"


def test_tls_block_passes_nginx_t_and_port_80_redirects(lab, upstreams):
    openssl = need("openssl")
    cert, key = lab.prefix / "cert.pem", lab.prefix / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    for path in (cert, key):
        path.chmod(0o644)
    http_port, https_port = free_port(), free_port()
    config = spec("green", upstreams["green"], http_port, https_port=https_port,
                  tls=TlsFiles(certificate=str(cert), key=str(key))).render()
    assert lab.check(config).returncode == 0
    lab.start(config)
    wait_for_port(https_port)
    status, _, headers = get(http_port, "/chat?q=1")
    assert status == 301
    assert headers["Location"] == "https://localhost/chat?q=1"
    status, body, headers = get(https_port, https=True)
    assert (status, body) == (200, "green")
    assert headers["X-Served-Slot"] == "green"
    assert "max-age=31536000" in headers["Strict-Transport-Security"]


def test_rate_limit_allows_the_burst_then_answers_429(lab, upstreams):
    port = free_port()
    limited = spec("blue", upstreams["blue"], port, rate_per_minute=60)
    lab.start(limited.render())
    wait_for_port(port)
    statuses = [get(port)[0] for _ in range(limited.burst + 10)]
    # One request at the rate plus the burst pass (nodelay); the rest are refused.
    assert statuses.count(200) in (limited.burst + 1, limited.burst + 2)
    assert set(statuses) == {200, 429}
    assert get(port, "/nginx-health")[0] == 200  # health is never rate limited
