"""The roles step (components/data/scripts/postgres-roles.sh) against a real PostgreSQL 15:
what each role may and may not do, a migration under the owner role, rotation, idempotence."""

from __future__ import annotations

import os
import subprocess

import pytest

from backup_helpers import PG_BIN, Postgres, password, server_dir
from components.data.postgres import ROLES_SCRIPT
from pgbackrest_lab import Lab, need_tools, toolbox
from real_tools import need

DATABASE = "prod_shia_chatbot"
ROLES = {"OWNER_ROLE": "prod_owner", "APP_ROLE": "prod_app", "MONITOR_ROLE": "prod_monitor",
         "BACKUP_ROLE": "prod_backup"}
OWNER, APP, MONITOR, BACKUP = ROLES.values()


@pytest.fixture(scope="module")
def server():
    need("pg_ctl")
    pg = Postgres(server_dir("pg-roles-")).start()
    pg.psql(f"CREATE DATABASE {DATABASE}")
    # What a deployment made before the roles: a table from a migration run as the
    # superuser, and a schema that is not the app's.
    pg.psql("CREATE TABLE legacy (id serial PRIMARY KEY, note text);"
            "CREATE SCHEMA other; CREATE TABLE other.secret (v text); INSERT INTO other.secret VALUES ('x')",
            DATABASE)
    yield pg
    pg.stop()


def set_roles(pg: Postgres, passwords: list[str]) -> subprocess.CompletedProcess:
    """Run the script as the step does: passwords on stdin, names from the environment."""
    env = {"PATH": f"{PG_BIN}:{os.environ['PATH']}", **pg.env(DATABASE), "POSTGRES_USER": pg.user,
           "POSTGRES_DB": DATABASE, **ROLES}
    return subprocess.run(["sh", "-c", ROLES_SCRIPT], input="".join(p + "\n" for p in passwords), env=env,
                          capture_output=True, text=True)


def run_as(pg: Postgres, role: str, secret: str, sql: str, database: str = DATABASE) -> subprocess.CompletedProcess:
    env = {**os.environ, **pg.env(database), "PGUSER": role, "PGPASSWORD": secret}
    return subprocess.run([str(PG_BIN / "psql"), "--no-psqlrc", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
                          env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def secrets(server):
    values = dict(zip(ROLES.values(), (password() for _ in ROLES)))
    result = set_roles(server, list(values.values()))
    assert result.returncode == 0, result.stderr
    assert not any(v in result.stdout + result.stderr for v in values.values())
    return values


def refused(result: subprocess.CompletedProcess) -> bool:
    return result.returncode != 0 and ("permission denied" in result.stderr or "must be" in result.stderr)


@pytest.mark.parametrize("sql", [
    "CREATE ROLE intruder",
    "COPY (SELECT 1) TO PROGRAM 'id'",
    "ALTER TABLE legacy ADD COLUMN evil text",
    "DROP TABLE legacy",
    "SELECT * FROM other.secret",
    "CREATE TABLE public.mine (id int)",
    "CREATE SCHEMA mine",
])
def test_the_app_role_is_refused(server, secrets, sql):
    assert refused(run_as(server, APP, secrets[APP], sql))


def test_a_migration_under_the_owner_makes_a_table_the_app_uses(server, secrets):
    migration = run_as(server, OWNER, secrets[OWNER],
                       "CREATE TABLE documents (id bigserial PRIMARY KEY, title text);"
                       "ALTER TABLE legacy ADD COLUMN added text")
    assert migration.returncode == 0, migration.stderr
    use = run_as(server, APP, secrets[APP],
                 "INSERT INTO documents (title) VALUES ('a'); UPDATE documents SET title = 'b';"
                 "INSERT INTO legacy (note, added) VALUES ('n', 'm'); DELETE FROM legacy;"
                 "SELECT title FROM documents")
    assert use.returncode == 0 and use.stdout.strip() == "b", use.stderr
    assert refused(run_as(server, APP, secrets[APP], "TRUNCATE documents"))
    assert refused(run_as(server, OWNER, secrets[OWNER], "CREATE ROLE intruder"))
    assert refused(run_as(server, OWNER, secrets[OWNER], "SELECT * FROM other.secret"))


def test_the_monitoring_role_reads_statistics_not_data(server, secrets):
    stats = run_as(server, MONITOR, secrets[MONITOR],
                   "SELECT count(query) > 0 FROM pg_stat_activity WHERE query <> '<insufficient privilege>'")
    assert stats.returncode == 0 and stats.stdout.strip() == "t", stats.stderr
    assert refused(run_as(server, MONITOR, secrets[MONITOR], "SELECT * FROM public.legacy"))


def test_the_backup_role_runs_a_backup_and_reads_no_data(server, secrets):
    steps = run_as(server, BACKUP, secrets[BACKUP],
                   "SHOW data_directory; SELECT pg_backup_start('roles-test', true) IS NOT NULL;"
                   "SELECT lsn IS NOT NULL FROM pg_backup_stop(false); SELECT pg_switch_wal() IS NOT NULL;"
                   "SELECT count(*) >= 0 FROM pg_ls_archive_statusdir();"
                   "SELECT pg_create_restore_point('roles-test') IS NOT NULL; CHECKPOINT", database="postgres")
    assert steps.returncode == 0, steps.stderr
    assert steps.stdout.split("\n")[1:6] == ["t"] * 5
    assert refused(run_as(server, BACKUP, secrets[BACKUP], "SELECT 1"))  # the app's database
    assert refused(run_as(server, BACKUP, secrets[BACKUP], "COPY (SELECT 1) TO PROGRAM 'id'", database="postgres"))


def grants(pg: Postgres) -> str:
    """Every role attribute, membership and ACL the step sets, as one text."""
    return "\n".join(acls(pg, database) for database in (DATABASE, "postgres"))


def acls(pg: Postgres, database: str) -> str:
    return database + "\n" + pg.psql(
        "SELECT string_agg(x, E'\\n' ORDER BY x) FROM ("
        " SELECT format('%s %s %s %s %s %s %s', rolname, rolsuper, rolcreaterole, rolcreatedb, rolcanlogin,"
        "               rolconnlimit, rolinherit) FROM pg_roles WHERE rolname LIKE 'prod_%'"
        " UNION ALL SELECT format('%s in %s', member::regrole, roleid::regrole) FROM pg_auth_members"
        "  WHERE member::regrole::text LIKE 'prod_%'"
        " UNION ALL SELECT format('%s %s %s', relname, relowner::regrole, relacl) FROM pg_class"
        "  WHERE relnamespace IN (SELECT oid FROM pg_namespace WHERE nspname IN ('public', 'other'))"
        " UNION ALL SELECT format('%s %s', defaclrole::regrole, defaclacl) FROM pg_default_acl"
        " UNION ALL SELECT format('%s %s', nspname, nspacl) FROM pg_namespace WHERE nspname IN ('public', 'other')"
        " UNION ALL SELECT format('%s %s', datname, datacl) FROM pg_database"
        " UNION ALL SELECT format('%s %s', oid::regprocedure, proacl) FROM pg_proc WHERE proname IN"
        "  ('pg_backup_start', 'pg_backup_stop', 'pg_switch_wal', 'pg_create_restore_point',"
        "   'pg_ls_archive_statusdir')) AS t(x)",
        database)


def test_a_rerun_rotates_every_password_and_changes_no_grant(server, secrets):
    before = grants(server)
    new = {role: password() for role in secrets}
    result = set_roles(server, list(new.values()))
    assert result.returncode == 0, result.stderr
    assert grants(server) == before
    for role in secrets:
        assert run_as(server, role, new[role], "SELECT 1", database="postgres").returncode == 0
        assert "password authentication failed" in run_as(server, role, secrets[role], "SELECT 1", "postgres").stderr
    secrets.update(new)


def test_a_role_changed_by_hand_is_put_back(server, secrets):
    before = grants(server)
    server.psql(f"ALTER ROLE {APP} CREATEROLE; GRANT pg_execute_server_program TO {APP}", DATABASE)
    server.psql(f"ALTER DEFAULT PRIVILEGES FOR ROLE {OWNER} IN SCHEMA public REVOKE DELETE ON TABLES FROM {APP}",
                DATABASE)
    assert set_roles(server, list(secrets.values())).returncode == 0
    # The membership granted by hand stays (the step revokes nothing it does not know), the rest is back.
    assert set(grants(server).split("\n")) - set(before.split("\n")) == {f"{APP} in pg_execute_server_program"}
    server.psql(f"REVOKE pg_execute_server_program FROM {APP}", DATABASE)


@pytest.mark.parametrize("stdin", [["a"] * 3, ["a", "b", "c'; DROP ROLE postgres; --", "d"], ["a", "", "b", "c"]])
def test_malformed_passwords_change_nothing(server, secrets, stdin):
    result = set_roles(server, stdin)
    assert result.returncode == 1 and "letters and digits" in result.stderr
    assert run_as(server, APP, secrets[APP], "SELECT 1").returncode == 0


def test_pgbackrest_and_the_backup_job_run_as_the_backup_role(tmp_path_factory):
    """The backup job's lib/postgres.sh (stanza-create and check, a backup at a restore
    point, the archive check) with real pgBackRest, connected as the backup role."""
    need_tools()
    lab = Lab.create(toolbox(tmp_path_factory.mktemp("box")), prefix="pg-roles-br-")
    try:
        lab.server.psql(f"CREATE DATABASE {DATABASE}")
        env = {"PATH": f"{PG_BIN}:{os.environ['PATH']}", **lab.server.libpq(DATABASE), "POSTGRES_USER": "postgres",
               "POSTGRES_DB": DATABASE, **ROLES}
        made = subprocess.run(["sh", "-c", ROLES_SCRIPT], input="".join(password() + "\n" for _ in ROLES), env=env,
                              capture_output=True, text=True)
        assert made.returncode == 0, made.stderr
        as_backup = lab.env(PGUSER=BACKUP, PGBACKREST_PG1_USER=BACKUP)
        lab.ok("init", env=as_backup)
        point = lab.ok("backup", "pre-migration-blue", env=as_backup)
        assert point.startswith("pre-migration-blue-") and len(lab.labels()) == 1
        assert lab.ok("archive-now", env=as_backup) == ""
        # The same calls as a role without the grants are refused: the grants are what it takes.
        lab.server.psql("CREATE ROLE bare LOGIN")
        refused_run = lab.lib("backup", "hourly", env=lab.env(PGUSER="bare", PGBACKREST_PG1_USER="bare"))
        assert refused_run.returncode != 0
    finally:
        lab.close()
