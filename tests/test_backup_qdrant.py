"""The backup job's Qdrant backup and restore against a stand-in for Qdrant's HTTP API.

Qdrant has no Debian package; the stand-in answers the four calls the script
makes (create, download and delete a snapshot; upload one to recover from) the
way Qdrant 1.12 documents them, and refuses any call without the api-key.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from backup_helpers import BACKUP, RESTORE, busybox_toolbox, metrics, password, run, script_env, sets

COLLECTION = "test_documents"


def snapshot_archive() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in (("collection/config.json", b'{"vectors": {"size": 768}}'),
                           ("collection/segments/0/points.bin", bytes(range(256)) * 64)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeQdrant(ThreadingHTTPServer):
    def __init__(self, api_key: str):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api_key = api_key
        self.archive = snapshot_archive()
        self.served = self.archive  # what a download returns (a test may spoil it)
        self.snapshots: set[str] = set()
        self.uploads: list[tuple[dict, bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeQdrant

    def log_message(self, *args):
        pass

    def _reply(self, status: int, body: bytes, kind: str = "application/json"):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str):
        if self.headers.get("api-key") != self.server.api_key:
            return self._reply(403, b'{"status":{"error":"Invalid api-key"}}')
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        base = f"/collections/{COLLECTION}/snapshots"
        archive = self.server.archive
        if method == "POST" and url.path == base:
            name = f"{COLLECTION}-4242-2025-01-01-02-00-00.snapshot"
            self.server.snapshots.add(name)
            result = {"name": name, "creation_time": "2025-01-01T02:00:00", "size": len(archive),
                      "checksum": hashlib.sha256(archive).hexdigest()}
            return self._reply(200, json.dumps({"result": result, "status": "ok", "time": 0.1}).encode())
        if url.path.startswith(base + "/") and url.path != base + "/upload":
            name = url.path.rsplit("/", 1)[1]
            if name not in self.server.snapshots:
                return self._reply(404, b'{"status":{"error":"Not found"}}')
            if method == "GET":
                return self._reply(200, self.server.served, "application/octet-stream")
            self.server.snapshots.discard(name)
            return self._reply(200, b'{"result":true,"status":"ok","time":0.0}')
        if method == "POST" and url.path == base + "/upload":
            body = self.rfile.read(int(self.headers["Content-Length"]))
            self.server.uploads.append((query, body))
            return self._reply(200, b'{"result":true,"status":"ok","time":0.2}')
        return self._reply(404, b'{"status":{"error":"Not found"}}')

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_DELETE(self):
        self._route("DELETE")


@pytest.fixture
def qdrant():
    server = FakeQdrant(password())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def toolbox(tmp_path_factory) -> Path:
    return busybox_toolbox(tmp_path_factory.mktemp("busybox"))


def qdrant_env(toolbox: Path, tmp_path: Path, server: FakeQdrant, api_key: str = "") -> dict[str, str]:
    return script_env(toolbox, tmp_path, QDRANT_URL=server.url, QDRANT_API_KEY=api_key or server.api_key,
                      QDRANT_COLLECTION=COLLECTION)


def test_snapshot_is_downloaded_checked_and_recovered_with_priority_snapshot(qdrant, toolbox, tmp_path):
    env = qdrant_env(toolbox, tmp_path, qdrant)
    backup = run(BACKUP, "qdrant", env=env)
    assert backup.returncode == 0, backup.stderr
    (name,) = sets(tmp_path)
    assert (tmp_path / "backups" / "sets" / name / "qdrant.snapshot").read_bytes() == qdrant.archive
    assert qdrant.snapshots == set()  # the server's copy was deleted
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="qdrant"}'] == 1

    restore = run(RESTORE, "qdrant", "latest", env=env)
    assert restore.returncode == 0, restore.stderr
    ((query, body),) = qdrant.uploads
    assert query["priority"] == ["snapshot"]
    assert query["checksum"] == [hashlib.sha256(qdrant.archive).hexdigest()]
    assert b'name="snapshot"' in body and qdrant.archive in body
    assert qdrant.api_key not in backup.stderr + restore.stderr


def test_a_download_that_does_not_match_the_checksum_is_refused(qdrant, toolbox, tmp_path):
    qdrant.served = qdrant.archive[: len(qdrant.archive) // 2]
    result = run(BACKUP, "qdrant", env=qdrant_env(toolbox, tmp_path, qdrant))
    assert result.returncode != 0 and "does not match the checksum" in result.stderr
    assert sets(tmp_path) == []
    assert metrics(tmp_path)['shia_chatbot_backup_last_status{service="qdrant"}'] == 0


def test_a_wrong_api_key_fails_the_backup(qdrant, toolbox, tmp_path):
    result = run(BACKUP, "qdrant", env=qdrant_env(toolbox, tmp_path, qdrant, api_key=password()))
    assert result.returncode != 0 and "Invalid api-key" in result.stderr
    assert sets(tmp_path) == []
