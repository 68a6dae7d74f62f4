"""An S3 server standing in for MinIO in the end-to-end tests (Python stdlib only).

Why not moto[server]: it keeps everything in memory (a replaced container would
lose the bucket the stack's volume is meant to keep) and accepts any
credentials. This one stores objects as plain files under the data directory
(DATA/<bucket>/<key>), their metadata and the IAM state under DATA/.minio.sys,
and checks AWS Signature V4 on every request: header-signed (signed payload,
UNSIGNED-PAYLOAD or aws-chunked STREAMING-AWS4-HMAC-SHA256-PAYLOAD) and
presigned URLs.

Identities: the root user (MINIO_ROOT_USER / MINIO_ROOT_PASSWORD, or their
_FILE as MinIO reads them, default
minioadmin / minioadmin as MinIO's) may do anything; users made with the admin
API (mc admin user add) may do what their attached policies allow (IAM policy
JSON: Allow/Deny, Action and Resource with * and ? wildcards; a statement with a
Condition is not understood, so it never allows and always denies). Anonymous
requests are refused except the health endpoints.

Served: ListBuckets, Create/Head/Delete bucket, GetBucketLocation, Get/Put
bucket versioning (the status only: an overwrite replaces the object, no
noncurrent versions are kept), ListObjects v1/v2, ListObjectVersions (current
versions), Put/Get (Range)/Head/Delete/Copy object, DeleteObjects, multipart
uploads; /minio/health/{live,ready,cluster}; the admin calls our mc makes
(/minio/admin/v3/...: users, canned policies, attach/detach, info), which take
JSON bodies where MinIO's take encrypted ones.
"""

from __future__ import annotations

import base64
import calendar
import fnmatch
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

VERSION = "RELEASE.2024-10-13T13-34-11Z"
REGION = os.environ.get("MINIO_REGION") or os.environ.get("MINIO_SITE_REGION") or "us-east-1"


def _from_secret(variable: str) -> str:
    """MinIO's readFromSecret (cmd/common-main.go): `<VARIABLE>_FILE` names a
    file under /run/secrets, or an absolute path; a missing file is no value."""
    name = os.environ.get(f"{variable}_FILE", "")
    path = name if os.path.isabs(name) else os.path.join("/run/secrets", name)
    try:
        with open(path) as file:
            return file.read().strip() if name else ""
    except FileNotFoundError:
        return ""


ROOT_USER = (os.environ.get("MINIO_ROOT_USER") or _from_secret("MINIO_ROOT_USER")
             or os.environ.get("MINIO_ACCESS_KEY") or "minioadmin")
ROOT_PASSWORD = (os.environ.get("MINIO_ROOT_PASSWORD") or _from_secret("MINIO_ROOT_PASSWORD")
                 or os.environ.get("MINIO_SECRET_KEY") or "minioadmin")
S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
SYS = ".minio.sys"
LOCK = threading.RLock()
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
CLOCK_SKEW_SECONDS = 15 * 60

# Built-in policies, as MinIO's (readwrite, readonly, writeonly, diagnostics, consoleAdmin).
CANNED = {
    "readwrite": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["arn:aws:s3:::*"]}]},
    "readonly": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetBucketLocation", "s3:GetObject"], "Resource": ["arn:aws:s3:::*"]}]},
    "writeonly": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": ["arn:aws:s3:::*"]}]},
    "diagnostics": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["admin:ServerInfo", "admin:Prometheus"], "Resource": ["arn:aws:s3:::*"]}]},
    "consoleAdmin": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["admin:*", "s3:*", "kms:*"], "Resource": ["arn:aws:s3:::*"]}]},
}


class S3Error(Exception):
    def __init__(self, status: int, code: str, message: str, resource: str = ""):
        super().__init__(message)
        self.status, self.code, self.message, self.resource = status, code, message, resource


def now_iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# ---- storage ---------------------------------------------------------------------

class Store:
    """Buckets are folders of DATA; an object's metadata is a JSON file beside the data in SYS."""

    def __init__(self, root: Path):
        self.root = root
        self.sys = root / SYS
        for sub in ("buckets", "multipart", "config/iam", "tmp"):
            (self.sys / sub).mkdir(parents=True, exist_ok=True)

    # buckets
    def bucket_dir(self, bucket: str) -> Path:
        return self.root / bucket

    def buckets(self) -> list[str]:
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and p.name != SYS and BUCKET_NAME.match(p.name))

    def has_bucket(self, bucket: str) -> bool:
        return bool(BUCKET_NAME.match(bucket)) and self.bucket_dir(bucket).is_dir()

    def bucket_meta_file(self, bucket: str) -> Path:
        return self.sys / "buckets" / bucket / "bucket.json"

    def bucket_meta(self, bucket: str) -> dict:
        path = self.bucket_meta_file(bucket)
        return json.loads(path.read_text()) if path.exists() else {}

    def set_bucket_meta(self, bucket: str, meta: dict) -> None:
        path = self.bucket_meta_file(bucket)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write(path, json.dumps(meta).encode())

    # objects
    def object_path(self, bucket: str, key: str) -> Path:
        parts = key.split("/")
        if not key or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
            raise S3Error(400, "XMinioInvalidObjectName", "Object name contains unsupported characters.",
                          f"/{bucket}/{key}")
        return self.bucket_dir(bucket) / key

    def meta_path(self, bucket: str, key: str) -> Path:
        return self.sys / "buckets" / bucket / "objects" / (key + ".meta.json")

    def head(self, bucket: str, key: str) -> dict | None:
        path = self.object_path(bucket, key)
        if key.endswith("/") or not path.is_file():
            return None
        meta_file = self.meta_path(bucket, key)
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        stat = path.stat()
        if "etag" not in meta or meta.get("size") != stat.st_size:  # a file put there by hand
            meta = {"etag": _md5_file(path), "content_type": "application/octet-stream", "user": {}}
        meta["size"], meta["mtime"] = stat.st_size, stat.st_mtime
        return meta

    def put(self, bucket: str, key: str, source: Path, meta: dict) -> None:
        path = self.object_path(bucket, key)
        if path.is_dir():
            raise S3Error(409, "XMinioParentIsObject", "Object name is a prefix of another object.", f"/{bucket}/{key}")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta_file = self.meta_path(bucket, key)
        meta_file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, path)
        meta = {**meta, "size": path.stat().st_size, "version_id": str(uuid.uuid4())
                if self.bucket_meta(bucket).get("versioning") == "Enabled" else "null"}
        self._write(meta_file, json.dumps(meta).encode())

    def delete(self, bucket: str, key: str) -> None:
        path = self.object_path(bucket, key)
        if path.is_file():
            path.unlink()
        self.meta_path(bucket, key).unlink(missing_ok=True)
        # Empty prefixes disappear, as in S3.
        parent = path.parent
        while parent != self.bucket_dir(bucket) and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        base = self.bucket_dir(bucket)
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            rel = os.path.relpath(dirpath, base)
            for name in filenames:
                key = name if rel == "." else f"{rel}/{name}".replace(os.sep, "/")
                if key.startswith(prefix):
                    out.append(key)
        return sorted(out)

    def tmp_file(self) -> Path:
        return self.sys / "tmp" / uuid.uuid4().hex

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    # IAM
    def iam(self) -> dict:
        path = self.sys / "config" / "iam" / "iam.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        return {"users": data.get("users", {}), "policies": data.get("policies", {})}

    def save_iam(self, data: dict) -> None:
        self._write(self.sys / "config" / "iam" / "iam.json", json.dumps(data).encode())


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- policy ----------------------------------------------------------------------

def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def policy_allows(policies: list[dict], action: str, resource: str) -> bool:
    allowed = False
    for policy in policies:
        for st in _listed(policy.get("Statement", [])):
            actions = _listed(st.get("Action", []))
            resources = _listed(st.get("Resource", ["*"]))
            hit = any(fnmatch.fnmatchcase(action, a) for a in actions) and \
                any(fnmatch.fnmatchcase(resource, r) for r in resources)
            if not hit:
                continue
            if st.get("Effect") == "Deny":
                return False  # an explicit Deny wins (a Condition we cannot read counts as met)
            if st.get("Effect") == "Allow" and not st.get("Condition"):
                allowed = True
    return allowed


# ---- signature V4 ----------------------------------------------------------------

def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    return _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), "aws4_request")


def _uri_encode(value: str, slash: bool = True) -> str:
    return quote(value, safe="-_.~" + ("/" if not slash else ""))


def canonical_query(pairs: list[tuple[str, str]], skip: str | None = None) -> str:
    items = sorted((_uri_encode(k, True), _uri_encode(v, True)) for k, v in pairs if k != skip)
    return "&".join(f"{k}={v}" for k, v in items)


# ---- HTTP ------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "MinIO"
    store: Store

    def log_message(self, fmt, *args):
        if os.environ.get("MINIO_STANDIN_ACCESS_LOG"):
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    # -- responses --
    def _send(self, status: int, body: bytes = b"", headers: dict | None = None, kind: str = "application/xml"):
        self.send_response(status)
        self.send_header("Server", "MinIO")
        self.send_header("X-Amz-Request-Id", self.request_id)
        self.send_header("Accept-Ranges", "bytes")
        if body or status not in (204, 304):
            self.send_header("Content-Type", kind)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _xml(self, status: int, root: str, inner: str, headers: dict | None = None):
        body = f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{S3_NS}">{inner}</{root}>'.encode()
        self._send(status, body, headers)

    def _error(self, e: S3Error):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{e.code}</Code>'
                f"<Message>{escape(e.message)}</Message><Resource>{escape(e.resource)}</Resource>"
                f"<RequestId>{self.request_id}</RequestId><HostId>standin</HostId></Error>").encode()
        self._send(e.status, body)

    # -- request plumbing --
    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _payload(self) -> bytes:
        """The request body, with its declared sha256 checked and aws-chunked framing removed."""
        raw = self._read_body()
        declared = self.headers.get("x-amz-content-sha256", "")
        if declared.startswith("STREAMING-"):
            out, pos = bytearray(), 0
            while pos < len(raw):
                end = raw.index(b"\r\n", pos)
                size = int(raw[pos:end].split(b";")[0], 16)
                pos = end + 2
                if size == 0:
                    break
                out += raw[pos:pos + size]
                pos += size + 2
            return bytes(out)
        if declared and declared != "UNSIGNED-PAYLOAD" and not self.presigned:
            if hashlib.sha256(raw).hexdigest() != declared:
                raise S3Error(400, "XAmzContentSHA256Mismatch",
                              "The provided 'x-amz-content-sha256' header does not match what was computed.")
        md5 = self.headers.get("Content-MD5")
        if md5 and base64.b64encode(hashlib.md5(raw).digest()).decode() != md5:
            raise S3Error(400, "BadDigest", "The Content-Md5 you specified did not match what we received.")
        return raw

    def _authenticate(self, pairs: list[tuple[str, str]]) -> str | None:
        """The access key of a correctly signed request, None for an anonymous one."""
        self.presigned = False
        auth = self.headers.get("Authorization")
        query = dict(pairs)
        if auth is None and "X-Amz-Signature" in query:
            self.presigned = True
            credential = query.get("X-Amz-Credential", "")
            signed_headers = query.get("X-Amz-SignedHeaders", "host")
            signature = query["X-Amz-Signature"]
            amz_date = query.get("X-Amz-Date", "")
            expires = int(query.get("X-Amz-Expires", "604800"))
            try:
                issued = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
            except ValueError:
                raise S3Error(403, "AccessDenied", "X-Amz-Date is malformed.") from None
            if time.time() > issued + expires:
                raise S3Error(403, "AccessDenied", "Request has expired")
            payload_hash = "UNSIGNED-PAYLOAD"
            canonical_q = canonical_query(pairs, skip="X-Amz-Signature")
        elif auth is None:
            return None
        else:
            if not auth.startswith("AWS4-HMAC-SHA256 "):
                raise S3Error(400, "SignatureVersionNotSupported", "The authorization mechanism you have provided "
                              "is not supported. Please use AWS4-HMAC-SHA256.")
            fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
            credential, signed_headers, signature = fields["Credential"], fields["SignedHeaders"], fields["Signature"]
            amz_date = self.headers.get("x-amz-date") or ""
            payload_hash = self.headers.get("x-amz-content-sha256") or "UNSIGNED-PAYLOAD"
            canonical_q = canonical_query(pairs)
            try:
                issued = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
            except ValueError:
                raise S3Error(403, "AccessDenied", "X-Amz-Date is missing or malformed.") from None
            if abs(time.time() - issued) > CLOCK_SKEW_SECONDS:
                raise S3Error(403, "RequestTimeTooSkewed",
                              "The difference between the request time and the server's time is too large.")
        try:
            access_key, date, region, service, _ = credential.split("/")
        except ValueError:
            raise S3Error(403, "AuthorizationHeaderMalformed", "The authorization header is malformed.") from None
        secret = self._secret_of(access_key)
        if secret is None:
            raise S3Error(403, "InvalidAccessKeyId",
                          "The Access Key Id you provided does not exist in our records.")
        headers = "".join(f"{h}:{' '.join((self.headers.get(h) or '').split())}\n"
                          for h in signed_headers.split(";"))
        path = urlsplit(self.path).path
        canonical = "\n".join([self.command, _uri_encode(unquote(path), slash=False), canonical_q, headers,
                               signed_headers, payload_hash])
        scope = f"{date}/{region}/{service}/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
        expected = hmac.new(signing_key(secret, date, region, service), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            raise S3Error(403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                          "signature you provided. Check your key and signing method.")
        return access_key

    def _secret_of(self, access_key: str) -> str | None:
        if hmac.compare_digest(access_key.encode(), ROOT_USER.encode()):
            return ROOT_PASSWORD
        user = self.store.iam()["users"].get(access_key)
        return user["secretKey"] if user and user.get("status", "enabled") == "enabled" else None

    def _authorise(self, who: str | None, action: str, bucket: str = "", key: str | None = None):
        resource = "/" + bucket + (("/" + key) if key is not None else "")
        if who is None:
            raise S3Error(403, "AccessDenied", "Access Denied.", resource)
        if hmac.compare_digest(who.encode(), ROOT_USER.encode()):
            return
        iam = self.store.iam()
        names = iam["users"].get(who, {}).get("policies", [])
        policies = [iam["policies"].get(n) or CANNED.get(n) for n in names]
        arn = "arn:aws:s3:::" + (bucket + (("/" + key) if key is not None else "") if bucket else "*")
        if not policy_allows([p for p in policies if p], action, arn):
            raise S3Error(403, "AccessDenied", "Access Denied.", resource)

    def _handle(self):
        self.request_id = uuid.uuid4().hex[:16].upper()
        self.presigned = False
        url = urlsplit(self.path)
        pairs = parse_qsl(url.query, keep_blank_values=True)
        query = dict(pairs)
        path = unquote(url.path)
        try:
            if path.startswith("/minio/health/"):
                self._read_body()
                return self._send(200, b"", {"X-Minio-Server-Status": "online"}, kind="text/plain")
            who = self._authenticate(pairs)
            if path.startswith("/minio/admin/"):
                return self._admin(who, path, query)
            bucket, _, key = path.lstrip("/").partition("/")
            with LOCK:
                if not bucket:
                    return self._service(who)
                if not key:
                    return self._bucket(who, bucket, query)
                return self._object(who, bucket, key, query)
        except S3Error as e:
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # show a stand-in bug to the client and in the log
            self._error(S3Error(500, "InternalError", f"stand-in error: {e!r}"))
            raise

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    # -- service --
    def _service(self, who):
        if self.command != "GET":
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        self._authorise(who, "s3:ListAllMyBuckets")
        entries = "".join(
            f"<Bucket><Name>{b}</Name><CreationDate>{now_iso(self.store.bucket_dir(b).stat().st_ctime)}"
            f"</CreationDate></Bucket>" for b in self.store.buckets())
        self._xml(200, "ListAllMyBucketsResult",
                  f"<Owner><ID>02d6176db174dc93cb1b899f7c6078f08654445fe8cf1b6ce98d8855f66bdbf4</ID>"
                  f"<DisplayName>minio</DisplayName></Owner><Buckets>{entries}</Buckets>")

    # -- buckets --
    def _need_bucket(self, bucket: str):
        if not self.store.has_bucket(bucket):
            raise S3Error(404, "NoSuchBucket", "The specified bucket does not exist", f"/{bucket}")

    def _bucket(self, who, bucket: str, q: dict):
        m = self.command
        if m == "PUT" and "versioning" in q:
            self._authorise(who, "s3:PutBucketVersioning", bucket)
            self._need_bucket(bucket)
            status = re.search(rb"<Status>(\w+)</Status>", self._payload())
            meta = self.store.bucket_meta(bucket)
            meta["versioning"] = status.group(1).decode() if status else "Suspended"
            self.store.set_bucket_meta(bucket, meta)
            return self._send(200)
        if m == "PUT" and not q:
            self._authorise(who, "s3:CreateBucket", bucket)
            self._payload()
            if not BUCKET_NAME.match(bucket) or ".." in bucket:
                raise S3Error(400, "InvalidBucketName", "The specified bucket is not valid.", f"/{bucket}")
            if self.store.has_bucket(bucket):
                raise S3Error(409, "BucketAlreadyOwnedByYou",
                              "Your previous request to create the named bucket succeeded and you already own it.",
                              f"/{bucket}")
            self.store.bucket_dir(bucket).mkdir()
            self.store.set_bucket_meta(bucket, {"created": time.time()})
            return self._send(200, headers={"Location": f"/{bucket}"})
        if m == "PUT":
            self._authorise(who, "s3:PutBucketPolicy", bucket)
            raise S3Error(501, "NotImplemented", "This bucket call is not served by the stand-in.", f"/{bucket}")
        if m == "HEAD":
            self._authorise(who, "s3:ListBucket", bucket)
            self._need_bucket(bucket)
            return self._send(200, headers={"X-Amz-Bucket-Region": REGION})
        if m == "DELETE" and not q:
            self._authorise(who, "s3:DeleteBucket", bucket)
            self._need_bucket(bucket)
            if self.store.keys(bucket):
                raise S3Error(409, "BucketNotEmpty", "The bucket you tried to delete is not empty", f"/{bucket}")
            shutil.rmtree(self.store.bucket_dir(bucket))
            shutil.rmtree(self.store.sys / "buckets" / bucket, ignore_errors=True)
            return self._send(204)
        if m == "POST" and "delete" in q:
            return self._delete_objects(who, bucket)
        if m != "GET":
            raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")
        if "location" in q:
            self._authorise(who, "s3:GetBucketLocation", bucket)
            self._need_bucket(bucket)
            return self._send(200, (f'<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="{S3_NS}">'
                                    f'{"" if REGION == "us-east-1" else REGION}</LocationConstraint>').encode())
        if "versioning" in q:
            self._authorise(who, "s3:GetBucketVersioning", bucket)
            self._need_bucket(bucket)
            status = self.store.bucket_meta(bucket).get("versioning")
            return self._xml(200, "VersioningConfiguration", f"<Status>{status}</Status>" if status else "")
        if "uploads" in q:
            self._authorise(who, "s3:ListBucketMultipartUploads", bucket)
            self._need_bucket(bucket)
            return self._xml(200, "ListMultipartUploadsResult", f"<Bucket>{bucket}</Bucket><IsTruncated>false"
                             "</IsTruncated>")
        for unsupported in ("policy", "lifecycle", "encryption", "object-lock", "tagging", "notification",
                            "replication", "cors", "website", "acl"):
            if unsupported in q:
                self._authorise(who, "s3:GetBucketPolicy" if unsupported == "policy" else "s3:ListBucket", bucket)
                self._need_bucket(bucket)
                codes = {"policy": "NoSuchBucketPolicy", "lifecycle": "NoSuchLifecycleConfiguration",
                         "encryption": "ServerSideEncryptionConfigurationNotFoundError",
                         "object-lock": "ObjectLockConfigurationNotFoundError", "tagging": "NoSuchTagSet",
                         "replication": "ReplicationConfigurationNotFoundError", "cors": "NoSuchCORSConfiguration",
                         "website": "NoSuchWebsiteConfiguration"}
                if unsupported == "notification":
                    return self._xml(200, "NotificationConfiguration", "")
                if unsupported == "acl":
                    return self._xml(200, "AccessControlPolicy", "<Owner><ID></ID></Owner><AccessControlList>"
                                     "</AccessControlList>")
                raise S3Error(404, codes[unsupported], f"The {unsupported} configuration does not exist",
                              f"/{bucket}")
        return self._list(who, bucket, q)

    def _list(self, who, bucket: str, q: dict):
        versions = "versions" in q
        self._authorise(who, "s3:ListBucketVersions" if versions else "s3:ListBucket", bucket)
        self._need_bucket(bucket)
        prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
        max_keys = min(int(q.get("max-keys") or 1000), 1000)
        v2 = q.get("list-type") == "2"
        after = q.get("continuation-token") or q.get("start-after") if v2 else q.get("key-marker" if versions else "marker", "")
        if v2 and q.get("continuation-token"):
            after = base64.urlsafe_b64decode(q["continuation-token"].encode()).decode()
        url_encode = q.get("encoding-type") == "url"
        enc = (lambda s: quote(s, safe="/")) if url_encode else escape
        contents, prefixes, truncated, last = [], [], False, ""
        seen_prefixes = set()
        for key in self.store.keys(bucket, prefix):
            if after and key <= after:
                continue
            rest = key[len(prefix):]
            if delimiter and delimiter in rest:
                common = prefix + rest.split(delimiter, 1)[0] + delimiter
                if common in seen_prefixes or (after and common <= after):
                    continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = True
                    break
                seen_prefixes.add(common)
                prefixes.append(common)
                last = common
                continue
            if len(contents) + len(prefixes) >= max_keys:
                truncated = True
                break
            meta = self.store.head(bucket, key)
            if meta is None:
                continue
            contents.append((key, meta))
            last = key
        items = []
        for key, meta in contents:
            common = (f"<Key>{enc(key)}</Key><LastModified>{now_iso(meta['mtime'])}</LastModified>"
                      f"<ETag>&quot;{meta['etag']}&quot;</ETag><Size>{meta['size']}</Size>"
                      "<StorageClass>STANDARD</StorageClass>")
            if versions:
                items.append(f"<Version>{common}<VersionId>{meta.get('version_id', 'null')}</VersionId>"
                             "<IsLatest>true</IsLatest><Owner><ID></ID><DisplayName></DisplayName></Owner></Version>")
            else:
                items.append(f"<Contents>{common}<Owner><ID></ID><DisplayName></DisplayName></Owner></Contents>")
        items += [f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes]
        head = (f"<Name>{bucket}</Name><Prefix>{enc(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>"
                f"<Delimiter>{enc(delimiter)}</Delimiter><IsTruncated>{str(truncated).lower()}</IsTruncated>"
                + ("<EncodingType>url</EncodingType>" if url_encode else ""))
        if versions:
            head += f"<KeyMarker>{enc(q.get('key-marker', ''))}</KeyMarker>" + (
                f"<NextKeyMarker>{enc(last)}</NextKeyMarker><NextVersionIdMarker>null</NextVersionIdMarker>"
                if truncated else "")
            return self._xml(200, "ListVersionsResult", head + "".join(items))
        if v2:
            head += f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>"
            if q.get("continuation-token"):
                head += f"<ContinuationToken>{q['continuation-token']}</ContinuationToken>"
            if truncated:
                token = base64.urlsafe_b64encode(last.encode()).decode()
                head += f"<NextContinuationToken>{token}</NextContinuationToken>"
        else:
            head += f"<Marker>{enc(q.get('marker', ''))}</Marker>" + (
                f"<NextMarker>{enc(last)}</NextMarker>" if truncated else "")
        self._xml(200, "ListBucketResult", head + "".join(items))

    def _delete_objects(self, who, bucket: str):
        self._need_bucket(bucket)
        root = ElementTree.fromstring(self._payload())
        ns = {"s3": S3_NS}
        quiet = (root.findtext("s3:Quiet", namespaces=ns) or root.findtext("Quiet") or "").lower() == "true"
        out = []
        for obj in root.findall("s3:Object", ns) or root.findall("Object"):
            key = obj.findtext("s3:Key", namespaces=ns) or obj.findtext("Key")
            try:
                self._authorise(who, "s3:DeleteObject", bucket, key)
                self.store.delete(bucket, key)
                if not quiet:
                    out.append(f"<Deleted><Key>{escape(key)}</Key></Deleted>")
            except S3Error as e:
                out.append(f"<Error><Key>{escape(key)}</Key><Code>{e.code}</Code><Message>{escape(e.message)}"
                           "</Message></Error>")
        self._xml(200, "DeleteResult", "".join(out))

    # -- objects --
    def _object(self, who, bucket: str, key: str, q: dict):
        m = self.command
        if "uploads" in q and m == "POST":
            self._authorise(who, "s3:PutObject", bucket, key)
            self._need_bucket(bucket)
            upload = uuid.uuid4().hex
            folder = self.store.sys / "multipart" / upload
            folder.mkdir(parents=True)
            (folder / "upload.json").write_text(json.dumps(
                {"bucket": bucket, "key": key, "meta": self._meta_from_headers()}))
            return self._xml(200, "InitiateMultipartUploadResult",
                             f"<Bucket>{bucket}</Bucket><Key>{escape(key)}</Key><UploadId>{upload}</UploadId>")
        if "uploadId" in q:
            return self._multipart(who, bucket, key, q)
        if m == "PUT":
            self._authorise(who, "s3:PutObject", bucket, key)
            self._need_bucket(bucket)
            if self.headers.get("x-amz-copy-source"):
                return self._copy(who, bucket, key)
            data = self._payload()
            tmp = self.store.tmp_file()
            tmp.write_bytes(data)
            etag = hashlib.md5(data).hexdigest()
            self.store.put(bucket, key, tmp, {"etag": etag, **self._meta_from_headers()})
            meta = self.store.head(bucket, key)
            headers = {"ETag": f'"{etag}"'}
            if meta.get("version_id", "null") != "null":
                headers["x-amz-version-id"] = meta["version_id"]
            return self._send(200, headers=headers)
        if m in ("GET", "HEAD"):
            self._authorise(who, "s3:GetObject", bucket, key)
            self._need_bucket(bucket)
            if "tagging" in q:
                return self._xml(200, "Tagging", "<TagSet></TagSet>")
            meta = self.store.head(bucket, key)
            if meta is None:
                raise S3Error(404, "NoSuchKey", "The specified key does not exist.", f"/{bucket}/{key}")
            return self._get(bucket, key, meta)
        if m == "DELETE":
            self._authorise(who, "s3:DeleteObject", bucket, key)
            self._need_bucket(bucket)
            self.store.delete(bucket, key)
            return self._send(204)
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    def _meta_from_headers(self) -> dict:
        user = {k.lower()[len("x-amz-meta-"):]: v for k, v in self.headers.items() if k.lower().startswith("x-amz-meta-")}
        return {"content_type": self.headers.get("Content-Type") or "application/octet-stream", "user": user}

    def _object_headers(self, meta: dict) -> dict:
        headers = {"ETag": f'"{meta["etag"]}"', "Last-Modified": formatdate(meta["mtime"], usegmt=True),
                   "Content-Type": meta.get("content_type") or "application/octet-stream"}
        if meta.get("version_id", "null") != "null":
            headers["x-amz-version-id"] = meta["version_id"]
        headers.update({f"X-Amz-Meta-{k}": v for k, v in meta.get("user", {}).items()})
        return headers

    def _get(self, bucket: str, key: str, meta: dict):
        path = self.store.object_path(bucket, key)
        size = meta["size"]
        headers = self._object_headers(meta)
        kind = headers.pop("Content-Type")
        start, end, status = 0, size - 1, 200
        ranged = re.match(r"bytes=(\d*)-(\d*)$", self.headers.get("Range", ""))
        if ranged and size:
            first, last = ranged.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            else:
                start, end = max(0, size - int(last)), size - 1
            if start > end:
                raise S3Error(416, "InvalidRange", "The requested range is not satisfiable", f"/{bucket}/{key}")
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        length = max(0, end - start + 1)
        headers["Content-Length"] = str(length)
        self.send_response(status)
        self.send_header("Server", "MinIO")
        self.send_header("X-Amz-Request-Id", self.request_id)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", kind)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        with path.open("rb") as f:
            f.seek(start)
            remaining = length
            while remaining > 0:
                block = f.read(min(1 << 20, remaining))
                if not block:
                    break
                self.wfile.write(block)
                remaining -= len(block)

    def _copy(self, who, bucket: str, key: str):
        source = unquote(self.headers["x-amz-copy-source"]).split("?", 1)[0].lstrip("/")
        src_bucket, _, src_key = source.partition("/")
        self._authorise(who, "s3:GetObject", src_bucket, src_key)
        self._payload()
        meta = self.store.head(src_bucket, src_key) if self.store.has_bucket(src_bucket) else None
        if meta is None:
            raise S3Error(404, "NoSuchKey", "The specified key does not exist.", f"/{src_bucket}/{src_key}")
        tmp = self.store.tmp_file()
        shutil.copyfile(self.store.object_path(src_bucket, src_key), tmp)
        new_meta = {"etag": meta["etag"], "content_type": meta.get("content_type"), "user": meta.get("user", {})}
        if self.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE":
            new_meta.update(self._meta_from_headers())
        self.store.put(bucket, key, tmp, new_meta)
        self._xml(200, "CopyObjectResult", f"<LastModified>{now_iso()}</LastModified>"
                                           f"<ETag>&quot;{meta['etag']}&quot;</ETag>")

    def _multipart(self, who, bucket: str, key: str, q: dict):
        upload = q["uploadId"]
        folder = self.store.sys / "multipart" / upload
        if not re.fullmatch(r"[0-9a-f]{32}", upload) or not folder.is_dir():
            raise S3Error(404, "NoSuchUpload", "The specified multipart upload does not exist.", f"/{bucket}/{key}")
        info = json.loads((folder / "upload.json").read_text())
        m = self.command
        if m == "PUT":
            self._authorise(who, "s3:PutObject", bucket, key)
            number = int(q["partNumber"])
            data = self._payload()
            (folder / f"part.{number:05d}").write_bytes(data)
            return self._send(200, headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})
        if m == "GET":
            self._authorise(who, "s3:ListMultipartUploadParts", bucket, key)
            parts = "".join(
                f"<Part><PartNumber>{int(p.name.split('.')[1])}</PartNumber><ETag>&quot;{_md5_file(p)}&quot;</ETag>"
                f"<Size>{p.stat().st_size}</Size></Part>" for p in sorted(folder.glob("part.*")))
            return self._xml(200, "ListPartsResult", f"<Bucket>{bucket}</Bucket><Key>{escape(key)}</Key>"
                             f"<UploadId>{upload}</UploadId><IsTruncated>false</IsTruncated>{parts}")
        if m == "DELETE":
            self._authorise(who, "s3:AbortMultipartUpload", bucket, key)
            shutil.rmtree(folder)
            return self._send(204)
        if m == "POST":
            self._authorise(who, "s3:PutObject", bucket, key)
            root = ElementTree.fromstring(self._payload())
            numbers = [int(e.text) for e in root.iter() if e.tag.endswith("PartNumber")]
            tmp = self.store.tmp_file()
            digests = b""
            with tmp.open("wb") as out:
                for n in numbers:
                    part = folder / f"part.{n:05d}"
                    if not part.exists():
                        raise S3Error(400, "InvalidPart", "One or more of the specified parts could not be found.")
                    data = part.read_bytes()
                    digests += hashlib.md5(data).digest()
                    out.write(data)
            etag = f"{hashlib.md5(digests).hexdigest()}-{len(numbers)}"
            self.store.put(bucket, key, tmp, {"etag": etag, **info["meta"]})
            shutil.rmtree(folder)
            return self._xml(200, "CompleteMultipartUploadResult",
                             f"<Location>/{bucket}/{escape(key)}</Location><Bucket>{bucket}</Bucket>"
                             f"<Key>{escape(key)}</Key><ETag>&quot;{etag}&quot;</ETag>")
        raise S3Error(405, "MethodNotAllowed", "The specified method is not allowed against this resource.")

    # -- admin (our mc's calls; JSON bodies) --
    def _admin(self, who, path: str, q: dict):
        if who is None or not hmac.compare_digest(who.encode(), ROOT_USER.encode()):
            # Only the root user administers here (MinIO also lets admin:* policies do it).
            raise S3Error(403, "AccessDenied", "Access Denied.", path)
        call = path.split("/minio/admin/v3/", 1)[-1]
        body = self._payload()
        with LOCK:
            iam = self.store.iam()
            users, policies = iam["users"], iam["policies"]
            if call == "info":
                return self._send(200, json.dumps({"mode": "online", "region": REGION, "servers": [
                    {"state": "online", "endpoint": self.headers.get("Host", ""), "version": VERSION,
                     "drives": [{"path": str(self.store.root), "state": "ok"}]}],
                    "buckets": {"count": len(self.store.buckets())}}).encode(), kind="application/json")
            if call == "add-user":
                data = json.loads(body)
                access = q.get("accessKey", "")
                if not access or access == ROOT_USER or len(data.get("secretKey", "")) < 8:
                    raise S3Error(400, "XMinioAdminInvalidArgument", "Invalid arguments specified.")
                policies_of = users.get(access, {}).get("policies", [])
                users[access] = {"secretKey": data["secretKey"], "status": data.get("status", "enabled"),
                                 "policies": policies_of}
            elif call == "remove-user":
                if users.pop(q.get("accessKey", ""), None) is None:
                    raise S3Error(404, "XMinioAdminNoSuchUser", "The specified user does not exist.")
            elif call == "list-users":
                return self._send(200, json.dumps({k: {"status": v["status"], "policyName": ",".join(v["policies"])}
                                                   for k, v in users.items()}).encode(), kind="application/json")
            elif call == "user-info":
                user = users.get(q.get("accessKey", ""))
                if user is None:
                    raise S3Error(404, "XMinioAdminNoSuchUser", "The specified user does not exist.")
                return self._send(200, json.dumps({"status": user["status"], "policyName": ",".join(user["policies"])})
                                  .encode(), kind="application/json")
            elif call == "add-canned-policy":
                name = q.get("name", "")
                try:
                    policy = json.loads(body)
                    assert isinstance(policy.get("Statement"), list)
                except (ValueError, AssertionError, AttributeError):
                    raise S3Error(400, "XMinioMalformedIAMPolicy", "The policy is not valid IAM policy JSON.") from None
                if not name or name in CANNED:
                    raise S3Error(400, "XMinioAdminInvalidArgument", "Invalid policy name.")
                policies[name] = policy
            elif call == "remove-canned-policy":
                if policies.pop(q.get("name", ""), None) is None:
                    raise S3Error(404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist.")
            elif call == "list-canned-policies":
                return self._send(200, json.dumps({**CANNED, **policies}).encode(), kind="application/json")
            elif call == "info-canned-policy":
                name = q.get("name", "")
                policy = policies.get(name) or CANNED.get(name)
                if policy is None:
                    raise S3Error(404, "XMinioAdminNoSuchPolicy", "The canned policy does not exist.")
                return self._send(200, json.dumps(policy).encode(), kind="application/json")
            elif call in ("idp/builtin/policy/attach", "idp/builtin/policy/detach"):
                data = json.loads(body)
                user = users.get(data.get("user", ""))
                if user is None:
                    raise S3Error(404, "XMinioAdminNoSuchUser", "The specified user does not exist.")
                for name in data.get("policies", []):
                    if name not in policies and name not in CANNED:
                        raise S3Error(404, "XMinioAdminNoSuchPolicy", f"The canned policy {name} does not exist.")
                    if call.endswith("attach"):
                        if name in user["policies"]:
                            raise S3Error(400, "XMinioAdminPolicyChangeAlreadyApplied",
                                          "The specified policy change is already in effect.")
                        user["policies"].append(name)
                    elif name in user["policies"]:
                        user["policies"].remove(name)
            else:
                raise S3Error(501, "NotImplemented", f"admin call {call} is not served by the stand-in.")
            self.store.save_iam({"users": users, "policies": policies})
        self._send(200, b"{}", kind="application/json")


def main(argv: list[str]) -> int:
    # minio server DIR [--address :9000] [--console-address :9001]
    args = list(argv)
    if not args or args[0] != "server":
        print(f"minio (stand-in) version {VERSION}\nusage: minio server DIR [--address :9000]", file=sys.stderr)
        return 0 if args[:1] in (["--version"], ["-v"]) else 1
    args.pop(0)
    address = os.environ.get("MINIO_ADDRESS", ":9000")
    folders = []
    while args:
        arg = args.pop(0)
        if arg.startswith("--address"):
            address = arg.split("=", 1)[1] if "=" in arg else args.pop(0)
        elif arg.startswith("--console-address"):
            _ = arg if "=" in arg else args.pop(0)  # no console here (MINIO_BROWSER=off in the stack)
        elif arg.startswith("-"):
            continue
        else:
            folders.append(arg)
    if len(folders) != 1:
        print("stand-in: exactly one data directory is supported", file=sys.stderr)
        return 1
    host, _, port = address.rpartition(":")
    Handler.store = Store(Path(folders[0]))
    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    server.daemon_threads = True
    print(f"MinIO Object Storage Server (stand-in)\nVersion: {VERSION}\nAPI: http://0.0.0.0:{port}\n"
          f"Data: {folders[0]}; root user {ROOT_USER}", flush=True)
    if ROOT_USER == "minioadmin":
        print("WARNING: Detected default credentials 'minioadmin:minioadmin'", flush=True)
    # The real server stops on SIGTERM (docker stop); a Python PID 1 without a
    # handler ignores it and is SIGKILLed after the grace.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
