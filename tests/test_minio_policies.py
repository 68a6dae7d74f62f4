"""MinIO's app and backup users (components/data/minio_policies.py) against the
MinIO stand-in (tests/e2e/images/minio), which evaluates IAM policies on every
S3 call: Allow/Deny, Action and Resource with wildcards.

What the stand-in cannot show: conditions (a statement with a Condition never
allows there), which S3 calls real MinIO maps each mc command to (real `mc mb
--ignore-existing`, `mc mirror` may make calls the stand-in's mc does not),
the admin API's encrypted bodies (its `mc admin` works only with the stand-in),
and bucket policies or anonymous access. Those need the real MinIO (e2e).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backup_helpers import (STANDIN_MC, Minio, mc_bin, password, restic_env, run_lib, script_env, server_dir)
from components.data import minio_policies as mp

DOCUMENTS, BACKUPS, OTHER = "test-documents", "test-backups", "test-other"


@pytest.fixture(scope="module")
def minio(tmp_path_factory):
    server = Minio(server_dir("shia-minio-policies-")).start()
    for bucket in (DOCUMENTS, BACKUPS, OTHER):  # the step's first line, as root
        server.mc("mb", f"minio/{bucket}")
    server.users = {user: password() for user, _ in mp.USERS}
    yield server
    server.stop()
    shutil.rmtree(server.folder, ignore_errors=True)


def run_users_step(minio: Minio, folder: Path) -> subprocess.CompletedProcess:
    """scripts/minio-users.sh as the MinIO container runs it: root credentials in
    its environment, the users' secrets on stdin."""
    env = {**os.environ, "PATH": f"{mc_bin(folder / 'mc-bin')}:{os.environ['PATH']}",
           "MC_CONFIG_DIR": str(folder / "mc"), "MINIO_ROOT_USER": minio.user, "MINIO_ROOT_PASSWORD": minio.secret,
           "MINIO_ADDRESS": f"127.0.0.1:{minio.port}", **mp.users_step_env(DOCUMENTS, BACKUPS, str(folder))}
    secrets = "".join(minio.users[user] + "\n" for user, _ in mp.USERS)
    return subprocess.run(["sh", "-c", mp.USERS_SCRIPT], input=secrets, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module", autouse=True)
def users(minio, tmp_path_factory):
    folder = tmp_path_factory.mktemp("users-step")
    for _ in range(2):  # idempotent: the second run finds everything made
        result = run_users_step(minio, folder)
        assert result.returncode == 0, result.stderr
    for secret in minio.users.values():
        assert secret not in result.stdout + result.stderr


def mc_as(minio: Minio, user: str, *args: str, data: bytes = b"") -> subprocess.CompletedProcess:
    env = {**os.environ, "MC_CONFIG_DIR": str(minio.folder / "mc"),
           "MC_HOST_minio": f"http://{user}:{minio.users[user]}@127.0.0.1:{minio.port}"}
    return subprocess.run([sys.executable, str(STANDIN_MC), *args], input=data, env=env, capture_output=True)


def allowed(result: subprocess.CompletedProcess) -> bool:
    if result.returncode == 0:
        return True
    assert b"Access Denied" in result.stderr or b"AccessDenied" in result.stderr, result.stderr
    return False


def test_the_app_reads_writes_and_deletes_documents_only(minio, tmp_path):
    upload = tmp_path / "doc.txt"
    upload.write_bytes(b"kitab")
    assert allowed(mc_as(minio, mp.APP_USER, "cp", str(upload), f"minio/{DOCUMENTS}/a/doc.txt"))
    assert mc_as(minio, mp.APP_USER, "cat", f"minio/{DOCUMENTS}/a/doc.txt").stdout == b"kitab"
    assert allowed(mc_as(minio, mp.APP_USER, "ls", "-r", f"minio/{DOCUMENTS}"))
    assert allowed(mc_as(minio, mp.APP_USER, "rm", f"minio/{DOCUMENTS}/a/doc.txt"))

    minio.put(BACKUPS, "restic/config", b"repository")
    minio.put(OTHER, "x", b"other")
    for command in [("cat", f"minio/{BACKUPS}/restic/config"), ("cp", str(upload), f"minio/{BACKUPS}/x"),
                    ("rm", f"minio/{BACKUPS}/restic/config"), ("ls", f"minio/{BACKUPS}"), ("cat", f"minio/{OTHER}/x"),
                    ("mb", f"minio/{DOCUMENTS}-2"), ("rb", "--force", f"minio/{DOCUMENTS}"), ("ls", "minio"),
                    ("admin", "user", "list", "minio"), ("admin", "policy", "attach", "minio", "consoleAdmin",
                                                          "--user", mp.APP_USER)]:
        assert not allowed(mc_as(minio, mp.APP_USER, *command)), command
    assert minio.objects(BACKUPS)["restic/config"] == b"repository"


def test_the_backup_job_backs_up_and_restores_documents_as_its_user(minio, toolbox, tmp_path):
    minio.put(DOCUMENTS, "kitab/vol1.pdf", b"%PDF vol1")
    env = script_env(toolbox, tmp_path, mc_bin(tmp_path / "mc-bin"), **{
        **restic_env(tmp_path), "MINIO_BUCKET": DOCUMENTS, "MC_CONFIG_DIR": str(tmp_path / "mc"),
        "MC_HOST_minio": f"http://{mp.BACKUP_USER}:{minio.users[mp.BACKUP_USER]}@127.0.0.1:{minio.port}"})
    backup = run_lib("minio", "backup", "daily", env=env)
    assert backup.returncode == 0, backup.stderr

    minio.mc("rm", f"minio/{DOCUMENTS}/kitab/vol1.pdf")  # lost, by the root
    restore = run_lib("minio", "restore", "latest", env=env)
    assert restore.returncode == 0, restore.stderr
    assert minio.objects(DOCUMENTS)["kitab/vol1.pdf"] == b"%PDF vol1"


def test_the_backup_job_writes_its_bucket_and_cannot_delete_documents_or_reach_others(minio, tmp_path):
    upload = tmp_path / "pack"
    upload.write_bytes(b"restic pack")
    assert allowed(mc_as(minio, mp.BACKUP_USER, "cp", str(upload), f"minio/{BACKUPS}/restic/data/p1"))
    assert mc_as(minio, mp.BACKUP_USER, "cat", f"minio/{BACKUPS}/restic/data/p1").stdout == b"restic pack"
    assert allowed(mc_as(minio, mp.BACKUP_USER, "rm", f"minio/{BACKUPS}/restic/data/p1"))  # restic's prune

    minio.put(DOCUMENTS, "keep.txt", b"keep")
    minio.put(OTHER, "x", b"other")
    for command in [("rm", f"minio/{DOCUMENTS}/keep.txt"), ("cat", f"minio/{OTHER}/x"),
                    ("cp", str(upload), f"minio/{OTHER}/y"), ("rb", "--force", f"minio/{BACKUPS}"),
                    ("ls", "minio"), ("admin", "user", "list", "minio")]:
        assert not allowed(mc_as(minio, mp.BACKUP_USER, *command)), command
    assert minio.objects(DOCUMENTS)["keep.txt"] == b"keep"


def test_a_wrong_secret_is_refused(minio):
    env = {**os.environ, "MC_CONFIG_DIR": str(minio.folder / "mc"),
           "MC_HOST_minio": f"http://{mp.APP_USER}:{password()}@127.0.0.1:{minio.port}"}
    result = subprocess.run([sys.executable, str(STANDIN_MC), "ls", f"minio/{DOCUMENTS}"], env=env,
                            capture_output=True)
    assert result.returncode != 0 and b"Access Denied" in result.stderr


def test_a_rotated_secret_takes_effect_when_the_step_reruns(minio, tmp_path):
    old = minio.users[mp.APP_USER]
    minio.users[mp.APP_USER] = password()
    result = run_users_step(minio, tmp_path)
    assert result.returncode == 0, result.stderr
    assert allowed(mc_as(minio, mp.APP_USER, "ls", f"minio/{DOCUMENTS}"))
    env = {**os.environ, "MC_CONFIG_DIR": str(minio.folder / "mc"),
           "MC_HOST_minio": f"http://{mp.APP_USER}:{old}@127.0.0.1:{minio.port}"}
    stale = subprocess.run([sys.executable, str(STANDIN_MC), "ls", f"minio/{DOCUMENTS}"], env=env, capture_output=True)
    assert stale.returncode != 0
