"""Enrichment jobs (queue `enrichment`): ids in, a service pass, the next try scheduled with backoff.

The rows are the truth: each import row says what enrichment did for its item, and a row whose provider failed says
"— will retry". A retry is the same job again later (`enqueue_in`): with Redis, `worker.py`'s rq scheduler enqueues it
when due; the embedded setup has no rq scheduler (it needs Lua, which the in-process Redis lacks), so a timer in the
process moves due retries onto the queue (`promote_due`). Where nothing can be scheduled (Redis down), the rows keep
saying so and nothing else is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

from flask import Flask, current_app
from rq.registry import ScheduledJobRegistry

from collectz import queue
from collectz.jobs import app_context

log = logging.getLogger("collectz.jobs")

QUEUE = "enrichment"
JOB_TIMEOUT = 6 * 3600  # a large import's items, each at the provider's pace
RESULT_TTL = 3600
# Seconds before each retry of the items whose provider failed: 1 min, 5 min, 30 min, then give up (the rows say so).
RETRY_DELAYS = (60, 300, 1800)
MAX_DELAY = 3600  # a provider's Retry-After beyond this is capped


def enqueue_for_import(job_id: int) -> bool:
    """Enrich an import's items in the background; False if Redis is unreachable."""
    return _enqueue(enrich_import, job_id)


def enqueue_one(media_id: int) -> bool:
    """Enrich one item in the background; False if Redis is unreachable."""
    return _enqueue(enrich_one, media_id)


def _enqueue(func: Any, *args: int, delay: float | None = None) -> bool:
    try:
        q = queue.get_queue(QUEUE)
        options = {"job_timeout": JOB_TIMEOUT, "result_ttl": RESULT_TTL, "failure_ttl": 7 * 86400}
        if delay:
            q.enqueue_in(timedelta(seconds=delay), func, *args, **options)
            if queue.is_embedded():
                app = current_app._get_current_object()  # type: ignore[attr-defined]
                timer = threading.Timer(delay + 1, promote_due, args=(app,))
                timer.daemon = True  # a retry the process does not live to see stays in the registry
                timer.start()
        else:
            q.enqueue(func, *args, **options)
        return True
    except Exception as exc:  # Redis down: the rows still say what is left to do
        log.warning("could not enqueue enrichment", extra={"fields": {"args": list(args), "error": repr(exc)}})
        return False


def promote_due(app: Flask) -> int:
    """Move the enrichment retries that are due from the scheduled registry onto the queue (what rq's scheduler
    does; the embedded setup's in-process Redis cannot run it). Returns how many moved."""
    q = queue.get_queue(QUEUE, app)
    registry = ScheduledJobRegistry(queue=q)
    moved = 0
    for job_id in registry.get_jobs_to_schedule(int(time.time())):
        registry.remove(job_id)
        job = q.fetch_job(job_id)
        if job is not None:
            q.enqueue_job(job)
            moved += 1
    return moved


def sweep_enrichment() -> int:
    """Periodic (queue `maintenance`): hand recent imports whose items were never enriched (Redis was down when
    they finished; a worker died mid-pass) to the enrichment queue again, once an hour at most each; in the
    embedded setup also move due retries onto the queue. Returns how many imports were enqueued."""
    with app_context():
        from collectz.services import enrichment

        settings = current_app.config["COLLECTZ"]
        conn = queue.connection(current_app)
        waiting = enrichment.imports_waiting(older_than=timedelta(seconds=settings.IMPORT_STALE_SECONDS))
        enqueued = 0
        for job_id in waiting:
            if conn.set(f"collectz:enrichment-swept:{job_id}", "1", nx=True, ex=3600) and enqueue_for_import(job_id):
                enqueued += 1
        if queue.is_embedded():
            promote_due(current_app._get_current_object())  # type: ignore[attr-defined]
        return enqueued


def retry_delay(attempt: int, retry_after: float | None = None) -> float | None:
    """Seconds before retry number `attempt + 1`, or None when `attempt` was the last try."""
    if attempt >= len(RETRY_DELAYS):
        return None
    return float(min(MAX_DELAY, max(RETRY_DELAYS[attempt], retry_after or 0)))


def enrich_import(job_id: int, attempt: int = 0) -> dict[str, int]:
    """Enrich the items of an import (attempt 0), or retry those whose provider failed (attempt 1, 2, …)."""
    with app_context():
        from collectz.services import enrichment

        last_try = attempt >= len(RETRY_DELAYS)
        done = enrichment.enrich_import_items(job_id, retry=attempt > 0, last_try=last_try)
        delay = retry_delay(attempt, done.retry_after)
        if done.to_retry and delay is not None:
            _enqueue(enrich_import, job_id, attempt + 1, delay=delay)
        return done.counts


def enrich_one(media_id: int, attempt: int = 0) -> str:
    """Enrich one item; a provider failure that may pass is tried again with the same backoff."""
    with app_context():
        from collectz.services import enrichment

        result = enrichment.enrich_item(media_id)
        delay = retry_delay(attempt, result.retry_after)
        if result.retryable and delay is not None:
            _enqueue(enrich_one, media_id, attempt + 1, delay=delay)
        return result.status
