"""The backup job's Postgres backup and restore, run against a real PostgreSQL 15.

One cluster for the module, loaded once with 130 000 rows over three tables, their
indexes, a foreign key and a sequence. Every restore is compared with the
original table by table: row count and a checksum over every row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from backup_helpers import BACKUP, RESTORE, Postgres, busybox_toolbox, metrics, run, script_env, server_dir, sets
from real_tools import need

DATABASE = "test_shia_chatbot"
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
CREATE INDEX orders_by_time ON orders (placed_at);
CREATE TABLE documents (id bigserial PRIMARY KEY, title text NOT NULL, body text, tags text[], meta jsonb);
CREATE INDEX documents_meta ON documents USING gin (meta);
INSERT INTO customers (email, name, created_at)
    SELECT 'c' || g || '@example.org', 'Customer ' || g, timestamptz '2024-01-01' + g * interval '1 minute'
    FROM generate_series(1, 20000) g;
INSERT INTO orders (customer_id, total, placed_at)
    SELECT 1 + g % 20000, round((g % 9973) * 1.37, 2), timestamptz '2024-01-01' + g * interval '13 seconds'
    FROM generate_series(1, 100000) g;
INSERT INTO documents (title, body, tags, meta)
    SELECT CASE WHEN g % 5 = 0 THEN 'كتاب ' ELSE 'Book ' END || g, repeat(md5(g::text), 8),
           ARRAY['t' || g % 7, 't' || g % 11], jsonb_build_object('n', g, 'lang', CASE WHEN g % 5 = 0 THEN 'ar' ELSE 'en' END)
    FROM generate_series(1, 10000) g;
"""


def fingerprint(pg: Postgres, database: str) -> dict[str, str]:
    """Row count and checksum of every row per table, the sequence, and the indexes."""
    result = {
        table: pg.psql(f"SELECT count(*) || ' ' || md5(string_agg(t::text, E'\\n' ORDER BY t.id)) FROM {table} t",
                       database)
        for table in TABLES
    }
    result["invoice_numbers"] = pg.psql("SELECT last_value || ' ' || is_called FROM invoice_numbers", database)
    result["indexes"] = pg.psql("SELECT string_agg(indexdef, '; ' ORDER BY indexname) FROM pg_indexes "
                                "WHERE schemaname = 'public'", database)
    return result


@pytest.fixture(scope="module")
def pg():
    need("initdb")
    server = Postgres(server_dir("shia-backup-pg-")).start()
    try:
        server.psql(f"CREATE DATABASE {DATABASE}")
        server.psql(SCHEMA, DATABASE)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def original(pg) -> dict[str, str]:
    prints = fingerprint(pg, DATABASE)
    assert prints["orders"].startswith("100000 ")
    return prints


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory) -> Path:
    return busybox_toolbox(tmp_path_factory.mktemp("busybox"))


@pytest.fixture
def env(pg, toolbox, tmp_path) -> dict[str, str]:
    return script_env(toolbox, tmp_path, **pg.env(DATABASE))


def test_backup_then_drop_then_restore_gives_identical_tables(pg, original, env, tmp_path):
    backup = run(BACKUP, "postgres", "--reason", "test", env=env)
    assert backup.returncode == 0, backup.stderr
    (name,) = sets(tmp_path)
    assert backup.stdout.strip() == name and name.endswith("-test")
    files = sorted(p.name for p in (tmp_path / "backups" / "sets" / name).iterdir())
    assert files == ["SHA256SUMS", "postgres-globals.sql", "postgres.dump"]
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="postgres"}'] == 1

    pg.psql(f"DROP DATABASE {DATABASE}")
    restore = run(RESTORE, "postgres", "latest", env=env)
    assert restore.returncode == 0, restore.stderr

    assert fingerprint(pg, DATABASE) == original
    assert pg.psql("SELECT datname FROM pg_database WHERE datname LIKE '%restoring'") == ""


def test_restore_into_a_scratch_database_leaves_the_live_one_alone(pg, original, env, tmp_path):
    assert run(BACKUP, "postgres", env=env).returncode == 0
    pg.psql("UPDATE customers SET name = 'changed after the backup' WHERE id = 1", DATABASE)
    try:
        restore = run(RESTORE, "postgres", "--database", "scratch_check", env=env)
        assert restore.returncode == 0, restore.stderr
        assert fingerprint(pg, "scratch_check") == original
        assert pg.psql("SELECT name FROM customers WHERE id = 1", DATABASE) == "changed after the backup"
    finally:
        pg.psql("UPDATE customers SET name = 'Customer 1' WHERE id = 1", DATABASE)
        pg.psql("DROP DATABASE IF EXISTS scratch_check")


def test_a_truncated_dump_is_refused_and_earlier_backups_are_kept(pg, env, tmp_path):
    assert run(BACKUP, "postgres", "--reason", "good", env=env).returncode == 0
    # A pg_dump that is cut off half way (a full disk, a killed process) but exits 0.
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "pg_dump").write_text(
        '#!/bin/sh\nset -e\n"$REAL_PG_DUMP" "$@"\n'
        'for arg; do case $arg in --file=*) out=${arg#--file=} ;; esac; done\n'
        'truncate -s "$(($(stat -c %s "$out") / 2))" "$out"\n')
    (fake / "pg_dump").chmod(0o755)
    broken = {**env, "PATH": f"{fake}:{env['PATH']}", "REAL_PG_DUMP": need("pg_dump")}

    result = run(BACKUP, "postgres", "--reason", "truncated", env=broken)

    assert result.returncode != 0
    assert "does not read back in full" in result.stderr
    assert [s.rsplit("-", 1)[1] for s in sets(tmp_path)] == ["good"]
    assert not list((tmp_path / "backups" / "sets").glob(".*"))  # no partial set left behind
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="postgres"}'] == 0


def test_a_dump_that_no_longer_matches_its_checksum_is_not_restored(pg, original, env, tmp_path):
    assert run(BACKUP, "postgres", env=env).returncode == 0
    (name,) = sets(tmp_path)
    dump = tmp_path / "backups" / "sets" / name / "postgres.dump"
    with dump.open("r+b") as f:
        f.seek(dump.stat().st_size // 2)
        f.write(b"\0" * 64)

    result = run(RESTORE, "postgres", name, env=env)

    assert result.returncode != 0 and "does not match its checksum" in result.stderr
    assert fingerprint(pg, DATABASE) == original


def test_no_password_reaches_the_output_or_the_backup(pg, env, tmp_path):
    result = run(BACKUP, "postgres", env=env)
    assert result.returncode == 0
    assert pg.password not in result.stdout + result.stderr
    (name,) = sets(tmp_path)
    globals_sql = (tmp_path / "backups" / "sets" / name / "postgres-globals.sql").read_text()
    assert "CREATE ROLE postgres" in globals_sql and "SCRAM-SHA-256" not in globals_sql
