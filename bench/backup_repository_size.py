"""Backup repository size after simulated days of hourly runs, and the time of one
backup run, for the services backed up with restic (Redis, Qdrant, MinIO),
against the scheme restic replaces.

The data, at --scale 1 (what a busy chatbot stack might hold; say so if yours differs):
  Redis   a real redis-server (7.0) with 50 000 keys of 400 random hex characters
          (RDB about 21 MB); every hour 10 % of the keys get new values (cache
          churn), spread over the whole RDB.
  Qdrant  its snapshot as a tar of segment files, each with the time it last
          changed: 8 sealed segments of 6 MiB and an appendable one (vectors are
          random bytes: they do not compress); 300 points of 3 KiB (768 float32)
          arrive once a day; once a week the optimizer rewrites one sealed
          segment. The real snapshot format is Qdrant's; the stand-in's is not
          representative, hence this model.
  MinIO   2 000 documents of 50-450 KiB (random bytes, as PDFs barely compress;
          about 500 MB); 20 arrive each day, one is deleted each week.

Simulated: every hour for --days, each service's files are staged and backed up
with the commands and retention lib/restic.sh uses (`restic backup --time`, then
`forget --group-by host,paths --keep-last 1 --keep-hourly H --keep-daily D
--prune` on that service's path): "hourly" with H=24, D=--retention-days; and,
from the same data at 02:00 only, "daily" with H=0, D=--retention-days (the
services' schedule today: the hourly job backs up PostgreSQL alone). The old
scheme is computed from the same files: a full copy of the RDB and of the
snapshot in every set, sets kept --retention-days, MinIO one mirror that never
drops a document. Off-site holds the same again in both schemes.

Then one backup run per service is timed with the real scripts (lib/*.sh)
against a real Redis and the Qdrant and MinIO stand-ins of tests/e2e/images, at
the same scale, in a repository with restic's own calibrated key (each restic
command pays its key derivation, about 0.5 s, as in production).

Prints tables; asserts nothing.

    venv/bin/python bench/backup_repository_size.py [--days 30] [--retention-days 7] [--scale 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools"), str(ROOT / "tests")]

from backup_helpers import (LIB, TEMPLATE_PASSWORD, Minio, Qdrant, Redis, busybox_toolbox, mc_bin,  # noqa: E402
                            password, restic_repository, server_dir)

MIB = 1024 * 1024
SERVICES = ("redis", "qdrant", "minio")
START = datetime(2025, 1, 1, 0, 30)


class RedisData:
    """A real redis-server holding KEYS keys of 400-character random values."""

    def __init__(self, keys: int, rng: random.Random):
        self.keys, self.random = keys, rng
        self.server = Redis(server_dir("bench-redis-"), password()).start()
        self.server.cli("CONFIG", "SET", "repl-diskless-sync-delay", "0")
        self.set(range(keys))

    def set(self, keys) -> None:
        commands = "".join(f"*3\r\n$3\r\nSET\r\n${len(f'key:{k}')}\r\nkey:{k}\r\n$400\r\n"
                           f"{self.random.randbytes(200).hex()}\r\n" for k in keys)
        subprocess.run(["redis-cli", "-p", str(self.server.port), "--pipe"], input=commands.encode(),
                       env={**os.environ, "REDISCLI_AUTH": self.server.password}, capture_output=True, check=True)

    def churn(self) -> None:
        """An hour: a tenth of the keys get new values."""
        self.set(self.random.sample(range(self.keys), self.keys // 10))

    def rdb(self, path: Path) -> None:
        subprocess.run(["redis-cli", "-p", str(self.server.port), "--rdb", str(path)],
                       env={**os.environ, "REDISCLI_AUTH": self.server.password}, capture_output=True, check=True)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.server.folder, ignore_errors=True)


class Data:
    """The three services' data as it changes, staged under STAGING/<service>."""

    def __init__(self, staging: Path, scale: float, seed: int = 12):
        self.staging, self.scale, self.random = staging, scale, random.Random(seed)
        for service in SERVICES:
            (staging / service).mkdir(parents=True, exist_ok=True)
        self.redis = RedisData(int(50_000 * scale), self.random)
        self.segments = [(self._bytes(int(6 * MIB * scale)), 0) for _ in range(8)]  # (bytes, hour changed)
        self.appendable = (b"", 0)
        self.documents: dict[str, int] = {}  # key -> size, every document ever stored (the old mirror)
        for _ in range(int(2000 * scale)):
            self._add_document()

    def _bytes(self, size: int) -> bytes:
        return self.random.randbytes(size)

    def _add_document(self) -> None:
        key = f"documents/{len(self.documents):06d}.pdf"
        size = self.random.randint(50 * 1024, 450 * 1024)
        (self.staging / "minio" / key).parent.mkdir(parents=True, exist_ok=True)
        (self.staging / "minio" / key).write_bytes(self._bytes(size))
        self.documents[key] = size

    def hour(self, hour: int) -> None:
        """The changes of one hour, then the staged files as the scripts leave them."""
        self.redis.churn()
        if hour % 24 == 10:
            self.appendable = (self.appendable[0] + self._bytes(int(300 * 3 * 1024 * self.scale)), hour)
            for _ in range(max(1, int(20 * self.scale))):
                self._add_document()
        if hour % (24 * 7) == 100:
            self.segments[self.random.randrange(len(self.segments))] = (self._bytes(int(6 * MIB * self.scale)), hour)
            live = sorted((self.staging / "minio").rglob("*.pdf"))
            live[self.random.randrange(len(live))].unlink()
        self.redis.rdb(self.staging / "redis" / "dump.rdb")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, (data, changed) in [*((f"segments/{i}", s) for i, s in enumerate(self.segments)),
                                          ("segments/appendable", self.appendable)]:
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), changed
                tar.addfile(info, io.BytesIO(data))
        (self.staging / "qdrant" / "collection.snapshot").write_bytes(buffer.getvalue())

    def sizes(self) -> dict[str, int]:
        """Bytes one old-scheme set held per service (full copies)."""
        return {"redis": (self.staging / "redis" / "dump.rdb").stat().st_size,
                "qdrant": (self.staging / "qdrant" / "collection.snapshot").stat().st_size}

    def stop(self) -> None:
        self.redis.stop()


def restic(env: dict[str, str], *args: str) -> str:
    return subprocess.run(["restic", *args], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True).stdout


def back_up(env: dict[str, str], staging: Path, service: str, when: datetime, hourly: int, daily: int) -> float:
    """What lib/restic.sh does for one service (backup, retention); seconds taken."""
    started = time.perf_counter()
    path = str(staging / service)
    restic(env, "backup", "--json", "--host", "bench", "--tag", f"service={service}", "--tag", "reason=bench",
           "--time", when.strftime("%Y-%m-%d %H:%M:%S"), path)
    restic(env, "forget", "--host", "bench", "--path", path, "--group-by", "host,paths", "--keep-last", "1",
           "--keep-hourly", str(hourly), "--keep-daily", str(daily), "--prune")
    return time.perf_counter() - started


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def service_size(env: dict[str, str], staging: Path, service: str) -> int:
    """Bytes of the blobs the service's kept snapshots reference (restic stats raw-data)."""
    stats = json.loads(restic(env, "stats", "--json", "--mode", "raw-data", "--path", str(staging / service)))
    return stats["total_size"]


def mb(size: float) -> str:
    return f"{size / 1e6:9.1f} MB"


def simulate(days: int, retention_days: int, scale: float, work: Path) -> None:
    staging = work / "staging"
    data = Data(staging, scale)
    repos = {"hourly": restic_repository(work / "hourly"), "daily": restic_repository(work / "daily")}
    envs = {name: {"RESTIC_REPOSITORY": str(path), "RESTIC_PASSWORD": TEMPLATE_PASSWORD,
                   "RESTIC_CACHE_DIR": str(work / "cache")} for name, path in repos.items()}
    old_sets: list[tuple[datetime, dict[str, int]]] = []
    seconds = {service: [] for service in SERVICES}
    try:
        for hour in range(days * 24):
            when = START + timedelta(hours=hour)
            data.hour(hour)
            old_sets.append((when, data.sizes()))
            for service in SERVICES:
                seconds[service].append(back_up(envs["hourly"], staging, service, when, 24, retention_days))
                if when.hour == 2:
                    back_up(envs["daily"], staging, service, when, 0, retention_days)
            if hour % 24 == 23:
                print(f"day {hour // 24 + 1}: hourly repository {mb(folder_size(repos['hourly']))}", file=sys.stderr)
        end = START + timedelta(hours=days * 24 - 1)
        kept_hourly = [s for t, s in old_sets if end - t < timedelta(days=retention_days)]
        kept_daily = [s for t, s in old_sets if t.hour == 2 and end - t < timedelta(days=retention_days)]
        print(f"\n{days} days simulated; retention {retention_days} days; data at the end: Redis RDB "
              f"{mb(data.sizes()['redis']).strip()}, Qdrant snapshot {mb(data.sizes()['qdrant']).strip()}, "
              f"MinIO {len(list((staging / 'minio').rglob('*.pdf')))} documents "
              f"{mb(folder_size(staging / 'minio')).strip()}")
        print(f"{'':8} {'old, hourly sets':>16} {'old, daily sets':>16} {'restic hourly':>16} {'restic daily':>16}"
              f"   restic: backup + retention per hourly run (median)")
        for service in SERVICES:
            if service == "minio":  # one mirror of every document ever stored, whatever the schedule
                old = old_daily = sum(data.documents.values())
            else:
                old = sum(s[service] for s in kept_hourly)
                old_daily = sum(s[service] for s in kept_daily)
            median = sorted(seconds[service])[len(seconds[service]) // 2]
            hourly, daily = (service_size(envs[name], staging, service) for name in ("hourly", "daily"))
            print(f"{service:8} {mb(old):>16} {mb(old_daily):>16} {mb(hourly):>16} {mb(daily):>16}   {median:.2f} s")
        total_old = sum(sum(s.values()) for s in kept_hourly) + sum(data.documents.values())
        total_old_daily = sum(sum(s.values()) for s in kept_daily) + sum(data.documents.values())
        print(f"{'on disk':8} {mb(total_old):>16} {mb(total_old_daily):>16} {mb(folder_size(repos['hourly'])):>16}"
              f" {mb(folder_size(repos['daily'])):>16}   (restic: the repository folder)")
        for name, env in envs.items():
            snapshots = json.loads(restic(env, "snapshots", "--json"))
            print(f"restic {name}: {len(snapshots)} snapshots kept", file=sys.stderr)
    finally:
        data.stop()


def timed(label: str, command: list[str], env: dict[str, str]) -> None:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    print(f"{label:<44} {time.perf_counter() - started:6.1f} s")


def time_one_run(scale: float, work: Path) -> None:
    """One backup run per service with the real scripts, in a repository restic made."""
    toolbox = busybox_toolbox(work / "busybox")
    secret = password()
    env = {"PATH": f"{mc_bin(work / 'mc-bin')}:{toolbox}:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work),
           "BACKUP_DIR": str(work / "backups"), "RESTIC_REPOSITORY": str(work / "backups" / "restic"),
           "RESTIC_PASSWORD": secret, "RESTIC_CACHE_DIR": str(work / "backups" / "cache"),
           "BACKUP_STAGING": str(work / "backups" / "staging"), "BACKUP_ENV": "bench",
           "RESTIC_KEEP_HOURLY": "24", "RESTIC_KEEP_DAILY": "7"}
    subprocess.run(["restic", "init", "-r", env["RESTIC_REPOSITORY"]], env={**os.environ, **env},
                   capture_output=True, check=True)
    sh = shutil.which("sh", path=env["PATH"])
    print("\none backup run, real scripts (restic's calibrated key: ~0.5 s per restic command)")

    redis = RedisData(int(50_000 * scale), random.Random(2))
    try:
        env_r = {**env, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(redis.server.port),
                 "REDISCLI_AUTH": redis.server.password}
        timed(f"redis ({redis.keys} keys)", [sh, str(LIB / "redis.sh"), "backup", "bench"], env_r)
        redis.churn()
        timed("redis, an hour later (a tenth changed)", [sh, str(LIB / "redis.sh"), "backup", "bench"], env_r)
    finally:
        redis.stop()

    qdrant = Qdrant(server_dir("bench-qdrant-")).start()
    try:
        points = int(5000 * scale)
        qdrant.api("PUT", "/collections/bench", {"vectors": {"size": 768, "distance": "Cosine"}})
        rng = random.Random(3)
        for first in range(0, points, 500):
            qdrant.api("PUT", "/collections/bench/points?wait=true", {"points": [
                {"id": i, "vector": [rng.random() for _ in range(768)], "payload": {"n": i}}
                for i in range(first, min(points, first + 500))]})
        env_q = {**env, **qdrant.env("bench")}
        timed(f"qdrant ({points} points of 768 dims, stand-in)", [sh, str(LIB / "qdrant.sh"), "backup", "bench"], env_q)
        timed("qdrant, again", [sh, str(LIB / "qdrant.sh"), "backup", "bench"], env_q)
    finally:
        qdrant.stop()
        shutil.rmtree(qdrant.folder, ignore_errors=True)

    minio = Minio(server_dir("bench-minio-")).start()
    try:
        minio.mc("mb", "minio/bench", bucket="bench")
        rng = random.Random(4)
        documents = int(2000 * scale)
        for i in range(documents):
            minio.put("bench", f"documents/{i:06d}.pdf", rng.randbytes(rng.randint(50 * 1024, 450 * 1024)))
        env_m = {**env, **minio.env("bench")}
        timed(f"minio ({documents} documents, first: all fetched)", [sh, str(LIB / "minio.sh"), "backup", "bench"],
              env_m)
        for i in range(documents, documents + 20):
            minio.put("bench", f"documents/{i:06d}.pdf", rng.randbytes(200 * 1024))
        timed("minio, a day later (20 new documents)", [sh, str(LIB / "minio.sh"), "backup", "bench"], env_m)
    finally:
        minio.stop()
        shutil.rmtree(minio.folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--retention-days", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every data size and count")
    parser.add_argument("--skip-timing", action="store_true", help="only the simulated days")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="backup-bench-"))
    work.chmod(0o755)
    try:
        simulate(args.days, args.retention_days, args.scale, work / "simulated")
        if not args.skip_timing:
            time_one_run(args.scale, work / "timed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
