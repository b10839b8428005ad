"""Background jobs on each backend's queue: a real rq worker runs the session clean-up, the
ticker enqueues periodic jobs once per interval, and the embedded worker runs jobs in-process.

SQLite runs on the embedded fakeredis server; PostgreSQL on real Redis (TEST_REDIS_URL).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from flask import Flask
from rq.job import JobStatus
from sqlalchemy import select

from collectz import jobs, queue
from collectz.extensions import db
from collectz.jobs.maintenance import cleanup_sessions
from collectz.jobs.runner import build_worker, periodic_jobs, start_embedded, tick
from collectz.models import User, UserSession
from collectz.models.base import utcnow
from collectz.security.tokens import hash_token, new_token

pytestmark = pytest.mark.usefixtures("job_app")  # conftest: restores the jobs app and signal handlers


def make_sessions(app: Flask) -> dict[str, int]:
    """One user with sessions in every state the clean-up must tell apart (default policy:
    idle 120 min, absolute 24 h, remember 30 days)."""
    now = utcnow()
    rows = {
        # Past their absolute expiry.
        "expired_absolute": dict(remember=False, last_seen_at=now - timedelta(minutes=1),
                                 expires_at=now - timedelta(minutes=1)),
        "expired_remember_cap": dict(remember=True, last_seen_at=now - timedelta(days=1),
                                     expires_at=now - timedelta(seconds=5)),
        # Not remembered and idle longer than SESSION_IDLE_MINUTES, though not yet expired.
        "expired_idle": dict(remember=False, last_seen_at=now - timedelta(minutes=121),
                             expires_at=now + timedelta(hours=20)),
        # Live ones.
        "live": dict(remember=False, last_seen_at=now - timedelta(minutes=5),
                     expires_at=now + timedelta(hours=20)),
        "live_remember_idle_long": dict(remember=True, last_seen_at=now - timedelta(days=10),
                                        expires_at=now + timedelta(days=20)),
    }
    with app.app_context():
        user = User(email="sess@example.org", name="Sess", role="user", password_hash="x")
        db.session.add(user)
        db.session.flush()
        ids = {}
        for label, values in rows.items():
            row = UserSession(token_hash=hash_token(new_token()), user_id=user.id,
                              created_at=now - timedelta(days=11), **values)
            db.session.add(row)
            db.session.flush()
            ids[label] = row.id
        db.session.commit()
        db.session.remove()
    return ids


def session_ids(app: Flask) -> set[int]:
    with app.app_context():
        ids = set(db.session.scalars(select(UserSession.id)))
        db.session.remove()
        return ids


LIVE = ("live", "live_remember_idle_long")


def test_rq_worker_runs_session_cleanup(app: Flask) -> None:
    ids = make_sessions(app)
    assert session_ids(app) == set(ids.values())

    q = queue.get_queue("maintenance", app)
    assert q.count == 0
    job = q.enqueue(cleanup_sessions)
    assert q.count == 1
    assert job.get_status() == JobStatus.QUEUED

    jobs.set_app(app)
    worker = build_worker(app)
    assert "maintenance" in worker.queue_names()
    assert worker.work(burst=True) is True  # True: it did some work

    job.refresh()
    assert job.get_status() == JobStatus.FINISHED, job.latest_result()
    assert job.return_value() == 3
    assert q.count == 0
    assert session_ids(app) == {ids[label] for label in LIVE}


def test_cleanup_job_respects_the_configured_idle_timeout(make_app) -> None:
    app = make_app(SESSION_IDLE_MINUTES=5)
    ids = make_sessions(app)
    q = queue.get_queue("maintenance", app)
    job = q.enqueue(cleanup_sessions)
    jobs.set_app(app)
    build_worker(app).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    # "live" was seen 5 minutes ago: idle for the whole 5-minute allowance, so it goes too.
    assert session_ids(app) == {ids["live_remember_idle_long"]}
    assert job.return_value() == 4


def test_get_queue_knows_only_our_queues(app: Flask) -> None:
    assert {queue.get_queue(name, app).name for name in queue.QUEUE_NAMES} == {"imports", "enrichment", "maintenance"}
    with pytest.raises(ValueError):
        queue.get_queue("nope", app)


def test_queue_backend_matches_settings(app: Flask, backend) -> None:
    assert queue.is_embedded(app) is (not backend.redis_url)
    assert queue.reachable(app)


def test_tick_enqueues_periodic_jobs_once_per_interval(app: Flask) -> None:
    conn = queue.connection(app)
    q = queue.get_queue("maintenance", app)
    assert q.count == 0

    assert tick(app, conn) == ["cleanup_sessions", "sweep_imports", "sweep_enrichment", "sweep_covers"]
    assert q.count == 4
    assert [j.func_name for j in q.jobs] == ["collectz.jobs.maintenance.cleanup_sessions",
                                             "collectz.jobs.imports.sweep_imports",
                                             "collectz.jobs.enrichment.sweep_enrichment",
                                             "collectz.jobs.covers.sweep_covers"]

    # Within the interval nothing more is enqueued, by this ticker or any other on the same Redis.
    assert tick(app, conn) == []
    assert tick(app, queue.connection(app)) == []
    assert q.count == 4

    intervals = dict((name, every) for name, _func, every in periodic_jobs(app))
    assert intervals["cleanup_sessions"] == app.config["COLLECTZ"].SESSION_CLEANUP_MINUTES * 60
    # The import sweeper looks at least twice per stale interval, and at least once a minute.
    assert intervals["sweep_imports"] == min(60, app.config["COLLECTZ"].IMPORT_STALE_SECONDS // 2)
    ttl = conn.ttl("collectz:periodic:cleanup_sessions")
    assert 0 < ttl <= intervals["cleanup_sessions"]

    # Once the interval has passed (the key expired) the next tick enqueues again.
    conn.delete("collectz:periodic:cleanup_sessions")
    assert tick(app, conn) == ["cleanup_sessions"]
    assert q.count == 5


def test_embedded_worker_runs_jobs_in_the_background(app: Flask) -> None:
    ids = make_sessions(app)
    before = set(threading.enumerate())
    stop = start_embedded(app)
    started = [t for t in threading.enumerate()
               if t not in before and t.name in ("collectz-worker", "collectz-ticker")]
    try:
        assert sorted(t.name for t in started) == ["collectz-ticker", "collectz-worker"]
        job = queue.get_queue("maintenance", app).enqueue(cleanup_sessions)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            job.refresh()
            if job.get_status() in (JobStatus.FINISHED, JobStatus.FAILED):
                break
            time.sleep(0.1)
        assert job.get_status() == JobStatus.FINISHED, job.latest_result()
        assert session_ids(app) == {ids[label] for label in LIVE}
        # The ticker enqueued the periodic clean-up on its first tick, and the worker ran it too.
        assert queue.connection(app).exists("collectz:periodic:cleanup_sessions")
        deadline = time.monotonic() + 10
        while queue.get_queue("maintenance", app).count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queue.get_queue("maintenance", app).count == 0
    finally:
        stop.set()
        for thread in started:
            thread.join(timeout=10)
    assert not [t.name for t in started if t.is_alive()], "the embedded threads did not stop"
