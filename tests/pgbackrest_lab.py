"""A PostgreSQL 15 cluster that archives its WAL with pgBackRest as the stack's
server does, and the backup job's lib/postgres.sh run against it as the backup
container runs it (root, busybox first on PATH, pgBackRest only from PGBACKREST_*
variables; tests/test_backup_postgres.py and bench/postgres_recovery.py use it).

Servers run as the unprivileged test user when the tests run as root (CI), so
the script drops to the data directory's owner through setpriv exactly as in
the container, where root runs it and uid 70 owns the data. Every folder lives
under one world-readable temp dir per lab.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from backup_helpers import (
    PG_BIN, SCRIPTS, as_server_user, busybox_toolbox, free_port, give_to_server_user, server_dir,
)
from real_tools import need

PG_LIB = SCRIPTS / "lib" / "postgres.sh"
DUMP_LIB = SCRIPTS / "lib" / "postgres-dump.sh"
HOST_RESTORE = SCRIPTS.parent / "scripts" / "postgres-restore.sh"
STANZA = "lab"
# As the stack's postgres command sets them (archive_timeout: prod's 60 s; the
# tests switch segments themselves instead of waiting for it).
ARCHIVING = ("-c wal_level=replica -c archive_mode=on -c archive_timeout=60 "
             "-c \"archive_command=pgbackrest archive-push %p\"")


def need_tools() -> None:
    for tool in ("initdb", "pgbackrest", "jq", "busybox", "setpriv", "pg_dump"):
        need(tool)


def toolbox(folder: Path) -> Path:
    """busybox's applets without its setpriv, which has no --reuid; the image's
    is util-linux's, as is the one found after the toolbox here."""
    box = busybox_toolbox(folder)
    (box / "setpriv").unlink(missing_ok=True)
    return box


@dataclass
class Server:
    """One postmaster on DATA, reached on its socket in SOCKET, with ENV (the
    PGBACKREST_* variables archive-push and archive-get read) in its environment."""

    data: Path
    socket: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)

    def options(self, archive: bool = True) -> str:
        """The server's command-line settings. A restored copy beside the source
        must not archive into the source's repository."""
        options = f"-p {self.port} -k {self.socket} -c listen_addresses='' -c fsync=off "
        return options + (ARCHIVING if archive else "-c archive_mode=off")

    def start(self, archive: bool = True, wait: bool = True) -> "Server":
        subprocess.run(as_server_user([
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.data.parent / f"{self.data.name}.log"),
            "-o", self.options(archive), "-w" if wait else "-W", "-t", "120", "start",
        ]), env={**os.environ, **self.env}, check=True, capture_output=True)
        return self

    def stop(self, mode: str = "fast") -> None:
        subprocess.run(as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]),
                       capture_output=True)

    def kill(self) -> None:
        """A crash: SIGKILL to the postmaster and every child, nothing flushed."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(postmaster)], capture_output=True,
                                  text=True).stdout.split()
        for pid in (postmaster, *map(int, children)):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in (postmaster, *map(int, children))):
            assert time.monotonic() < deadline, "the killed server did not go"
            time.sleep(0.05)

    def libpq(self, database: str = "postgres") -> dict[str, str]:
        return {"PGHOST": str(self.socket), "PGPORT": str(self.port), "PGUSER": "postgres", "PGDATABASE": database}

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(PG_BIN / "psql"), "--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env={**os.environ, **self.libpq(database)}, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def wait_promoted(self, timeout: float = 60) -> None:
        """Until the server accepts connections and has left recovery."""
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run([str(PG_BIN / "psql"), "--no-psqlrc", "-At", "-c", "SELECT pg_is_in_recovery()"],
                                   env={**os.environ, **self.libpq()}, capture_output=True, text=True)
            if probe.stdout.strip() == "f":
                return
            assert time.monotonic() < deadline, f"not promoted: {probe.stderr}\n{self.log()}"
            time.sleep(0.1)

    def log(self) -> str:
        path = self.data.parent / f"{self.data.name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


@dataclass
class Lab:
    """A cluster, its pgBackRest repositories, and the scripts' environment."""

    folder: Path
    box: Path
    retention_full: int = 2
    repo2: bool = False
    compress: str = "lz4"
    server: Optional[Server] = None

    @classmethod
    def create(cls, box: Path, prefix: str = "shia-pgbr-", **kwargs) -> "Lab":
        lab = cls(server_dir(prefix), box, **kwargs)
        for name in ("lock", "spool", "metrics", "backups"):
            (lab.folder / name).mkdir()
            give_to_server_user(lab.folder / name)
        lab.server = Server(lab.folder / "data", lab.folder, lab.pgbackrest_env())
        subprocess.run(as_server_user([str(PG_BIN / "initdb"), "-D", str(lab.server.data), "-U", "postgres",
                                       "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]),
                       check=True, capture_output=True)
        lab.server.start()
        return lab

    def pgbackrest_env(self, data: Optional[Path] = None) -> dict[str, str]:
        env = {
            "PGBACKREST_STANZA": STANZA,
            # The package's /etc/pgbackrest.conf is not the test user's to read;
            # the stack's containers set the same so no file adds options.
            "PGBACKREST_CONFIG": "/dev/null",
            "PGBACKREST_PG1_PATH": str(data or self.folder / "data"),
            "PGBACKREST_PG1_SOCKET_PATH": str(self.folder),
            "PGBACKREST_PG1_USER": "postgres",
            "PGBACKREST_REPO1_PATH": str(self.folder / "repo"),
            "PGBACKREST_REPO1_RETENTION_FULL": str(self.retention_full),
            "PGBACKREST_LOG_LEVEL_CONSOLE": "info",
            "PGBACKREST_LOG_LEVEL_FILE": "off",
            "PGBACKREST_LOCK_PATH": str(self.folder / "lock"),
            "PGBACKREST_SPOOL_PATH": str(self.folder / "spool"),
            "PGBACKREST_COMPRESS_TYPE": self.compress,
            "PGBACKREST_ARCHIVE_TIMEOUT": "20",
        }
        if self.server is not None:
            env["PGBACKREST_PG1_PORT"] = str(self.server.port)
        if self.repo2:
            env |= {"PGBACKREST_REPO2_TYPE": "posix", "PGBACKREST_REPO2_PATH": str(self.folder / "repo2"),
                    "PGBACKREST_REPO2_RETENTION_FULL": "1"}
        return env

    def env(self, **extra: str) -> dict[str, str]:
        """The backup container's environment for lib/postgres.sh."""
        path = [str(self.box), str(PG_BIN), "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        return {
            "PATH": ":".join(path), "HOME": str(self.folder), "TMPDIR": str(self.folder),
            "BACKUP_DIR": str(self.folder / "backups"), "METRICS_DIR": str(self.folder / "metrics"),
            **self.server.libpq(), **self.pgbackrest_env(), **extra,
        }

    def run(self, script: Path, *args: str, env: Optional[dict[str, str]] = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        env = env or self.env()
        sh = shutil.which("sh", path=env["PATH"])  # busybox's
        return subprocess.run([sh, str(script), *args], env=env, capture_output=True, text=True, timeout=timeout)

    def lib(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(PG_LIB, *args, **kwargs)

    def ok(self, *args: str, **kwargs) -> str:
        """lib/postgres.sh ARGS, which must succeed; its stdout."""
        result = self.lib(*args, **kwargs)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def info(self, repo: int = 1) -> list[dict]:
        """The backups pgBackRest lists for REPO, oldest first."""
        env = self.pgbackrest_env()
        result = subprocess.run(as_server_user(["pgbackrest", f"--repo={repo}", "--output=json", "info"]),
                                env={**os.environ, **env}, capture_output=True, text=True, check=True)
        return json.loads(result.stdout)[0]["backup"]

    def labels(self, repo: int = 1) -> list[str]:
        return [backup["label"] for backup in self.info(repo)]

    def scratch(self, name: str) -> Path:
        """An empty data directory of the server user, to restore a copy into."""
        folder = self.folder / name
        folder.mkdir(mode=0o700)
        return give_to_server_user(folder)

    def restored_server(self, data: Path) -> Server:
        """Start a restored copy beside the source (no archiving) and wait until it promoted."""
        server = Server(data, self.folder, self.pgbackrest_env(data)).start(archive=False, wait=False)
        server.wait_promoted()
        return server

    def close(self) -> None:
        for pid_file in self.folder.glob("*/postmaster.pid"):
            Server(pid_file.parent, self.folder, {}).stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


FAKE_DOCKER = '''#!{python}
"""docker as postgres-restore.sh uses it, for one lab: container FAKE_POSTGRES is
the lab's server (pg_ctl on FAKE_PG_DATA), FAKE_BACKUP runs commands here, in
this environment (the lab's backup container environment). Every call is
appended to FAKE_DOCKER_LOG."""
import os, shlex, subprocess, sys
env = os.environ
with open(env["FAKE_DOCKER_LOG"], "a") as log:
    log.write(shlex.join(sys.argv[1:]) + "\\n")
pg_ctl = [*shlex.split(env["FAKE_AS_USER"]), env["FAKE_PG_CTL"], "-D", env["FAKE_PG_DATA"]]
def running():
    return subprocess.run(pg_ctl + ["status"], capture_output=True).returncode == 0
command, *args = sys.argv[1:]
name = args[-1]
if command == "exec":
    if args[0] != env["FAKE_BACKUP"]:
        sys.exit("fake docker: exec only in " + env["FAKE_BACKUP"])
    sys.exit(subprocess.run(args[1:]).returncode)
if name != env["FAKE_POSTGRES"] and not (command == "inspect" and name == env["FAKE_BACKUP"]):
    sys.exit("fake docker: no container " + name)
if command == "inspect":
    print("true" if name == env["FAKE_BACKUP"] or running() else "false")
elif command == "stop":
    sys.exit(subprocess.run(pg_ctl + ["-m", "fast", "-w", "stop"], stdout=subprocess.DEVNULL).returncode)
elif command == "start":
    # Returns at once, as docker start does: recovery goes on in the background.
    sys.exit(subprocess.run(pg_ctl + ["-l", env["FAKE_PG_LOG"], "-o", env["FAKE_PG_OPTIONS"], "-W", "start"],
                            stdout=subprocess.DEVNULL).returncode)
else:
    sys.exit("fake docker: " + command + " is not faked")
'''


def fake_docker(lab: Lab) -> dict[str, str]:
    """The environment to run postgres-restore.sh with against LAB: a fake docker
    first on PATH, the containers `lab-postgres` and `lab-backup`."""
    bin_dir = lab.folder / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    docker = bin_dir / "docker"
    docker.write_text(FAKE_DOCKER.format(python=sys.executable))
    docker.chmod(0o755)
    server = lab.server
    as_user = " ".join(as_server_user([]))
    env = lab.env()
    return {
        **env, "PATH": f"{bin_dir}:{env['PATH']}",
        "POSTGRES_CONTAINER": "lab-postgres", "BACKUP_CONTAINER": "lab-backup", "BACKUP_LIB": str(PG_LIB.parent),
        "FAKE_POSTGRES": "lab-postgres", "FAKE_BACKUP": "lab-backup", "FAKE_DOCKER_LOG": str(lab.folder / "docker.log"),
        "FAKE_AS_USER": as_user, "FAKE_PG_CTL": str(PG_BIN / "pg_ctl"), "FAKE_PG_DATA": str(server.data),
        "FAKE_PG_LOG": str(lab.folder / "data.log"), "FAKE_PG_OPTIONS": server.options(),
    }


def utc_now(server: Server) -> str:
    """The server's clock, UTC, as a time target."""
    return server.psql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')")
