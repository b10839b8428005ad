"""Cover jobs (queue `maintenance`): thumbnails, downloads of cover addresses, and their periodic sweep.

The rows are the truth (`media.thumb_key`, `cover_downloads`); jobs only carry ids. Downloads run in short batches
that hand on to the next batch while any are due, one chain at a time (a Redis key with an expiry says one is
running; if its worker dies the key lapses and the sweep starts another). The sweep (every minute) starts a chain
when downloads are due (new ones from provider matches, retries whose backoff has passed), queues the covers of
recent imports whose own hook never ran (Redis was down), and makes thumbnails that were never made.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select

from collectz import queue
from collectz.jobs import app_context

log = logging.getLogger("collectz.jobs")

QUEUE = "maintenance"
BATCH = 10  # downloads per job: the maintenance queue's other jobs wait behind one batch at most
CHAIN_KEY = "collectz:cover-downloads"
CHAIN_SECONDS = 900  # a chain that shows no sign of life for this long is presumed dead
IMPORT_KEY = "collectz:covers-queued:{job_id}"
THUMB_SWEEP_KEY = "collectz:thumbnails-swept"
THUMB_SWEEP_SECONDS = 600
OPTIONS = {"job_timeout": 900, "result_ttl": 3600, "failure_ttl": 7 * 86400}


def _enqueue(func: Any, *args: int) -> bool:
    try:
        queue.get_queue(QUEUE).enqueue(func, *args, **OPTIONS)
        return True
    except Exception as exc:  # Redis down: the rows still say what is left to do, and the sweep will
        log.warning("could not enqueue a cover job", extra={"fields": {"job": getattr(func, "__name__", str(func)),
                                                                        "args": list(args), "error": repr(exc)}})
        return False


def enqueue_thumbnail(media_id: int) -> bool:
    """Make the item's grid thumbnail in the background; False if Redis is unreachable."""
    return _enqueue(make_thumbnail, media_id)


def enqueue_for_import(job_id: int) -> bool:
    """After an import: queue the covers its items carry addresses for, then download them."""
    return _enqueue(covers_for_import, job_id)


def start_downloads() -> bool:
    """Start a download chain unless one is running; True if this call started one."""
    try:
        if not queue.connection().set(CHAIN_KEY, "1", nx=True, ex=CHAIN_SECONDS):
            return False
    except Exception as exc:
        log.warning("could not start cover downloads", extra={"fields": {"error": repr(exc)}})
        return False
    if _enqueue(download_covers):
        return True
    try:  # free the marker, so the next import or the sweeper starts the chain (it expires anyway)
        queue.connection().delete(CHAIN_KEY)
    except Exception as exc:
        log.warning("could not clear the cover download marker", extra={"fields": {"error": repr(exc)}})
    return False


def make_thumbnail(media_id: int) -> str | None:
    with app_context():
        from collectz.services import covers

        return covers.make_thumbnail(media_id)


def covers_for_import(job_id: int) -> int:
    with app_context():
        from collectz.services import covers

        queued = covers.queue_import(job_id)
        queue.connection().set(IMPORT_KEY.format(job_id=job_id), "1", ex=2 * 86400)
        if queued:
            start_downloads()
        return queued


def download_covers() -> dict[str, int]:
    """One batch of due downloads; hands on to the next batch while more are due, else ends the chain."""
    with app_context():
        from collectz.services import covers

        conn = queue.connection()
        counts: dict[str, int] = {}
        try:
            for download_id in covers.claim_due(BATCH):
                try:
                    result = covers.download(download_id)
                except Exception:  # one item's surprise must not stop the others; the lease brings it back
                    log.exception("cover download failed", extra={"fields": {"download_id": download_id}})
                    from collectz.extensions import db

                    db.session.rollback()
                    continue
                counts[result.status] = counts.get(result.status, 0) + 1
                if result.status == "downloaded" and result.media_id is not None:
                    enqueue_thumbnail(result.media_id)
        finally:
            more = _safely(covers.has_due)
            if more:
                conn.set(CHAIN_KEY, "1", ex=CHAIN_SECONDS)
                more = _enqueue(download_covers)
            if not more:
                conn.delete(CHAIN_KEY)
        return counts


def _safely(check: Any) -> bool:
    try:
        return bool(check())
    except Exception:
        log.exception("could not read the cover downloads")
        return False


def sweep_covers() -> dict[str, int]:
    """Periodic: start downloads that are due, queue the covers of recent imports whose hook never ran, and (every
    ten minutes) make thumbnails that were never made."""
    with app_context():
        from collectz.services import covers

        conn = queue.connection()
        swept = {"imports": 0, "thumbnails": 0, "started": 0}
        for job_id in _recent_imports():
            if conn.set(IMPORT_KEY.format(job_id=job_id), "1", nx=True, ex=2 * 86400):
                swept["imports"] += 1
                covers.queue_import(job_id)
        if covers.has_due() and start_downloads():
            swept["started"] = 1
        if conn.set(THUMB_SWEEP_KEY, "1", nx=True, ex=THUMB_SWEEP_SECONDS):
            for media_id in covers.missing_thumbnails():
                swept["thumbnails"] += int(enqueue_thumbnail(media_id))
        return swept


def _recent_imports(within: timedelta = timedelta(days=1)) -> list[int]:
    """Imports that succeeded within the last day and finished at least IMPORT_STALE_SECONDS ago (their own hook
    had its chance)."""
    from collectz.extensions import db
    from collectz.models import SyncJob
    from collectz.models.base import utcnow

    now = utcnow()
    settle = timedelta(seconds=current_app.config["COLLECTZ"].IMPORT_STALE_SECONDS)
    ids = list(db.session.scalars(select(SyncJob.id).where(
        SyncJob.status == "succeeded", SyncJob.finished_at <= now - settle, SyncJob.finished_at >= now - within)
        .order_by(SyncJob.id).limit(200)))
    db.session.rollback()
    return ids
