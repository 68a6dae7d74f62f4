"""The backup job's credentials as files (runtime `swarm`): lib/secret-files.sh,
which lib/common.sh runs for every script and bin/scheduler at start, turns each
<NAME>_FILE the stack passes (components/backups/backups.py FILE_SECRETS) into
<NAME>, and changes nothing where the environment has <NAME> (the Docker runtime).

Run with the shells the scripts meet (busybox's, as in the container; dash and
bash, as on a developer machine), then a real backup of Redis and the Qdrant
stand-in with every credential given as a file, and the stand-in reading its
key from config/local.yaml as the Swarm service gives it to Qdrant.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from backup_helpers import (BACKUP, QDRANT_STANDIN, SCRIPTS, Qdrant, Redis, _wait_for_http, password, restic_env,
                            restic_snapshots, run, script_env, server_dir)
from components.backups.backups import FILE_SECRETS
from components.data.qdrant import local_config
from real_tools import need

RESOLVER = SCRIPTS / "lib" / "secret-files.sh"
SCHEDULER = SCRIPTS / "bin" / "scheduler"
COLLECTION = "test_documents"


def shells() -> list[str]:
    return ["busybox sh", "dash", "bash"]


def resolve(shell: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Source the resolver in `shell`, run it, and print the environment it leaves (NUL-separated)."""
    program = shell.split()[0]
    if not shutil.which(program):
        need(program)
    script = f'. "{RESOLVER}" && resolve_secret_files && env -0'
    return subprocess.run([*shell.split(), "-c", script], env={"PATH": os.environ["PATH"], **env},
                          capture_output=True, text=True)


def environ(result: subprocess.CompletedProcess) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in result.stdout.split("\0") if entry)


def secret_file(folder: Path, name: str, content: str) -> str:
    path = folder / name
    path.write_text(content)
    path.chmod(0o400)  # as a Swarm secret is mounted
    return str(path)


def test_the_resolver_names_exactly_the_credentials_the_stack_passes_as_files():
    text = RESOLVER.read_text()
    names = re.search(r'^SECRET_VARIABLES="([^"]*)"', text, re.M).group(1).split()
    assert sorted(names) == sorted(FILE_SECRETS)


@pytest.mark.parametrize("shell", shells())
def test_each_file_becomes_its_variable_with_one_trailing_newline_removed_and_its_FILE_unset(shell, tmp_path):
    files = {
        "RESTIC_PASSWORD_FILE": secret_file(tmp_path, "restic", "pass word\n\n"),
        "MC_HOST_minio_FILE": secret_file(tmp_path, "mc", "http://backup:s3cr3t@minio:9000"),
        "PGBACKREST_REPO2_S3_KEY_SECRET_FILE": secret_file(tmp_path, "s3", "a'b\"c$d\\e\n"),
    }
    result = resolve(shell, {**files, "QDRANT_API_KEY": "from-the-environment", "SSL_CERT_FILE": "/etc/ssl/x"})
    assert result.returncode == 0, result.stderr
    env = environ(result)
    assert env["RESTIC_PASSWORD"] == "pass word\n"
    assert env["MC_HOST_minio"] == "http://backup:s3cr3t@minio:9000"
    assert env["PGBACKREST_REPO2_S3_KEY_SECRET"] == "a'b\"c$d\\e"
    assert env["QDRANT_API_KEY"] == "from-the-environment"
    assert env["SSL_CERT_FILE"] == "/etc/ssl/x"  # not a credential: left alone
    assert not set(files) & set(env)
    assert not any(k.startswith("_secret") for k in env)


@pytest.mark.parametrize("shell", shells())
def test_an_environment_without_files_is_left_as_it_was(shell):
    plain = {name: f"value of {name}" for name in FILE_SECRETS}
    before = environ(resolve(shell, {}))  # what the shell itself adds
    result = resolve(shell, plain)
    assert result.returncode == 0 and result.stderr == ""
    assert environ(result) == {**before, **plain}


@pytest.mark.parametrize("shell", shells())
def test_a_variable_given_both_ways_is_refused(shell, tmp_path):
    result = resolve(shell, {"REDISCLI_AUTH": "x", "REDISCLI_AUTH_FILE": secret_file(tmp_path, "auth", "y")})
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == "error: both REDISCLI_AUTH and REDISCLI_AUTH_FILE are set (but are exclusive)\n"


@pytest.mark.parametrize("shell", shells())
def test_a_file_that_cannot_be_read_is_refused(shell, tmp_path):
    missing = str(tmp_path / "missing")
    result = resolve(shell, {"AWS_SECRET_ACCESS_KEY_FILE": missing})
    assert result.returncode == 1 and result.stdout == ""
    assert f"error: AWS_SECRET_ACCESS_KEY_FILE={missing} cannot be read" in result.stderr


@pytest.mark.parametrize("case", ["both", "unreadable"])
def test_the_scheduler_refuses_bad_credentials_before_it_installs_a_crontab(case, toolbox, tmp_path):
    env = script_env(toolbox, tmp_path, BACKUP_CRONTAB="* * * * * true")
    if case == "both":
        env |= {"RESTIC_PASSWORD": "x", "RESTIC_PASSWORD_FILE": secret_file(tmp_path, "restic", "y")}
    else:
        env |= {"RESTIC_PASSWORD_FILE": str(tmp_path / "missing")}
    result = run(SCHEDULER, env=env)
    assert result.returncode == 1
    assert "RESTIC_PASSWORD_FILE" in result.stderr and "crond" not in result.stderr


@dataclass
class FileConfiguredQdrant(Qdrant):
    """The stand-in given its key as the Swarm service gives Qdrant its keys: in
    config/local.yaml under its working directory (components/data/qdrant.py),
    none in its environment."""

    def start(self) -> "FileConfiguredQdrant":
        config = self.folder / "config"
        config.mkdir(exist_ok=True)
        (config / "local.yaml").write_text(local_config(self.api_key, password()))
        env = {"PATH": os.environ["PATH"], "RUN_MODE": "production",
               "QDRANT__STORAGE__STORAGE_PATH": str(self.folder / "storage"),
               "QDRANT__STORAGE__SNAPSHOTS_PATH": str(self.folder / "snapshots"),
               "QDRANT__SERVICE__HTTP_PORT": str(self.port)}
        self.process = subprocess.Popen([sys.executable, str(QDRANT_STANDIN)], env=env, cwd=self.folder,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_http(self.url + "/readyz", self.process, "the Qdrant stand-in")
        return self


@pytest.fixture
def servers():
    need("redis-server")
    need("curl")
    redis = Redis(server_dir("shia-backup-files-redis-"), password()).start()
    qdrant = FileConfiguredQdrant(server_dir("shia-backup-files-qdrant-")).start()
    yield redis, qdrant
    for server in (redis, qdrant):
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


def test_a_backup_with_every_credential_as_a_file_succeeds(servers, toolbox, tmp_path):
    redis, qdrant = servers
    # The stand-in took its key from config/local.yaml: refused without it, answered with it.
    request = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", f"{qdrant.url}/collections"],
                             capture_output=True, text=True)
    assert request.stdout == "401"
    qdrant.api("PUT", f"/collections/{COLLECTION}", {"vectors": {"size": 4, "distance": "Cosine"}})
    qdrant.api("PUT", f"/collections/{COLLECTION}/points?wait=true",
               {"points": [{"id": i, "vector": [1.0, i, 0.5, 0.25]} for i in range(10)]})
    redis.cli("SET", "session:1", "x")

    plain = {**restic_env(tmp_path), **redis.env(), **qdrant.env(COLLECTION)}
    folder = tmp_path / "secrets"
    folder.mkdir()
    env = script_env(toolbox, tmp_path, **{k: v for k, v in plain.items()
                                            if k not in ("RESTIC_PASSWORD", "REDISCLI_AUTH", "QDRANT_API_KEY")})
    for name in ("RESTIC_PASSWORD", "REDISCLI_AUTH", "QDRANT_API_KEY"):
        env[f"{name}_FILE"] = secret_file(folder, name.lower(), plain[name])
    result = run(BACKUP, "redis", "qdrant", "--reason", "swarm", env=env)
    assert result.returncode == 0, result.stderr
    assert "backup (swarm) complete" in result.stderr
    assert [s["tags"] for s in restic_snapshots(env | {"RESTIC_PASSWORD": plain["RESTIC_PASSWORD"]}, "redis")]
    assert [s["tags"] for s in restic_snapshots(env | {"RESTIC_PASSWORD": plain["RESTIC_PASSWORD"]}, "qdrant")]
    for secret in (plain["RESTIC_PASSWORD"], plain["REDISCLI_AUTH"], plain["QDRANT_API_KEY"]):
        assert secret not in result.stdout + result.stderr
