"""The Qdrant half of a promotion: the points of the promoted documents.

The guide recovers a stage snapshot into prod, which replaces prod's whole
collection: prod-only points are lost and stage's unapproved ones arrive. This
instead scrolls the source for the points whose payload `document_id` is a
promoted document and upserts them into the target, a page at a time, over
Qdrant's REST API. Upserting a point again rewrites it with the same data, so a
re-run after a failure is harmless.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, Iterator, Optional

DOCUMENT_KEY = "document_id"  # the payload key the app stores each point's document under
PAGE_SIZE = 256  # points per scroll page and per upsert
TIMEOUT_S = 60


class QdrantError(Exception):
    pass


@dataclass(frozen=True)
class Collection:
    url: str  # e.g. http://127.0.0.1:16333
    name: str
    api_key: Optional[str]

    def _call(self, method: str, path: str, body: dict) -> Any:
        url = f"{self.url.rstrip('/')}/collections/{urllib.parse.quote(self.name)}/{path}"
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["api-key"] = self.api_key
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return json.load(response)["result"]
        except urllib.error.HTTPError as e:
            raise QdrantError(f"{method} {url}: HTTP {e.code} {e.read(500).decode(errors='replace')}") from None
        except urllib.error.URLError as e:
            raise QdrantError(f"{method} {url}: {e.reason}") from None

    def count(self, document_ids: list[Any]) -> int:
        if not document_ids:
            return 0
        return self._call("POST", "points/count", {"filter": _of_documents(document_ids), "exact": True})["count"]

    def pages(self, document_ids: list[Any]) -> Iterator[list[dict]]:
        """The points of `document_ids`, with payload and vector, one scroll page at a time."""
        if not document_ids:
            return
        body: dict[str, Any] = {"filter": _of_documents(document_ids), "limit": PAGE_SIZE,
                                "with_payload": True, "with_vector": True}
        while True:
            result = self._call("POST", "points/scroll", body)
            yield result["points"]
            if result.get("next_page_offset") is None:
                return
            body["offset"] = result["next_page_offset"]

    def upsert(self, points: list[dict]) -> None:
        # wait=true: the call returns once the points are stored, so a
        # successful run means the vectors are there before PostgreSQL commits.
        self._call("PUT", "points?wait=true", {"points": [
            {"id": p["id"], "vector": p["vector"], "payload": p["payload"]} for p in points]})


def _of_documents(document_ids: list[Any]) -> dict:
    # JSON has no UUID: the app writes the id into the payload as its string.
    ids = [str(i) if isinstance(i, uuid.UUID) else i for i in document_ids]
    return {"must": [{"key": DOCUMENT_KEY, "match": {"any": ids}}]}


def copy_points(source: Collection, target: Collection, document_ids: list[Any]) -> int:
    copied = 0
    for page in source.pages(document_ids):
        if page:
            target.upsert(page)
            copied += len(page)
    return copied
