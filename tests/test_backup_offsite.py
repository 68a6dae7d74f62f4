"""MinIO mirroring and off-site copies, through a stand-in for mc (which Debian
does not package): where the files go, that credentials come only from the
MC_HOST_* environment, that a failed upload fails the run and deletes nothing,
and that a set that is only off-site is fetched for a restore."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from backup_helpers import BACKUP, RESTORE, fake_mc, metrics, run, script_env, sets
from components.backups.backups import METRICS_FILE
from real_tools import need


@pytest.fixture
def env(toolbox, tmp_path) -> dict[str, str]:
    bin_dir, mc_env = fake_mc(tmp_path)
    return script_env(toolbox, tmp_path, bin_dir, **mc_env)


@pytest.fixture
def bucket(env, tmp_path) -> Path:
    documents = tmp_path / "s3" / "minio" / env["MINIO_BUCKET"]
    (documents / "2025").mkdir(parents=True)
    (documents / "2025" / "kitab.pdf").write_bytes(b"%PDF-1.7 first")
    (documents / "2025" / "risala.pdf").write_bytes(b"%PDF-1.7 second")
    return documents


def test_a_set_and_the_bucket_mirror_are_copied_off_site(env, bucket, tmp_path):
    result = run(BACKUP, "minio", env=env)
    assert result.returncode == 0, result.stderr
    (name,) = sets(tmp_path)

    mirror = tmp_path / "backups" / "minio" / env["MINIO_BUCKET"] / "2025" / "kitab.pdf"
    assert mirror.read_bytes() == b"%PDF-1.7 first"
    offsite = tmp_path / "s3" / "offsite" / "offsite-bucket"
    assert sorted(p.name for p in (offsite / "sets" / name).iterdir()) == ["SHA256SUMS", "minio.manifest"]
    assert (offsite / "minio" / env["MINIO_BUCKET"] / "2025" / "risala.pdf").exists()
    assert "objects=2" in (offsite / "sets" / name / "minio.manifest").read_text()
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="offsite"}'] == 1
    lint = subprocess.run([need("promtool"), "check", "metrics"], capture_output=True, text=True,
                          input=(tmp_path / "metrics" / METRICS_FILE).read_text())
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # Credentials reach mc only through MC_HOST_*: never as an argument.
    calls = (tmp_path / "s3" / "calls").read_text()
    secret = env["MC_HOST_offsite"].split("@")[0].rsplit(":", 1)[1]
    assert secret not in calls


def test_a_failed_upload_fails_the_run_but_keeps_the_local_set(env, bucket, tmp_path):
    result = run(BACKUP, "minio", env={**env, "FAKE_MC_DOWN": "offsite"})
    assert result.returncode != 0 and "failed: offsite" in result.stderr
    assert len(sets(tmp_path)) == 1
    samples = metrics(tmp_path)
    assert samples['shia_chatbot_backup_last_status{service="minio"}'] == 1
    assert samples['shia_chatbot_backup_last_status{service="offsite"}'] == 0


def test_restore_fetches_a_set_that_is_only_off_site_and_puts_documents_back(env, bucket, tmp_path):
    name = run(BACKUP, "minio", env=env).stdout.strip()
    for path in (tmp_path / "backups" / "sets" / name).iterdir():
        path.unlink()
    (tmp_path / "backups" / "sets" / name).rmdir()
    (bucket / "2025" / "kitab.pdf").unlink()  # deleted by mistake

    result = run(RESTORE, "minio", name, env=env)

    assert result.returncode == 0, result.stderr
    assert sets(tmp_path) == [name]
    assert (bucket / "2025" / "kitab.pdf").read_bytes() == b"%PDF-1.7 first"


def test_restore_refuses_an_unknown_set_without_touching_anything(env, bucket, tmp_path):
    result = run(RESTORE, "minio", "20200101T000000Z-daily", env=env)
    assert result.returncode != 0 and "no set 20200101T000000Z-daily" in result.stderr
    assert sets(tmp_path) == []
