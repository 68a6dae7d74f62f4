"""The backup container as each stack declares it, under the Pulumi mocks:
image, schedule, networks, volumes, and every credential a secret."""

from __future__ import annotations

import json
import re
import subprocess
from functools import lru_cache

import pytest

import harness
from components.backups.backups import BACKUP_COMMAND, BUILD_CONTEXT, HOME, METRICS_FILE, RESTORE_COMMAND, crontab
from settings.defaults import IMAGES, defaults_for
from real_tools import need

ROOT = harness.ROOT
SECRET_ENVS = {"PGPASSWORD", "REDISCLI_AUTH", "QDRANT_API_KEY", "MC_HOST_minio", "MC_HOST_offsite"}


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
    assert {k for k, v in entries.items() if harness.is_secret(v)} == SECRET_ENVS
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
    assert crontab("none") == ""
    (daily,) = crontab("daily").splitlines()
    assert daily.startswith(f"0 2 * * * {BACKUP_COMMAND} all --reason daily ")
    hourly, daily = crontab("hourly+daily").splitlines()
    assert hourly.startswith(f"30 * * * * {BACKUP_COMMAND} postgres --reason hourly ")
    assert daily.startswith("0 2 * * * ")


@pytest.mark.parametrize("name", harness.STACKS)
def test_the_image_is_built_from_the_repo_over_the_pinned_redis_tools_image(name):
    run = stack(name)
    (image,) = [r for r in run.of_type("docker:index/image:Image") if r.name == f"{name}-backup-image"]
    build = image.plain("build")
    assert build["args"] == {"BASE_IMAGE": IMAGES["backupBase"], "MINIO_IMAGE": IMAGES["minio"]}
    assert build["context"] == BUILD_CONTEXT and (ROOT / build["dockerfile"]).is_file()
    assert re.fullmatch(r"shia-chatbot-backup:[0-9a-f]{16}", image.plain("imageName"))
    assert backup_container(name).plain("image") == image.plain("imageName")
    dockerfile = (ROOT / build["dockerfile"]).read_text()
    assert f"COPY bin/ {HOME}/bin/" in dockerfile and (ROOT / BUILD_CONTEXT / "bin" / "backup").is_file()


@pytest.mark.parametrize("name", harness.STACKS)
def test_volumes_data_metrics_and_redis_read_only(name):
    mounts = {v["containerPath"]: v for v in backup_container(name).plain("volumes")}
    assert mounts["/backups"]["volumeName"] == f"{name}_backup_data"
    assert mounts["/metrics"]["volumeName"] == f"{name}_backup_metrics"
    assert mounts["/sources/redis"] == {"volumeName": f"{name}_redis_data", "containerPath": "/sources/redis",
                                        "readOnly": True}
    data = stack(name).named(f"{name}_backup_data")
    assert data.protect == data.retain_on_delete == (name == "prod")


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
    result = subprocess.run([need("shellcheck"), "-s", "sh", "-x", "-P", str(ROOT / BUILD_CONTEXT / "lib"), *scripts],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("name", harness.STACKS)
def test_backup_bucket_output(name):
    expected = "dev-backups" if name == "dev" else f"shia-chatbot-{name}-backups"
    assert stack(name).outputs["backupBucket"] == expected
    assert env_value(name, "OFFSITE_TARGET") == f"offsite/{expected}"
