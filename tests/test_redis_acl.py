"""Redis' ACL users (components/data/redis_acl.py) on a real redis-server started
the way the Redis container starts it: users on stdin, passwords from the
environment, the default user off."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from backup_helpers import Redis, free_port, password, server_dir
from components.data import redis_acl
from real_tools import need

APP, BACKUP, EXPORTER = redis_acl.APP_USER, redis_acl.BACKUP_USER, redis_acl.EXPORTER_USER


@pytest.fixture(scope="module")
def redis():
    need("redis-server")
    server = Redis(server_dir("shia-redis-acl-"), password()).start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


def refused(reply: str) -> bool:
    return reply.startswith("NOPERM") or "has no permissions" in reply


@pytest.mark.parametrize("command", [
    ("CONFIG", "SET", "dir", "/tmp"), ("CONFIG", "GET", "masterauth"), ("FLUSHALL",), ("FLUSHDB",),
    ("DEBUG", "SLEEP", "0"), ("SHUTDOWN", "NOSAVE"), ("REPLICAOF", "127.0.0.1", "1"), ("MODULE", "LIST"),
    ("ACL", "LIST"), ("KEYS", "*"), ("MONITOR",), ("SAVE",), ("BGREWRITEAOF",), ("CLIENT", "KILL", "ID", "1"),
])
def test_the_app_is_refused_admin_and_dangerous_commands(redis, command):
    assert refused(redis.cli(*command, user=APP)), command


def test_the_app_can_do_what_celery_and_the_cache_do(redis):
    assert redis.cli("SET", "session:1", "x", "EX", "60", user=APP) == "OK"
    assert redis.cli("LPUSH", "celery", "task", user=APP) == "1"
    assert redis.cli("BRPOP", "celery", "1", user=APP) == "celery\ntask"
    assert redis.cli("ZADD", "unacked_index", "1", "t", user=APP) == "1"
    assert redis.cli("HSET", "unacked", "t", "{}", user=APP) == "1"
    assert redis.cli("EVAL", "return redis.call('GET', KEYS[1])", "1", "session:1", user=APP) == "x"
    assert redis.cli("PUBLISH", "celery-task-meta-1", "done", user=APP) == "0"
    assert redis.cli("-n", "3", "SET", "cache:1", "one", user=APP) == "OK"
    assert redis.cli("SCAN", "0", "MATCH", "session:*", user=APP).endswith("session:1")
    assert redis.cli("GET", "session:1", user=APP) == "x"


def test_the_default_user_is_off(redis):
    assert "WRONGPASS" in redis.cli("PING", user="default", secret=password())
    # Without AUTH a client is the default user: nothing runs, not even PING.
    result = subprocess.run(["redis-cli", "-p", str(redis.port), "PING"], capture_output=True, text=True,
                            env={"PATH": os.environ["PATH"]})
    assert result.stdout.startswith("NOAUTH")
    assert "\noff\n" in redis.cli("ACL", "GETUSER", "default")


def test_the_exporter_reads_statistics_and_no_keys(redis):
    assert "redis_version:" in redis.cli("INFO", "server", user=EXPORTER)
    assert "used_memory:" in redis.cli("INFO", "memory", user=EXPORTER)
    assert not refused(redis.cli("SLOWLOG", "GET", "10", user=EXPORTER))
    assert not refused(redis.cli("LATENCY", "LATEST", user=EXPORTER))
    for command in [("GET", "session:1"), ("CONFIG", "GET", "*"), ("SCAN", "0"), ("SLOWLOG", "RESET"),
                    ("CLIENT", "KILL", "ID", "1"), ("PUBLISH", "c", "m")]:
        assert refused(redis.cli(*command, user=EXPORTER)), command


def test_the_backup_user_reads_no_keys_and_sets_no_config(redis):
    assert "role:master" in redis.cli("INFO", "replication", user=BACKUP)
    for command in [("GET", "session:1"), ("SET", "k", "v"), ("CONFIG", "SET", "dir", "/tmp"),
                    ("CONFIG", "GET", "masterauth"), ("FLUSHALL",), ("DEBUG", "SLEEP", "0"), ("KEYS", "*")]:
        assert refused(redis.cli(*command, user=BACKUP)), command


def test_no_password_is_in_the_servers_argv_and_the_app_s_is_only_a_hash(redis):
    pid = redis.cli("INFO", "server").split("process_id:")[1].split()[0]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
    environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
    for secret in (redis.password, redis.admin_password, redis.app_password, redis.exporter_password):
        assert secret not in argv
    for secret in (redis.app_password, redis.exporter_password):
        assert secret not in environ  # the Redis container holds their digests only
    assert redis_acl.sha256_hex(redis.app_password) in redis.cli("ACL", "GETUSER", APP)


def test_a_new_password_takes_effect_when_the_server_restarts():
    need("redis-server")
    server = Redis(server_dir("shia-redis-acl-"), password()).start()
    try:
        old = server.app_password
        server.cli("SHUTDOWN")
        server.process.wait(timeout=10)
        server.app_password = password()
        server.start()
        assert server.cli("PING", user=APP) == "PONG"
        assert "WRONGPASS" in server.cli("PING", user=APP, secret=old)
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def test_the_containers_shell_form_hands_its_pid_to_redis_so_sigterm_stops_it(tmp_path):
    """Docker signals the container's first process, the `sh -c` of the
    command. With the users as a here-document that shell execs redis-server
    itself; a `printf … | exec redis-server` pipeline left sh as PID 1, which
    ignored SIGTERM, and Redis was SIGKILLed after the grace."""
    need("redis-server")
    secrets = {name: password() for name in (redis_acl.ADMIN_PASSWORD_ENV, redis_acl.BACKUP_PASSWORD_ENV)}
    digests = {name: redis_acl.sha256_hex(password()) for name in (redis_acl.APP_PASSWORD_SHA256_ENV,
                                                                  redis_acl.EXPORTER_PASSWORD_SHA256_ENV)}
    port = free_port()
    shell = subprocess.Popen(
        ["sh", "-c", redis_acl.config_heredoc(f"exec redis-server - --port {port} --bind 127.0.0.1 --dir {tmp_path}")],
        env={**os.environ, **secrets, **digests}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cli = ["redis-cli", "-p", str(port), "--user", "admin", "--no-auth-warning", "-a",
           secrets[redis_acl.ADMIN_PASSWORD_ENV]]
    try:
        deadline = time.monotonic() + 10
        while subprocess.run([*cli, "PING"], capture_output=True, text=True).stdout.strip() != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        info = subprocess.run([*cli, "INFO", "server"], capture_output=True, text=True).stdout
        assert f"process_id:{shell.pid}" in info  # the shell's PID is the server's
        started = time.monotonic()
        shell.send_signal(signal.SIGTERM)
        assert shell.wait(timeout=10) == 0  # a clean shutdown, not a kill
        assert time.monotonic() - started < 5
    finally:
        shell.kill()
        shell.wait()
