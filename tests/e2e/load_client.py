"""TEST-ONLY: traffic for the real-engine scenarios, run inside a client container
(python3 stdlib only) on a network that reaches nginx.

    python3 load_client.py URL --keepalive 4 --fresh 4 --host NAME [--pause 0.05]

Two kinds of client, each in its own threads, until the file /tmp/load.stop appears:
- keepalive: one connection per thread, kept alive across requests, POST /messages
  (a write); a reset, a refused or timed-out request, or any status but 201 is a failure;
  a reply that closes the connection (nginx's keepalive_requests) is not: the next
  request opens a new one, as any HTTP client does;
- fresh: a new connection for every GET /health; any status but 200 is a failure.

Then writes one JSON line per request to /tmp/load.jsonl: kind, start and end
(epoch seconds, the host's clock), status, the X-Served-By / X-Served-Slot /
X-App-Version headers, the client's port (which connection), and the error, if any.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import threading
import time
import urllib.parse

STOP = "/tmp/load.stop"
OUT = "/tmp/load.jsonl"
records: list[dict] = []
lock = threading.Lock()


CONTEXT = ssl.create_default_context()
# The scenario's certificate is self-signed for the stack's domain.
CONTEXT.check_hostname = False
CONTEXT.verify_mode = ssl.CERT_NONE


class _Resuming(http.client.HTTPSConnection):
    """A new TCP connection that resumes the last TLS session, as browsers do
    (nginx's ssl_session_cache): the handshake's cost stays off two small cores."""

    session: "ssl.SSLSession | None" = None

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host, session=_Resuming.session)
        _Resuming.session = self.sock.session


def connection(url: urllib.parse.SplitResult, timeout: float) -> http.client.HTTPConnection:
    if url.scheme == "https":
        return _Resuming(url.hostname, url.port or 443, timeout=timeout, context=CONTEXT)
    return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=timeout)


def one(conn: http.client.HTTPConnection, kind: str, method: str, path: str, body: bytes | None,
        headers: dict, expect: int) -> bool:
    started = time.time()
    record = {"kind": kind, "start": started}
    try:
        conn.request(method, path, body=body, headers=headers)
        reply = conn.getresponse()
        reply.read()
        record.update(status=reply.status, by=reply.getheader("X-Served-By"), slot=reply.getheader("X-Served-Slot"),
                      version=reply.getheader("X-App-Version"), closed=reply.will_close,
                      # The client's port names the connection: a kept-alive one keeps it.
                      port=conn.sock.getsockname()[1] if conn.sock else None)
        ok = reply.status == expect
        if not ok:
            record["error"] = f"status {reply.status}"
    except Exception as error:  # noqa: BLE001 - every failure is recorded
        record["error"] = f"{type(error).__name__}: {error}"
        ok = False
    record["end"] = time.time()
    with lock:
        records.append(record)
    return ok


def keepalive(url, args, index: int) -> None:
    conn = connection(url, args.timeout)
    headers = {"Host": args.host, "Content-Type": "application/json", "Connection": "keep-alive"}
    sent = 0
    while not os.path.exists(STOP):
        sent += 1
        body = json.dumps({"body": f"keepalive-{index}-{sent}"}).encode()
        if not one(conn, "keepalive", "POST", "/messages", body, headers, 201):
            conn.close()  # a failed connection is not reused
            conn = connection(url, args.timeout)
        time.sleep(args.pause)
    conn.close()


def fresh(url, args, index: int) -> None:
    headers = {"Host": args.host, "Connection": "close"}
    while not os.path.exists(STOP):
        conn = connection(url, args.timeout)
        one(conn, "fresh", "GET", "/health", None, headers, 200)
        conn.close()
        time.sleep(args.pause)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--keepalive", type=int, default=4)
    parser.add_argument("--fresh", type=int, default=4)
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    threads = [threading.Thread(target=keepalive, args=(url, args, i)) for i in range(args.keepalive)]
    threads += [threading.Thread(target=fresh, args=(url, args, i)) for i in range(args.fresh)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(OUT + ".next", "w") as out:
        for record in sorted(records, key=lambda r: r["start"]):
            out.write(json.dumps(record) + "\n")
    os.rename(OUT + ".next", OUT)


if __name__ == "__main__":
    main()
