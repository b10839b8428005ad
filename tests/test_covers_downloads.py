"""Cover addresses from imports and provider matches are fetched into storage by jobs, through the outbound policy,
against a local fake image host: an image, a 500 (tried again with backoff, then given up), a page that is not an
image, a redirect to another server. An item that has a cover keeps it. The fake listens on 127.0.0.1, which the
policy refuses: the tests name it in COVER_TRUSTED_ORIGINS, the setting a household uses for its own servers."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import ExifTags, Image
from sqlalchemy import select, update

from collectz import jobs, queue
from collectz.extensions import db
from collectz.jobs import covers as cover_jobs
from collectz.jobs import imports as import_jobs
from collectz.jobs.runner import build_worker
from collectz.models import CoverDownload, Media, SyncJob
from collectz.providers.records import Candidate
from collectz.services import covers, enrichment
from tests.conftest import Actors, activity
from tests.fakes import images as fake
from tests.fakes.server import RunningFake, serve_wsgi
from tests.imports_helpers import run_records, staged_job
from tests.test_covers import add_item, item, keys, read, upload

pytestmark = pytest.mark.usefixtures("job_app")  # conftest: restores the jobs app and signal handlers


@pytest.fixture
def host() -> Iterator[tuple[fake.FakeImageHost, RunningFake]]:
    image_host = fake.FakeImageHost()
    with serve_wsgi(image_host) as running:
        yield image_host, running


@pytest.fixture
def app(make_app: Any, tmp_path: Path, host: tuple[fake.FakeImageHost, RunningFake]) -> Flask:
    """An app whose jobs (run here directly, or by a worker) use it too."""
    built = make_app(UPLOAD_PATH=str(tmp_path / "uploads"), COVER_TRUSTED_ORIGINS=host[1].url)
    jobs.set_app(built)
    return built


def run_worker(app: Flask) -> None:
    jobs.set_app(app)
    build_worker(app).work(burst=True)


def downloads(app: Flask) -> dict[int, CoverDownload]:
    with app.app_context():
        rows = {row.media_id: row for row in db.session.scalars(select(CoverDownload))}
        db.session.expunge_all()
        db.session.remove()
        return rows


def make_due(app: Flask) -> None:
    """Time passes: every pending download's next attempt is now."""
    with app.app_context():
        db.session.execute(update(CoverDownload).where(CoverDownload.status == "pending")
                           .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1)))
        db.session.commit()
        db.session.remove()


def import_ids(app: Flask, job_id: int) -> list[int]:
    with app.app_context():
        from collectz.models import ImportRow

        ids = list(db.session.scalars(select(ImportRow.media_id).where(ImportRow.job_id == job_id)
                                      .order_by(ImportRow.row_number)))
        db.session.remove()
        return ids


def test_an_import_fetches_its_covers_through_the_queues(app: Flask, actors: Actors, host: Any) -> None:
    """As in production: the import's last chunk hooks the cover job; one worker runs the import, the downloads and
    the thumbnails. A failure that may pass waits for its retry; one that will not gives up and says why."""
    image_host, running = host
    records = [{"title": "Dune", "media_type": "other", "cover_url": f"{running.url}/covers/dune.jpg"},
               {"title": "Flaky", "media_type": "other", "cover_url": f"{running.url}/error.jpg"},
               {"title": "Page", "media_type": "other", "cover_url": f"{running.url}/not-an-image.jpg"},
               {"title": "No cover", "media_type": "other"}]
    with app.app_context():
        job_id = staged_job("bob@example.org", records)
        db.session.remove()
    jobs.set_app(app)
    with app.app_context():
        assert import_jobs.enqueue_chunk(job_id, 0)
    run_worker(app)

    dune, flaky, page, plain = import_ids(app, job_id)
    got = item(app, dune)
    assert got.cover_key and got.thumb_key == covers.thumb_key_for(dune, got.cover_key)
    stored = Image.open(io.BytesIO(read(app, got.cover_key)))
    assert stored.format == "JPEG" and ExifTags.IFD.GPSInfo not in stored.getexif()
    [downloaded] = activity(app, "media.cover_downloaded")
    assert downloaded.entity_id == str(dune) and downloaded.actor_id is None
    assert downloaded.details["host"] == "127.0.0.1" and downloaded.details["location_removed"] is True

    rows = downloads(app)
    assert set(rows) == {flaky, page}  # done ones go; an item without an address never had one
    retry = rows[flaky]
    assert (retry.status, retry.attempts) == ("pending", 1) and "answered 500" in retry.last_error
    wait = (retry.next_attempt_at - datetime.now(UTC)).total_seconds()
    assert covers.RETRY_DELAYS[0] - 60 < wait <= covers.RETRY_DELAYS[0]
    gave_up = rows[page]
    assert (gave_up.status, gave_up.attempts, gave_up.next_attempt_at) == ("failed", 1, None)
    assert "not a JPEG, PNG, WebP or GIF image" in gave_up.last_error
    [failed] = activity(app, "media.cover_download_failed")
    assert failed.entity_id == str(page) and failed.status == "failed" and "127.0.0.1" in failed.reason
    assert item(app, flaky).cover_key is None and item(app, page).cover_key is None
    assert item(app, plain).cover_key is None
    assert sorted(image_host.requests) == ["/covers/dune.jpg", "/error.jpg", "/not-an-image.jpg"]


def test_a_failure_that_may_pass_is_tried_again_with_backoff_then_given_up(app: Flask, actors: Actors,
                                                                           host: Any) -> None:
    image_host, running = host
    media_id = add_item(actors.client("bob"), "Flaky")
    with app.app_context():
        assert covers.want_cover(db.session.get(Media, media_id), f"{running.url}/error.jpg")
        db.session.commit()
    delays = []
    for _attempt in range(covers.MAX_ATTEMPTS):
        make_due(app)
        before = datetime.now(UTC)
        with app.app_context():
            cover_jobs.download_covers()
        row = downloads(app)[media_id]
        if row.next_attempt_at is not None:
            delays.append(round((row.next_attempt_at - before).total_seconds(), -1))
    assert delays == [float(d) for d in covers.RETRY_DELAYS]
    assert (row.status, row.attempts) == ("failed", covers.MAX_ATTEMPTS)
    assert len(image_host.requests) == covers.MAX_ATTEMPTS
    assert activity(app, "media.cover_download_failed")[0].details["attempts"] == covers.MAX_ATTEMPTS
    make_due(app)
    with app.app_context():
        assert cover_jobs.download_covers() == {}  # given up: nothing is tried any more

    # A host that recovers: the retry stores the cover.
    other = add_item(actors.client("bob"), "Recovers")
    image_host.failures = 1
    with app.app_context():
        covers.want_cover(db.session.get(Media, other), f"{running.url}/covers/fox.png")
        db.session.commit()
        assert cover_jobs.download_covers() == {"retry": 1}
    make_due(app)
    with app.app_context():
        assert cover_jobs.download_covers() == {"downloaded": 1}
    assert item(app, other).cover_key.endswith(".png") and other not in downloads(app)


def test_a_download_never_replaces_a_cover_the_item_has(app: Flask, actors: Actors, host: Any) -> None:
    image_host, running = host
    bob = actors.client("bob")
    media_id = add_item(bob)
    with app.app_context():
        covers.want_cover(db.session.get(Media, media_id), f"{running.url}/covers/dune.jpg")
        db.session.commit()
    upload(bob, media_id, fake.png())  # the member's own cover arrives first: the queued address is dropped
    own = item(app, media_id).cover_key
    assert downloads(app) == {}

    with app.app_context():  # asked again (a provider match later): an item with a cover wants nothing
        assert covers.want_cover(db.session.get(Media, media_id), f"{running.url}/covers/dune.jpg") is False
        db.session.execute(CoverDownload.__table__.insert().values(  # a row left from before the upload
            media_id=media_id, url=f"{running.url}/covers/dune.jpg", status="pending", attempts=0,
            next_attempt_at=datetime.now(UTC), created_at=datetime.now(UTC), updated_at=datetime.now(UTC)))
        db.session.commit()
        assert cover_jobs.download_covers() == {"skipped": 1}
    assert item(app, media_id).cover_key == own and image_host.requests == [] and downloads(app) == {}
    assert keys(app) == [own]


def test_private_addresses_are_refused_unless_trusted(make_app: Any, tmp_path: Path, host: Any) -> None:
    image_host, running = host
    app = make_app(UPLOAD_PATH=str(tmp_path))
    jobs.set_app(app)
    actors = Actors(app)
    media_id = add_item(actors.client("bob"))
    with app.app_context():
        covers.want_cover(db.session.get(Media, media_id), f"{running.url}/covers/dune.jpg")
        db.session.commit()
        assert cover_jobs.download_covers() == {"failed": 1}
    row = downloads(app)[media_id]
    assert row.status == "failed" and "127.0.0.1 is not a public address (loopback)" in row.last_error
    assert image_host.requests == []  # refused before any connection


def test_redirects_to_another_server_are_followed_and_checked_again(make_app: Any, tmp_path: Path,
                                                                    host: Any) -> None:
    first_host, first = host
    second_host = fake.FakeImageHost()
    with serve_wsgi(second_host) as second:
        first_host.redirect_to = f"{second.url}/covers/fox.png"
        both = make_app(UPLOAD_PATH=str(tmp_path / "a"), COVER_TRUSTED_ORIGINS=f"{first.url},{second.url}")
        actors = Actors(both)
        jobs.set_app(both)
        media_id = add_item(actors.client("bob"))
        with both.app_context():
            covers.want_cover(db.session.get(Media, media_id), f"{first.url}/moved.jpg")
            db.session.commit()
            assert cover_jobs.download_covers() == {"downloaded": 1}
        assert item(both, media_id).cover_key.endswith(".png") and second_host.requests == ["/covers/fox.png"]

        # The first server is trusted, the one it sends us to is not: the second hop is refused.
        only_first = make_app(UPLOAD_PATH=str(tmp_path / "b"), COVER_TRUSTED_ORIGINS=first.url)
        jobs.set_app(only_first)
        with only_first.app_context():
            db.session.execute(update(Media).where(Media.id == media_id).values(cover_key=None))
            covers.want_cover(db.session.get(Media, media_id), f"{first.url}/moved.jpg")
            db.session.commit()
            assert cover_jobs.download_covers() == {"failed": 1}
        assert "not a public address" in downloads(only_first)[media_id].last_error
        assert second_host.requests == ["/covers/fox.png"]


def test_a_provider_match_with_a_cover_is_fetched_by_the_sweep(app: Flask, actors: Actors, host: Any) -> None:
    _image_host, running = host
    media_id = add_item(actors.client("bob"), "Fantastic Mr Fox")
    candidate = Candidate(provider="openlibrary", provider_id="OL7353617M", media_type="book",
                          title="Fantastic Mr Fox", year=1970, cover_url=f"{running.url}/covers/fox.png")
    with app.app_context():
        enrichment.apply_candidate(db.session.get(Media, media_id), candidate, actor=None)
        db.session.commit()
        assert downloads(app)[media_id].url == candidate.cover_url
        swept = cover_jobs.sweep_covers()
        assert swept["started"] == 1
        assert cover_jobs.start_downloads() is False  # one chain at a time
    run_worker(app)
    got = item(app, media_id)
    assert got.cover_key.endswith(".png") and got.thumb_key and downloads(app) == {}
    with app.app_context():
        assert queue.connection().get(cover_jobs.CHAIN_KEY) is None  # the chain ended with nothing due


def test_the_sweep_queues_the_covers_of_an_import_whose_hook_never_ran(app: Flask, actors: Actors,
                                                                       host: Any) -> None:
    """Redis was down when the import finished: the sweep queues its covers once, for recent imports only."""
    _image_host, running = host
    with app.app_context():
        job = run_records("bob@example.org", [{"title": "Dune", "media_type": "other",
                                               "cover_url": f"{running.url}/covers/dune.jpg"}])
        db.session.execute(update(SyncJob).where(SyncJob.id == job.id).values(
            finished_at=datetime.now(UTC) - timedelta(minutes=10)))
        db.session.commit()
        job_id = job.id
        assert cover_jobs.sweep_covers()["imports"] == 1
        assert cover_jobs.sweep_covers()["imports"] == 0
    run_worker(app)
    [media_id] = import_ids(app, job_id)
    assert item(app, media_id).cover_key is not None
