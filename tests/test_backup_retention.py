"""The restic repositories of the Redis, Qdrant and MinIO backups (lib/restic.sh):
retention per service, off-site copies, and the deep check.

Time is simulated with restic itself: a wrapper dates a snapshot with
`backup --time` (RESTIC_TEST_TIME). Services are the Qdrant and MinIO stand-ins
run as local processes; the off-site repository is in a bucket of the MinIO
stand-in, through restic's S3 backend, as dev's is in its own MinIO.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backup_helpers import (Minio, Qdrant, fake_restic, mc_bin, restic_env, restic_repository, restic_snapshots,
                            run_lib, script_env, server_dir)
from real_tools import need

COLLECTION = "test_documents"
BUCKET = "test-documents"


def days_ago(days: float) -> str:
    return (datetime.now() - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


@pytest.fixture(scope="module")
def minio():
    server = Minio(server_dir("shia-backup-minio-")).start()
    server.mc("mb", f"minio/{BUCKET}", bucket=BUCKET)
    server.put(BUCKET, "kitab/vol1.pdf", os.urandom(30_000))
    server.put(BUCKET, "kitab/vol2.pdf", os.urandom(20_000))
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def qdrant():
    server = Qdrant(server_dir("shia-backup-qdrant-")).start()
    server.api("PUT", f"/collections/{COLLECTION}", {"vectors": {"size": 2, "distance": "Dot"}})
    server.api("PUT", f"/collections/{COLLECTION}/points?wait=true",
               {"points": [{"id": i, "vector": [i, 1], "payload": {"n": i}} for i in range(40)]})
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def env(toolbox, tmp_path, minio) -> dict[str, str]:
    need("curl")
    return script_env(toolbox, tmp_path, fake_restic(tmp_path / "fake-restic"), mc_bin(tmp_path / "mc-bin"),
                      **{**restic_env(tmp_path), **minio.env(BUCKET)})


def test_retention_keeps_the_newest_backup_of_a_service_that_keeps_failing(env, qdrant):
    # The case: Qdrant's last good backup is 40 days old, it has failed
    # ever since, and the others have been backed up all along.
    # Daily runs: no hourly snapshots to keep (keep-hourly counts snapshots, one per hour).
    env = {**env, **qdrant.env(COLLECTION), "RESTIC_KEEP_HOURLY": "0", "RESTIC_KEEP_DAILY": "2"}
    before = qdrant.points(COLLECTION)
    first = run_lib("qdrant", "backup", "daily", env={**env, "RESTIC_TEST_TIME": days_ago(40)})
    assert first.returncode == 0, first.stderr
    qdrant.stop()
    for age in (20, 10, 5, 0):
        assert run_lib("qdrant", "backup", "daily", env=env).returncode != 0
        minio = run_lib("minio", "backup", "daily", env={**env, "RESTIC_TEST_TIME": days_ago(age)})
        assert minio.returncode == 0, minio.stderr

    # MinIO's retention ran (2 daily kept) and left Qdrant's snapshot alone.
    kept = [datetime.fromisoformat(s["time"][:19]) for s in restic_snapshots(env, "minio")]
    assert [round((datetime.now() - t).days) for t in kept] == [5, 0]
    (qdrant_snapshot,) = restic_snapshots(env, "qdrant")
    assert qdrant_snapshot["short_id"] == first.stdout.strip()

    # Qdrant's volume is lost too: `restore qdrant latest` finds the old snapshot.
    shutil.rmtree(qdrant.folder / "storage")
    qdrant.start()
    restore = run_lib("qdrant", "restore", "latest", env=env)
    assert restore.returncode == 0, restore.stderr
    assert qdrant.points(COLLECTION) == before


def test_a_run_killed_while_holding_a_lock_does_not_block_retention(env, tmp_path):
    # A container replaced during a backup leaves restic's lock behind: restic
    # never ignores a lock, so without clearing it every later prune would fail.
    staging = Path(env["BACKUP_STAGING"])
    staging.mkdir(parents=True)
    holder = subprocess.Popen(["restic", "-r", env["RESTIC_REPOSITORY"], "backup", "--stdin"],
                              env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    locks = Path(env["RESTIC_REPOSITORY"], "locks")
    deadline = time.monotonic() + 10
    while not any(lock.stat().st_size for lock in locks.iterdir()):  # written, not only created
        assert time.monotonic() < deadline, "restic took no lock"
        time.sleep(0.05)
    holder.send_signal(signal.SIGKILL)
    holder.wait()

    result = run_lib("minio", "backup", "daily", env=env)
    assert result.returncode == 0, result.stderr
    assert "repository is already locked" in result.stderr  # the first try, before unlocking
    assert not any(locks.iterdir())


def test_off_site_creates_its_repository_but_never_over_one_it_cannot_open(env, minio):
    minio.mc("mb", "minio/offsite", bucket="offsite")
    env = {**env, **minio.offsite_env("offsite")}
    assert run_lib("minio", "backup", "daily", env=env).returncode == 0

    # Wrong credentials must fail, not look like "no repository yet".
    denied = run_lib("minio", "offsite", env={**env, "AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    assert denied.returncode != 0 and "cannot copy minio to the off-site repository" in denied.stderr
    assert "creating it" not in denied.stderr

    offsite = run_lib("minio", "offsite", env=env)
    assert offsite.returncode == 0, offsite.stderr
    assert "no restic repository at s3:" in offsite.stderr and "creating it" in offsite.stderr
    assert "1 / 1 snapshots" in offsite.stderr  # restic check of the copy
    assert minio.secret not in offsite.stdout + offsite.stderr + denied.stdout + denied.stderr


def test_an_off_site_copy_serves_a_restore_when_the_local_repository_is_lost(env, minio, tmp_path):
    # Off-site here is a second repository on a local path (the S3 one is above).
    remote = str(restic_repository(tmp_path / "offsite", "offsite"))
    env = {**env, "RESTIC_OFFSITE_REPOSITORY": remote}
    documents = minio.objects(BUCKET)
    assert run_lib("minio", "backup", "daily", env=env).returncode == 0
    offsite = run_lib("minio", "offsite", env=env)
    assert offsite.returncode == 0, offsite.stderr
    (local,) = restic_snapshots(env, "minio")
    (copied,) = restic_snapshots(env, "minio", repository=remote)
    assert copied["tree"] == local["tree"]  # the same content, by restic's content ids

    # The backup volume is lost, then a document.
    shutil.rmtree(env["RESTIC_REPOSITORY"])
    shutil.rmtree(env["RESTIC_CACHE_DIR"])
    minio.mc("rm", f"minio/{BUCKET}/kitab/vol1.pdf", bucket=BUCKET)
    restore = run_lib("minio", "restore", "latest", env=env)
    assert restore.returncode == 0, restore.stderr
    assert f"cannot read {env['RESTIC_REPOSITORY']}" in restore.stderr and f"in {remote}" in restore.stderr
    assert minio.objects(BUCKET) == documents


def test_verify_finds_a_damaged_pack_file(env):
    assert run_lib("minio", "backup", "daily", env=env).returncode == 0
    clean = run_lib("minio", "verify", env=env)
    assert clean.returncode == 0, clean.stderr

    packs = sorted(Path(env["RESTIC_REPOSITORY"], "data").rglob("*"), key=lambda p: p.stat().st_size)
    damaged = [p for p in packs if p.is_file()][-1]  # the largest: the documents' data
    damaged.chmod(0o600)
    with damaged.open("r+b") as pack:
        pack.seek(damaged.stat().st_size // 2)
        byte = pack.read(1)
        pack.seek(-1, os.SEEK_CUR)
        pack.write(bytes([byte[0] ^ 0xFF]))
    result = run_lib("minio", "verify", env=env)
    assert result.returncode != 0 and "found errors" in result.stderr
    assert damaged.name[:8] in result.stderr  # restic names the pack
