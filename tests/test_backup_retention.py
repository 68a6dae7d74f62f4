"""Retention: after a fully successful run, sets older than RETENTION_DAYS go and
nothing else does; after a failed run, nothing goes at all.

Backups of MinIO through a stand-in mc make the quick successful (or failing)
run; the sets being pruned are made here with forged modification times.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from backup_helpers import BACKUP, fake_mc, metrics, run, script_env

DAY = 86400
RETENTION_DAYS = 7


@pytest.fixture
def env(toolbox, tmp_path) -> dict[str, str]:
    bin_dir, mc_env = fake_mc(tmp_path)
    mc_env.pop("OFFSITE_TARGET")  # retention alone; off-site has its own tests
    documents = tmp_path / "s3" / "minio" / mc_env["MINIO_BUCKET"]
    documents.mkdir(parents=True)
    (documents / "kitab.pdf").write_bytes(b"%PDF-1.7 a document")
    return script_env(toolbox, tmp_path, bin_dir, **mc_env, RETENTION_DAYS=str(RETENTION_DAYS))


def forge(path: Path, age_days: float) -> None:
    stamp = time.time() - age_days * DAY
    os.utime(path, (stamp, stamp))


@pytest.fixture
def aged(tmp_path) -> dict[str, float]:
    """Earlier sets by age in days, a partial set a crashed run left, and the MinIO
    mirror (not a set: never pruned), all with forged times."""
    ages = {"20240101T020000Z-daily": 40, "20240102T020000Z-daily": RETENTION_DAYS + 1,
            "20240103T020000Z-daily": RETENTION_DAYS - 1, "20240104T020000Z-pre-migration": 1,
            ".20240101T030000Z-daily.partial": RETENTION_DAYS + 1}
    for name, age in ages.items():
        folder = tmp_path / "backups" / "sets" / name
        folder.mkdir(parents=True)
        (folder / "postgres.dump").write_bytes(b"PGDMP")
        (folder / "SHA256SUMS").write_text("")
        for path in (folder / "postgres.dump", folder / "SHA256SUMS", folder):
            forge(path, age)
    mirror = tmp_path / "backups" / "minio" / "old-object.pdf"
    mirror.parent.mkdir(parents=True)
    mirror.write_bytes(b"old")
    forge(mirror, 100)
    forge(mirror.parent, 100)
    return ages


def names(tmp_path: Path) -> set[str]:
    return {p.name for p in (tmp_path / "backups" / "sets").iterdir()}


def test_only_sets_older_than_the_retention_are_removed(env, aged, tmp_path):
    result = run(BACKUP, "minio", "--reason", "daily", env=env)
    assert result.returncode == 0, result.stderr
    new = result.stdout.strip()

    assert names(tmp_path) == {"20240103T020000Z-daily", "20240104T020000Z-pre-migration", new}
    assert (tmp_path / "backups" / "minio" / "old-object.pdf").exists()
    assert "removing 20240101T020000Z-daily" in result.stderr


def test_a_failed_run_removes_nothing(env, aged, tmp_path):
    result = run(BACKUP, "minio", "--reason", "daily", env={**env, "FAKE_MC_DOWN": "minio"})
    assert result.returncode != 0
    assert names(tmp_path) == set(aged)
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="minio"}'] == 0


def test_a_partly_failed_run_keeps_what_verified_and_removes_nothing(env, aged, tmp_path):
    # MinIO succeeds, Qdrant is unreachable.
    result = run(BACKUP, "minio", "qdrant", env={**env, "QDRANT_URL": "http://127.0.0.1:9",
                                                "QDRANT_API_KEY": "k", "QDRANT_COLLECTION": "c"})
    assert result.returncode != 0 and "failed: qdrant" in result.stderr
    (new,) = names(tmp_path) - set(aged)
    assert sorted(p.name for p in (tmp_path / "backups" / "sets" / new).iterdir()) == ["SHA256SUMS", "minio.manifest"]
    assert set(aged) <= names(tmp_path)
    samples = metrics(tmp_path)
    assert samples['shia_chatbot_backup_last_status{service="minio"}'] == 1
    assert samples['shia_chatbot_backup_last_status{service="qdrant"}'] == 0


def test_a_failure_keeps_the_time_of_the_last_success(env, tmp_path):
    assert run(BACKUP, "minio", "--reason", "first", env=env).returncode == 0
    succeeded = metrics(tmp_path)['shia_chatbot_backup_last_success_timestamp_seconds{service="minio"}']
    assert abs(succeeded - time.time()) < 60

    assert run(BACKUP, "minio", "--reason", "second", env={**env, "FAKE_MC_DOWN": "minio"}).returncode != 0
    samples = metrics(tmp_path)
    assert samples['shia_chatbot_backup_last_status{service="minio"}'] == 0
    assert samples['shia_chatbot_backup_last_success_timestamp_seconds{service="minio"}'] == succeeded
