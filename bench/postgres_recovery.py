"""What PostgreSQL on pgBackRest costs and gives, against the old per-run pg_dump sets.

Runs the tests' lab (tests/pgbackrest_lab.py: a PostgreSQL 15 cluster archiving
its WAL with pgBackRest as the stack's server does, and lib/postgres.sh run as
the backup container runs it) with a database of --rows orders (plus 5 %
customers and 1 % documents) and prints, per part:

  recovery       time to get the database back: pg_dump / read-back / pg_restore
                 (the old backup and restore) against a verified pgBackRest full
                 backup, its restore into an empty data directory and the
                 recovery until the server takes writes, the operator's restore
                 in place (scripts/postgres-restore.sh, --delta) after an hour of
                 changes, and WAL replay speed
  restore-point  what the release's pre-migration step costs, idle and under writes
  recovery-point archive_timeout = 60 s under one commit a second: how old the newest
                 archived WAL gets, i.e. the data at risk, and archive-push's latency
  repository     --days simulated days of the prod schedule (hourly incr at :30,
                 daily diff at 02:00, a full on the first run of every 7th day, WAL
                 switched every simulated minute as archive_timeout does under
                 steady traffic), measured per backup type, then extrapolated to 30
                 days against 30 days of the old sets (a pg_dump per hourly and
                 daily run, RETENTION_DAYS=30)

The change rate of a simulated hour (hour() below) is a light chatbot's: 500 new
orders (messages), 200 updated customers, 20 new documents; the simulation
spreads it over the minutes (8, 3 and 1 a minute). Asserts nothing.

    venv/bin/python bench/postgres_recovery.py [--rows 2000000] [--days 2] [--rpo-seconds 180]
        [--compress zst] [--parts recovery,restore-point,recovery-point,repository]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tools"), str(ROOT / "tests")]

from backup_helpers import PG_BIN  # noqa: E402
from pgbackrest_lab import HOST_RESTORE, Lab, Server, fake_docker, need_tools, toolbox  # noqa: E402

DATABASE = "shia_chatbot"
PARTS = ("recovery", "restore-point", "recovery-point", "repository")


def schema(rows: int) -> str:
    return f"""
CREATE TABLE customers (
    id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE orders (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers, total numeric(12, 2) NOT NULL,
    placed_at timestamptz NOT NULL);
CREATE TABLE documents (id bigserial PRIMARY KEY, title text NOT NULL, body text, meta jsonb);
INSERT INTO customers (email, name, created_at)
    SELECT 'c' || g || '@example.org', 'Customer ' || g, now() FROM generate_series(1, {rows // 20}) g;
INSERT INTO orders (customer_id, total, placed_at)
    SELECT 1 + g % {rows // 20}, (g % 9973) * 1.37, now() FROM generate_series(1, {rows}) g;
CREATE INDEX orders_by_customer ON orders (customer_id);
INSERT INTO documents (title, body, meta)
    SELECT 'Book ' || g, repeat(md5(g::text), 8), jsonb_build_object('n', g) FROM generate_series(1, {rows // 100}) g;
"""


def hour(rows: int, fraction: float = 1.0) -> str:
    """FRACTION of an hour's changes (see the module docstring)."""
    customers = rows // 20
    return f"""
INSERT INTO orders (customer_id, total, placed_at)
    SELECT 1 + (random() * {customers - 1})::int, 9.99, now() FROM generate_series(1, {max(1, int(500 * fraction))});
UPDATE customers SET name = name || '.'
    WHERE id IN (SELECT 1 + (random() * {customers - 1})::int FROM generate_series(1, {max(1, int(200 * fraction))}));
INSERT INTO documents (title, body) SELECT 'new', repeat('x', 200) FROM generate_series(1, {max(1, int(20 * fraction))});
"""


def mb(size: float) -> str:
    return f"{size / 1e6:,.1f} MB"


def timed(action) -> tuple[float, object]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def row(label: str, value: str) -> None:
    print(f"  {label:<58} {value}", flush=True)


def du(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def make_lab(box: Path, args) -> Lab:
    lab = Lab.create(box, compress=args.compress, retention_full=6)
    lab.ok("init")
    lab.server.psql(f"CREATE DATABASE {DATABASE}")
    seconds, _ = timed(lambda: lab.server.psql(schema(args.rows), DATABASE))
    lab.server.psql("VACUUM ANALYZE", DATABASE)
    size = int(lab.server.psql(f"SELECT pg_database_size('{DATABASE}')"))
    print(f"lab: {args.rows:,} orders, {args.rows // 20:,} customers, {args.rows // 100:,} documents; "
          f"database {mb(size)}, loaded in {seconds:.1f} s; compress-type {args.compress}", flush=True)
    return lab


class Writer:
    """Commits one small transaction every INTERVAL seconds, in a thread."""

    def __init__(self, server: Server, interval: float):
        self.server, self.interval, self.stopped = server, interval, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stopped.is_set():
            self.server.psql("INSERT INTO documents (title) VALUES ('tick')", DATABASE)
            self.stopped.wait(self.interval)

    def __enter__(self) -> "Writer":
        self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stopped.set()
        self.thread.join()


def libpq(lab: Lab, database: str = DATABASE) -> dict[str, str]:
    return {**lab.env(), "PGDATABASE": database}


def counts(server: Server) -> str:
    return server.psql("SELECT (SELECT count(*) FROM orders) || ' ' || (SELECT count(*) FROM customers)", DATABASE)


def recovery(box: Path, args) -> None:
    print("\nrecovery time", flush=True)
    lab = make_lab(box, args)
    try:
        dump = lab.folder / "old.dump"
        env = libpq(lab)
        seconds, _ = timed(lambda: subprocess.run([str(PG_BIN / "pg_dump"), "--format=custom", f"--file={dump}"],
                                                  env=env, check=True))
        row("old: pg_dump --format=custom", f"{seconds:6.1f} s   {mb(dump.stat().st_size)}")
        seconds, _ = timed(lambda: subprocess.run([str(PG_BIN / "pg_restore"), "--file=/dev/null", str(dump)],
                                                  env=env, check=True))
        row("old: read back in full (pg_restore --file=/dev/null)", f"{seconds:6.1f} s")
        lab.server.psql("CREATE DATABASE old_restore TEMPLATE template0")
        seconds, _ = timed(lambda: subprocess.run(
            [str(PG_BIN / "pg_restore"), "--exit-on-error", "--jobs=2", "--dbname=old_restore", str(dump)],
            env=env, check=True))
        row("old: pg_restore --jobs=2 into an empty database", f"{seconds:6.1f} s")
        lab.server.psql("DROP DATABASE old_restore")

        seconds, label = timed(lambda: lab.ok("backup", "daily"))
        full = lab.info()[-1]
        row(f"new: full backup, verified, expired ({label})",
            f"{seconds:6.1f} s   {mb(full['info']['repository']['delta'])} in the repository")
        seconds, _ = timed(lambda: lab.ok("verify"))
        row("new: pgbackrest verify of the whole repository", f"{seconds:6.1f} s")
        expected = counts(lab.server)

        data = lab.scratch("restored")
        restore_seconds, _ = timed(lambda: lab.ok("restore", "latest", env=lab.env(PGBACKREST_PG1_PATH=str(data))))
        copy = Server(data, lab.folder, lab.pgbackrest_env(data))
        recover_seconds, _ = timed(lambda: (copy.start(archive=False, wait=False), copy.wait_promoted(600),
                                            copy.psql("CHECKPOINT")))
        assert counts(copy) == expected
        copy.stop()
        row("new: pgbackrest restore into an empty data directory", f"{restore_seconds:6.1f} s")
        row("new: start, recover, promote, CHECKPOINT", f"{recover_seconds:6.1f} s")
        row("new: restore + recovery", f"{restore_seconds + recover_seconds:6.1f} s")

        # The operator's path: an hour of changes, then in place, through docker.
        lab.server.psql(hour(args.rows), DATABASE)
        expected = counts(lab.server)
        seconds, result = timed(lambda: lab.run(HOST_RESTORE, "latest", env=fake_docker(lab), timeout=1800))
        assert result.returncode == 0, result.stderr
        assert counts(lab.server) == expected
        row("new: postgres-restore.sh latest, in place (--delta), an hour on", f"{seconds:6.1f} s")

        # WAL replay: a tenth of the orders updated after the backup.
        lab.ok("backup", "daily")
        start = lab.server.psql("SELECT pg_current_wal_lsn()")
        lab.server.psql("UPDATE orders SET total = total + 1 WHERE id % 10 = 0", DATABASE)
        lab.ok("archive-now")
        wal = int(lab.server.psql(f"SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{start}')"))
        data = lab.scratch("replayed")
        lab.ok("restore", "latest", env=lab.env(PGBACKREST_PG1_PATH=str(data)))
        copy = Server(data, lab.folder, lab.pgbackrest_env(data))
        seconds, _ = timed(lambda: (copy.start(archive=False, wait=False), copy.wait_promoted(1200)))
        copy.stop()
        row(f"new: recovery replaying {mb(wal)} of WAL", f"{seconds:6.1f} s   ({mb(wal / seconds)}/s with the start)")
    finally:
        lab.close()


def restore_point(box: Path, args) -> None:
    print("\nrestore point (the release's pre-migration step)", flush=True)
    lab = make_lab(box, args)
    try:
        lab.ok("backup", "daily")
        for label, interval in (("idle", None), ("under writes (20 commits/s)", 0.05)):
            times = []
            writer = Writer(lab.server, interval) if interval else None
            if writer:
                writer.__enter__()
            try:
                for _ in range(args.samples):
                    seconds, _ = timed(lambda: lab.ok("backup", "pre-migration-bench"))
                    times.append(seconds)
                    time.sleep(1.1)  # names are unique to the second
            finally:
                if writer:
                    writer.__exit__()
            row(f"{label}, {args.samples} runs", f"median {statistics.median(times):.2f} s   max {max(times):.2f} s")
    finally:
        lab.close()


def recovery_point(box: Path, args) -> None:
    print(f"\nrecovery point (archive_timeout = 60 s, one commit a second, {args.rpo_seconds} s)", flush=True)
    lab = make_lab(box, args)
    try:
        log = lab.folder / "data.log"
        offset = log.stat().st_size
        ages = []
        with Writer(lab.server, 1.0):
            deadline = time.monotonic() + args.rpo_seconds
            while time.monotonic() < deadline:
                ages.append(float(lab.server.psql(
                    "SELECT extract(epoch FROM now() - last_archived_time) FROM pg_stat_archiver")))
                time.sleep(0.5)
        pushes = [int(ms) for ms in re.findall(r"archive-push command end: completed successfully \((\d+)ms\)",
                                               log.read_text(errors="replace")[offset:])]
        row("age of the newest archived WAL: max / mean", f"{max(ages):5.1f} s / {statistics.mean(ages):5.1f} s")
        if pushes:
            row(f"archive-push per segment ({len(pushes)}): median / max",
                f"{statistics.median(pushes)} ms / {max(pushes)} ms")
        row("data at risk (commits not yet in the repository): at most", f"{max(ages) + max(pushes or [0]) / 1000:5.1f} s")
    finally:
        lab.close()


def repository(box: Path, args) -> None:
    print(f"\nrepository: {args.days} simulated days of the prod schedule", flush=True)
    lab = make_lab(box, args)
    try:
        dumps = []
        dump = lab.folder / "old.dump"

        def old_dump() -> None:
            subprocess.run([str(PG_BIN / "pg_dump"), "--format=custom", f"--file={dump}"], env=libpq(lab), check=True)
            dumps.append(dump.stat().st_size)

        # lib/postgres.sh sees a clock whose day 0 starts at today's 00:00 UTC.
        base = int(time.time()) // 86400 * 86400
        fake = lab.folder / "fake-date"
        fake.mkdir()
        (fake / "date").write_text('#!/bin/sh\nnow=$(($(cat "$SIM_NOW_FILE")))\n'
                                   'case $* in +%s) echo "$now" ;; *) exec /bin/date -d "@$now" "$@" ;; esac\n')
        (fake / "date").chmod(0o755)
        clock = lab.folder / "sim-now"
        env = lab.env(SIM_NOW_FILE=str(clock))
        env["PATH"] = f"{fake}:{env['PATH']}"
        runs = {"hourly": [], "daily": []}
        started = time.monotonic()
        lab.ok("archive-now")  # what loading wrote is not part of the days
        archive_start = du(lab.folder / "repo" / "archive")
        for hour_index in range(args.days * 24):
            for minute in range(60):
                clock.write_text(str(base + hour_index * 3600 + minute * 60))
                lab.server.psql(hour(args.rows, 1 / 60) + "SELECT pg_switch_wal();", DATABASE)
                if minute in (0, 30) and (minute == 30 or hour_index % 24 == 2):
                    reason = "hourly" if minute == 30 else "daily"
                    seconds, label = timed(lambda: lab.ok("backup", reason, env=env))
                    runs[reason].append((label, seconds))
                    old_dump()
            if hour_index % 24 == 23:
                print(f"  day {hour_index // 24 + 1} simulated ({time.monotonic() - started:.0f} s)", flush=True)
        lab.ok("archive-now")
        info = {backup["label"]: backup for backup in lab.info()}
        by_type: dict[str, list[int]] = {"full": [], "diff": [], "incr": []}
        for backup in info.values():
            by_type[backup["type"]].append(backup["info"]["repository"]["delta"])
        wal_day = (du(lab.folder / "repo" / "archive") - archive_start) / args.days
        backups_total = du(lab.folder / "repo" / "backup")
        verify_seconds, _ = timed(lambda: lab.ok("verify"))
        repo_total = backups_total + du(lab.folder / "repo" / "archive")
        full, diff = max(by_type["full"]), statistics.mean(by_type["diff"])
        incr = statistics.mean(by_type["incr"])
        dump_size = statistics.mean(dumps)
        for kind, sizes in by_type.items():
            if sizes:
                row(f"{kind}: {len(sizes)} measured", f"mean {mb(statistics.mean(sizes))}")
        row("WAL archived per simulated day (1,440 segments switched)", mb(wal_day))
        for reason, done in runs.items():
            row(f"{reason} run (backup + verify + expire), {len(done)} runs",
                f"mean {statistics.mean(s for _, s in done):.1f} s   last {done[-1][1]:.1f} s")
        row(f"verify of this repository ({mb(repo_total)})", f"{verify_seconds:.1f} s")
        row("old: pg_dump per run", f"mean {mb(dump_size)}")
        # 30 days of the prod schedule: fulls on days 0, 7, 14, 21, 28 (the 00:30
        # hourly run); a diff every day at 02:00; every other hourly run an incr.
        fulls, diffs, incrs = 5, 30, 30 * 24 - 5
        hourly = fulls * full + diffs * diff + incrs * incr + 30 * wal_day
        daily = fulls * full + (30 - fulls) * diff + 30 * wal_day
        print("\n  after 30 days (sizes above times counts)", flush=True)
        row("old: 750 pg_dump sets (720 hourly + 30 daily)", mb(750 * dump_size))
        row(f"new, hourly+daily: {fulls} full + {diffs} diff + {incrs} incr + WAL", mb(hourly))
        row(f"new, daily only: {fulls} full + {30 - fulls} diff + WAL", mb(daily))
        row("verify after each run at 30 days, hourly+daily / daily", f"{verify_seconds * hourly / repo_total:.0f} s / "
            f"{verify_seconds * daily / repo_total:.0f} s")
    finally:
        lab.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--rpo-seconds", type=int, default=180)
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--compress", default="zst", choices=("zst", "lz4", "gz", "none"))
    parser.add_argument("--parts", default=",".join(PARTS))
    args = parser.parse_args()
    need_tools()
    box = toolbox(Path(tempfile.mkdtemp(prefix="pgbr-bench-")) / "box")
    for part in args.parts.split(","):
        {"recovery": recovery, "restore-point": restore_point, "recovery-point": recovery_point,
         "repository": repository}[part](box, args)


if __name__ == "__main__":
    main()
