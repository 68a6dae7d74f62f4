"""Promotion (tools/promote.py) against a real PostgreSQL 15 and a protocol fake of Qdrant.

One private cluster for the session, on its own port, run by an unprivileged
user; every test gets fresh stage_shia_chatbot and prod_shia_chatbot databases
with the guide's two tables. Qdrant cannot be installed here: FakeQdrant speaks
just the REST calls the tool makes (scroll, count, upsert) and checks the
api-key header, nothing more.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from real_tools import need

ROOT = Path(__file__).resolve().parents[1]

SCHEMA = [
    """CREATE TABLE documents (
        id uuid PRIMARY KEY,
        title text NOT NULL,
        moderation_status text NOT NULL CHECK (moderation_status IN ('pending', 'approved', 'rejected')),
        created_at timestamptz NOT NULL DEFAULT now(),
        metadata jsonb NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE document_chunks (
        id uuid PRIMARY KEY,
        document_id uuid NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
        chunk_index integer NOT NULL,
        content text NOT NULL,
        search tsvector GENERATED ALWAYS AS (to_tsvector('simple', content)) STORED
    )""",
]

SINCE = "2025-11-01"
# name: (moderation status, created, number of chunks)
STAGE_DOCUMENTS = {
    "in_prod": ("approved", "2025-11-10", 2),
    "new_a": ("approved", "2025-11-15", 300),  # more than one Qdrant page (256)
    "new_b": ("approved", "2025-11-20", 1),
    "old": ("approved", "2025-10-01", 2),
    "pending": ("pending", "2025-11-12", 2),
    "rejected": ("rejected", "2025-11-13", 1),
}
PROD_DOCUMENTS = {
    "in_prod": ("approved", "2025-11-10", 2),
    "prod_only": ("approved", "2025-09-01", 1),
}
# What COPY's text format must carry through: tab, newline, backslash, Arabic.
AWKWARD = "بسم الله\tcolumn\nline \\N not null, \"quoted\""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _unprivileged(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root, and CI runs the tests as root.
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


def _run(cmd: list[str], cwd: Path) -> None:
    done = subprocess.run(_unprivileged(cmd), cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{cmd[0]} failed:\n{done.stdout}{done.stderr}")


def _url(port: int, db: str, user: str, password: str) -> str:
    return f"postgresql://{user}:{password}@127.0.0.1:{port}/{db}"


@pytest.fixture(scope="session")
def cluster():
    initdb, pg_ctl = need("initdb"), need("pg_ctl")
    root = Path(tempfile.mkdtemp(prefix="promotion-pg-"))
    superuser_password = secrets.token_hex(16)
    pwfile = root / "pwfile"
    pwfile.write_text(superuser_password + "\n")
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        for path in (root, pwfile):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
    data, port = root / "data", _free_port()
    _run([initdb, "-D", str(data), "-U", "postgres", f"--pwfile={pwfile}", "--auth=scram-sha-256",
          "--encoding=UTF8", "--locale=C"], root)
    pwfile.unlink()
    _run([pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
          f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start"], root)
    passwords = {env: secrets.token_hex(16) for env in ("stage", "prod")}
    try:
        with psycopg.connect(_url(port, "postgres", "postgres", superuser_password), autocommit=True) as admin:
            for env, password in passwords.items():
                admin.execute(f"CREATE ROLE {env}_shia_chatbot LOGIN PASSWORD '{password}'")
        yield port, superuser_password, passwords
    finally:
        _run([pg_ctl, "-D", str(data), "-m", "immediate", "stop"], root)
        shutil.rmtree(root)


class FakeQdrant:
    """Qdrant's scroll, count and upsert for one collection, behind an api-key."""

    def __init__(self, collection: str, api_key: str, points: list[dict]):
        self.collection, self.api_key = collection, api_key
        self.points = {p["id"]: p for p in points}
        self.requests: list[tuple[str, str, str]] = []  # method, path, api-key sent
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                fake._handle(self)

            def do_PUT(self):
                fake._handle(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def _matching(self, query: dict) -> list[dict]:
        # Only `must` of `match.any` conditions, all of which must hold (none: every point).
        must = query.get("filter", {}).get("must", [])
        return [p for _, p in sorted(self.points.items())
                if all(p["payload"].get(c["key"]) in c["match"]["any"] for c in must)]

    def _handle(self, http: BaseHTTPRequestHandler) -> None:
        path = urlsplit(http.path).path
        body = json.loads(http.rfile.read(int(http.headers["Content-Length"])))
        self.requests.append((http.command, http.path, http.headers.get("api-key")))
        prefix = f"/collections/{self.collection}/points"
        if http.headers.get("api-key") != self.api_key:
            status, result = 403, "Invalid api-key"
        elif (http.command, path) == ("POST", f"{prefix}/count"):
            status, result = 200, {"count": len(self._matching(body))}
        elif (http.command, path) == ("POST", f"{prefix}/scroll"):
            matching = self._matching(body)
            start = next((i for i, p in enumerate(matching) if p["id"] == body.get("offset")), 0)
            page = matching[start:start + body["limit"]]
            rest = matching[start + body["limit"]:]
            status, result = 200, {
                "points": [{"id": p["id"], "payload": p["payload"] if body["with_payload"] else None,
                            "vector": p["vector"] if body["with_vector"] else None} for p in page],
                "next_page_offset": rest[0]["id"] if rest else None}
        elif (http.command, http.path) == ("PUT", f"{prefix}?wait=true"):
            for point in body["points"]:
                self.points[point["id"]] = point
            status, result = 200, {"operation_id": len(self.requests), "status": "completed"}
        else:
            status, result = 404, f"no route {http.command} {http.path}"
        answer = json.dumps({"result": result, "status": "ok" if status == 200 else "error"}).encode()
        http.send_response(status)
        http.send_header("Content-Type", "application/json")
        http.send_header("Content-Length", str(len(answer)))
        http.end_headers()
        http.wfile.write(answer)

    def writes(self) -> list:
        return [r for r in self.requests if r[0] == "PUT"]


class Lab:
    """stage and prod: databases seeded from the tables above, and their Qdrant fakes."""

    def __init__(self, cluster):
        port, superuser_password, passwords = cluster
        self.dsn = {env: _url(port, f"{env}_shia_chatbot", f"{env}_shia_chatbot", pw) for env, pw in passwords.items()}
        with psycopg.connect(_url(port, "postgres", "postgres", superuser_password), autocommit=True) as admin:
            for env in passwords:
                admin.execute(f"DROP DATABASE IF EXISTS {env}_shia_chatbot WITH (FORCE)")
                admin.execute(f"CREATE DATABASE {env}_shia_chatbot OWNER {env}_shia_chatbot")
        self.doc = {name: uuid.uuid4() for name in STAGE_DOCUMENTS | PROD_DOCUMENTS}
        self.chunks: dict[str, list[uuid.UUID]] = {}
        points = {"stage": self._seed("stage", STAGE_DOCUMENTS), "prod": self._seed("prod", PROD_DOCUMENTS)}
        self.qdrant = {env: FakeQdrant(f"{env}_documents", secrets.token_hex(20), points[env]) for env in points}
        self.env = dict(os.environ)
        for role, env in (("SOURCE", "stage"), ("TARGET", "prod")):
            self.env[f"PROMOTE_{role}_DSN"] = self.dsn[env]
            self.env[f"PROMOTE_{role}_QDRANT"] = self.qdrant[env].url
            self.env[f"PROMOTE_{role}_QDRANT_API_KEY"] = self.qdrant[env].api_key

    def _seed(self, env: str, documents: dict) -> list[dict]:
        """Rows for `documents`, and a Qdrant point per chunk as the app writes them."""
        points = []
        with psycopg.connect(self.dsn[env]) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            for name, (status, created, n_chunks) in documents.items():
                doc = self.doc[name]
                title = f"{name}, edited in prod" if env == "prod" else f"{name}: {AWKWARD}"
                conn.execute("INSERT INTO documents (id, title, moderation_status, created_at, metadata)"
                             " VALUES (%s, %s, %s, %s, %s)",
                             (doc, title, status, datetime.fromisoformat(created).replace(tzinfo=timezone.utc),
                              json.dumps({"source": name, "lang": "ar"})))
                chunk_ids = self.chunks.setdefault(name, [uuid.uuid4() for _ in range(n_chunks)])
                conn.cursor().executemany(
                    "INSERT INTO document_chunks (id, document_id, chunk_index, content) VALUES (%s, %s, %s, %s)",
                    [(chunk, doc, index, f"{name} {index} {AWKWARD}") for index, chunk in enumerate(chunk_ids)])
                points += [{"id": str(chunk), "vector": [index / 10, len(name) / 10, 0.25, 1.0],
                            "payload": {"document_id": str(doc), "chunk_index": index}}
                           for index, chunk in enumerate(chunk_ids)]
        return points

    def promote(self, *args: str, **env: str) -> tuple[int, str, str]:
        """The operator's command, run as the Makefile runs it. In this process
        `tools` is tests/tools.py, so the tool's package cannot be imported here."""
        done = subprocess.run([sys.executable, "-m", "tools.promote", "--from", "stage", "--to", "prod", *args],
                              cwd=ROOT, env=self.env | env, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr

    def sql(self, env: str, statement: str, params=()) -> list[tuple]:
        with psycopg.connect(self.dsn[env]) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def snapshot(self, env: str) -> dict[str, list[tuple]]:
        """Every row of both tables, generated column included."""
        return {table: self.sql(env, f"SELECT * FROM {table} ORDER BY id") for table in ("documents", "document_chunks")}

    def rows(self, env: str, names: list[str]) -> dict[str, list[tuple]]:
        ids = [self.doc[n] for n in names]
        return {
            "documents": self.sql(env, "SELECT * FROM documents WHERE id = ANY(%s) ORDER BY id", (ids,)),
            "document_chunks": self.sql(
                env, "SELECT * FROM document_chunks WHERE document_id = ANY(%s) ORDER BY id", (ids,)),
        }

    def prod_documents(self) -> set[str]:
        by_id = {v: k for k, v in self.doc.items()}
        return {by_id[i] for (i,) in self.sql("prod", "SELECT id FROM documents")}


@pytest.fixture
def lab(cluster):
    made = Lab(cluster)
    yield made
    for fake in made.qdrant.values():
        fake.server.shutdown()
        fake.server.server_close()


def report(out: str) -> dict[str, str]:
    """The report's `label  value` lines."""
    return dict(re.findall(r"^  (\S.*?)\s{2,}(\S.*)$", out, re.M))


def test_dry_run_reports_counts_and_changes_nothing(lab):
    before, points_before = lab.snapshot("prod"), dict(lab.qdrant["prod"].points)
    code, out, err = lab.promote("--since", SINCE, "--dry-run")
    assert code == 0, err
    counts = report(out)
    assert counts["approved documents in stage"] == "3"  # in_prod, new_a, new_b
    assert counts["already in prod (left as they are)"] == "1"
    assert counts["documents to copy"] == "2"
    assert counts["chunks to copy"] == "301"
    assert counts["vectors to copy"] == "301"
    assert ("Dry run: nothing was written. A real run (the same command without --dry-run) would copy"
            " 2 documents, 301 chunks and 301 vectors into prod_shia_chatbot and prod_documents.") in out
    assert lab.snapshot("prod") == before
    assert lab.qdrant["prod"].points == points_before and not lab.qdrant["prod"].writes()


def test_a_dry_run_with_nothing_to_move_says_a_real_run_would_find_nothing(lab):
    assert lab.promote("--since", SINCE)[0] == 0
    code, out, err = lab.promote("--since", SINCE, "--dry-run")
    assert code == 0, err
    assert "Dry run: nothing was written. A real run (the same command without --dry-run) would find nothing" \
           " to promote." in out
    assert "Promoted" not in out and not err


def test_promotion_copies_exactly_the_approved_documents_created_since(lab):
    stage, prod_before = lab.snapshot("stage"), lab.rows("prod", ["in_prod", "prod_only"])
    code, out, err = lab.promote("--since", SINCE)
    assert code == 0, err
    assert report(out)["documents to copy"] == "2"  # the report comes first on a real run too
    assert "Promoted 2 documents, 301 chunks, 301 vectors." in out
    assert lab.prod_documents() == {"in_prod", "prod_only", "new_a", "new_b"}
    # Every column, the awkward text and the recomputed tsvector included.
    assert lab.rows("prod", ["new_a", "new_b"]) == lab.rows("stage", ["new_a", "new_b"])
    # prod's own copy of a document it already had is not overwritten.
    assert lab.rows("prod", ["in_prod", "prod_only"]) == prod_before
    assert lab.snapshot("stage") == stage


def test_without_since_every_approved_document_moves_and_no_other(lab):
    code, _, err = lab.promote()
    assert code == 0, err
    assert lab.prod_documents() == {"in_prod", "prod_only", "new_a", "new_b", "old"}
    assert lab.rows("prod", ["old"]) == lab.rows("stage", ["old"])
    assert not lab.sql("prod", "SELECT 1 FROM document_chunks WHERE document_id = ANY(%s)",
                       ([lab.doc["pending"], lab.doc["rejected"]],))


def test_a_second_run_copies_nothing(lab):
    assert lab.promote("--since", SINCE)[0] == 0
    after_first, points_after_first = lab.snapshot("prod"), dict(lab.qdrant["prod"].points)
    code, out, _ = lab.promote("--since", SINCE)
    assert code == 0
    assert report(out)["already in prod (left as they are)"] == "3"
    assert report(out)["documents to copy"] == "0"
    assert "Nothing to promote." in out
    assert lab.snapshot("prod") == after_first
    assert lab.qdrant["prod"].points == points_after_first


def test_vectors_of_the_promoted_documents_and_no_others_move_with_each_api_key(lab):
    stage, prod = lab.qdrant["stage"], lab.qdrant["prod"]
    expected = dict(prod.points)
    expected.update({str(c): stage.points[str(c)] for n in ("new_a", "new_b") for c in lab.chunks[n]})
    code, _, err = lab.promote("--since", SINCE)
    assert code == 0, err
    assert prod.points == expected
    assert len(prod.writes()) == 2 and not stage.writes()  # 301 points: two pages of at most 256
    assert {key for _, _, key in stage.requests} == {stage.api_key}
    assert {key for _, _, key in prod.requests} == {prod.api_key}


def test_a_failed_vector_copy_commits_nothing_and_a_rerun_completes(lab):
    before = lab.snapshot("prod")
    code, _, err = lab.promote("--since", SINCE, PROMOTE_TARGET_QDRANT_API_KEY=secrets.token_hex(20))
    assert code == 1
    assert "HTTP 403" in err and "nothing was committed to prod_shia_chatbot" in err
    assert lab.snapshot("prod") == before
    assert lab.promote("--since", SINCE)[0] == 0
    assert lab.prod_documents() == {"in_prod", "prod_only", "new_a", "new_b"}


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_column_prod_lacks_is_refused(lab, dry_run):
    lab.sql("stage", "ALTER TABLE documents ADD COLUMN language text NOT NULL DEFAULT 'ar'")
    before = lab.snapshot("prod")
    code, out, err = lab.promote("--since", SINCE, *(["--dry-run"] if dry_run else []))
    assert code == 1
    assert report(out)["columns prod lacks (refused)"] == "documents.language"
    assert "release the migration first" in err
    # A refused dry run says so; only a real run talks of commits and re-runs.
    if dry_run:
        assert "this was a dry run, which writes nothing; a real run would stop here too" in err
        assert "committed" not in err and "re-run" not in err
    else:
        assert "nothing was committed to prod_shia_chatbot; a re-run is safe" in err
    assert lab.snapshot("prod") == before and not lab.qdrant["prod"].writes()


def test_a_column_only_prod_has_takes_prods_default(lab):
    lab.sql("prod", "ALTER TABLE document_chunks ADD COLUMN embedding_model text NOT NULL DEFAULT 'bge-m3'")
    code, out, err = lab.promote("--since", SINCE)
    assert code == 0, err
    assert report(out)["columns stage lacks (prod's default)"] == "document_chunks.embedding_model"
    copied = lab.sql("prod", "SELECT DISTINCT embedding_model FROM document_chunks WHERE document_id = ANY(%s)",
                     ([lab.doc["new_a"], lab.doc["new_b"]],))
    assert copied == [("bge-m3",)]


def test_a_chunk_id_prod_already_uses_rolls_the_promotion_back(lab):
    lab.sql("prod", "INSERT INTO document_chunks (id, document_id, chunk_index, content) VALUES (%s, %s, 9, 'x')",
            (lab.chunks["new_a"][0], lab.doc["prod_only"]))
    before = lab.snapshot("prod")
    code, _, err = lab.promote("--since", SINCE)
    assert code == 1
    assert "duplicate key" in err
    assert lab.snapshot("prod") == before and not lab.qdrant["prod"].writes()


def test_a_dsn_for_the_wrong_database_is_refused(lab):
    before = lab.snapshot("stage")
    code, _, err = lab.promote("--since", SINCE, PROMOTE_TARGET_DSN=lab.dsn["stage"])
    assert code == 1
    assert "connected to database stage_shia_chatbot, expected prod_shia_chatbot" in err
    assert lab.snapshot("stage") == before


@pytest.mark.parametrize("source,target", [("prod", "stage"), ("stage", "stage"), ("dev", "prod")])
def test_promotion_goes_one_step_up(source, target):
    done = subprocess.run([sys.executable, "-m", "tools.promote", "--from", source, "--to", target],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "promotion goes one step up dev -> stage -> prod" in done.stderr


@pytest.mark.parametrize("command,cwd", [
    (["tools/promote.py"], ROOT),
    ([str(ROOT / "tools" / "promote.py")], Path("/")),  # the file, from anywhere
    (["-m", "tools.promote"], ROOT),  # as `make promote` runs it
], ids=["file", "file-elsewhere", "module"])
def test_help_works_as_a_file_and_as_a_module(command, cwd):
    done = subprocess.run([sys.executable, *command, "--help"], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--dry-run" in done.stdout and "--since" in done.stdout


def test_the_file_runs_a_promotion_too(lab):
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "promote.py"), "--from", "stage", "--to", "prod",
                           "--since", SINCE, "--dry-run"],
                          cwd="/", env=lab.env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert report(done.stdout)["documents to copy"] == "2"


def test_make_promote_runs_the_tool(lab):
    # -o: the venv running these tests is never rebuilt by a test.
    done = subprocess.run([need("make"), "-o", "venv/.installed", "promote", f"SINCE={SINCE}", "DRY_RUN=1"],
                          cwd=ROOT, env=lab.env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "-m tools.promote --from stage --to prod --since 2025-11-01 --dry-run" in done.stdout
    assert report(done.stdout)["documents to copy"] == "2"
    assert "Dry run: nothing was written." in done.stdout
