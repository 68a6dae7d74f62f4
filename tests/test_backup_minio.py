"""The backup job's MinIO backup and restore (lib/minio.sh), against the MinIO
stand-in of the real-engine tests (tests/e2e/images/minio: an S3 server with
SigV4, and an `mc`) run as local processes, and a real restic repository.

Faults of mc and restic that exit 0 come from wrappers placed first on PATH,
which run the real program and then misbehave.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from backup_helpers import (Minio, fake_restic, mc_bin, restic_env, restic_files, restic_snapshots, run_lib,
                            script_env, server_dir, stub_bin)

MIB = 1024 * 1024
STANDARD = {  # key -> content, uploaded in one part (ETag = MD5)
    "kitab/al-kafi/vol1.pdf": secrets.token_bytes(200_000),
    "kitab/نهج البلاغة.pdf": secrets.token_bytes(50_000),
    "notes/a b c.txt": "بسم الله الرحمن الرحيم\n".encode(),
    "empty.txt": b"",
}
MULTIPART = {  # key -> (content, part size): ETag = MD5 of the parts' MD5s, "-<parts>"
    "large/tafsir.pdf": (secrets.token_bytes(11 * MIB + 123), 5 * MIB),  # a usual part size
    "odd/scan.tiff": (secrets.token_bytes(3 * MIB + 100), 1_000_000),  # an unusual one
}


@pytest.fixture(scope="module")
def minio():
    server = Minio(server_dir("shia-backup-minio-")).start()
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


@pytest.fixture
def bucket(minio, request) -> str:
    """A bucket of its own for each test, holding the documents above."""
    name = "docs-" + request.node.name.lower().replace("_", "-")[5:40].strip("-")
    minio.mc("mb", f"minio/{name}", bucket=name)
    for key, data in STANDARD.items():
        minio.put(name, key, data)
    for key, (data, part_size) in MULTIPART.items():
        assert minio.put_multipart(name, key, data, part_size).endswith(f"-{-(-len(data) // part_size)}")
    return name


def documents() -> dict[str, bytes]:
    return {**STANDARD, **{key: data for key, (data, _) in MULTIPART.items()}}


def minio_env(toolbox: Path, tmp_path: Path, minio: Minio, bucket: str, *extra_path: Path, **extra: str):
    return script_env(toolbox, tmp_path, *extra_path, mc_bin(tmp_path / "mc-bin"),
                      **{**restic_env(tmp_path), **minio.env(bucket), **extra})


def dump(env: dict[str, str], snapshot: str, key: str) -> bytes:
    return subprocess.run(["restic", "-r", env["RESTIC_REPOSITORY"], "dump", snapshot,
                           f"{env['BACKUP_STAGING']}/minio/{key}"], env={**os.environ, **env},
                          capture_output=True, check=True).stdout


def test_a_round_trip_by_content_keeps_history(minio, bucket, toolbox, tmp_path):
    env = minio_env(toolbox, tmp_path, minio, bucket, fake_restic(tmp_path / "fake-restic"))
    # Yesterday's backup (retention keeps one per hour and per day, the newest).
    yesterday = (datetime.now() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
    first = run_lib("minio", "backup", "daily", env={**env, "RESTIC_TEST_TIME": yesterday})
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip()
    sizes = {key: len(data) for key, data in documents().items()}
    assert restic_files(env, first_id, "minio") == sizes
    assert dump(env, first_id, "large/tafsir.pdf") == documents()["large/tafsir.pdf"]
    assert "odd/scan.tiff: no usual part size gives its ETag" in first.stderr  # checked by a second download

    # A document deleted, one replaced by another of the same size, one added.
    minio.mc("rm", f"minio/{bucket}/notes/a b c.txt", bucket=bucket)
    replaced = secrets.token_bytes(200_000)
    minio.put(bucket, "kitab/al-kafi/vol1.pdf", replaced)
    minio.put(bucket, "new.pdf", b"%PDF-1.7 new")
    second = run_lib("minio", "backup", "daily", env=env)
    assert second.returncode == 0, second.stderr
    second_id = second.stdout.strip()
    assert "notes/a b c.txt" not in restic_files(env, second_id, "minio")
    assert dump(env, second_id, "kitab/al-kafi/vol1.pdf") == replaced

    # The older snapshot still has what was deleted and replaced since.
    restore = run_lib("minio", "restore", first_id, env=env)
    assert restore.returncode == 0, restore.stderr
    assert minio.objects(bucket) == {**documents(), "new.pdf": b"%PDF-1.7 new"}  # newer objects stay
    assert minio.secret not in first.stderr + second.stderr + restore.stderr


def test_an_mc_that_prints_an_error_and_exits_0_fails_the_backup(minio, bucket, toolbox, tmp_path):
    # The case: mc reports a failed object on stderr and exits 0.
    fake = stub_bin(tmp_path / "fake-bin", "mc", f'''{mc_bin(tmp_path / "mc-bin")}/mc "$@" || exit
[ "$1" = mirror ] && echo "mc: <ERROR> Failed to copy \\`minio/{bucket}/empty.txt\\`. connection reset" >&2
exit 0
''')
    env = minio_env(toolbox, tmp_path, minio, bucket, fake)
    result = run_lib("minio", "backup", "daily", env=env)
    assert result.returncode != 0 and "wrote errors and exited 0" in result.stderr
    assert result.stdout == "" and restic_snapshots(env, "minio") == []


def test_a_document_missing_from_the_staged_copy_fails_the_backup(minio, bucket, toolbox, tmp_path):
    # The case: the copy lacks a document and nothing says so.
    fake = stub_bin(tmp_path / "fake-bin", "mc", f'''{mc_bin(tmp_path / "mc-bin")}/mc "$@" || exit
if [ "$1" = mirror ]; then for arg; do target=$arg; done; rm -f "$target/kitab/al-kafi/vol1.pdf"; fi
''')
    env = minio_env(toolbox, tmp_path, minio, bucket, fake)
    result = run_lib("minio", "backup", "daily", env=env)
    assert result.returncode != 0
    assert "not staged\tkitab/al-kafi/vol1.pdf" in result.stderr and "does not match the bucket" in result.stderr
    assert result.stdout == "" and restic_snapshots(env, "minio") == []


def test_a_bad_copy_is_caught_by_content_and_fetched_again(minio, bucket, toolbox, tmp_path):
    # The first mirror leaves a multipart document with the right size and the
    # wrong bytes (as mc mirror, which compares sizes and times, would keep it).
    fake = stub_bin(tmp_path / "fake-bin", "mc", f'''{mc_bin(tmp_path / "mc-bin")}/mc "$@" || exit
if [ "$1" = mirror ] && [ ! -e {tmp_path}/spoiled ]; then
    for arg; do target=$arg; done
    printf 'XXXX' | dd of="$target/large/tafsir.pdf" bs=1 seek=6000000 conv=notrunc 2>/dev/null
    touch {tmp_path}/spoiled
fi
''')
    env = minio_env(toolbox, tmp_path, minio, bucket, fake)
    result = run_lib("minio", "backup", "daily", env=env)
    assert result.returncode == 0, result.stderr
    assert "differs\tlarge/tafsir.pdf" in result.stderr and "mirroring once more" in result.stderr
    assert dump(env, result.stdout.strip(), "large/tafsir.pdf") == documents()["large/tafsir.pdf"]


def test_a_snapshot_that_left_out_a_file_is_forgotten(minio, bucket, toolbox, tmp_path):
    # restic leaves a file out and exits 0: the snapshot's listing is not the bucket's.
    env = minio_env(toolbox, tmp_path, minio, bucket, fake_restic(tmp_path / "fake-restic"),
                    RESTIC_TEST_EXCLUDE="*.tiff")
    result = run_lib("minio", "backup", "daily", env=env)
    assert result.returncode != 0
    assert "odd/scan.tiff: 3145828 bytes in the bucket, absent in the snapshot" in result.stderr
    assert "forgetting snapshot" in result.stderr
    assert restic_snapshots(env, "minio") == []  # retention never counts it, restore never finds it


def test_an_empty_bucket_is_an_empty_snapshot_and_a_missing_one_a_failure(minio, toolbox, tmp_path):
    minio.mc("mb", "minio/docs-empty", bucket="docs-empty")
    env = minio_env(toolbox, tmp_path, minio, "docs-empty")
    result = run_lib("minio", "backup", "daily", env=env)
    assert result.returncode == 0, result.stderr
    assert restic_files(env, result.stdout.strip(), "minio") == {}

    missing = run_lib("minio", "backup", "daily", env={**env, "MINIO_BUCKET": "docs-never-made"})
    assert missing.returncode != 0 and "mirror of docs-never-made failed" in missing.stderr
    assert len(restic_snapshots(env, "minio")) == 1
