"""Enrichment after an import, end to end: a real import job (imports.run_inline), then the enrichment job, against
local fakes of Open Library, Google Books and TMDB. Each import row says what enrichment did for its item."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select, update

from collectz.extensions import db
from collectz.jobs import enrichment as enrichment_jobs
from collectz.models import EnrichmentReview, ImportRow, Media, SyncJob
from collectz.queue import get_queue
from tests.conftest import Actors, activity
from tests.fakes.googlebooks import FakeGoogleBooks
from tests.fakes.openlibrary import FakeOpenLibrary
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb
from tests.imports_helpers import run_records
from tests.test_enrichment_service import TMDB_KEY, add_dunes, turn_on_tmdb


class Fakes:
    def __init__(self, openlibrary: FakeOpenLibrary, googlebooks: FakeGoogleBooks, tmdb: FakeTmdb,
                 overrides: str) -> None:
        self.openlibrary, self.googlebooks, self.tmdb, self.overrides = openlibrary, googlebooks, tmdb, overrides


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    ol, gb, tmdb = FakeOpenLibrary(), FakeGoogleBooks(), FakeTmdb(api_key=TMDB_KEY)
    add_dunes(tmdb)
    with serve_wsgi(ol) as ol_url, serve_wsgi(gb) as gb_url, serve_wsgi(tmdb) as tmdb_url:
        yield Fakes(ol, gb, tmdb, f"openlibrary={ol_url.url},googlebooks={gb_url.url},tmdb={tmdb_url.url}")


@pytest.fixture
def app(make_app: Any, fakes: Fakes) -> Flask:
    """Every provider the tests use points at its fake (the Books card is on by default: Open Library first)."""
    return make_app(PROVIDER_URL_OVERRIDES=fakes.overrides)


def import_and_enrich(app: Flask, records: list[dict[str, Any]], attempt: int = 0) -> tuple[SyncJob, list[ImportRow]]:
    """A CSV import of these records by bob, then the enrichment job for it, as the worker would run them."""
    with app.app_context():
        job = run_records("bob@example.org", records)
        assert job.status == "succeeded", job.error
        job_id = job.id
        db.session.remove()
    from collectz import jobs

    jobs.set_app(app)
    enrichment_jobs.enrich_import(job_id, attempt)
    return finished(app, job_id)


def finished(app: Flask, job_id: int) -> tuple[SyncJob, list[ImportRow]]:
    with app.app_context():
        job = db.session.get(SyncJob, job_id)
        rows = list(db.session.scalars(select(ImportRow).where(ImportRow.job_id == job_id)
                                       .order_by(ImportRow.row_number)))
        db.session.expunge_all()
        db.session.remove()
        return job, rows


def media(app: Flask, media_id: int) -> Media:
    with app.app_context():
        item = db.session.get(Media, media_id)
        db.session.expunge(item)
        db.session.remove()
        return item


def scheduled(app: Flask) -> list[Any]:
    with app.app_context():
        registry = ScheduledJobRegistry(queue=get_queue("enrichment"))
        return [get_queue("enrichment").fetch_job(job_id) for job_id in registry.get_job_ids()]


FOX = {"title": "Fantastic Mr Fox", "media_type": "book", "isbn": "9780140328721"}
FOX_BY_TITLE = {"title": "Fantastic Mr Fox", "media_type": "book", "year": "1970",
                "people": [["author", "Roald Dahl"]]}
HOBBIT = {"title": "Hobbit", "media_type": "book"}  # no author, no year: several works could be meant


def test_books_match_by_isbn_fall_back_to_the_title_or_land_in_review(app: Flask, actors: Actors) -> None:
    job, rows = import_and_enrich(app, [FOX, FOX_BY_TITLE | {"title": "Fantastic Mr. Fox!"}, HOBBIT])
    by_isbn, by_title, unsure = rows
    assert by_isbn.enrichment.startswith("matched by ISBN (openlibrary): filled ")
    assert by_title.enrichment.startswith("matched by title (openlibrary, score ")
    assert unsure.enrichment.startswith("review: ")
    assert job.status == "succeeded"

    assert media(app, by_isbn.media_id).type_details.get("publisher")
    events = {e.entity_id: e.details for e in activity(app, "media.enriched")}
    assert events[str(by_isbn.media_id)]["match_mode"] == "matched_by_identifier"
    assert events[str(by_isbn.media_id)]["provider"] == "openlibrary"
    assert events[str(by_title.media_id)]["match_mode"] == "fallback_title_only"
    assert str(unsure.media_id) not in events  # nothing ambiguous is applied
    with app.app_context():
        [review] = db.session.scalars(select(EnrichmentReview)).all()
        assert (review.media_id, review.job_id, review.status) == (unsure.media_id, job.id, "pending")
        db.session.remove()


def test_a_book_whose_isbn_is_unknown_falls_back_to_the_title_and_says_so(app: Flask, actors: Actors) -> None:
    unknown_isbn = "9780306406157"  # a valid ISBN Open Library's fake does not know
    _job, [row] = import_and_enrich(app, [FOX_BY_TITLE | {"isbn": unknown_isbn}])
    assert row.enrichment.startswith("matched by title after no identifier match (openlibrary")
    assert activity(app, "media.enriched")[0].details["match_mode"] == "identifier_no_match_fallback_title"
    assert media(app, row.media_id).isbn13 == unknown_isbn  # the member's identifier stands


@pytest.mark.parametrize(("mode", "reason"), [("error", "openlibrary: unavailable"),
                                              ("rate_limited", "openlibrary: rate limited")])
def test_a_provider_500_or_429_leaves_the_import_succeeded_and_the_rows_retry(
        app: Flask, actors: Actors, fakes: Fakes, mode: str, reason: str) -> None:
    fakes.openlibrary.mode = mode
    fakes.googlebooks.mode = "error"  # the second book provider is down too: nobody can answer
    job, rows = import_and_enrich(app, [FOX, FOX_BY_TITLE])
    assert job.status == "succeeded" and job.created == 2 and job.failed == 0
    assert [r.enrichment for r in rows] == [f"failed ({reason}) — will retry"] * 2
    assert [r.outcome for r in rows] == ["created", "created"]
    # one call per provider, not one per item: a provider that failed is not asked again in the same pass
    assert len(fakes.openlibrary.requests) == 1
    [retry] = scheduled(app)
    assert retry.func_name == "collectz.jobs.enrichment.enrich_import" and retry.args == (job.id, 1)
    assert activity(app, "media.enriched") == []

    if mode == "error":  # (a 429 would make the retry wait out Open Library's Retry-After)
        fakes.openlibrary.mode = "ok"
        enrichment_jobs.enrich_import(job.id, 1)
        _job, rows = finished(app, job.id)
        assert rows[0].enrichment.startswith("matched by ISBN (openlibrary)")
        assert rows[1].enrichment.startswith("matched by title (openlibrary")


def test_the_last_retry_gives_up_and_says_so(app: Flask, actors: Actors, fakes: Fakes) -> None:
    fakes.openlibrary.mode = fakes.googlebooks.mode = "error"
    job, _rows = import_and_enrich(app, [FOX])
    last = len(enrichment_jobs.RETRY_DELAYS)
    enrichment_jobs.enrich_import(job.id, last)
    _job, [row] = finished(app, job.id)
    assert row.enrichment == "failed (openlibrary: unavailable)"
    assert [j.args for j in scheduled(app)] == [(job.id, 1)]  # only the first pass scheduled a retry


def test_movies_from_an_import_are_enriched_from_tmdb(app: Flask, actors: Actors) -> None:
    turn_on_tmdb(app, actors.ids["alice"])
    _job, rows = import_and_enrich(app, [{"title": "Fight Club", "media_type": "movie", "year": "1999"},
                                         {"title": "Dune", "media_type": "movie"},
                                         {"title": "Fight Club", "media_type": "movie", "year": "1999",
                                          "tmdb_id": "550", "formats": "Blu-ray"},
                                         {"title": "Blade Runner 2049", "media_type": "movie", "year": "2017"}])
    # the third row merged into the first item (with its TMDB id): it is enriched once, and both rows say so
    assert rows[2].media_id == rows[0].media_id
    assert rows[0].enrichment.startswith("matched by TMDB id (tmdb)") and rows[2].enrichment == rows[0].enrichment
    assert rows[1].enrichment == "review: 2 matches too close to choose"
    assert rows[3].enrichment.startswith("matched by title (tmdb, score 0.93)")
    assert media(app, rows[0].media_id).runtime == 139 and media(app, rows[3].media_id).tmdb_id == 335984


def test_retry_delays_back_off_and_honour_retry_after() -> None:
    assert [enrichment_jobs.retry_delay(n) for n in range(4)] == [60.0, 300.0, 1800.0, None]
    assert enrichment_jobs.retry_delay(0, retry_after=120) == 120.0
    assert enrichment_jobs.retry_delay(1, retry_after=86400) == enrichment_jobs.MAX_DELAY


def test_due_retries_are_moved_onto_the_queue_without_an_rq_scheduler(app: Flask) -> None:
    with app.app_context():
        q = get_queue("enrichment")
        due = q.enqueue_at(datetime.now(UTC) - timedelta(seconds=5), enrichment_jobs.enrich_import, 7, 1)
        later = q.enqueue_in(timedelta(hours=1), enrichment_jobs.enrich_import, 8, 1)
        assert q.get_job_ids() == []
        assert enrichment_jobs.promote_due(app) == 1
        assert q.get_job_ids() == [due.id]
        assert ScheduledJobRegistry(queue=q).get_job_ids() == [later.id]
        db.session.remove()


def test_enqueueing_goes_to_the_enrichment_queue_or_says_redis_is_down(app: Flask, make_app: Any) -> None:
    with app.app_context():
        assert enrichment_jobs.enqueue_for_import(41) is True
        [queued] = get_queue("enrichment").get_jobs()
        assert queued.func_name == "collectz.jobs.enrichment.enrich_import" and queued.args == (41,)
        db.session.remove()
    down = make_app(REDIS_URL="redis://127.0.0.1:9/0")  # nothing listens on the discard port
    with down.app_context():
        assert enrichment_jobs.enqueue_for_import(41) is False


def test_a_finished_import_hands_its_items_to_the_enrichment_queue(app: Flask, actors: Actors) -> None:
    """Through the queues, as in production: the import's last chunk enqueues enrichment; a worker runs both."""
    from collectz import jobs
    from collectz.jobs import imports as import_jobs
    from collectz.jobs.runner import build_worker
    from tests.imports_helpers import staged_job

    turn_on_tmdb(app, actors.ids["alice"])
    with app.app_context():
        job_id = staged_job("bob@example.org", [{"title": "Fight Club", "media_type": "movie", "year": "1999"}])
        db.session.remove()
    jobs.set_app(app)
    with app.app_context():
        assert import_jobs.enqueue_chunk(job_id, 0)
        assert get_queue("enrichment").count == 0
    build_worker(app).work(burst=True)
    job, rows = finished(app, job_id)
    assert job.status == "succeeded"
    assert rows[0].enrichment.startswith("matched by title (tmdb")
    assert media(app, rows[0].media_id).tmdb_id == 550
    # The job page and its audit CSV say what enrichment did for each row.
    bob = actors.client("bob")
    assert 'data-testid="row-enrichment">matched by title (tmdb' in bob.get(f"/imports/jobs/{job_id}").get_data(
        as_text=True)
    audit_csv = bob.get(f"/imports/jobs/{job_id}/rows.csv").get_data(as_text=True).splitlines()
    assert audit_csv[0].split(",")[6] == "enrichment" and "matched by title (tmdb" in audit_csv[1]


def test_an_import_run_by_two_chains_of_steps_is_enriched_once(app: Flask, actors: Actors) -> None:
    """The sweeper revived a job that was only waiting: its chunk is queued twice and both chains reach the end.
    Only the step that finished the job hands it to enrichment (and to the covers)."""
    from rq.registry import FinishedJobRegistry

    from collectz import jobs
    from collectz.jobs import imports as import_jobs
    from collectz.jobs.runner import build_worker
    from tests.imports_helpers import staged_job

    with app.app_context():
        job_id = staged_job("bob@example.org", [{"title": "Fight Club", "media_type": "movie", "year": "1999"}])
        db.session.remove()
    jobs.set_app(app)
    with app.app_context():
        assert import_jobs.enqueue_chunk(job_id, 0) and import_jobs.enqueue_chunk(job_id, 0)
        assert get_queue("imports").count == 2  # the same step twice (one rq id: the queue holds it twice)
    build_worker(app).work(burst=True)
    with app.app_context():
        assert get_queue("imports").count == 0
        ran = []
        for name in ("enrichment", "maintenance"):  # covers: on maintenance
            q = get_queue(name)
            ran += [q.fetch_job(i).func_name.rsplit(".", 1)[-1] for i in FinishedJobRegistry(queue=q).get_job_ids()]
        db.session.remove()
    assert sorted(ran) == ["covers_for_import", "enrich_import"]
    assert finished(app, job_id)[0].status == "succeeded"


def test_the_sweeper_hands_over_an_import_whose_enrichment_was_never_enqueued(app: Flask, actors: Actors) -> None:
    """Redis was down when the import finished: its rows say nothing yet; the periodic sweep enqueues the pass once,
    and only for recent imports."""
    from collectz import jobs

    turn_on_tmdb(app, actors.ids["alice"])
    with app.app_context():
        job = run_records("bob@example.org", [{"title": "Fight Club", "media_type": "movie", "year": "1999"}])
        old = run_records("bob@example.org", [{"title": "Blade Runner 2049", "media_type": "movie"}])
        # Finished a while ago (past the stale interval); the other one before enrichment existed (days ago).
        db.session.execute(update(SyncJob).where(SyncJob.id == job.id).values(
            finished_at=datetime.now(UTC) - timedelta(minutes=10)))
        db.session.execute(update(SyncJob).where(SyncJob.id == old.id).values(
            finished_at=datetime.now(UTC) - timedelta(days=3)))
        db.session.commit()
        job_id, old_id = job.id, old.id
        db.session.remove()
    jobs.set_app(app)
    assert enrichment_jobs.sweep_enrichment() == 1
    assert enrichment_jobs.sweep_enrichment() == 0  # once an hour at most per import
    with app.app_context():
        [queued] = get_queue("enrichment").jobs
        assert queued.func_name == "collectz.jobs.enrichment.enrich_import" and queued.args == (job_id,)
        db.session.remove()
    assert finished(app, old_id)[1][0].enrichment is None
