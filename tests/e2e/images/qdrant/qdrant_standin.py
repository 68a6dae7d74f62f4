"""A Qdrant 1.12 REST stand-in for the end-to-end tests (Python stdlib only).

It keeps every collection in memory and writes it back to
STORAGE/collections/<name>/collection.json (write aside, then rename) after each
change, so a replaced container finds its data on the volume. Answers use
Qdrant's envelope: {"result": ..., "status": "ok", "time": seconds}; errors
{"status": {"error": "..."}, "time": ...}.

The keys as Qdrant settles them (src/settings.rs, Settings::new): its
configuration files config/config, config/<RUN_MODE> and config/local (.yaml or
.yml, relative to the working directory /qdrant), a later file over an earlier
one, then QDRANT__SERVICE__API_KEY and QDRANT__SERVICE__READ_ONLY_API_KEY from
the environment over any file. Of a file only `service.api_key` and
`service.read_only_api_key` are read, written as block YAML (`service:` and
indented `key: value` lines; plain, single- or double-quoted scalars).

Auth as in Qdrant's actix middleware: `/`, `/healthz`, `/livez`, `/readyz` are
open; anything else needs the api-key (header `api-key` or `Authorization:
Bearer`) — none given: 401 "Must provide an API key or an Authorization bearer
token"; a wrong one: 401 "Invalid API key or JWT"; the read-only key may GET and
POST the read-only paths, anything else: 403.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import re
import shutil
import sys
import signal
import tarfile
import threading
import time
import uuid
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "1.12.4"
STORAGE = Path(os.environ.get("QDRANT__STORAGE__STORAGE_PATH", "/qdrant/storage"))
SNAPSHOTS = Path(os.environ.get("QDRANT__STORAGE__SNAPSHOTS_PATH", "/qdrant/snapshots"))
PORT = int(os.environ.get("QDRANT__SERVICE__HTTP_PORT", "6333"))


def _scalar(text: str) -> str:
    """A YAML scalar on one line: double-quoted (JSON's escapes), single-quoted, or plain up to a comment."""
    text = text.strip()
    if text.startswith('"'):
        return json.loads(text[:text.rindex('"') + 1])
    if text.startswith("'"):
        return text[1:text.rindex("'")].replace("''", "'")
    return re.split(r"\s+#", text, maxsplit=1)[0].strip()


def service_settings(text: str) -> dict[str, str]:
    """`service:`'s scalar entries of a block YAML document (its first level only)."""
    settings, inside, indent = {}, False, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line[0].isspace():
            inside, indent = line.split("#", 1)[0].strip() == "service:", None
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        key, colon, value = line.strip().partition(":")
        if inside and depth == indent and colon and value.strip():
            settings[key.strip()] = _scalar(value)
    return settings


def configured_keys(environ=os.environ, folder: Path = Path(".")) -> tuple:
    """(api key, read-only key), each None when unset, from the files then the environment."""
    service: dict[str, str] = {}
    for name in ("config/config", f"config/{environ.get('RUN_MODE') or 'development'}", "config/local"):
        for suffix in (".yaml", ".yml"):
            path = folder / (name + suffix)
            if path.is_file():
                service.update(service_settings(path.read_text()))
                break
    return (environ.get("QDRANT__SERVICE__API_KEY") or service.get("api_key") or None,
            environ.get("QDRANT__SERVICE__READ_ONLY_API_KEY") or service.get("read_only_api_key") or None)


API_KEY, READ_ONLY_KEY = configured_keys()
OPEN_PATHS = {"/", "/healthz", "/livez", "/readyz"}
# POSTs the read-only key may make (Qdrant's READ_ONLY_POST_PATTERNS, the part we serve).
READ_ONLY_POSTS = re.compile(r"^/collections/[^/]+/points(/(count|scroll|search|search/batch|recommend|query))?$")

LOCK = threading.RLock()
COLLECTIONS: dict[str, dict] = {}  # name -> {"config": {...}, "points": {key: point}}
REQUESTS: dict[tuple[str, int], int] = {}  # (route, status) -> count, for /metrics
OPERATION = [0]


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


# ---- storage ---------------------------------------------------------------------

def _collection_file(name: str) -> Path:
    return STORAGE / "collections" / name / "collection.json"


def load_all() -> None:
    folder = STORAGE / "collections"
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*/collection.json")):
        data = json.loads(path.read_text())
        COLLECTIONS[path.parent.name] = {
            "config": data["config"], "points": {_key(p["id"]): p for p in data["points"]}}


def save(name: str) -> None:
    path = _collection_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    collection = COLLECTIONS[name]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"config": collection["config"], "points": list(collection["points"].values())}))
    os.replace(tmp, path)


def drop(name: str) -> None:
    shutil.rmtree(_collection_file(name).parent, ignore_errors=True)


# ---- points and filters ----------------------------------------------------------

def _key(point_id) -> str:
    """A dict key for a point id: integers and UUIDs (normalised) as Qdrant accepts them."""
    if isinstance(point_id, bool):
        raise ApiError(400, "Format error in JSON body: point id must be an unsigned integer or a UUID")
    if isinstance(point_id, int):
        if point_id < 0:
            raise ApiError(400, "Format error in JSON body: point id must be an unsigned integer or a UUID")
        return f"n:{point_id:020d}"
    try:
        return "u:" + str(uuid.UUID(str(point_id)))
    except ValueError:
        raise ApiError(400, f"Format error in JSON body: value {point_id} is not a valid point ID, "
                            "valid values are either an unsigned integer or a UUID") from None


def _id_of(key: str):
    return int(key[2:]) if key.startswith("n:") else key[2:]


def _values(payload: dict, path: str) -> list:
    """Values at a dotted key path (arrays are flattened, as Qdrant matches any element)."""
    current = [payload]
    for part in path.split("."):
        array = part.endswith("[]")
        part = part[:-2] if array else part
        nxt = []
        for item in current:
            if isinstance(item, dict) and part in item:
                value = item[part]
                nxt.extend(value if isinstance(value, list) else [value])
        current = nxt
    return current


def _condition(point: dict, cond: dict) -> bool:
    if any(k in cond for k in ("must", "should", "must_not", "min_should")):
        return matches(point, cond)
    if "has_id" in cond:
        return _key(point["id"]) in {_key(i) for i in cond["has_id"]}
    if "is_empty" in cond:
        return not _values(point.get("payload") or {}, cond["is_empty"]["key"])
    if "is_null" in cond:
        return None in _values(point.get("payload") or {}, cond["is_null"]["key"])
    key = cond.get("key")
    if key is None:
        raise ApiError(400, f"Format error in JSON body: unsupported condition {json.dumps(cond)}")
    values = _values(point.get("payload") or {}, key)
    if "match" in cond:
        match = cond["match"]
        if "value" in match:
            return match["value"] in values
        if "any" in match:
            return any(v in match["any"] for v in values)
        if "except" in match:
            return bool(values) and all(v not in match["except"] for v in values)
        if "text" in match:
            return any(isinstance(v, str) and match["text"] in v for v in values)
    if "range" in cond:
        r = cond["range"]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return any(("gt" not in r or r["gt"] is None or v > r["gt"]) and
                   ("gte" not in r or r["gte"] is None or v >= r["gte"]) and
                   ("lt" not in r or r["lt"] is None or v < r["lt"]) and
                   ("lte" not in r or r["lte"] is None or v <= r["lte"]) for v in numbers)
    if "values_count" in cond:
        r, n = cond["values_count"], len(values)
        return (n > r.get("gt", -1)) and n >= r.get("gte", 0) and n < r.get("lt", math.inf) and n <= r.get("lte", math.inf)
    raise ApiError(400, f"Format error in JSON body: unsupported condition {json.dumps(cond)}")


def _listed(clause) -> list:
    if clause is None:
        return []
    return clause if isinstance(clause, list) else [clause]


def matches(point: dict, flt) -> bool:
    if not flt:
        return True
    if not all(_condition(point, c) for c in _listed(flt.get("must"))):
        return False
    if any(_condition(point, c) for c in _listed(flt.get("must_not"))):
        return False
    should = _listed(flt.get("should"))
    if should and not any(_condition(point, c) for c in should):
        return False
    return True


def _vector_size(config: dict):
    vectors = config["params"]["vectors"]
    return vectors.get("size") if isinstance(vectors, dict) and "size" in vectors else None


def _check_vector(config: dict, vector) -> None:
    size = _vector_size(config)
    if size is not None and isinstance(vector, list) and len(vector) != size:
        raise ApiError(400, f"Wrong input: Vector dimension error: expected dim: {size}, got {len(vector)}")


def shape(point: dict, with_payload=True, with_vector=False) -> dict:
    out = {"id": point["id"], "version": point.get("version", 0)}
    if with_payload is True:
        out["payload"] = point.get("payload") or {}
    elif isinstance(with_payload, list):
        out["payload"] = {k: v for k, v in (point.get("payload") or {}).items() if k in with_payload}
    elif isinstance(with_payload, dict) and "include" in with_payload:
        out["payload"] = {k: v for k, v in (point.get("payload") or {}).items() if k in with_payload["include"]}
    else:
        out["payload"] = None
    out["vector"] = point.get("vector") if with_vector else None
    return out


def _score(distance: str, a: list, b: list) -> float:
    if distance == "Euclid":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    if distance == "Manhattan":
        return sum(abs(x - y) for x, y in zip(a, b))
    dot = sum(x * y for x, y in zip(a, b))
    if distance == "Cosine":
        norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
        return dot / norm if norm else 0.0
    return dot


# ---- snapshots -------------------------------------------------------------------

def _snapshot_dir(name: str) -> Path:
    return SNAPSHOTS / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _snapshot_info(path: Path) -> dict:
    checksum_file = path.with_name(path.name + ".checksum")
    checksum = checksum_file.read_text().strip() if checksum_file.exists() else _sha256(path)
    created = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return {"name": path.name, "creation_time": created, "size": path.stat().st_size, "checksum": checksum}


def create_snapshot(name: str) -> dict:
    collection = COLLECTIONS[name]
    folder = _snapshot_dir(name)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d-%H-%M-%S")
    path = folder / f"{name}-{os.getpid()}{int(time.time() * 1000) % 100000:05d}-{stamp}.snapshot"
    body = json.dumps({"config": collection["config"], "points": list(collection["points"].values())}).encode()
    tmp = path.with_name(path.name + ".tmp")
    with tarfile.open(tmp, "w") as tar:
        info = tarfile.TarInfo("collection.json")
        info.size, info.mtime = len(body), int(time.time())
        tar.addfile(info, io.BytesIO(body))
    os.replace(tmp, path)
    path.with_name(path.name + ".checksum").write_text(_sha256(path) + "\n")
    return _snapshot_info(path)


def recover(name: str, data: bytes, checksum=None) -> None:
    if checksum and hashlib.sha256(data).hexdigest() != checksum:
        raise ApiError(400, "Bad request: Snapshot checksum mismatch: expected "
                            f"{checksum}, got {hashlib.sha256(data).hexdigest()}")
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.extractfile("collection.json")
            content = json.loads(member.read())
    except (tarfile.TarError, KeyError, ValueError, AttributeError):
        raise ApiError(400, "Bad request: the snapshot is not a readable collection snapshot") from None
    # priority=snapshot (and the other priorities on one node): the collection
    # becomes exactly the snapshot.
    COLLECTIONS[name] = {"config": content["config"], "points": {_key(p["id"]): p for p in content["points"]}}
    save(name)


# ---- HTTP ------------------------------------------------------------------------

def _collection_info(name: str) -> dict:
    collection = COLLECTIONS[name]
    count = len(collection["points"])
    return {"status": "green", "optimizer_status": "ok", "vectors_count": count, "indexed_vectors_count": 0,
            "points_count": count, "segments_count": 1, "config": collection["config"], "payload_schema": {}}


def _new_config(body: dict) -> dict:
    vectors = body.get("vectors")
    if vectors is None:
        raise ApiError(422, "Format error in JSON body: missing field `vectors`")
    return {
        "params": {"vectors": vectors, "shard_number": body.get("shard_number", 1),
                   "replication_factor": body.get("replication_factor", 1),
                   "write_consistency_factor": body.get("write_consistency_factor", 1),
                   "on_disk_payload": body.get("on_disk_payload", True)},
        "hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0,
                        "on_disk": False, **(body.get("hnsw_config") or {})},
        "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                             "default_segment_number": 0, "flush_interval_sec": 5,
                             **(body.get("optimizers_config") or {})},
        "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
        "quantization_config": body.get("quantization_config"),
    }


def _operation() -> dict:
    OPERATION[0] += 1
    return {"operation_id": OPERATION[0], "status": "completed"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"qdrant-standin/{VERSION}"

    def log_message(self, fmt, *args):  # one line per request on stdout, as Qdrant's actix logger
        print(f'{self.address_string()} "{self.requestline}" {args[1] if len(args) > 1 else ""}', flush=True)

    # -- plumbing --
    def _send(self, status: int, body: bytes, kind: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload) -> None:
        # Compact, as Qdrant writes it: the backup script matches '"status":"ok"'.
        self._send(status, json.dumps(payload, separators=(",", ":")).encode(), "application/json")

    def _ok(self, result, started: float) -> None:
        self._json(200, {"result": result, "status": "ok", "time": time.monotonic() - started})

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict:
        raw = self._body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as e:
            raise ApiError(400, f"Format error in JSON body: {e}") from None

    def _authorise(self, path: str) -> None:
        if API_KEY is None and READ_ONLY_KEY is None or path in OPEN_PATHS:
            return
        key = self.headers.get("api-key")
        if key is None:
            auth = self.headers.get("Authorization", "")
            key = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if key is None:
            raise ApiError(401, "Must provide an API key or an Authorization bearer token")
        if API_KEY and hmac.compare_digest(key.encode(), API_KEY.encode()):
            return
        if READ_ONLY_KEY and hmac.compare_digest(key.encode(), READ_ONLY_KEY.encode()):
            if self.command in ("GET", "HEAD") or (self.command == "POST" and READ_ONLY_POSTS.match(path)):
                return
            raise ApiError(403, "Forbidden: Write access denied")
        raise ApiError(401, "Invalid API key or JWT")

    def _handle(self) -> None:
        started = time.monotonic()
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = re.sub(r"^/collections/[^/]+", "/collections/{name}", path)
        route = re.sub(r"/snapshots/[^/]+$", "/snapshots/{snapshot}", route) if "upload" not in route else route
        status = 200
        try:
            try:
                self._authorise(path)
            except ApiError as e:
                if e.status == 401:  # Qdrant's middleware answers these as plain text
                    status = 401
                    self._send(401, str(e).encode(), "text/plain; charset=utf-8")
                    return
                raise
            with LOCK:
                self._route(path, query, started)
        except ApiError as e:
            status = e.status
            self._json(e.status, {"status": {"error": str(e)}, "time": time.monotonic() - started})
        except Exception as e:  # a stand-in bug must show, not hang the client
            status = 500
            self._json(500, {"status": {"error": f"Service internal error: {e!r}"}, "time": 0})
            raise
        finally:
            with LOCK:
                REQUESTS[(route, status)] = REQUESTS.get((route, status), 0) + 1

    def _route(self, path: str, q: dict, started: float) -> None:
        m, parts = self.command, [unquote(p) for p in path.strip("/").split("/")] if path != "/" else []
        if path == "/":
            return self._json(200, {"title": "qdrant - vector search engine", "version": VERSION, "commit": None})
        if path in ("/healthz", "/livez", "/readyz"):
            return self._send(200, b"healthz check passed", "text/plain")
        if path == "/metrics" and m == "GET":
            return self._send(200, self._metrics().encode(), "text/plain; version=0.0.4")
        if path == "/telemetry" and m == "GET":
            return self._ok({"id": "standin", "app": {"name": "qdrant", "version": VERSION},
                             "collections": {"number_of_collections": len(COLLECTIONS)}}, started)
        if parts == ["collections"] and m == "GET":
            return self._ok({"collections": [{"name": n} for n in sorted(COLLECTIONS)]}, started)
        if len(parts) < 2 or parts[0] != "collections":
            raise ApiError(404, f"Not found: {path}")
        name, rest = parts[1], parts[2:]
        if not rest:
            return self._collection(m, name, started)
        if rest == ["exists"] and m == "GET":
            return self._ok({"exists": name in COLLECTIONS}, started)
        if rest[0] == "snapshots":
            return self._snapshots(m, name, rest[1:], q, started)
        collection = self._existing(name)
        if rest[0] == "points":
            return self._points(m, name, collection, rest[1:], q, started)
        raise ApiError(404, f"Not found: {path}")

    def _existing(self, name: str) -> dict:
        if name not in COLLECTIONS:
            raise ApiError(404, f"Not found: Collection `{name}` doesn't exist!")
        return COLLECTIONS[name]

    def _collection(self, m: str, name: str, started: float) -> None:
        if m == "GET":
            self._existing(name)
            return self._ok(_collection_info(name), started)
        if m == "PUT":
            body = self._json_body()
            if name in COLLECTIONS:
                raise ApiError(409, f"Wrong input: Collection `{name}` already exists!")
            COLLECTIONS[name] = {"config": _new_config(body), "points": {}}
            save(name)
            return self._ok(True, started)
        if m == "PATCH":
            self._existing(name)
            return self._ok(True, started)
        if m == "DELETE":
            existed = COLLECTIONS.pop(name, None) is not None
            drop(name)
            return self._ok(existed, started)
        raise ApiError(405, "Method not allowed")

    def _points(self, m: str, name: str, collection: dict, rest: list, q: dict, started: float) -> None:
        points = collection["points"]
        config = collection["config"]
        if not rest and m == "PUT":  # upsert
            body = self._json_body()
            if "batch" in body:
                batch = body["batch"]
                payloads = batch.get("payloads") or [None] * len(batch["ids"])
                incoming = [{"id": i, "vector": v, "payload": p}
                            for i, v, p in zip(batch["ids"], batch["vectors"], payloads)]
            else:
                incoming = body.get("points")
                if incoming is None:
                    raise ApiError(422, "Format error in JSON body: missing field `points`")
            for p in incoming:
                _check_vector(config, p.get("vector"))
            version = OPERATION[0] + 1
            for p in incoming:
                points[_key(p["id"])] = {"id": p["id"], "vector": p.get("vector"),
                                         "payload": p.get("payload") or {}, "version": version}
            save(name)
            return self._ok(_operation(), started)
        if not rest and m == "POST":  # retrieve by ids
            body = self._json_body()
            found = [points[_key(i)] for i in body.get("ids", []) if _key(i) in points]
            return self._ok([shape(p, body.get("with_payload", True), body.get("with_vector", False))
                             for p in found], started)
        if len(rest) == 1 and m == "GET" and rest[0] not in ("scroll", "count", "search", "delete"):
            key = _key(int(rest[0]) if rest[0].isdigit() else rest[0])
            if key not in points:
                raise ApiError(404, f"Not found: No point with id {rest[0]} found")
            return self._ok(shape(points[key], True, True), started)
        action = rest[0] if len(rest) == 1 else None
        body = self._json_body() if m == "POST" else {}
        if action == "scroll" and m == "POST":
            flt, limit = body.get("filter"), int(body.get("limit") or 10)
            keys = sorted(k for k, p in points.items() if matches(p, flt))
            if body.get("offset") is not None:
                start = _key(body["offset"])
                keys = [k for k in keys if k >= start]
            page, rest_keys = keys[:limit], keys[limit:]
            return self._ok({
                "points": [shape(points[k], body.get("with_payload", True), body.get("with_vector", False))
                           for k in page],
                "next_page_offset": _id_of(rest_keys[0]) if rest_keys else None}, started)
        if action == "count" and m == "POST":
            return self._ok({"count": sum(1 for p in points.values() if matches(p, body.get("filter")))}, started)
        if action == "search" and m == "POST":
            vector = body.get("vector")
            if isinstance(vector, dict):  # named vector {"name": ..., "vector": [...]}
                vector = vector.get("vector")
            _check_vector(config, vector)
            distance = (config["params"]["vectors"] or {}).get("distance", "Cosine")
            scored = [(_score(distance, vector, p["vector"]), p) for p in points.values()
                      if isinstance(p.get("vector"), list) and matches(p, body.get("filter"))]
            scored.sort(key=lambda sp: sp[0], reverse=distance not in ("Euclid", "Manhattan"))
            threshold = body.get("score_threshold")
            hits = []
            for score, p in scored[int(body.get("offset") or 0):][: int(body.get("limit") or 10)]:
                if threshold is not None and score < threshold:
                    continue
                hit = shape(p, body.get("with_payload", False), body.get("with_vector", False))
                hit["score"] = score
                hits.append(hit)
            return self._ok(hits, started)
        if action == "delete" and m == "POST":
            if "points" in body:
                for i in body["points"]:
                    points.pop(_key(i), None)
            elif "filter" in body:
                for k in [k for k, p in points.items() if matches(p, body["filter"])]:
                    del points[k]
            else:
                raise ApiError(422, "Format error in JSON body: expected `points` or `filter`")
            save(name)
            return self._ok(_operation(), started)
        raise ApiError(404, f"Not found: {self.path}")

    def _snapshots(self, m: str, name: str, rest: list, q: dict, started: float) -> None:
        folder = _snapshot_dir(name)
        if not rest and m == "POST":
            self._existing(name)
            return self._ok(create_snapshot(name), started)
        if not rest and m == "GET":
            self._existing(name)
            files = sorted(folder.glob("*.snapshot")) if folder.is_dir() else []
            return self._ok([_snapshot_info(p) for p in files], started)
        if rest == ["upload"] and m == "POST":
            data = self._multipart_file()
            recover(name, data, q.get("checksum"))
            return self._ok(True, started)
        if rest == ["recover"] and m == "PUT":
            body = self._json_body()
            location = body.get("location", "")
            if not location.startswith("file://"):
                raise ApiError(400, "Bad request: this stand-in recovers from file:// locations only")
            source = Path(unquote(location[len("file://"):]))
            if not source.is_file():
                raise ApiError(404, f"Not found: Snapshot file {source} does not exist")
            recover(name, source.read_bytes(), body.get("checksum"))
            return self._ok(True, started)
        if len(rest) == 1:
            path = folder / rest[0]
            if "/" in rest[0] or not path.is_file() or not rest[0].endswith(".snapshot"):
                raise ApiError(404, f"Not found: Snapshot {rest[0]} not found")
            if m == "GET":
                return self._send(200, path.read_bytes(), "application/octet-stream")
            if m == "DELETE":
                path.unlink()
                path.with_name(path.name + ".checksum").unlink(missing_ok=True)
                return self._ok(True, started)
        raise ApiError(404, f"Not found: {self.path}")

    def _multipart_file(self) -> bytes:
        kind = self.headers.get("Content-Type", "")
        if not kind.startswith("multipart/form-data"):
            raise ApiError(400, "Bad request: expected multipart/form-data with a `snapshot` file")
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + kind.encode() + b"\r\n\r\n" + self._body())
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "snapshot":
                return part.get_payload(decode=True)
        raise ApiError(400, "Bad request: no `snapshot` field in the form")

    def _metrics(self) -> str:
        lines = [
            "# HELP app_info information about qdrant server", "# TYPE app_info gauge",
            f'app_info{{name="qdrant",version="{VERSION}"}} 1',
            "# HELP collections_total number of collections", "# TYPE collections_total gauge",
            f"collections_total {len(COLLECTIONS)}",
            "# HELP collections_vector_total total number of vectors in all collections",
            "# TYPE collections_vector_total gauge",
            f"collections_vector_total {sum(len(c['points']) for c in COLLECTIONS.values())}",
            "# HELP rest_responses_total total number of responses", "# TYPE rest_responses_total counter",
        ]
        for (route, status), count in sorted(REQUESTS.items()):
            lines.append(f'rest_responses_total{{method="",endpoint="{route}",status="{status}"}} {count}')
        return "\n".join(lines) + "\n"

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _handle


def main() -> None:
    STORAGE.mkdir(parents=True, exist_ok=True)
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    load_all()
    server = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    server.daemon_threads = True
    print(f"qdrant stand-in {VERSION} listening on 0.0.0.0:{PORT}; "
          f"{len(COLLECTIONS)} collection(s) loaded from {STORAGE}; "
          f"api-key {'required' if API_KEY or READ_ONLY_KEY else 'not set'}", flush=True)
    # The real server stops on SIGTERM (docker stop); a Python PID 1 without a
    # handler ignores it and is SIGKILLed after the grace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()


if __name__ == "__main__":
    main()
