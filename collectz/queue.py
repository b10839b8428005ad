"""Redis and rq queues: a real Redis with REDIS_URL, else an embedded in-process fake server.

Only ids cross Redis; the database row is the truth.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, current_app
from redis import Redis
from rq import Queue

QUEUE_NAMES = ("imports", "enrichment", "maintenance")

_embedded_lock = threading.Lock()
_embedded_server: Any = None


def embedded_server() -> Any:
    """One fakeredis server per process, shared by the web app and the in-process worker."""
    global _embedded_server
    with _embedded_lock:
        if _embedded_server is None:
            import fakeredis

            _embedded_server = fakeredis.FakeServer()
        return _embedded_server


def connect(redis_url: str) -> Redis:
    if redis_url:
        return Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30)
    import fakeredis

    return fakeredis.FakeStrictRedis(server=embedded_server())


def init_app(app: Flask) -> None:
    app.extensions["collectz_redis"] = connect(app.config["COLLECTZ"].REDIS_URL)


def connection(app: Flask | None = None) -> Redis:
    return (app or current_app).extensions["collectz_redis"]


def is_embedded(app: Flask | None = None) -> bool:
    return not (app or current_app).config["COLLECTZ"].REDIS_URL


def get_queue(name: str, app: Flask | None = None) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}")
    return Queue(name, connection=connection(app))


def reachable(app: Flask | None = None) -> bool:
    try:
        return bool(connection(app).ping())
    except Exception:
        return False
