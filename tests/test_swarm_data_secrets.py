"""Redis, Qdrant and the backup job on a swarm read their generated secrets from
Swarm secret files, never from their environment (docs/swarm.md: one secret
entry makes the SDK mark a service's whole `taskSpec` secret, and `docker
service inspect` shows the environment), while on one Docker host their
containers are exactly as before: the same secret entries, in the same order.

Under the SDK's mocks (tools/harness.py): a three-node prod swarm, and the
committed dev, stage and prod stacks. The swarm forms' shell is run for real in
tests/test_redis_acl.py and tests/test_backup_secret_files.py.
"""

from __future__ import annotations

import base64
import json

import pytest

import harness
from components.backups.backups import FILE_SECRETS
from components.data import redis_acl
from components.data.qdrant import LOCAL_CONFIG
from components.host.runtime import secret_file_name
from policy_gate import render, run_gate
from test_swarm_stack import SERVICE, three_node_prod

SECRET = "docker:index/secret:Secret"
CONTAINER = "docker:index/container:Container"
REDIS_FILES = {f"{v}_FILE": f"/run/secrets/{secret_file_name(v)}" for v in redis_acl.SECRET_VARIABLES}
BACKUP_FILES = {f"{v}_FILE": f"/run/secrets/{secret_file_name(v)}" for v in FILE_SECRETS}


@pytest.fixture(scope="module")
def swarm() -> harness.Run:
    result = harness.run("prod", three_node_prod())
    assert result.error is None, result.error
    return result


@pytest.fixture(scope="module")
def one_host() -> dict[str, harness.Run]:
    runs = {stack: harness.run(stack) for stack in harness.STACKS}
    assert all(r.error is None for r in runs.values())
    return runs


def container_spec(run: harness.Run, name: str) -> dict:
    return run.named(name, SERVICE).plain("taskSpec")["containerSpec"]


def secret_paths(value, path: str = ""):
    """Where in `value` a secret marker is."""
    if harness.is_secret(value):
        yield path or "/"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from secret_paths(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from secret_paths(item, f"{path}[{index}]")


def contents(run: harness.Run) -> dict[str, str]:
    """Each Swarm secret's resource name -> its content."""
    return {r.name: base64.b64decode(r.plain("data")).decode() for r in run.of_type(SECRET)}


def mounted(run: harness.Run, service: str) -> dict[str, str]:
    """A service's secret files: path -> content; each owned by root and readable by it only."""
    by_name = {r.plain("name"): base64.b64decode(r.plain("data")).decode() for r in run.of_type(SECRET)}
    files = {}
    for mount in container_spec(run, service).get("secrets") or []:
        assert (mount["fileUid"], mount["fileGid"], int(mount["fileMode"])) == ("0", "0", 0o400), mount
        files[mount["fileName"]] = by_name[mount["secretName"]]
    return files


def generated(run: harness.Run) -> set[str]:
    """Every generated password of the run (the mock's values) and its SHA-256 digest."""
    values = {harness.mock_password(r.name, int(r.plain("length")), r.plain("keepers"))
              for r in run.of_type("random:index/randomPassword:RandomPassword")}
    return values | {redis_acl.sha256_hex(v) for v in values}


def env_of(container: harness.Registered) -> list[tuple[str, bool]]:
    """A container's environment as (name, secret) pairs, in order."""
    return [(harness.unwrap(e).split("=", 1)[0], harness.is_secret(e)) for e in container.inputs["envs"]]


def env_values(container: harness.Registered) -> dict[str, str]:
    return dict(harness.unwrap(e).split("=", 1) for e in container.inputs["envs"])


@pytest.mark.parametrize("name", ["prod-redis", "prod-qdrant", "prod-backup"])
def test_no_secret_reaches_the_service_s_inputs_so_its_task_spec_stays_readable(swarm, name):
    service = swarm.named(name, SERVICE)
    assert list(secret_paths(service.inputs)) == []
    assert not harness.is_secret(service.inputs["taskSpec"])
    # Nor a generated value in plain text: not in the environment, the command or the healthcheck.
    shown = json.dumps(service.plain("taskSpec"))
    assert [v for v in generated(swarm) if v in shown] == []
    assert mounted(swarm, name)  # they are files instead


def test_redis_reads_its_four_values_from_files_and_its_admin_cli_the_admin_s(swarm):
    spec = container_spec(swarm, "prod-redis")
    assert spec["env"] == REDIS_FILES
    files = mounted(swarm, "prod-redis")
    assert set(files) == set(REDIS_FILES.values())
    # The app's and the exporter's as digests, the digest of what the app's REDIS_URL carries.
    app_url = contents(swarm)["prod-app-blue-redis-url"]
    app_password = app_url.split("://app:", 1)[1].split("@", 1)[0]
    assert files[REDIS_FILES["REDIS_APP_PASSWORD_SHA256_FILE"]] == redis_acl.sha256_hex(app_password)
    assert files[REDIS_FILES["REDIS_ADMIN_PASSWORD_FILE"]] != files[REDIS_FILES["REDIS_BACKUP_PASSWORD_FILE"]]
    command = spec["args"][2]
    assert redis_acl.from_files(redis_acl.config_heredoc("exec docker-entrypoint.sh redis-server -")).split(
        "exec")[0] in command
    for step in (spec["healthcheck"]["tests"][1], swarm.named("prod-redis-maxmemory").plain("create")):
        assert redis_acl.admin_cli(True) in step


def test_qdrant_gets_its_keys_as_its_own_config_local_yaml_and_none_in_its_environment(swarm):
    import importlib.util
    from backup_helpers import QDRANT_STANDIN

    spec = container_spec(swarm, "prod-qdrant")
    assert spec["env"] == {"QDRANT__TELEMETRY_DISABLED": "true"}
    files = mounted(swarm, "prod-qdrant")
    assert list(files) == [LOCAL_CONFIG]
    # Read as the stand-in reads Qdrant's config files.
    loader = importlib.util.spec_from_file_location("qdrant_standin", QDRANT_STANDIN)
    standin = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(standin)
    service = standin.service_settings(files[LOCAL_CONFIG])
    assert set(service) == {"api_key", "read_only_api_key"}
    assert service["api_key"] == contents(swarm)["prod-app-blue-qdrant-api-key"]
    assert len(service["read_only_api_key"]) >= 32 and service["read_only_api_key"] != service["api_key"]


def test_the_backup_job_gets_every_credential_as_a_file(swarm, one_host):
    spec = container_spec(swarm, "prod-backup")
    env = spec["env"]
    assert {k: env.get(k) for k in BACKUP_FILES} == BACKUP_FILES  # prod: S3 off-site, all of them
    assert not set(FILE_SECRETS) & set(env)
    files = mounted(swarm, "prod-backup")
    assert set(files) == set(BACKUP_FILES.values())
    # The same values the container gets on one host, moved into files.
    docker_env = env_values(one_host["prod"].containers()["prod-backup"])
    for variable in FILE_SECRETS:
        assert files[BACKUP_FILES[f"{variable}_FILE"]] == docker_env[variable], variable
    # Everything else as on one host.
    assert {k: v for k, v in env.items() if k not in BACKUP_FILES} == {
        k: v for k, v in docker_env.items() if k not in FILE_SECRETS}


def test_the_policy_pack_finds_no_secret_in_their_environment():
    result = run_gate("prod", {**harness.stack_config("prod"), **three_node_prod()})
    assert result.program_error is None, result.program_error
    ours = [d for d in result.diagnostics if d.policy == "swarm-secrets-as-files"
            and d.urn.rsplit("::", 1)[-1] in ("prod-redis", "prod-qdrant", "prod-backup")]
    assert ours == [], render(result)


# ---- one Docker host: the containers as they were -----------------------------------

REDIS_ENV = [(redis_acl.ADMIN_PASSWORD_ENV, True), (redis_acl.BACKUP_PASSWORD_ENV, True),
             (redis_acl.APP_PASSWORD_SHA256_ENV, True), (redis_acl.EXPORTER_PASSWORD_SHA256_ENV, True),
             ("REDISCLI_AUTH", True)]
QDRANT_ENV = [("QDRANT__SERVICE__API_KEY", True), ("QDRANT__SERVICE__READ_ONLY_API_KEY", True),
              ("QDRANT__TELEMETRY_DISABLED", False)]
_PGBACKREST = ["ARCHIVE_PUSH_QUEUE_MAX", "COMPRESS_TYPE", "CONFIG", "LOCK_PATH", "LOG_LEVEL_CONSOLE", "LOG_LEVEL_FILE",
               "LOG_LEVEL_STDERR", "PG1_PATH", "PG1_SOCKET_PATH", "PG1_USER", "REPO1_PATH", "REPO1_RETENTION_FULL"]
_REPO2 = ["REPO2_PATH", "REPO2_RETENTION_FULL", "REPO2_S3_BUCKET", "REPO2_S3_ENDPOINT", "REPO2_S3_REGION",
          "REPO2_S3_URI_STYLE", "REPO2_TYPE"]


def backup_env(offsite_s3: bool) -> list[tuple[str, bool]]:
    """The backup container's environment before the swarm form (names, secret), in order."""
    pgbackrest = [(f"PGBACKREST_{k}", False) for k in sorted(_PGBACKREST + (_REPO2 if offsite_s3 else []))
                  + ["SPOOL_PATH", "STANZA"]]
    if offsite_s3:
        pgbackrest += [("PGBACKREST_REPO2_S3_KEY", True), ("PGBACKREST_REPO2_S3_KEY_SECRET", True)]
    plain = lambda *names: [(n, False) for n in names]  # noqa: E731
    return [*plain("BACKUP_DIR", "BACKUP_ENV", "BACKUP_SCHEDULE", "BACKUP_STAGING", "METRICS_DIR", "RETENTION_DAYS",
                   "BACKUP_CRONTAB"), *pgbackrest,
            *plain("BACKUP_FULL_EVERY_DAYS", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "RESTIC_REPOSITORY",
                   "RESTIC_CACHE_DIR"), ("RESTIC_PASSWORD", True),
            *plain("RESTIC_KEEP_DAILY", "RESTIC_KEEP_HOURLY", "RESTIC_OFFSITE_REPOSITORY"),
            ("AWS_ACCESS_KEY_ID", True), ("AWS_SECRET_ACCESS_KEY", True),
            *plain("AWS_DEFAULT_REGION", "REDIS_HOST", "REDIS_PORT", "REDIS_RESTORE_ADDRESS", "REDIS_USER"),
            ("REDISCLI_AUTH", True), *plain("QDRANT_URL", "QDRANT_COLLECTION"), ("QDRANT_API_KEY", True),
            *plain("MINIO_BUCKET"), ("MC_HOST_minio", True)]


@pytest.mark.parametrize("stack", harness.STACKS)
def test_on_one_host_the_secrets_stay_secret_environment_entries_as_before(one_host, stack):
    run = one_host[stack]
    assert not run.of_type(SERVICE) and not run.of_type(SECRET)
    containers = run.containers()
    redis = containers[f"{stack}-redis"]
    assert env_of(redis) == REDIS_ENV
    command = redis.plain("command")
    assert command[:2] == ["sh", "-c"] and "_FILE" not in command[2]
    assert command[2].endswith(redis_acl.config_heredoc(
        "exec docker-entrypoint.sh redis-server - --appendonly yes "
        '--maxmemory "$((limit_mb * 3 / 4))mb" --maxmemory-policy noeviction'))
    assert redis.plain("healthcheck")["tests"] == ["CMD-SHELL", "redis-cli --user admin ping | grep -q PONG"]
    assert "_FILE" not in run.named(f"{stack}-redis-maxmemory").plain("create")
    assert env_of(containers[f"{stack}-qdrant"]) == QDRANT_ENV
    assert env_of(containers[f"{stack}-backup"]) == backup_env(offsite_s3=stack != "dev")
