"""Run the backup job's own scripts (components/backups/image) as the container does.

The scripts run under busybox's sh with busybox's tools first on PATH, as on the
image's Alpine base; pg_dump, psql, redis-cli and curl come from Debian. Servers
(PostgreSQL refuses root, and CI runs as root) run as an unprivileged user on free
ports in world-readable temp directories. Passwords are made per run.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import ctypes.util
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional
from xml.etree import ElementTree

from components.backups.backups import METRICS_FILE
from components.data import redis_acl
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
    """A redis-server as in the stack: append-only, its ACL users as the Redis
    container defines them (components/data/redis_acl.py), the default user off.
    `password` is the backup user's; `cli` runs as the admin."""

    folder: Path
    password: str
    admin_password: str = field(default_factory=password)
    app_password: str = field(default_factory=password)
    exporter_password: str = field(default_factory=password)
    port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None

    def start(self) -> "Redis":
        # Config on stdin, as the container does: the passwords are in no argv.
        config = f'port {self.port}\nbind 127.0.0.1\ndir {self.folder}\nappendonly yes\nenable-debug-command local\n'
        env = {**os.environ, redis_acl.ADMIN_PASSWORD_ENV: self.admin_password,
               redis_acl.BACKUP_PASSWORD_ENV: self.password,
               redis_acl.APP_PASSWORD_SHA256_ENV: redis_acl.sha256_hex(self.app_password),
               redis_acl.EXPORTER_PASSWORD_SHA256_ENV: redis_acl.sha256_hex(self.exporter_password)}
        # The server's own settings as arguments (none secret), the users on stdin.
        arguments = " ".join(f"--{line}" for line in config.splitlines())
        self.process = subprocess.Popen(
            as_server_user(["sh", "-c", redis_acl.config_heredoc(f"exec redis-server - {arguments}")]),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True, env=env)
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process:
            self.cli("SHUTDOWN")
            self.process.wait(timeout=10)

    def cli(self, *args: str, user: str = redis_acl.ADMIN_USER, secret: Optional[str] = None) -> str:
        """redis-cli as USER (the admin by default) with SECRET (that user's password by default)."""
        passwords = {redis_acl.ADMIN_USER: self.admin_password, redis_acl.BACKUP_USER: self.password,
                     redis_acl.APP_USER: self.app_password, redis_acl.EXPORTER_USER: self.exporter_password}
        result = subprocess.run(["redis-cli", "--user", user, "-p", str(self.port), *args],
                                env={**os.environ, "REDISCLI_AUTH": secret or passwords.get(user, "")},
                                capture_output=True, text=True)
        return (result.stdout + result.stderr).strip()

    def env(self) -> dict[str, str]:
        return {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.port), "REDIS_USER": redis_acl.BACKUP_USER,
                "REDISCLI_AUTH": self.password}


# ---- restic, and stand-ins for Qdrant and MinIO run as local processes ---------------

LIB = SCRIPTS / "lib"
STANDINS = Path(__file__).resolve().parent / "e2e" / "images"
QDRANT_STANDIN = STANDINS / "qdrant" / "qdrant_standin.py"
MINIO_STANDIN = STANDINS / "minio" / "minio_standin.py"
STANDIN_MC = STANDINS / "minio" / "mc"


_TEMPLATES: dict[str, str] = {}  # name -> path of this session's empty repositories
TEMPLATE_PASSWORD = password()


def _template_repository(name: str) -> str:
    """An empty restic repository made once per test session (copies cost
    milliseconds), with a cheap key (see _cheap_key); the password is
    TEMPLATE_PASSWORD. Templates of different names are different repositories
    (ids, keys), as a local and an off-site one are."""
    if name not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix=f"shia-restic-{name}-")) / "restic"
        atexit.register(shutil.rmtree, folder.parent, True)
        env = {**os.environ, "RESTIC_PASSWORD": TEMPLATE_PASSWORD}
        subprocess.run([need("restic"), "init", "-r", str(folder)], env=env, capture_output=True, check=True)
        if ctypes.util.find_library("crypto"):  # else restic's own key: slower, as correct
            _cheap_key(folder, env)
        _TEMPLATES[name] = str(folder)
    return _TEMPLATES[name]


def restic_repository(folder: Path, name: str = "local") -> Path:
    """folder, made an empty restic repository (password: TEMPLATE_PASSWORD)."""
    shutil.copytree(_template_repository(name), folder)
    return folder


def _cheap_key(repository: Path, env: dict[str, str]) -> None:
    """Replace the repository's key by one for the same password and master key
    whose scrypt costs N=1024, p=1. restic calibrates its key derivation at
    `init` to take about 0.5 s, and every command pays it again: the tests run
    about a hundred. The key file and its sealing (AES-256-CTR, then Poly1305
    keyed with r and AES-128(k, nonce)) are restic's, from
    internal/repository/key.go and internal/crypto/crypto.go; restic opening the
    repository after is the check."""
    master = subprocess.run([need("restic"), "-r", str(repository), "cat", "masterkey"], env=env,
                            capture_output=True, check=True).stdout
    salt, nonce = os.urandom(64), os.urandom(16)
    derived = hashlib.scrypt(env["RESTIC_PASSWORD"].encode(), salt=salt, n=1024, r=8, p=1, dklen=64)
    ciphertext = _aes("EVP_aes_256_ctr", derived[:32], nonce, master)
    tag = _poly1305(derived[48:64], _aes("EVP_aes_128_ecb", derived[32:48], None, nonce), ciphertext)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    key = json.dumps({"created": created, "username": "test", "hostname": "test", "kdf": "scrypt",
                      "N": 1024, "r": 8, "p": 1, "salt": base64.b64encode(salt).decode(),
                      "data": base64.b64encode(nonce + ciphertext + tag).decode()}).encode()
    for old in (repository / "keys").iterdir():
        old.unlink()
    (repository / "keys" / hashlib.sha256(key).hexdigest()).write_bytes(key)


def _aes(cipher: str, key: bytes, iv: Optional[bytes], data: bytes) -> bytes:
    """AES from OpenSSL's libcrypto (in process: no key on a command line)."""
    crypto = ctypes.CDLL(ctypes.util.find_library("crypto"))
    crypto.EVP_CIPHER_CTX_new.restype = ctypes.c_void_p
    getattr(crypto, cipher).restype = ctypes.c_void_p
    context = ctypes.c_void_p(crypto.EVP_CIPHER_CTX_new())
    out, length = ctypes.create_string_buffer(len(data) + 32), ctypes.c_int(0)
    try:
        assert crypto.EVP_EncryptInit_ex(context, ctypes.c_void_p(getattr(crypto, cipher)()), None, key, iv) == 1
        crypto.EVP_CIPHER_CTX_set_padding(context, 0)
        assert crypto.EVP_EncryptUpdate(context, out, ctypes.byref(length), data, len(data)) == 1
    finally:
        crypto.EVP_CIPHER_CTX_free(context)
    return out.raw[:length.value]


def _poly1305(r: bytes, s: bytes, message: bytes) -> bytes:
    clamped = int.from_bytes(r, "little") & 0x0ffffffc0ffffffc0ffffffc0fffffff
    prime, total = (1 << 130) - 5, 0
    for i in range(0, len(message), 16):
        total = (total + int.from_bytes(message[i:i + 16] + b"\x01", "little")) * clamped % prime
    return ((total + int.from_bytes(s, "little")) % (1 << 128)).to_bytes(16, "little")


def restic_env(workdir: Path, **env: str) -> dict[str, str]:
    """What lib/restic.sh reads, for a repository in workdir/backups/restic, a copy
    of this session's empty one (environment `test`, 24 hourly and 7 daily kept)."""
    need("restic")
    need("jq")
    backups = workdir / "backups"
    base = {"RESTIC_REPOSITORY": str(restic_repository(backups / "restic")), "RESTIC_PASSWORD": TEMPLATE_PASSWORD,
            "RESTIC_CACHE_DIR": str(backups / ".cache" / "restic"), "BACKUP_STAGING": str(backups / "staging"),
            "BACKUP_ENV": "test", "RESTIC_KEEP_HOURLY": "24", "RESTIC_KEEP_DAILY": "7"}
    return {**base, **env}


def run_lib(service: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """`sh lib/<service>.sh ARGS...` as bin/backup and bin/restore call it."""
    return run(LIB / f"{service}.sh", *args, env=env)


def restic_snapshots(env: dict[str, str], service: str, repository: str = "") -> list[dict]:
    """The service's snapshots (restic's JSON), oldest first."""
    result = subprocess.run(
        ["restic", "-r", repository or env["RESTIC_REPOSITORY"], "snapshots", "--json",
         "--path", f"{env['BACKUP_STAGING']}/{service}"],
        env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return sorted(json.loads(result.stdout) or [], key=lambda s: s["time"])


def restic_files(env: dict[str, str], snapshot: str, service: str) -> dict[str, int]:
    """{path under the service's staging folder: size} of the files in a snapshot."""
    result = subprocess.run(["restic", "-r", env["RESTIC_REPOSITORY"], "ls", "--json", snapshot],
                            env={**os.environ, **env}, capture_output=True, text=True, check=True)
    prefix = f"{env['BACKUP_STAGING']}/{service}/"
    nodes = [json.loads(line) for line in result.stdout.splitlines()]
    return {n["path"][len(prefix):]: n["size"] for n in nodes
            if n.get("struct_type") == "node" and n["type"] == "file"}


FAKE_RESTIC = '''#!/bin/sh
# restic, with two test-only faults: RESTIC_TEST_TIME dates a new snapshot
# (backup --time), RESTIC_TEST_EXCLUDE leaves files out of it while exiting 0.
for arg; do
    if [ "$arg" = backup ]; then
        set -- "$@" ${{RESTIC_TEST_TIME:+--time "$RESTIC_TEST_TIME"}} \
            ${{RESTIC_TEST_EXCLUDE:+--exclude "$RESTIC_TEST_EXCLUDE"}}
        break
    fi
done
exec {restic} "$@"
'''


def fake_restic(folder: Path) -> Path:
    """A bin folder whose `restic` passes everything to the real one, but dates
    backups at RESTIC_TEST_TIME ("2024-01-31 02:00:00") and leaves out files
    matching RESTIC_TEST_EXCLUDE, when those are set."""
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / "restic"
    wrapper.write_text(FAKE_RESTIC.format(restic=need("restic")))
    wrapper.chmod(0o755)
    return folder


def _wait_for_http(url: str, process: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            assert process.poll() is None, f"{what} exited"
            assert time.monotonic() < deadline, f"{what} did not answer"
            time.sleep(0.05)


@dataclass
class Qdrant:
    """The Qdrant stand-in (tests/e2e/images/qdrant) as a local process."""

    folder: Path
    api_key: str = field(default_factory=password)
    port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Qdrant":
        env = {**os.environ, "QDRANT__STORAGE__STORAGE_PATH": str(self.folder / "storage"),
               "QDRANT__STORAGE__SNAPSHOTS_PATH": str(self.folder / "snapshots"),
               "QDRANT__SERVICE__HTTP_PORT": str(self.port), "QDRANT__SERVICE__API_KEY": self.api_key}
        self.process = subprocess.Popen([sys.executable, str(QDRANT_STANDIN)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_http(self.url + "/readyz", self.process, "the Qdrant stand-in")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def api(self, method: str, path: str, body: Optional[dict] = None) -> dict:
        request = urllib.request.Request(self.url + path, method=method, headers={
            "api-key": self.api_key, "Content-Type": "application/json"},
            data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def points(self, collection: str) -> list[dict]:
        """Every point (id, vector, payload), in id order."""
        reply = self.api("POST", f"/collections/{collection}/points/scroll",
                         {"limit": 100000, "with_payload": True, "with_vector": True})
        return [{k: p[k] for k in ("id", "vector", "payload")} for p in reply["result"]["points"]]

    def env(self, collection: str) -> dict[str, str]:
        return {"QDRANT_URL": self.url, "QDRANT_API_KEY": self.api_key, "QDRANT_COLLECTION": collection}


@dataclass
class Minio:
    """The MinIO stand-in (tests/e2e/images/minio) as a local process, and its `mc`."""

    folder: Path
    user: str = "backup-test"
    secret: str = field(default_factory=password)
    port: int = field(default_factory=free_port)
    process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "Minio":
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MINIO_ROOT_USER": self.user, "MINIO_ROOT_PASSWORD": self.secret}
        self.process = subprocess.Popen(
            [sys.executable, str(MINIO_STANDIN), "server", str(self.folder / "data"), "--address",
             f"127.0.0.1:{self.port}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for_http(self.url + "/minio/health/live", self.process, "the MinIO stand-in")
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def env(self, bucket: str) -> dict[str, str]:
        """The stack's variables: MINIO_BUCKET and the `minio` alias (MC_HOST_minio)."""
        return {"MINIO_BUCKET": bucket, "MC_HOST_minio": f"http://{self.user}:{self.secret}@127.0.0.1:{self.port}",
                "MC_CONFIG_DIR": str(self.folder / "mc")}

    def offsite_env(self, bucket: str, prefix: str = "restic") -> dict[str, str]:
        """An off-site restic repository in this server's BUCKET, as dev's."""
        return {"RESTIC_OFFSITE_REPOSITORY": f"s3:{self.url}/{bucket}/{prefix}",
                "AWS_ACCESS_KEY_ID": self.user, "AWS_SECRET_ACCESS_KEY": self.secret}

    def mc(self, *args: str, bucket: str = "unused") -> str:
        result = subprocess.run([sys.executable, str(STANDIN_MC), *args], env={**os.environ, **self.env(bucket)},
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def _s3(self):
        loader = importlib.machinery.SourceFileLoader("standin_mc", str(STANDIN_MC))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
        return module.S3({"url": self.url, "accessKey": self.user, "secretKey": self.secret})

    def put(self, bucket: str, key: str, data: bytes) -> None:
        self._s3().request("PUT", f"/{bucket}/{key}", body=data)

    def put_multipart(self, bucket: str, key: str, data: bytes, part_size: int) -> str:
        """Upload in parts of part_size bytes, as S3 clients do for large files; the ETag."""
        s3, path = self._s3(), f"/{bucket}/{key}"  # request() quotes it
        _, _, reply = s3.request("POST", path, {"uploads": ""})
        upload = ElementTree.fromstring(reply).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}UploadId")
        parts = [data[i:i + part_size] for i in range(0, len(data), part_size)]
        for number, part in enumerate(parts, 1):
            s3.request("PUT", path, {"partNumber": str(number), "uploadId": upload}, body=part)
        complete = "".join(f"<Part><PartNumber>{n}</PartNumber></Part>" for n in range(1, len(parts) + 1))
        _, _, reply = s3.request("POST", path, {"uploadId": upload},
                                 body=f"<CompleteMultipartUpload>{complete}</CompleteMultipartUpload>".encode())
        return ElementTree.fromstring(reply).findtext("{http://s3.amazonaws.com/doc/2006-03-01/}ETag").strip('"')

    def objects(self, bucket: str) -> dict[str, bytes]:
        """{key: content} of every object, read through the S3 API."""
        s3, out = self._s3(), {}
        for key, size, _, _ in s3.list(bucket):
            _, _, data = s3.request("GET", f"/{bucket}/{key}")
            out[key] = data
        return out


def mc_bin(folder: Path) -> Path:
    """A bin folder holding the stand-in `mc` (Debian packages no mc)."""
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / "mc"
    if not link.exists():
        link.symlink_to(STANDIN_MC)
    return folder


def stub_bin(folder: Path, name: str, script: str) -> Path:
    """folder/name, an executable shell script (a stand-in placed first on PATH)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return folder
