"""Run the backup job's own scripts (components/backups/image) as the container does.

The scripts run under busybox's sh with busybox's tools first on PATH, as on the
image's Alpine base; pg_dump, psql, redis-cli and curl come from Debian. Servers
(PostgreSQL refuses root, and CI runs as root) run as an unprivileged user on free
ports in world-readable temp directories. Passwords are made per run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from components.backups.backups import METRICS_FILE
from real_tools import need

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "components" / "backups" / "image"
BACKUP = SCRIPTS / "bin" / "backup"
RESTORE = SCRIPTS / "bin" / "restore"
SERVER_USER = "shia-backup-test"
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def password() -> str:
    return secrets.token_hex(16)


def busybox_toolbox(folder: Path) -> Path:
    """A folder of busybox applet links, to put first on PATH."""
    busybox = need("busybox")
    folder.mkdir(parents=True, exist_ok=True)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = folder / applet
        if not link.exists():
            link.symlink_to(busybox)
    return folder


def script_env(toolbox: Path, workdir: Path, *extra_path: Path, **env: str) -> dict[str, str]:
    """A clean environment like the container's: only what the stack sets.
    Backups go to workdir/backups, the metrics file to workdir/metrics."""
    need("pg_dump")
    need("redis-cli")
    (workdir / "metrics").mkdir(exist_ok=True)
    path = [*map(str, extra_path), str(toolbox), str(PG_BIN), "/usr/bin", "/bin"]
    base = {
        "PATH": ":".join(path),
        "HOME": str(workdir),
        "TMPDIR": str(workdir),
        "BACKUP_DIR": str(workdir / "backups"),
        "METRICS_DIR": str(workdir / "metrics"),
        "RETENTION_DAYS": "7",
    }
    return {**base, **env}


def run(script: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    sh = shutil.which("sh", path=env["PATH"])  # busybox's, as in the container
    return subprocess.run([sh, str(script), *args], env=env, capture_output=True, text=True, timeout=300)


def sets(workdir: Path) -> list[str]:
    """Names of the complete sets (hidden partial ones left out)."""
    folder = workdir / "backups" / "sets"
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def metrics(workdir: Path) -> dict[str, float]:
    """The metrics file as {'name{labels}': value}."""
    samples = {}
    for line in (workdir / "metrics" / METRICS_FILE).read_text().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            samples[key] = float(value)
    return samples


# ---- servers run as an unprivileged user -----------------------------------------

def server_user() -> Optional[str]:
    """The user servers run as: an unprivileged one when the tests run as root."""
    if os.geteuid() != 0:
        return None
    if subprocess.run(["id", "-u", SERVER_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVER_USER],
                       check=True)
    return SERVER_USER


def as_server_user(command: list[str]) -> list[str]:
    user = server_user()
    return command if user is None else ["runuser", "-u", user, "--", *command]


def give_to_server_user(path: Path) -> Path:
    user = server_user()
    if user:
        shutil.chown(path, user)
    return path


def server_dir(prefix: str) -> Path:
    """A temp dir the server user owns (pytest's own tmp dirs are root-only)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    return give_to_server_user(folder)


@dataclass
class Postgres:
    """A private PostgreSQL 15 cluster with password (SCRAM) authentication."""

    folder: Path
    port: int = field(default_factory=free_port)
    user: str = "postgres"
    password: str = field(default_factory=password)

    def start(self) -> "Postgres":
        pwfile = self.folder / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        give_to_server_user(pwfile)
        subprocess.run(as_server_user([
            str(PG_BIN / "initdb"), "-D", str(self.folder / "data"), "-U", self.user, "--auth=scram-sha-256",
            f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync",
        ]), check=True, capture_output=True)
        pwfile.unlink()
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} "
                   "-c fsync=off -c full_page_writes=off -c synchronous_commit=off")
        subprocess.run(as_server_user([
            str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-l", str(self.folder / "log"),
            "-o", options, "-w", "start",
        ]), check=True, capture_output=True)
        return self

    def stop(self) -> None:
        subprocess.run(as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                                       "-w", "stop"]), capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def env(self, database: str) -> dict[str, str]:
        return {"PGHOST": "127.0.0.1", "PGPORT": str(self.port), "PGUSER": self.user,
                "PGPASSWORD": self.password, "PGDATABASE": database}

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [str(PG_BIN / "psql"), "--no-psqlrc", "-At", "-v", "ON_ERROR_STOP=1", "-d", database, "-c", sql],
            env={**os.environ, **self.env(database)}, capture_output=True, text=True, check=True)
        return result.stdout.strip()


@dataclass
class Redis:
    """A redis-server as in the stack: append-only, password required."""

    folder: Path
    password: str
    port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None

    def start(self) -> "Redis":
        # Config on stdin, as the restore script does: the password is in no argv.
        config = (f'port {self.port}\nbind 127.0.0.1\ndir {self.folder}\nappendonly yes\n'
                  f'requirepass "{self.password}"\nenable-debug-command local\n')
        self.process = subprocess.Popen(as_server_user(["redis-server", "-"]), stdin=subprocess.PIPE,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
        self.process.stdin.write(config)
        self.process.stdin.close()
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process:
            self.cli("SHUTDOWN")
            self.process.wait(timeout=10)

    def cli(self, *args: str) -> str:
        result = subprocess.run(["redis-cli", "-p", str(self.port), *args],
                                env={**os.environ, "REDISCLI_AUTH": self.password}, capture_output=True, text=True)
        return result.stdout.strip()

    def env(self) -> dict[str, str]:
        return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.port), "REDISCLI_AUTH": self.password,
                "REDIS_RDB": str(self.folder / "dump.rdb")}


# ---- a stand-in for mc (not packaged by Debian) ------------------------------------

FAKE_MC = '''#!{python}
"""mc as the scripts use it (mirror, ls): alias `x` is the folder FAKE_MC_ROOT/x.
An alias works only when MC_HOST_x is set, as with the real mc; aliases named
in FAKE_MC_DOWN fail. Every call is appended to FAKE_MC_ROOT/calls."""
import os, shutil, sys
root = os.environ["FAKE_MC_ROOT"]
with open(os.path.join(root, "calls"), "a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
def place(target):
    if target.startswith("/"):
        return target
    alias, _, rest = target.partition("/")
    if "MC_HOST_" + alias not in os.environ:
        sys.exit("mc: no alias " + alias)
    if alias in os.environ.get("FAKE_MC_DOWN", "").split():
        sys.exit("mc: " + alias + " is unreachable")
    return os.path.join(root, alias, rest)
command, *args = [a for a in sys.argv[1:] if not a.startswith("--")]
if command == "mirror":
    source, target = map(place, args)
    if not os.path.isdir(source):
        sys.exit("mc: " + source + " not found")
    shutil.copytree(source, target, dirs_exist_ok=True)
elif command == "ls":
    for _, _, files in os.walk(place(args[0])):
        for name in files:
            print(name)
else:
    sys.exit("mc: " + command + " is not faked")
'''


def fake_mc(workdir: Path) -> tuple[Path, dict[str, str]]:
    """A bin folder holding the fake mc, and the environment it needs: the stack's
    MinIO (`minio`) and off-site target (`offsite/offsite-bucket`) as folders."""
    bin_dir, root = workdir / "fake-bin", workdir / "s3"
    bin_dir.mkdir()
    root.mkdir()
    mc = bin_dir / "mc"
    mc.write_text(FAKE_MC.format(python=sys.executable))
    mc.chmod(0o755)
    env = {"FAKE_MC_ROOT": str(root), "MC_HOST_minio": f"http://user:{password()}@minio:9000",
           "MINIO_BUCKET": "test-documents", "MC_HOST_offsite": f"https://key:{password()}@s3.example:443",
           "OFFSITE_TARGET": "offsite/offsite-bucket"}
    return bin_dir, env
