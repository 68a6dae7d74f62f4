"""The PostgreSQL half of a promotion: approved documents and their chunks.

The source is read in one REPEATABLE READ, read-only transaction, so the counts
in the report and the rows copied come from one snapshot. The target is written
in one transaction (documents before chunks, for the foreign key) that the
caller commits only once the vectors are in place.

Rows move with COPY: source `COPY (SELECT …) TO STDOUT` streamed into a
`COPY … FROM STDIN` of a temporary table on the target, then INSERT … SELECT,
because COPY itself has no ON CONFLICT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional

import psycopg
from psycopg import sql

DOCUMENTS = "documents"
CHUNKS = "document_chunks"
APPROVED = "approved"


class PromotionError(Exception):
    """A refusal: the operator must fix something before anything is copied."""


@dataclass(frozen=True)
class ColumnCheck:
    copied: dict[str, list[str]]  # table -> columns both sides have, in the target's order
    source_only: list[str]  # "table.column" the target lacks: the promotion is refused
    target_only: list[str]  # "table.column" the source lacks: new rows get the target's default


@dataclass(frozen=True)
class Plan:
    approved: int  # approved documents in the source (created after `since`, if given)
    present: int  # of those, already in the target: left as they are
    document_ids: list[Any]  # the documents to copy
    chunks: int  # their chunks
    columns: ColumnCheck


@dataclass(frozen=True)
class Copied:
    document_ids: list[Any]
    chunks: int


def connect_source(dsn: str, database: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn)
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    _check_database(conn, database)
    return conn


def connect_target(dsn: str, database: str) -> psycopg.Connection:
    # Autocommit for the read-only planning queries, so that the copy's
    # `conn.transaction()` is a real BEGIN … COMMIT rather than a savepoint.
    conn = psycopg.connect(dsn, autocommit=True)
    _check_database(conn, database)
    return conn


def _check_database(conn: psycopg.Connection, expected: str) -> None:
    # The DSNs come from environment variables: a swapped or stale pair would
    # otherwise copy in the wrong direction.
    actual = conn.execute("SELECT current_database()").fetchone()[0]
    if actual != expected:
        conn.close()
        raise PromotionError(f"connected to database {actual}, expected {expected}: check the PROMOTE_*_DSN variables")


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    # Generated columns cannot be written; the target computes its own.
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s AND is_generated = 'NEVER'"
        " ORDER BY ordinal_position",
        (table,),
    ).fetchall()
    if not rows:
        raise PromotionError(f"table {table} not found in {conn.info.dbname}")
    return [name for (name,) in rows]


def check_columns(source: psycopg.Connection, target: psycopg.Connection) -> ColumnCheck:
    copied: dict[str, list[str]] = {}
    source_only: list[str] = []
    target_only: list[str] = []
    for table in (DOCUMENTS, CHUNKS):
        src, tgt = _columns(source, table), _columns(target, table)
        copied[table] = [c for c in tgt if c in src]
        source_only += [f"{table}.{c}" for c in src if c not in tgt]
        target_only += [f"{table}.{c}" for c in tgt if c not in src]
    return ColumnCheck(copied, source_only, target_only)


def plan(source: psycopg.Connection, target: psycopg.Connection, since: Optional[datetime]) -> Plan:
    where = sql.SQL("moderation_status = {}").format(sql.Literal(APPROVED))
    if since is not None:
        where = sql.SQL("{} AND created_at > {}").format(where, sql.Literal(since))
    approved = [row[0] for row in source.execute(
        sql.SQL("SELECT id FROM {} WHERE {} ORDER BY id").format(sql.Identifier(DOCUMENTS), where)
    )]
    present = {row[0] for row in target.execute(
        sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(sql.Identifier(DOCUMENTS)), (approved,)
    )}
    to_copy = [i for i in approved if i not in present]
    chunks = source.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE document_id = ANY(%s)").format(sql.Identifier(CHUNKS)), (to_copy,)
    ).fetchone()[0]
    return Plan(len(approved), len(present), to_copy, chunks, check_columns(source, target))


def _stream(source: psycopg.Connection, target: psycopg.Connection, table: str, columns: list[str],
            key: str, ids: list[Any]) -> str:
    """COPY the rows of `table` whose `key` is in `ids` into a temporary table; returns its name."""
    temp = f"promote_{table}"
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    target.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
        sql.Identifier(temp), cols, sql.Identifier(table)))
    select = sql.SQL("COPY (SELECT {} FROM {} WHERE {} = ANY(%s)) TO STDOUT").format(
        cols, sql.Identifier(table), sql.Identifier(key))
    insert = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(temp), cols)
    with source.cursor().copy(select, (ids,)) as out, target.cursor().copy(insert) as into:
        for block in out:
            into.write(block)
    return temp


def copy(source: psycopg.Connection, target: psycopg.Connection, planned: Plan) -> Copied:
    """Insert the planned documents and their chunks; run inside a target transaction."""
    docs_cols = planned.columns.copied[DOCUMENTS]
    temp = _stream(source, target, DOCUMENTS, docs_cols, "id", planned.document_ids)
    cols = sql.SQL(", ").join(map(sql.Identifier, docs_cols))
    # DO NOTHING, not DO UPDATE: the target's copy of a document is the one its
    # users see and its moderators may have changed since; promotion only adds.
    # It also covers a document that reached the target after the plan was made.
    inserted = [row[0] for row in target.execute(sql.SQL(
        "INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT (id) DO NOTHING RETURNING id").format(
        sql.Identifier(DOCUMENTS), cols, cols, sql.Identifier(temp)))]

    chunk_cols = planned.columns.copied[CHUNKS]
    temp = _stream(source, target, CHUNKS, chunk_cols, "document_id", inserted)
    cols = sql.SQL(", ").join(map(sql.Identifier, chunk_cols))
    # No ON CONFLICT: these chunks belong to documents the target did not have,
    # so a chunk id already there means ids are not unique across environments,
    # and the error rolls the whole promotion back rather than skip chunks.
    chunks = target.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
        sql.Identifier(CHUNKS), cols, cols, sql.Identifier(temp))).rowcount
    return Copied(inserted, chunks)
