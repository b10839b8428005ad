"""Running rq workers: the production worker (worker.py) and the embedded in-process one.

Periodic maintenance is enqueued by a small ticker; a Redis key with an expiry makes sure
that several workers enqueue each periodic job once per interval between them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from flask import Flask
from redis import Redis
from rq import SimpleWorker
from rq.timeouts import TimerDeathPenalty

from collectz import jobs, queue

log = logging.getLogger("collectz.worker")


class AppWorker(SimpleWorker):
    """Runs jobs in the worker process itself, so the app is built once, not per job."""


class ThreadWorker(AppWorker):
    """An rq worker that can live in a thread of the web process (the embedded default)."""

    death_penalty_class = TimerDeathPenalty

    def _install_signal_handlers(self) -> None:  # signals belong to the main thread
        pass


def periodic_jobs(app: Flask) -> list[tuple[str, Callable[[], object], int]]:
    settings = app.config["COLLECTZ"]
    from collectz.jobs.covers import sweep_covers
    from collectz.jobs.enrichment import sweep_enrichment
    from collectz.jobs.imports import sweep_imports
    from collectz.jobs.maintenance import cleanup_sessions

    return [("cleanup_sessions", cleanup_sessions, max(60, settings.SESSION_CLEANUP_MINUTES * 60)),
            ("sweep_imports", sweep_imports, max(1, min(60, settings.IMPORT_STALE_SECONDS // 2))),
            ("sweep_enrichment", sweep_enrichment, 300),
            ("sweep_covers", sweep_covers, 60)]


PERIODIC_KEY = "collectz:periodic:{name}"  # set for a periodic job's interval once it is enqueued


def tick(app: Flask, conn: Redis) -> list[str]:
    """Enqueue each periodic job whose interval has passed; returns the names enqueued."""
    enqueued = []
    for name, func, interval in periodic_jobs(app):
        if conn.set(PERIODIC_KEY.format(name=name), "1", nx=True, ex=interval):
            queue.get_queue("maintenance", app).enqueue(func, job_timeout=600, result_ttl=3600)
            enqueued.append(name)
    return enqueued


def start_ticker(app: Flask, conn: Redis, stop: threading.Event, every: float | None = None) -> threading.Thread:
    """Tick every `every` seconds: by default as often as the shortest periodic interval, at most every 30 s."""
    if every is None:
        every = float(min([30, *(interval for _name, _func, interval in periodic_jobs(app))]))

    def loop() -> None:
        while not stop.is_set():
            try:
                tick(app, conn)
            except Exception:
                log.exception("periodic tick failed")
            stop.wait(every)

    thread = threading.Thread(target=loop, name="collectz-ticker", daemon=True)
    thread.start()
    return thread


def build_worker(app: Flask, worker_class: type[AppWorker] = AppWorker) -> AppWorker:
    conn = queue.connection(app)
    # Maintenance first: its jobs are short (the import sweeper, clean-ups) and must not wait behind a long import.
    order = ("maintenance", *(name for name in queue.QUEUE_NAMES if name != "maintenance"))
    queues = [queue.get_queue(name, app) for name in order]
    return worker_class(queues, connection=conn)


def start_embedded(app: Flask) -> threading.Event:
    """Start an in-process worker and ticker in daemon threads; set the returned event to stop them."""
    jobs.set_app(app)
    stop = threading.Event()
    worker = build_worker(app, ThreadWorker)

    def run() -> None:
        while not stop.is_set():
            try:
                worker.work(burst=True, logging_level="WARNING")
            except Exception:
                log.exception("embedded worker failed; restarting")
            stop.wait(0.5)

    threading.Thread(target=run, name="collectz-worker", daemon=True).start()
    start_ticker(app, queue.connection(app), stop)
    return stop
