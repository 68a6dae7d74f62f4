"""The rotation step's ALTER ROLE script (components/data/scripts/postgres-set-password.sh)
against a real PostgreSQL 15: the new password works, the old one no longer does."""

from __future__ import annotations

import os
import subprocess

import pytest

from backup_helpers import PG_BIN, Postgres, password, server_dir
from components.data.postgres import SET_PASSWORD_SCRIPT
from real_tools import need

ROLE, DATABASE = "prod_shia_chatbot", "prod_shia_chatbot"


@pytest.fixture(scope="module")
def server():
    need("pg_ctl")
    pg = Postgres(server_dir("pg-password-")).start()
    yield pg
    pg.stop()


def can_log_in(pg: Postgres, secret: str) -> bool:
    env = {**os.environ, **pg.env(DATABASE), "PGUSER": ROLE, "PGPASSWORD": secret}
    return subprocess.run([str(PG_BIN / "psql"), "--no-psqlrc", "-Atc", "select 1"], env=env,
                          capture_output=True).returncode == 0


def set_password(pg: Postgres, current: str, new: str) -> subprocess.CompletedProcess:
    """Run the script as the program does inside the container: new password on stdin,
    POSTGRES_USER/POSTGRES_DB from the environment (here over TCP with the current one)."""
    env = {"PATH": f"{PG_BIN}:{os.environ['PATH']}", **pg.env(DATABASE), "PGUSER": ROLE, "PGPASSWORD": current,
           "POSTGRES_USER": ROLE, "POSTGRES_DB": DATABASE}
    return subprocess.run(["sh", "-c", SET_PASSWORD_SCRIPT], input=new + "\n", env=env, capture_output=True, text=True)


def test_rotated_password_replaces_the_old_one(server):
    old, new = password(), password()
    server.psql(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{old}'")
    server.psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
    assert can_log_in(server, old)
    result = set_password(server, old, new)
    assert result.returncode == 0, result.stderr
    assert new not in result.stdout + result.stderr
    assert can_log_in(server, new) and not can_log_in(server, old)

    refused = set_password(server, new, "x'; DROP ROLE postgres; --")
    assert refused.returncode == 1 and "letters and digits" in refused.stderr
    assert can_log_in(server, new)
