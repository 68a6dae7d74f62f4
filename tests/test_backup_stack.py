"""The backup container and pgBackRest's wiring as each stack declares them, under
the Pulumi mocks: images, schedule, networks, volumes, WAL archiving, and every
credential a secret."""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache

import pytest

import harness
from components.backups.backups import (
    BACKUP_COMMAND, BUILD_CONTEXT, HOME, METRICS_FILE, RESTORE_COMMAND, WAL_METRICS_COMMAND, crontab, restic_retention,
)
from components.backups.pgbackrest import ARCHIVE_TIMEOUT_SECONDS, retention_full
from settings.defaults import IMAGES, defaults_for
from real_tools import need

ROOT = harness.ROOT
SECRET_ENVS = {"RESTIC_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "REDISCLI_AUTH", "QDRANT_API_KEY",
               "MC_HOST_minio"}
# pgBackRest's off-site repository (S3 over TLS): stage and prod only.
PGBACKREST_SECRETS = {"PGBACKREST_REPO2_S3_KEY", "PGBACKREST_REPO2_S3_KEY_SECRET"}


@lru_cache(maxsize=None)
def stack(name: str) -> harness.Run:
    run = harness.run(name)
    assert run.error is None, run.error
    return run


def backup_container(name: str) -> harness.Registered:
    return stack(name).containers()[f"{name}-backup"]


def envs(name: str) -> dict[str, object]:
    """Each env entry as registered (secret markers kept), by variable name."""
    return {harness.unwrap(e).split("=", 1)[0]: e for e in backup_container(name).inputs["envs"]}


def env_value(name: str, key: str) -> str:
    return harness.unwrap(envs(name)[key]).split("=", 1)[1]


@pytest.mark.parametrize("name", harness.STACKS)
def test_every_credential_reaches_the_container_as_a_secret_and_only_there(name):
    entries = envs(name)
    expected = SECRET_ENVS | (PGBACKREST_SECRETS if name != "dev" else set())
    assert {k for k, v in entries.items() if harness.is_secret(v)} == expected
    postgres = {harness.unwrap(e).split("=", 1)[0]: e for e in stack(name).containers()[f"{name}-postgres"].inputs["envs"]}
    assert {k for k, v in postgres.items() if harness.is_secret(v)} == {"POSTGRES_PASSWORD"} | (expected & PGBACKREST_SECRETS)
    run = stack(name)
    passwords = {p.plain("result") for p in run.of_type("random:index/randomPassword:RandomPassword")} - {None}
    for resource in run.resources:
        plain = json.dumps(_without_secrets(resource.inputs))
        assert not any(p in plain for p in passwords), f"{resource.name} carries a password in plaintext"


def _without_secrets(value):
    if harness.is_secret(value):
        return None
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


@pytest.mark.parametrize("name", harness.STACKS)
def test_the_schedule_follows_backups_schedule(name):
    schedule = defaults_for(name)["backups"]["schedule"]
    assert env_value(name, "BACKUP_CRONTAB") == crontab(schedule)
    assert env_value(name, "RETENTION_DAYS") == str(defaults_for(name)["backups"]["retentionDays"])


def test_crontabs_per_schedule():
    metrics = f"* * * * * {WAL_METRICS_COMMAND} "
    (only,) = crontab("none").splitlines()
    assert only.startswith(metrics)
    daily, wal = crontab("daily").splitlines()
    assert daily.startswith(f"0 2 * * * {BACKUP_COMMAND} all --reason daily ") and wal.startswith(metrics)
    hourly, daily, wal = crontab("hourly+daily").splitlines()
    # PostgreSQL has its WAL archive; the hourly run is for the services kept in restic.
    assert hourly.startswith(f"30 * * * * {BACKUP_COMMAND} redis qdrant minio --reason hourly ")
    assert daily.startswith("0 2 * * * ") and wal.startswith(metrics)


@pytest.mark.parametrize("name", harness.STACKS)
def test_retention_is_the_tools_own_and_reaches_back_the_retention_days(name):
    backups = defaults_for(name)["backups"]
    keep = str(retention_full(backups["retentionDays"]))
    assert env_value(name, "PGBACKREST_REPO1_RETENTION_FULL") == keep
    # Weekly fulls: the oldest kept one is at least retentionDays old.
    assert env_value(name, "BACKUP_FULL_EVERY_DAYS") == "7"
    assert 7 * (int(keep) - 1) >= backups["retentionDays"]
    assert env_value(name, "RESTIC_KEEP_DAILY") == str(backups["retentionDays"])
    assert env_value(name, "RESTIC_KEEP_HOURLY") == ("24" if backups["schedule"] == "hourly+daily" else "0")
    assert restic_retention.__doc__


@pytest.mark.parametrize("name", harness.STACKS)
def test_postgres_archives_every_wal_segment_through_pgbackrest(name):
    postgres = stack(name).containers()[f"{name}-postgres"]
    command = postgres.plain("command")[-1]
    assert "-c archive_mode=on" in command and "-c archive_command='pgbackrest archive-push %p'" in command
    assert f"-c archive_timeout={ARCHIVE_TIMEOUT_SECONDS}" in command
    mounts = {v["containerPath"]: v["volumeName"] for v in postgres.plain("volumes")}
    assert mounts == {"/var/lib/postgresql/data": f"{name}_postgres_data", "/var/lib/pgbackrest": f"{name}_pgbackrest_data",
                      "/var/run/postgresql": f"{name}_postgres_socket"}
    # One pgBackRest configuration for both ends of the repository.
    plain = {harness.unwrap(e) for e in postgres.inputs["envs"] if not harness.is_secret(e)}
    assert {e for e in plain if e.startswith("PGBACKREST_")} == {
        harness.unwrap(e) for e in backup_container(name).inputs["envs"]
        if harness.unwrap(e).startswith("PGBACKREST_") and not harness.is_secret(e)}
    # The postgres image is the pinned one plus pgBackRest, built here.
    (image,) = [r for r in stack(name).of_type("docker:index/image:Image") if r.name == f"{name}-postgres-image"]
    assert image.plain("build")["args"] == {"BASE_IMAGE": IMAGES["postgres"]}
    assert postgres.plain("image") == image.plain("imageName")


@pytest.mark.parametrize("name", harness.STACKS)
def test_off_site_pgbackrest_repository_only_over_tls(name):
    entries = envs(name)
    if name == "dev":
        assert not any(k.startswith("PGBACKREST_REPO2_") for k in entries)
        assert env_value(name, "RESTIC_OFFSITE_REPOSITORY") == "s3:http://minio:9000/dev-backups/restic"
    else:
        bucket = f"shia-chatbot-{name}-backups"
        assert env_value(name, "PGBACKREST_REPO2_TYPE") == "s3"
        assert env_value(name, "PGBACKREST_REPO2_S3_BUCKET") == bucket
        assert env_value(name, "PGBACKREST_REPO2_PATH") == "/pgbackrest"
        assert env_value(name, "RESTIC_OFFSITE_REPOSITORY") == (
            f"s3:https://s3.eu-central-1.amazonaws.com/{bucket}/restic")


@pytest.mark.parametrize("name", harness.STACKS)
def test_repositories_are_initialised_and_checked_once_both_containers_run(name):
    step = stack(name).named(f"{name}-backup-init")
    create = step.plain("create")
    assert f"BACKUP={name}-backup" in create and f"POSTGRES={name}-postgres" in create
    assert "pgbackrest version" in create and "/opt/shia-backup/bin/backup-init" in create


@pytest.mark.parametrize("name", harness.STACKS)
def test_the_image_is_built_from_the_repo_over_a_plain_base_with_the_stacks_redis_tools(name):
    run = stack(name)
    (image,) = [r for r in run.of_type("docker:index/image:Image") if r.name == f"{name}-backup-image"]
    build = image.plain("build")
    assert build["args"] == {"BASE_IMAGE": IMAGES["backupBase"], "MINIO_IMAGE": IMAGES["minio"],
                             "REDIS_IMAGE": IMAGES["redis"]}
    assert build["context"] == BUILD_CONTEXT and (ROOT / build["dockerfile"]).is_file()
    assert re.fullmatch(r"shia-chatbot-backup:[0-9a-f]{16}", image.plain("imageName"))
    assert backup_container(name).plain("image") == image.plain("imageName")
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    assert f"COPY bin/ {HOME}/bin/" in dockerfile and (ROOT / BUILD_CONTEXT / "bin" / "backup").is_file()
    # The last stage is FROM the plain base: no service image's VOLUME, STOPSIGNAL or USER is inherited.
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert stages[-1] == "${BASE_IMAGE}" and "AS" not in dockerfile.splitlines()[-1]


@pytest.mark.parametrize("name", harness.STACKS)
def test_volumes_repositories_metrics_and_postgres_at_its_own_paths(name):
    mounts = {v["containerPath"]: v["volumeName"] for v in backup_container(name).plain("volumes")}
    assert mounts == {"/backups": f"{name}_backup_data", "/metrics": f"{name}_backup_metrics",
                      "/var/lib/pgbackrest": f"{name}_pgbackrest_data", "/var/run/postgresql": f"{name}_postgres_socket",
                      "/var/lib/postgresql/data": f"{name}_postgres_data"}
    for repository in (f"{name}_backup_data", f"{name}_pgbackrest_data"):
        volume = stack(name).named(repository)
        assert volume.protect == volume.retain_on_delete == (name == "prod")


@pytest.mark.parametrize("name", harness.STACKS)
def test_networks_backend_and_egress_only_for_s3(name):
    networks = {n["name"]: n["aliases"] for n in backup_container(name).plain("networksAdvanced")}
    egress = [r for r in stack(name).of_type("docker:index/network:Network") if r.name == f"{name}-backup-egress"]
    if name == "dev":
        assert networks == {f"{name}-backend": ["backup"]} and egress == []
    else:
        assert networks == {f"{name}-backend": ["backup"], f"{name}-backup-egress": ["backup"]}
        (network,) = egress
        assert not network.plain("internal")


def test_the_scripts_and_the_makefile_agree_with_the_component():
    assert f"METRICS_FILE={METRICS_FILE}" in (ROOT / BUILD_CONTEXT / "lib" / "common.sh").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert f"{BACKUP_COMMAND} all --reason manual" in makefile and f"{RESTORE_COMMAND} $(SERVICE)" in makefile


def test_the_scripts_pass_shellcheck():
    scripts = sorted(str(p) for p in (ROOT / BUILD_CONTEXT).glob("*/*") if p.suffix in ("", ".sh"))
    scripts += sorted(str(p) for p in (ROOT / "components" / "backups" / "scripts").glob("*.sh"))
    result = subprocess.run([need("shellcheck"), "-s", "sh", "-x", "-P", str(ROOT / BUILD_CONTEXT / "lib"), *scripts],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", harness.STACKS)
def test_backup_bucket_output(name):
    expected = "dev-backups" if name == "dev" else f"shia-chatbot-{name}-backups"
    assert stack(name).outputs["backupBucket"] == expected
    assert f"/{expected}/restic" in env_value(name, "RESTIC_OFFSITE_REPOSITORY")
