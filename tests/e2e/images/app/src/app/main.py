"""The reference app: the app image contract (docs/app-image.md) and nothing more.

/health                     liveness, touches nothing
/health?check_services=true readiness: PostgreSQL, Redis, Qdrant and MinIO really answer
/metrics                    http_requests_total{method,status}, process_resident_memory_bytes
POST /messages              writes a row to PostgreSQL (for load tests)
GET /messages/count         rows written so far
POST /tasks/add             a Celery round trip through the worker
Every reply carries X-App-Version and X-Served-By (the container's hostname).
"""

from __future__ import annotations

import asyncio
import time
from typing import Optional

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response
from minio import Minio
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from src.app import config

app = FastAPI(title="shia-chatbot reference app", version=config.VERSION)

REQUESTS = Counter("http_requests", "HTTP requests answered", ["method", "status"])
LATENCY = Histogram("http_request_duration_seconds", "HTTP request latency", ["method"])

_engine: Optional[AsyncEngine] = None


def engine() -> AsyncEngine:
    # One pool per uvicorn worker process, sized by DB_POOL_SIZE / DB_MAX_OVERFLOW.
    global _engine
    if _engine is None:
        _engine = create_async_engine(config.DATABASE_URL, pool_size=config.DB_POOL_SIZE,
                                      max_overflow=config.DB_MAX_OVERFLOW, pool_pre_ping=True)
    return _engine


@app.middleware("http")
async def count_and_label(request: Request, call_next):
    started = time.monotonic()
    try:
        response = await call_next(request)
    except Exception:
        REQUESTS.labels(request.method, "500").inc()
        raise
    REQUESTS.labels(request.method, str(response.status_code)).inc()
    LATENCY.labels(request.method).observe(time.monotonic() - started)
    response.headers["X-App-Version"] = config.VERSION
    response.headers["X-Served-By"] = config.SERVED_BY
    return response


# ---- readiness: each check raises on failure ------------------------------------------

async def check_postgres() -> None:
    async with engine().connect() as connection:
        await connection.execute(text("SELECT 1"))


async def check_redis() -> None:
    client = aioredis.from_url(config.REDIS_URL, socket_timeout=config.CHECK_TIMEOUT_S,
                               socket_connect_timeout=config.CHECK_TIMEOUT_S)
    try:
        if not await client.ping():
            raise RuntimeError("no PONG")
    finally:
        await client.aclose()


async def check_qdrant() -> None:
    headers = {"api-key": config.QDRANT_API_KEY} if config.QDRANT_API_KEY else {}
    async with httpx.AsyncClient(timeout=config.CHECK_TIMEOUT_S) as client:
        reply = await client.get(f"{config.QDRANT_URL.rstrip('/')}/collections", headers=headers)
        reply.raise_for_status()


def _bucket_exists() -> bool:
    client = Minio(config.MINIO_ENDPOINT, access_key=config.MINIO_ACCESS_KEY, secret_key=config.MINIO_SECRET_KEY,
                   secure=config.MINIO_USE_SSL, region="us-east-1")
    return client.bucket_exists(config.MINIO_BUCKET)


async def check_minio() -> None:
    if not await asyncio.to_thread(_bucket_exists):
        raise RuntimeError(f"bucket {config.MINIO_BUCKET} does not exist")


CHECKS = {"postgres": check_postgres, "redis": check_redis, "qdrant": check_qdrant, "minio": check_minio}


async def _run(check) -> str:
    try:
        await asyncio.wait_for(check(), timeout=config.CHECK_TIMEOUT_S + 1)
        return "ok"
    except Exception as e:  # any failure makes the service unhealthy; say which and why
        return f"error: {type(e).__name__}: {e}"[:300]


@app.get("/health")
async def health(response: Response, check_services: bool = False):
    body = {"status": "healthy", "version": config.VERSION, "served_by": config.SERVED_BY}
    if check_services:
        results = await asyncio.gather(*(_run(c) for c in CHECKS.values()))
        body["services"] = dict(zip(CHECKS, results))
        if any(r != "ok" for r in results):
            body["status"] = "unhealthy"
            response.status_code = 503
    return body


@app.get("/metrics")
async def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


# ---- a write path for load tests ------------------------------------------------------

class Message(BaseModel):
    body: str


@app.post("/messages", status_code=201)
async def create_message(message: Message):
    async with engine().begin() as connection:
        if config.version_at_least("1.1.0"):  # 1.1.0's migration added served_by
            row = await connection.execute(
                text("INSERT INTO messages (body, served_by) VALUES (:body, :by) RETURNING id"),
                {"body": message.body, "by": config.SERVED_BY})
        else:
            row = await connection.execute(text("INSERT INTO messages (body) VALUES (:body) RETURNING id"),
                                           {"body": message.body})
        return {"id": row.scalar_one(), "version": config.VERSION}


@app.get("/messages/count")
async def count_messages():
    async with engine().connect() as connection:
        return {"count": (await connection.execute(text("SELECT count(*) FROM messages"))).scalar_one()}


@app.post("/tasks/add")
async def add_task(x: int = 2, y: int = 3):
    from src.app.tasks import add  # imported here: the web server needs no broker to start

    result = add.delay(x, y)
    value = await asyncio.to_thread(result.get, timeout=20)
    return {"result": value, "task_id": result.id}
