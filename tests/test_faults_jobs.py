"""Faults in background jobs, with real processes (reduced sizes), each asserting nothing lost and nothing duplicated.

- PostgreSQL goes away in the middle of an import run by a real `python worker.py` (the TCP proxy of
  tests/test_faults.py in front of the server is stopped for a few seconds, which drops every connection, then
  started again): the chunk cut short leaves no trace, the sweeper revives the job, and it completes with every row
  imported exactly once. A gunicorn on the same proxy answers 503 (no traceback) while the database is away.
- The S3 store is down while the covers of an import are downloaded: each download fails and is kept for a retry,
  no item points at an object that was never stored; once S3 is back the retry stores every cover exactly once.

The PostgreSQL test is skipped without TEST_DATABASE_URL and TEST_REDIS_URL (in CI they are always set); the machine's
PostgreSQL itself is never touched.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask
from sqlalchemy import func, select, text, update

from collectz import jobs
from collectz.extensions import db
from collectz.jobs import covers as cover_jobs
from collectz.jobs import imports as import_jobs
from collectz.jobs.runner import build_worker
from collectz.models import CoverDownload, Media
from collectz.services import covers
from collectz.services.storage import storage
from tests.conftest import Actors, Backend, activity
from tests.fakes import images as fake
from tests.fakes.server import serve_wsgi
from tests.imports_helpers import staged_job
from tests.imports_procs import (
    CHUNK_SIZE,
    FAULT_COVERS,
    FAULT_ROWS,
    assert_complete,
    book,
    census,
    job_row,
    make_stack,
    movie,
    report,
    report_import,
    scaled,
    start_csv_import,
    wait_finished,
    wait_for,
    wait_mid_chunk,
    write_csv,
)
from tests.s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.test_faults import TcpProxy, gunicorn, require_postgresql, server_env, sign_in

pytestmark = pytest.mark.slow

ROWS = FAULT_ROWS  # 3,000 here; python -m bench faults runs the scenarios at full size
OUTAGE_SECONDS = 3.0


# --- PostgreSQL goes away during an import -----------------------------------------------------------------------


def wait_chunk_in_flight(stack: Any) -> None:
    """Wait until a worker's chunk transaction has written and not yet committed (PostgreSQL: a session of the
    database with a transaction id), so that the cut lands inside a chunk rather than between two."""

    def check() -> bool:
        with stack.ctx():
            return bool(db.session.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
                "AND now() - xact_start > interval '20 milliseconds'")))

    wait_for("a chunk in flight", check, 20, stack, every=0.005)


def test_postgresql_restart_during_an_import_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    require_postgresql()
    rows = [book(n) if n % 2 else movie(n) for n in range(ROWS)]
    path = write_csv(tmp_path / "collection.csv", rows)
    with make_stack(Backend("postgresql", "", "", tmp_path / "instance"), tmp_path) as stack:
        direct = urlsplit(stack.database_url)
        proxy = TcpProxy(direct.hostname or "127.0.0.1", direct.port or 5432).start()
        credentials = direct.netloc.rsplit("@", 1)[0] + "@" if "@" in direct.netloc else ""
        # The workers and the web reach PostgreSQL through the proxy; the test itself goes direct.
        stack.database_url = urlunsplit(direct._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))
        env = server_env(DATABASE_URL=stack.database_url, REDIS_URL=stack.redis_url, LOG_LEVEL="WARNING",
                         INSTANCE_PATH=str(tmp_path / "instance"), UPLOAD_PATH=str(tmp_path / "uploads"))
        try:
            with gunicorn(env, tmp_path / "gunicorn.log", workers=1) as base:
                bob = sign_in(base, "bob@example.org")
                started = time.monotonic()
                job_id = start_csv_import(stack, "bob@example.org", path)
                stack.start_worker()
                wait_mid_chunk(stack, job_id)
                wait_chunk_in_flight(stack)

                proxy.stop()  # PostgreSQL "restarts": the chunk in flight loses its connection
                cut = time.monotonic()
                pages = []
                while time.monotonic() - cut < OUTAGE_SECONDS:
                    resp = bob.get(base + "/imports/", timeout=15)
                    pages.append((resp.status_code, resp.text))
                    time.sleep(0.3)
                during = job_row(stack, job_id)
                progress = census(stack)
                proxy.start()
                back = time.monotonic()

                [job] = wait_finished(stack, [job_id], timeout=scaled(60))
                finished = time.monotonic()
                after_page = bob.get(base + f"/imports/jobs/{job_id}", timeout=10).status_code
        finally:
            proxy.stop()

        # While it was away: the pages said so, and the import stood still with whole chunks only.
        assert pages and {status for status, _ in pages} == {503}, [s for s, _ in pages]
        assert all("Traceback" not in body and "The database is not reachable right now" in body for _, body in pages)
        assert during.status == "running" and 2 * CHUNK_SIZE <= during.processed < ROWS
        assert during.processed % CHUNK_SIZE == 0  # the chunk cut short left nothing behind
        assert progress.media == during.created == during.processed

        # After: the job was revived and finished; every row once, every item once.
        after = census(stack)
        assert_complete(job, ROWS, after)
        assert job.created == ROWS
        assert after.media == ROWS and after.copies == ROWS and after.sources == ROWS
        assert after.duplicate_isbns == [] and after.duplicate_titles == [] and after.duplicate_row_numbers == 0
        with stack.ctx():
            titles = db.session.scalar(select(func.count(func.distinct(Media.title)))) or 0
        assert titles == ROWS
        assert (job_id, "running") in stack.revivals()
        assert after_page == 200
        stack.assert_workers_alive()  # the worker rode out the outage: it was not restarted
        assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
        report_import("postgresql_restart_mid_import", stack, job, after, ROWS, started=started, recovering=back,
                      finished=finished, cut_after_rows=during.processed, outage_seconds=OUTAGE_SECONDS,
                      pages_during_outage=len(pages), pages_503=sum(status == 503 for status, _ in pages))


# --- S3 stops during cover downloads -------------------------------------------------------------------------------

COVERS = FAULT_COVERS  # 8 here; python -m bench faults runs the scenario at full size
CUT_AT = COVERS // 2  # S3 goes away when the image host is asked for this cover: the ones before are stored


class CuttingImageHost(fake.FakeImageHost):
    """The fake image host, which stops the S3 store (its proxy) as it serves the CUT_AT-th cover: S3 goes away in
    the middle of a batch of downloads."""

    def __init__(self, s3: TcpProxy) -> None:
        super().__init__()
        self.s3 = s3
        self.served = 0
        self.images.update({f"c{n}.jpg": (fake.jpeg(color=(n * 25, 90, 200 - n * 20)), "image/jpeg")
                            for n in range(COVERS)})

    def answer(self, request: Any) -> Any:
        with self._lock:
            self.served += 1
            if self.served == CUT_AT:
                self.s3.stop()
        return super().answer(request)


@pytest.fixture
def s3() -> Iterator[tuple[MotoServer, TcpProxy]]:
    """A moto S3 server of the test's own behind a TCP proxy: stopping the proxy is S3 going away (connections
    refused) and starting it S3 coming back on the same address with its objects (a restarted moto server would
    come back empty, on another port)."""
    with moto_server() as server:
        proxy = TcpProxy(server.host, server.port).start()
        try:
            yield server, proxy
        finally:
            proxy.stop()


@pytest.fixture
def job_app() -> Iterator[None]:
    previous = jobs._app
    yield
    jobs.set_app(previous)  # type: ignore[arg-type]


def run_worker(app: Flask) -> None:
    jobs.set_app(app)
    build_worker(app).work(burst=True)


def stored_keys(app: Flask, prefix: str) -> list[str]:
    with app.app_context():
        return sorted(storage().keys(prefix))


def test_s3_stopped_during_cover_downloads_stores_every_cover_once_after(backend: Backend, make_app: Any,
                                                                         tmp_path: Path,
                                                                         s3: tuple[MotoServer, TcpProxy],
                                                                         job_app: None) -> None:
    server, proxy = s3
    started = time.monotonic()
    host = CuttingImageHost(proxy)
    with serve_wsgi(host) as running:
        app = make_app(STORAGE_PROVIDER="s3", S3_BUCKET=server.create_bucket(), S3_REGION=REGION,
                       S3_ENDPOINT_URL=f"http://127.0.0.1:{proxy.port}", S3_ACCESS_KEY_ID=ACCESS_KEY_ID,
                       S3_SECRET_ACCESS_KEY=SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE=True,
                       UPLOAD_PATH=str(tmp_path / "uploads"), COVER_TRUSTED_ORIGINS=running.url)
        jobs.set_app(app)
        Actors(app)
        records = [{"title": f"Covered {n}", "media_type": "book", "cover_url": f"{running.url}/covers/c{n}.jpg"}
                   for n in range(COVERS)]
        with app.app_context():
            job_id = staged_job("bob@example.org", records)
            assert import_jobs.enqueue_chunk(job_id, 0)
            db.session.remove()
        run_worker(app)  # the import, its cover hook, the downloads: S3 goes away in the middle of them

        with app.app_context():
            media = dict(db.session.execute(select(Media.title, Media.cover_key)).all())
            waiting = {row.media_id: row for row in db.session.scalars(select(CoverDownload))}
            ids = dict(db.session.execute(select(Media.title, Media.id)).all())
            db.session.expunge_all()
            db.session.remove()
        stored_before = [title for title, key in media.items() if key]
        assert len(media) == COVERS and len(stored_before) == CUT_AT - 1
        # Every other download failed and waits for its retry; none gave up, none points at anything.
        assert set(waiting) == {ids[t] for t, key in media.items() if not key}
        assert all(row.status == "pending" and row.attempts == 1 and "The file store (S3) is unreachable"
                   in row.last_error and SECRET_ACCESS_KEY not in row.last_error for row in waiting.values())
        assert activity(app, "media.cover_download_failed") == []
        proxy.start()  # S3 is back
        back = time.monotonic()
        with app.app_context():
            checked = covers.check_storage()
        assert checked.missing == [] and checked.orphans == []  # nothing recorded points at a missing object
        assert stored_keys(app, "covers/") == sorted(key for key in media.values() if key)

        # Time passes (the retry's backoff), the periodic sweep starts the retries and makes missing thumbnails.
        with app.app_context():
            db.session.execute(update(CoverDownload).where(CoverDownload.status == "pending")
                               .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
            db.session.commit()
            swept = cover_jobs.sweep_covers()
            db.session.remove()
        assert swept["started"] == 1 and swept["imports"] == 0  # the import's own hook ran: not queued twice
        run_worker(app)
        # A later sweep finds nothing to do.
        with app.app_context():
            assert cover_jobs.sweep_covers()["started"] == 0
            db.session.remove()
        run_worker(app)
        finished = time.monotonic()

    with app.app_context():
        items = db.session.execute(select(Media.id, Media.cover_key, Media.thumb_key)).all()
        left = db.session.scalar(select(func.count(CoverDownload.id)))
        checked = covers.check_storage()
        db.session.remove()
    assert len(items) == COVERS and left == 0
    assert all(cover and cover.startswith(f"covers/{media_id}/") for media_id, cover, _thumb in items)
    assert all(thumb == covers.thumb_key_for(media_id, cover) for media_id, cover, thumb in items)
    assert checked.missing == [] and checked.orphans == [] and checked.objects == 2 * COVERS  # covers and thumbnails
    assert stored_keys(app, "covers/") == sorted(cover for _id, cover, _thumb in items)  # one object per item
    downloaded = activity(app, "media.cover_downloaded")
    assert sorted(int(e.entity_id) for e in downloaded) == sorted(media_id for media_id, *_ in items)  # once each
    assert {e.details["attempt"] for e in downloaded if int(e.entity_id) in waiting} == {2}
    # Each address was fetched once, and once more for the downloads S3 made fail.
    fetched = sorted(host.requests)
    assert fetched == sorted([f"/covers/c{n}.jpg" for n in range(COVERS)]
                             + [f"/covers/c{n}.jpg" for n in range(COVERS) if ids[f"Covered {n}"] in waiting])
    report("s3_stopped_during_cover_downloads", backend.name, covers=COVERS, stored_before_outage=len(stored_before),
           failed_during_outage=len(waiting), seconds=round(finished - started, 1),
           recovery_seconds=round(finished - back, 1), objects=checked.objects,
           lost=COVERS - len(items), duplicated=len(downloaded) - COVERS)
