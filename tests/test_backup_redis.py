"""The backup job's Redis backup and restore, run against real redis-servers.

The source is set up as in the stack (append-only, password); the restore goes
into a fresh, empty server and is compared with DEBUG DIGEST, a hash of the
whole dataset, before and after that server restarts from its own files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backup_helpers import (BACKUP, RESTORE, Redis, busybox_toolbox, free_port, metrics, password, run, script_env,
                            server_dir, sets)
from real_tools import need


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
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def fresh():
    server = Redis(server_dir("shia-backup-redis-"), password()).start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory) -> Path:
    return busybox_toolbox(tmp_path_factory.mktemp("busybox"))


def test_backup_restores_into_a_fresh_server(source, fresh, toolbox, tmp_path):
    env = script_env(toolbox, tmp_path, **source.env())
    backup = run(BACKUP, "redis", env=env)
    assert backup.returncode == 0, backup.stderr
    (name,) = sets(tmp_path)
    assert (tmp_path / "backups" / "sets" / name / "redis.rdb").stat().st_size > 0
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="redis"}'] == 1

    # The fresh server has its own password, as a rebuilt stack would.
    restore_env = {**script_env(toolbox, tmp_path, **fresh.env()), "REDIS_RESTORE_ADDRESS": "127.0.0.1",
                   "REDIS_RESTORE_BIND": "127.0.0.1", "REDIS_RESTORE_PORT": str(free_port())}
    restore = run(RESTORE, "redis", name, env=restore_env)
    assert restore.returncode == 0, restore.stderr

    assert fresh.cli("DBSIZE") == source.cli("DBSIZE") == "20005"
    assert fresh.cli("DEBUG", "DIGEST") == source.cli("DEBUG", "DIGEST")
    assert fresh.cli("GET", "session:abc") == "سلام" and int(fresh.cli("TTL", "session:abc")) > 0
    assert "role:master" in fresh.cli("INFO", "replication")
    assert fresh.password not in restore.stdout + restore.stderr

    # It kept the data in its own append-only file: a restart changes nothing.
    fresh.stop()
    fresh.start()
    assert fresh.cli("DEBUG", "DIGEST") == source.cli("DEBUG", "DIGEST")


def test_a_wrong_password_fails_the_backup(source, toolbox, tmp_path):
    env = script_env(toolbox, tmp_path, **{**source.env(), "REDISCLI_AUTH": password()})
    result = run(BACKUP, "redis", env=env)
    assert result.returncode != 0
    assert sets(tmp_path) == []
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="redis"}'] == 0


def test_an_unreadable_rdb_is_refused_by_redis_check_rdb(source, toolbox, tmp_path):
    corrupt = tmp_path / "dump.rdb"
    corrupt.write_bytes(b"REDIS0011" + os.urandom(4096))  # a valid header, then noise
    env = script_env(toolbox, tmp_path, **{**source.env(), "REDIS_RDB": str(corrupt)})
    result = run(BACKUP, "redis", env=env)
    assert result.returncode != 0 and "redis-check-rdb refused" in result.stderr
    assert sets(tmp_path) == []


def test_a_failed_restore_leaves_redis_a_writable_primary(source, fresh, toolbox, tmp_path):
    assert run(BACKUP, "redis", env=script_env(toolbox, tmp_path, **source.env())).returncode == 0
    fresh.cli("SET", "written-before", "1")
    # The live server cannot reach the temporary one: the sync never starts.
    env = {**script_env(toolbox, tmp_path, **fresh.env()), "REDIS_RESTORE_ADDRESS": "127.0.0.2",
           "REDIS_RESTORE_BIND": "127.0.0.1", "REDIS_RESTORE_PORT": str(free_port()), "REDIS_TIMEOUT_SECONDS": "1"}

    result = run(RESTORE, "redis", "latest", env=env)

    assert result.returncode != 0 and "did not finish the sync" in result.stderr
    assert "role:master" in fresh.cli("INFO", "replication")
    assert fresh.cli("SET", "written-after", "1") == "OK" and fresh.cli("GET", "written-before") == "1"
