"""The Celery app (`celery -A src.app.tasks worker|flower|inspect`): Redis from
REDIS_URL is the broker and the result backend."""

from __future__ import annotations

from celery import Celery

from src.app import config

app = Celery("shia_chatbot", broker=config.REDIS_URL, backend=config.REDIS_URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=3600,
    # Flower's worker metrics (flower_worker_online…) come from these events.
    worker_send_task_events=True,
    task_send_sent_event=True,
    broker_connection_retry_on_startup=True,
)


@app.task(name="shia.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="shia.version")
def version() -> str:
    return config.VERSION
