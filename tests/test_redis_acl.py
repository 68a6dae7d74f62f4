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


def _secret_files(folder: Path, values: dict[str, str]) -> dict[str, str]:
    """Each value in its own file, mode 0400 as a Swarm secret is mounted; NAME_FILE -> path."""
    files = {}
    for name, value in values.items():
        path = folder / name.lower()
        path.write_text(value)
        path.chmod(0o400)
        files[f"{name}_FILE"] = str(path)
    return files


def test_the_swarm_form_reads_every_password_from_its_file_and_none_reaches_an_environment(tmp_path):
    """On a swarm the container's environment holds only <VAR>_FILE (Swarm
    secrets); the command reads them before the here-document, and the
    healthcheck's and the maxmemory step's redis-cli reads the admin's."""
    need("redis-server")
    admin, backup, app, exporter = password(), password(), password(), password()
    files = _secret_files(tmp_path, {
        redis_acl.ADMIN_PASSWORD_ENV: admin, redis_acl.BACKUP_PASSWORD_ENV: backup,
        redis_acl.APP_PASSWORD_SHA256_ENV: redis_acl.sha256_hex(app),
        redis_acl.EXPORTER_PASSWORD_SHA256_ENV: redis_acl.sha256_hex(exporter)})
    env = {"PATH": os.environ["PATH"], **files}
    port = free_port()
    server = f"exec redis-server - --port {port} --bind 127.0.0.1 --dir {tmp_path}"
    shell = subprocess.Popen(["sh", "-c", redis_acl.from_files(redis_acl.config_heredoc(server))], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def cli(user: str, secret: str, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-p", str(port), "--user", user, *args], capture_output=True,
                                text=True, env={"PATH": os.environ["PATH"], "REDISCLI_AUTH": secret})
        return (result.stdout + result.stderr).strip()

    try:
        deadline = time.monotonic() + 10
        while cli("admin", admin, "PING") != "PONG":
            assert shell.poll() is None, "the command exited"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        assert cli(APP, app, "PING") == "PONG" and cli(EXPORTER, exporter, "PING") == "PONG"
        assert "role:master" in cli(BACKUP, backup, "INFO", "replication")
        assert "WRONGPASS" in cli(APP, redis_acl.sha256_hex(app), "PING")  # the file holds a digest, not a password
        assert cli("admin", admin, "CONFIG", "GET", "masterauth").split("\n")[-1] == backup
        # What the command hands the server: the values as shell variables, not
        # exported (redis-server blanks its own /proc/<pid>/environ, so `env` stands in).
        environ = subprocess.run(["sh", "-c", redis_acl.from_files("exec env")], env=env, capture_output=True,
                                 text=True, check=True).stdout
        for secret in (admin, backup, app, exporter, redis_acl.sha256_hex(app), redis_acl.sha256_hex(exporter)):
            assert secret not in environ
        assert f"{redis_acl.ADMIN_PASSWORD_ENV}_FILE={files[f'{redis_acl.ADMIN_PASSWORD_ENV}_FILE']}" in environ
        # The healthcheck and the step, in the container's environment (files only).
        for script in (f"{redis_acl.admin_cli(True)} -p {port} ping | grep -q PONG",
                       f"{redis_acl.admin_cli(True)} -p {port} CONFIG SET maxmemory 64mb"):
            result = subprocess.run(["sh", "-c", script], env=env, capture_output=True, text=True)
            assert result.returncode == 0 and "NOAUTH" not in result.stdout + result.stderr, result
        assert cli("admin", admin, "CONFIG", "GET", "maxmemory").split("\n")[-1] == str(64 * 1024 * 1024)
    finally:
        shell.kill()
        shell.wait()


def test_the_swarm_form_stops_before_the_server_when_a_file_is_missing(tmp_path):
    need("redis-server")
    files = _secret_files(tmp_path, {name: password() for name in redis_acl.SECRET_VARIABLES})
    files[f"{redis_acl.BACKUP_PASSWORD_ENV}_FILE"] = str(tmp_path / "missing")
    port = free_port()
    result = subprocess.run(
        ["sh", "-c", redis_acl.from_files(redis_acl.config_heredoc(f"exec redis-server - --port {port} --dir {tmp_path}"))],
        env={"PATH": os.environ["PATH"], **files}, capture_output=True, text=True, timeout=10)
    assert result.returncode != 0 and "missing" in result.stderr
    assert "Ready to accept connections" not in result.stdout  # no server with an empty masterauth


def test_the_swarm_form_changes_nothing_where_the_environment_has_the_passwords():
    """Where <VAR> is set (the Docker runtime's environment) it wins over <VAR>_FILE."""
    shell = redis_acl.from_files('printf "%s " "$REDIS_ADMIN_PASSWORD" "$REDIS_BACKUP_PASSWORD"',
                                 (redis_acl.ADMIN_PASSWORD_ENV, redis_acl.BACKUP_PASSWORD_ENV))
    result = subprocess.run(["sh", "-c", shell], capture_output=True, text=True, check=True, env={
        "PATH": os.environ["PATH"], redis_acl.ADMIN_PASSWORD_ENV: "a", redis_acl.BACKUP_PASSWORD_ENV: "b"})
    assert result.stdout == "a b "
