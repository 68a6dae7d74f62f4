"""The backup job's Redis backup and restore (lib/redis.sh), against real redis-servers
and a real restic repository.

The source is set up as in the stack (append-only, password, the default save
points); the restore goes into a fresh, empty server and is compared with DEBUG
DIGEST, a hash of the whole dataset, and again after that server is killed
(SIGKILL, no shutdown save) right after the restore returned and restarted from
its own files.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
from pathlib import Path

import pytest

from backup_helpers import (Redis, free_port, password, restic_env, restic_files, restic_snapshots, run_lib,
                            script_env, server_dir, stub_bin)
from real_tools import need

KEYS = 20000 + 5 + 2  # DEBUG POPULATE, the five of the app's shapes, two in database 3


@pytest.fixture(scope="module")
def source():
    need("redis-server")
    server = Redis(server_dir("shia-backup-redis-"), password()).start()
    server.cli("DEBUG", "POPULATE", "20000", "key", "64")
    server.cli("HSET", "celery-task:1", "state", "PENDING", "args", "[1, 2]")
    server.cli("RPUSH", "celery", "task-a", "task-b", "task-c")
    server.cli("SADD", "tags", "fiqh", "hadith", "tafsir")
    server.cli("ZADD", "ranking", "1", "a", "2", "b")
    server.cli("SET", "session:abc", "سلام", "EX", "86400")
    server.cli("-n", "3", "MSET", "cache:1", "one", "cache:2", "two")
    # The stack keeps Redis' 5 s wait for more replicas before a sync; a test need not.
    server.cli("CONFIG", "SET", "repl-diskless-sync-delay", "0")
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def fresh():
    server = Redis(server_dir("shia-backup-redis-"), password()).start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


def redis_env(toolbox: Path, tmp_path: Path, server: Redis, *extra_path: Path, **extra: str) -> dict[str, str]:
    return script_env(toolbox, tmp_path, *extra_path, **{**restic_env(tmp_path), **server.env(), **extra})


def restore_env(backup_env: dict[str, str], server: Redis, **extra: str) -> dict[str, str]:
    """The backup's repository, the target server's address and password (a rebuilt
    stack has its own), and where the temporary server listens."""
    return {**backup_env, "REDIS_PORT": str(server.port), "REDISCLI_AUTH": server.password,
            "REDIS_RESTORE_ADDRESS": "127.0.0.1", "REDIS_RESTORE_BIND": "127.0.0.1",
            "REDIS_RESTORE_PORT": str(free_port()), **extra}


def crash_and_restart(server: Redis) -> None:
    """SIGKILL the redis-server (no save on the way out), then start it on its files."""
    pid = int(server.cli("INFO", "server").split("process_id:")[1].split()[0])
    os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    server.start()


@pytest.fixture(scope="module")
def backed_up(source, toolbox, tmp_path_factory):
    """One backup of the source, taken while a save of Redis' own runs (the
    issue's case: the default save points start one; BGSAVE would be refused),
    shared by the tests that only read it."""
    env = redis_env(toolbox, tmp_path_factory.mktemp("redis-backup"), source)
    source.cli("CONFIG", "SET", "rdb-key-save-delay", "25")  # a save of half a second
    try:
        assert source.cli("BGSAVE") == "Background saving started"
    finally:
        source.cli("CONFIG", "SET", "rdb-key-save-delay", "0")  # the running save keeps its delay
    saving = "rdb_bgsave_in_progress:1" in source.cli("INFO", "persistence")
    result = run_lib("redis", "backup", "daily", env=env)
    return env, result, saving


def test_a_backup_while_a_save_is_running_succeeds(backed_up):
    env, result, saving = backed_up
    assert saving
    assert result.returncode == 0, result.stderr
    assert f"{KEYS} keys" in result.stderr  # redis-check-rdb's count of the copy, logged


def test_a_backup_is_one_tagged_snapshot_of_the_rdb(source, backed_up):
    env, result, _ = backed_up
    (stored,) = restic_snapshots(env, "redis")
    assert result.stdout == stored["short_id"] + "\n"
    assert stored["hostname"] == "test" and sorted(stored["tags"]) == ["reason=daily", "service=redis"]
    assert list(restic_files(env, stored["id"], "redis")) == ["dump.rdb"]
    assert not Path(env["BACKUP_STAGING"], "redis", "dump.rdb").exists()  # staging is emptied
    assert source.password not in result.stdout + result.stderr


def test_a_restore_brings_back_every_database_and_survives_a_crash(source, fresh, backed_up):
    env, _, _ = backed_up
    # The append-only rewrite after the sync takes a while here: the restore must
    # wait for it, or the kill below loses the data.
    fresh.cli("CONFIG", "SET", "rdb-key-save-delay", "25")
    restore = run_lib("redis", "restore", "latest", env=restore_env(env, fresh))
    assert restore.returncode == 0, restore.stderr
    crash_and_restart(fresh)

    assert fresh.cli("DBSIZE") == source.cli("DBSIZE") == str(KEYS - 2)
    assert fresh.cli("DEBUG", "DIGEST") == source.cli("DEBUG", "DIGEST")
    assert fresh.cli("-n", "3", "MGET", "cache:1", "cache:2") == "one\ntwo"
    assert fresh.cli("GET", "session:abc") == "سلام" and int(fresh.cli("TTL", "session:abc")) > 0
    assert "role:master" in fresh.cli("INFO", "replication")
    assert fresh.password not in restore.stdout + restore.stderr


def test_an_rdb_cut_short_is_refused(source, toolbox, tmp_path):
    # A transfer that ends early while redis-cli exits 0: redis-check-rdb is the judge.
    cli = need("redis-cli")
    fake = stub_bin(tmp_path / "fake-bin", "redis-cli", f'''{cli} "$@" || exit
for arg; do [ "$prev" = --rdb ] && truncate -s 4096 "$arg"; prev=$arg; done
''')
    env = redis_env(toolbox, tmp_path, source, fake)
    result = run_lib("redis", "backup", "daily", env=env)
    assert result.returncode != 0 and "redis-check-rdb refused the RDB" in result.stderr
    assert result.stdout == ""
    assert restic_snapshots(env, "redis") == []


def test_a_wrong_password_fails_the_backup(source, toolbox, tmp_path):
    env = redis_env(toolbox, tmp_path, source, REDISCLI_AUTH=password())
    result = run_lib("redis", "backup", "daily", env=env)
    assert result.returncode != 0 and "no RDB from Redis" in result.stderr
    assert result.stdout == ""


def test_a_failed_restore_leaves_redis_a_writable_primary(fresh, backed_up):
    env, _, _ = backed_up
    fresh.cli("SET", "written-before", "1")
    # The live server cannot reach the temporary one: the sync never starts.
    temporary = free_port()
    result = run_lib("redis", "restore", "latest", env=restore_env(
        env, fresh, REDIS_RESTORE_ADDRESS="127.0.0.2", REDIS_RESTORE_PORT=str(temporary), REDIS_TIMEOUT_SECONDS="2"))

    assert result.returncode != 0 and "did not finish the sync" in result.stderr
    assert "role:master" in fresh.cli("INFO", "replication")
    assert fresh.cli("SET", "written-after", "1") == "OK" and fresh.cli("GET", "written-before") == "1"
    with pytest.raises(ConnectionRefusedError):  # the temporary server is gone
        socket.create_connection(("127.0.0.1", temporary), timeout=1)
