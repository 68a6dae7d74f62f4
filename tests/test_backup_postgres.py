"""PostgreSQL backups on pgBackRest (lib/postgres.sh), the operator's restore
(scripts/postgres-restore.sh) and the logical copy (lib/postgres-dump.sh), run
against real PostgreSQL 15 clusters archiving their WAL with pgBackRest as the
stack's server does (tests/pgbackrest_lab.py).

A restore is compared with the source at the target moment: per table the row
count and a checksum over every row, the sequence, the indexes, and what
belongs to the cluster rather than to a table (roles, a database's settings,
comment and grants, the list of databases).
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from backup_helpers import PG_BIN, password
from pgbackrest_lab import DUMP_LIB, HOST_RESTORE, Lab, Server, fake_docker, need_tools, toolbox, utc_now

DATABASE = "shia_chatbot"
TABLES = ("customers", "orders", "documents")
SCHEMA = """
CREATE SEQUENCE invoice_numbers START 1000;
CREATE TABLE customers (
    id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, name text NOT NULL, created_at timestamptz NOT NULL);
CREATE TABLE orders (
    id bigserial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES customers,
    invoice bigint NOT NULL DEFAULT nextval('invoice_numbers'), total numeric(12, 2) NOT NULL,
    placed_at timestamptz NOT NULL);
CREATE INDEX orders_by_customer ON orders (customer_id);
CREATE TABLE documents (id bigserial PRIMARY KEY, title text NOT NULL, body text, tags text[], meta jsonb);
CREATE INDEX documents_meta ON documents USING gin (meta);
INSERT INTO customers (email, name, created_at)
    SELECT 'c' || g || '@example.org', 'Customer ' || g, timestamptz '2024-01-01' + g * interval '1 minute'
    FROM generate_series(1, 2000) g;
INSERT INTO orders (customer_id, total, placed_at)
    SELECT 1 + g % 2000, round((g % 9973) * 1.37, 2), timestamptz '2024-01-01' + g * interval '13 seconds'
    FROM generate_series(1, 10000) g;
INSERT INTO documents (title, body, tags, meta)
    SELECT CASE WHEN g % 5 = 0 THEN 'كتاب ' ELSE 'Book ' END || g, repeat(md5(g::text), 8),
           ARRAY['t' || g % 7, 't' || g % 11], jsonb_build_object('n', g, 'lang', CASE WHEN g % 5 = 0 THEN 'ar' ELSE 'en' END)
    FROM generate_series(1, 1000) g;
"""
# Writes made one after the other; each changes tables and the cluster.
FIRST_WRITES = f"""
INSERT INTO orders (customer_id, total, placed_at) SELECT g, 1.5, now() FROM generate_series(1, 300) g;
UPDATE customers SET name = name || ' (first)' WHERE id % 10 = 0;
CREATE ROLE reporting NOLOGIN;
GRANT SELECT ON orders TO reporting;
ALTER DATABASE {DATABASE} SET work_mem = '8MB';
COMMENT ON DATABASE {DATABASE} IS 'after the first writes';
"""
SECOND_WRITES = f"""
DELETE FROM documents WHERE id % 7 = 0;
UPDATE orders SET total = total + 1 WHERE id % 3 = 0;
ALTER ROLE reporting LOGIN;
GRANT CONNECT ON DATABASE {DATABASE} TO reporting;
ALTER DATABASE {DATABASE} SET statement_timeout = '30s';
"""
LATE_WRITES = f"""
TRUNCATE orders CASCADE;
INSERT INTO documents (title) VALUES ('late');
SELECT nextval('invoice_numbers') FROM generate_series(1, 50);
CREATE ROLE late_role;
REVOKE SELECT ON orders FROM reporting;
ALTER DATABASE {DATABASE} RESET work_mem;
COMMENT ON DATABASE {DATABASE} IS 'late';
"""
RESTORE_POINT = re.compile(r"pre-migration-(blue|green)-\d{8}T\d{6}Z")


def tables(server: Server, database: str = DATABASE) -> dict[str, str]:
    """Row count and checksum of every row per table, and the indexes."""
    result = {
        table: server.psql(f"SELECT count(*) || ' ' || coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t.id)), '') "
                           f"FROM {table} t", database)
        for table in TABLES
    }
    result["indexes"] = server.psql("SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes "
                                    "WHERE schemaname = 'public'", database)
    return result


def sequence(server: Server, database: str = DATABASE) -> int:
    return int(server.psql("SELECT last_value FROM invoice_numbers", database))


def cluster(server: Server) -> dict[str, str]:
    """What a restore of the tables alone would not bring back."""
    return {
        "roles": server.psql("SELECT string_agg(rolname || ' login=' || rolcanlogin, ', ' ORDER BY rolname) "
                             "FROM pg_roles WHERE rolname !~ '^pg_'"),
        "databases": server.psql("SELECT string_agg(datname, ', ' ORDER BY datname) FROM pg_database"),
        "settings": server.psql("SELECT string_agg(array_to_string(setconfig, ' '), '; ') FROM pg_db_role_setting s "
                                f"JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = '{DATABASE}'"),
        "comment": server.psql(f"SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                               f"WHERE datname = '{DATABASE}'"),
        "database grants": server.psql(f"SELECT datacl FROM pg_database WHERE datname = '{DATABASE}'"),
        "table grants": server.psql("SELECT relacl FROM pg_class WHERE relname = 'orders'", DATABASE),
    }


def state(server: Server) -> dict:
    return {"tables": tables(server), "cluster": cluster(server), "sequence": sequence(server)}


def assert_as_it_was(copy: Server, source: dict) -> None:
    """COPY holds what the source held. A sequence is WAL-logged 32 values
    ahead, so after a recovery it may have skipped up to 32: never reused."""
    restored = state(copy)
    assert restored["tables"] == source["tables"]
    assert restored["cluster"] == source["cluster"]
    assert source["sequence"] <= restored["sequence"] <= source["sequence"] + 32


@pytest.fixture(scope="module")
def box(tmp_path_factory) -> Path:
    need_tools()
    return toolbox(tmp_path_factory.mktemp("box"))


def load(lab: Lab) -> None:
    lab.server.psql(f"CREATE DATABASE {DATABASE}")
    lab.server.psql(SCHEMA, DATABASE)


def next_second() -> None:
    now = time.time()
    time.sleep(int(now) + 1 - now)


def restore_copy(lab: Lab, name: str, *target: str) -> Server:
    """lib/postgres.sh restore TARGET into an empty data directory beside the
    source, then that copy started until it has recovered and promoted."""
    data = lab.scratch(name)
    lab.ok("restore", *target, env=lab.env(PGBACKREST_PG1_PATH=str(data)))
    return lab.restored_server(data)


# ---- one history: backups, writes, restore points; recoveries into copies ---------

@pytest.fixture(scope="module")
def history(box):
    """A new stack's first release (no backup yet), then writes and backups:
    first writes, time t1, second writes, an hourly backup, the restore point of
    the next release, late writes. The state of the source at t1 and at the
    restore point is recorded."""
    lab = Lab.create(box)
    try:
        load(lab)
        record = {"lab": lab}
        first = lab.lib("backup", "pre-migration-blue")
        record["first release"] = first
        record["labels after first release"] = lab.labels()
        lab.server.psql(FIRST_WRITES, DATABASE)
        record["t1"] = utc_now(lab.server)
        record["at t1"] = state(lab.server)
        lab.server.psql(SECOND_WRITES, DATABASE)
        record["hourly"] = lab.ok("backup", "hourly")
        record["at restore point"] = state(lab.server)
        started = time.monotonic()
        release = lab.lib("backup", "pre-migration-green")
        record["release seconds"] = time.monotonic() - started
        record["release"] = release
        record["labels after release"] = lab.labels()
        lab.server.psql(LATE_WRITES, DATABASE)
        record["late"] = state(lab.server)
        yield record
    finally:
        lab.close()


def test_a_new_stacks_first_release_takes_a_full_backup_then_its_restore_point(history):
    first = history["first release"]
    assert first.returncode == 0, first.stderr
    assert RESTORE_POINT.fullmatch(first.stdout.strip())
    (label,) = history["labels after first release"]
    assert label.endswith("F")


def test_the_pre_migration_restore_point_returns_in_seconds_and_takes_no_backup(history):
    release = history["release"]
    assert release.returncode == 0, release.stderr
    assert RESTORE_POINT.fullmatch(release.stdout.strip())
    assert history["release seconds"] < 5
    assert history["labels after release"] == history["labels after first release"] + [history["hourly"]]
    assert history["hourly"].endswith("I")  # hourly: an incremental on the full


def test_recovery_to_a_time_between_two_writes_gives_the_database_as_it_was(history):
    lab = history["lab"]
    copy = restore_copy(lab, "at-t1", history["t1"])
    try:
        assert_as_it_was(copy, history["at t1"])
        assert cluster(copy)["settings"] == "work_mem=8MB"  # the first writes' setting, not the second's
        assert "late_role" not in cluster(copy)["roles"]
    finally:
        copy.stop()


def test_recovery_to_the_named_restore_point_gives_the_database_as_it_was(history):
    lab = history["lab"]
    copy = restore_copy(lab, "at-restore-point", history["release"].stdout.strip())
    try:
        assert_as_it_was(copy, history["at restore point"])
        assert tables(copy) != history["late"]["tables"]
        # A recovered server is a primary on a new timeline.
        assert copy.psql("SELECT timeline_id FROM pg_control_checkpoint()") == "2"
        copy.psql("CREATE TABLE written_after_restore (id int)", DATABASE)
    finally:
        copy.stop()


def test_recovery_to_latest_gives_the_last_commit(history):
    lab = history["lab"]
    lab.ok("archive-now")
    copy = restore_copy(lab, "at-latest", "latest")
    try:
        assert_as_it_was(copy, history["late"])
        # Restored as root in the container, owned by the postgres uid.
        assert {path.stat().st_uid for path in copy.data.rglob("*")} == {lab.server.data.stat().st_uid}
    finally:
        copy.stop()


# ---- damage the repository holds ---------------------------------------------------

def repository_copy(lab: Lab, name: str) -> tuple[Path, dict[str, str]]:
    """A copy of LAB's repository (owners kept), and the environment using it:
    damage goes to the copy, the lab's own stays whole."""
    copy = lab.folder / name
    subprocess.run(["cp", "-a", str(lab.folder / "repo"), str(copy)], check=True)
    return copy, lab.env(PGBACKREST_REPO1_PATH=str(copy))


def test_verify_finds_a_corrupted_repository_file(history):
    lab = history["lab"]
    (full,) = history["labels after first release"]
    copy, env = repository_copy(lab, "repo-damaged")
    damaged = min((copy / "backup" / "lab" / full / "pg_data" / "base").rglob("*.lz4"))
    with damaged.open("r+b") as f:
        f.seek(10)
        f.write(b"damage")

    result = lab.lib("verify", env=env)

    assert result.returncode == 1
    assert f"backup: {full}, status: invalid" in result.stderr
    assert "verify found problems in: repo1" in result.stderr
    assert lab.ok("verify") == ""  # the lab's own repository


def test_verify_finds_a_gap_in_the_wal_archive_that_pgbackrest_verify_passes(history):
    lab = history["lab"]
    copy, env = repository_copy(lab, "repo-gap")
    segments = sorted((copy / "archive" / "lab" / "15-1").glob("*/0*.lz4"))
    before, missing, after = segments[len(segments) // 2 - 1:len(segments) // 2 + 2]
    missing.unlink()

    result = lab.lib("verify", env=env)

    assert result.returncode == 1
    assert "status: ok" in result.stderr  # what pgBackRest 2.45 itself concludes
    assert f"WAL missing between {before.name[:24]} and {after.name[:24]}" in result.stderr


# ---- a stack with an off-site repository: archiving, metrics, retention ------------

def metrics(lab: Lab) -> dict[str, float]:
    samples = {}
    for line in (lab.folder / "metrics" / "shia_chatbot_wal.prom").read_text().splitlines():
        if line and not line.startswith("#"):
            name, value = line.split(" ")
            samples[name] = float(value)
    return samples


@pytest.fixture(scope="module")
def two_repositories(box):
    """A stack with an off-site repository (repo2): the server pushes its WAL to both."""
    lab = Lab.create(box, repo2=True)
    try:
        init = lab.lib("init")
        assert init.returncode == 0, init.stderr
        yield lab
    finally:
        lab.close()


def test_init_is_idempotent(two_repositories):
    assert two_repositories.lib("init").returncode == 0


def test_a_restore_point_is_archived_to_both_and_offsite_backs_up_to_repo2(two_repositories):
    lab = two_repositories
    point = lab.ok("backup", "pre-migration-blue")
    segment = lab.server.psql("SELECT last_archived_wal FROM pg_stat_archiver")
    for repo in ("repo", "repo2"):
        assert list((lab.folder / repo / "archive" / "lab" / "15-1").glob(f"*/{segment}-*")), (repo, point)
    assert lab.ok("offsite", "pre-migration-blue") == ""  # nothing to copy: the WAL is in both

    offsite = lab.ok("offsite", "daily")
    assert lab.labels(2) == [offsite] and offsite.endswith("F")
    assert lab.labels(1) != [offsite]
    assert lab.ok("verify") == ""
    # Without repo2 there is nothing to do.
    alone = lab.env()
    del alone["PGBACKREST_REPO2_TYPE"]
    assert lab.ok("offsite", env=alone) == ""


def test_an_archive_failure_shows_in_the_metrics_and_the_release_waits_only_so_long(two_repositories):
    lab = two_repositories
    lab.ok("metrics")
    before = metrics(lab)
    assert before["shia_chatbot_postgres_wal_ready_segments"] == 0
    assert before["shia_chatbot_postgres_wal_last_archived_timestamp_seconds"] > 0

    # The off-site repository stops taking WAL (as S3 out of reach would).
    archive = lab.folder / "repo2" / "archive" / "lab"
    folders = [archive, *(p for p in archive.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o500)
    try:
        started = time.monotonic()
        release = lab.lib("backup", "pre-migration-green", env=lab.env(PGBACKREST_ARCHIVE_TIMEOUT="1"))
        assert release.returncode == 1 and "not archived after 1s" in release.stderr
        assert time.monotonic() - started < 5

        lab.ok("metrics")
        after = metrics(lab)
        assert after["shia_chatbot_postgres_wal_failed_total"] > before["shia_chatbot_postgres_wal_failed_total"]
        assert after["shia_chatbot_postgres_wal_ready_segments"] >= 1
        assert after["shia_chatbot_postgres_wal_last_failed_timestamp_seconds"] >= \
            after["shia_chatbot_postgres_wal_last_archived_timestamp_seconds"]
    finally:
        for folder in folders:
            folder.chmod(0o750)
    # Back: the waiting segments go out and a restore point succeeds again.
    assert RESTORE_POINT.fullmatch(lab.ok("backup", "pre-migration-green"))
    lab.ok("metrics")
    assert metrics(lab)["shia_chatbot_postgres_wal_ready_segments"] == 0


EIGHT_DAYS_LATER = """#!/bin/sh
# date, eight days on: the clock lib/postgres.sh judges a full's age by.
now=$(/bin/date +%s)
case $* in
    +%s) echo $((now + 8 * 86400)) ;;
    *) exec /bin/date -d "@$((now + 8 * 86400))" "$@" ;;
esac
"""
CORRUPT_NEW_SET = """#!/bin/sh
# pgbackrest, then one byte flipped in a file of the backup it just wrote:
# a repository that damages what it stores.
/usr/bin/pgbackrest "$@" || exit
case " $* " in *" backup "*) ;; *) exit 0 ;; esac
newest=$(ls -td "$PGBACKREST_REPO1_PATH"/backup/"$PGBACKREST_STANZA"/2*/ | head -n 1)
file=$(find "$newest/pg_data" -type f -size +0 | head -n 1)
printf 'X' | dd of="$file" bs=1 seek=8 conv=notrunc 2> /dev/null
"""


def fake_bin(lab: Lab, **programs: str) -> dict[str, str]:
    """LAB's environment with PROGRAMS (name: sh script) first on PATH."""
    folder = lab.folder / ("fake-" + "-".join(programs))
    folder.mkdir(exist_ok=True)
    for name, script in programs.items():
        (folder / name).write_text(script)
        (folder / name).chmod(0o755)
    env = lab.env()
    return {**env, "PATH": f"{folder}:{env['PATH']}"}


def test_retention_never_removes_the_newest_good_backup_and_a_failed_backup_expires_nothing(two_repositories):
    lab = two_repositories
    # The full of the first release, or the first daily run's.
    earlier = lab.labels() or [lab.ok("backup", "daily")]
    assert earlier[-1].endswith("F")
    # Eight days later the daily run takes the weekly full.
    full_b = lab.ok("backup", "daily", env=fake_bin(lab, date=EIGHT_DAYS_LATER))
    assert full_b.endswith("F") and lab.labels() == [*earlier, full_b]

    # Retention lowered to one full since. The next set is damaged as it is
    # stored: found, removed, and nothing expired.
    one_full = {"PGBACKREST_REPO1_RETENTION_FULL": "1"}
    damaged = lab.lib("backup", "manual", env={**fake_bin(lab, pgbackrest=CORRUPT_NEW_SET), **one_full})
    assert damaged.returncode == 1 and damaged.stdout == ""
    assert "failed verification" in damaged.stderr and "was removed" in damaged.stderr
    assert lab.labels() == [*earlier, full_b]

    # A backup that fails (the database out of reach) expires nothing either.
    failed = lab.lib("backup", "manual", env=lab.env(PGBACKREST_PG1_PORT="1", **one_full))
    assert failed.returncode == 1 and "nothing expired" in failed.stderr
    assert lab.labels() == [*earlier, full_b]

    # The next good backup: a diff on the newest full; retention then keeps one full.
    diff = lab.ok("backup", "manual", env=lab.env(**one_full))
    assert diff.startswith(full_b + "_") and diff.endswith("D")
    assert lab.labels() == [full_b, diff]



# ---- the operator's restore, in place, through docker ------------------------------

@pytest.fixture(scope="module")
def live(box):
    """A stack's database with a daily backup, first writes, time t1, second writes."""
    lab = Lab.create(box)
    try:
        load(lab)
        lab.ok("backup", "daily")
        # lib/postgres.sh compares to the second: a target after the backup's
        # stop second, and before the current one.
        next_second()
        lab.server.psql(FIRST_WRITES, DATABASE)
        t1 = utc_now(lab.server)
        at_t1 = state(lab.server)
        lab.server.psql(SECOND_WRITES, DATABASE)
        next_second()
        yield {"lab": lab, "t1": t1, "at t1": at_t1, "env": fake_docker(lab)}
    finally:
        lab.close()


def docker_calls(lab: Lab) -> list[str]:
    log = lab.folder / "docker.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("target, reason", [
    ("2001-01-01 00:00:00", "before the oldest backup"),
    ("2999-01-01 00:00:00", "not in the past"),
    ("2026-11-30 03:14:00+02", "in UTC"),
    ("20990101-000000F", "no backup labelled"),
    ("pre-migration-blue-20000101T000000Z", "older than every backup"),
    ("before-the-upgrade", "not one this script made"),
])
def test_a_target_the_repository_cannot_reach_is_refused_before_anything_stops(live, target, reason):
    lab = live["lab"]
    (lab.folder / "docker.log").unlink(missing_ok=True)

    result = lab.run(HOST_RESTORE, target, env=live["env"])

    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert reason in line
    assert all(call.startswith("exec lab-backup sh") for call in docker_calls(lab)), docker_calls(lab)
    assert lab.server.psql("SELECT pg_is_in_recovery()") == "f"


def test_the_restore_brings_back_t1_in_place_and_survives_a_crash_right_after(live):
    lab = live["lab"]

    result = lab.run(HOST_RESTORE, live["t1"], env=live["env"])

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("postgres restored (type=time") and "timeline 2, checkpointed" in result.stdout
    calls = docker_calls(lab)
    order = [next(i for i, call in enumerate(calls) if step in call)
             for step in ("postgres.sh archive-now", "stop lab-postgres", "postgres.sh restore ", "start lab-postgres",
                          "CHECKPOINT")]
    assert order == sorted(order), calls
    assert_as_it_was(lab.server, live["at t1"])

    lab.server.kill()
    lab.server.start()
    assert_as_it_was(lab.server, live["at t1"])
    assert lab.server.psql("SELECT pg_is_in_recovery()") == "f"
    lab.server.psql("INSERT INTO documents (title) VALUES ('after the restore')", DATABASE)


# ---- the logical copy ----------------------------------------------------------------

@pytest.fixture
def staging(history, tmp_path) -> dict[str, str]:
    lab = history["lab"]
    folder = tmp_path / "staging"
    return lab.env(BACKUP_STAGING=str(folder), PGDATABASE=DATABASE)


def test_a_dump_reads_back_and_restores_the_tables_into_another_database(history, staging):
    lab = history["lab"]
    throwaway = password()
    lab.server.psql(f"ALTER ROLE reporting PASSWORD '{throwaway}'")
    dump = lab.run(DUMP_LIB, "dump", env=staging)
    assert dump.returncode == 0, dump.stderr
    folder = Path(dump.stdout.strip())
    assert sorted(p.name for p in folder.iterdir()) == ["postgres-globals.sql", "postgres.dump"]
    roles = (folder / "postgres-globals.sql").read_text()
    assert "CREATE ROLE reporting" in roles and "SCRAM-SHA-256" not in roles and throwaway not in roles

    restored = lab.run(DUMP_LIB, "restore", "dump_check", env=staging)
    try:
        assert restored.returncode == 0, restored.stderr
        assert tables(lab.server, "dump_check") == tables(lab.server)
    finally:
        lab.server.psql("DROP DATABASE IF EXISTS dump_check")


def test_a_truncated_dump_is_refused(history, staging, tmp_path):
    lab = history["lab"]
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "pg_dump").write_text(
        '#!/bin/sh\nset -e\n"$REAL_PG_DUMP" "$@"\n'
        'for arg; do case $arg in --file=*) out=${arg#--file=} ;; esac; done\n'
        'truncate -s "$(($(stat -c %s "$out") / 2))" "$out"\n')
    (fake / "pg_dump").chmod(0o755)
    env = {**staging, "PATH": f"{fake}:{staging['PATH']}", "REAL_PG_DUMP": str(PG_BIN / "pg_dump")}

    result = lab.run(DUMP_LIB, "dump", env=env)

    assert result.returncode != 0 and "does not read back in full" in result.stderr
    folder = Path(staging["BACKUP_STAGING"]) / "postgres-dump"
    assert not (folder / "postgres.dump").exists() and not list(folder.glob(".*"))
