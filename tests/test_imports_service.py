"""The import service on each backend: validation, identifier-first dedupe, chunks, cancel, retry, the sweeper,
staging from a file, and the `flask import` command."""

from __future__ import annotations

import gc
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, update

from collectz.extensions import db
from collectz.models import ActivityLog, ImportRow, Media, MediaMetadata, MediaSource, SyncJob, User
from collectz.models.base import utcnow
from collectz.services import imports
from collectz.services.errors import Conflict, NotFound
from collectz.services.import_writer import title_key
from tests.conftest import Actors
from tests.imports_helpers import media_count, rows, run_records, staged_job

BOB = "bob@example.org"


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def book(source_id: str, title: str, isbn: str | None = None, **more: Any) -> dict[str, Any]:
    record = {"source_id": source_id, "media_type": "book", "title": title, **more}
    if isbn:
        record["isbn"] = isbn
    return record


@contextmanager
def default_sqlite_limits() -> Iterator[None]:
    """SQLite connections with the parameter limit of SQLite's default build (32,766; distributions raise it)."""
    def limit(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)

    db.session.commit()
    event.listen(db.engine, "connect", limit)
    db.engine.dispose()
    try:
        yield
    finally:
        db.session.commit()
        event.remove(db.engine, "connect", limit)
        db.engine.dispose()


# --- validation -------------------------------------------------------------------------------------------------


def test_each_bad_value_fails_its_row_with_line_and_reason_and_the_rest_import(
        ctx: Flask, actors: Actors, caplog: pytest.LogCaptureFixture) -> None:
    good = [book(f"g{i}", f"Good {i}", line=i + 2) for i in range(8)]
    bad = [
        {"line": 20, "source_id": "b1", "media_type": "spaceship", "title": "Odd"},
        {"line": 21, "source_id": "b2", "media_type": "movie", "title": "Old", "year": "1700"},
        {"line": 22, "source_id": "b3", "media_type": "movie", "title": "Loved", "rating": "11"},
        {"line": 23, "source_id": "b4", "media_type": "book", "title": "Typo", "isbn": "0441013598"},
        {"line": 24, "source_id": "b5", "media_type": "book", "title": ""},
        {"line": 25, "source_id": "b6", "media_type": "movie", "title": "x" * 501},
        # Whole numbers beyond what an item can hold (the item form's bounds, the columns' size).
        {"line": 26, "source_id": "b7", "media_type": "movie", "title": "Long", "runtime": str(10**20)},
        {"line": 27, "source_id": "b8", "media_type": "movie", "title": "Many", "copies": "10000"},
        {"line": 28, "source_id": "b9", "media_type": "movie", "title": "Far", "tmdb_id": str(2**31)},
    ]
    with caplog.at_level(logging.WARNING, logger="collectz.imports"):
        job = run_records(BOB, good[:4] + bad + good[4:], chunk_size=3)
    assert "retrying row by row" not in caplog.text  # every bad row was caught before the database saw it
    assert (job.status, job.total, job.processed, job.created, job.failed) == ("succeeded", 17, 17, 8, 9)
    messages = {r.raw["line"]: r.message for r in rows(job.id) if r.outcome == "failed"}
    assert messages[20].startswith("Line 20: type: 'spaceship' is not a media type")
    assert messages[21] == "Line 21: year: enter a year between 1800 and 2100"
    assert messages[22] == "Line 22: rating: 11 is not between 0 and 10"
    assert "Line 23: ISBN:" in messages[23] and "check digit" in messages[23]
    assert messages[24] == "Line 24: title: a title is needed"
    assert messages[25] == "Line 25: title: use at most 500 characters"
    assert messages[26] == "Line 26: runtime: enter the runtime in minutes (at most 100,000)"
    assert messages[27] == "Line 27: copies: at most 9,999 copies"
    assert messages[28] == "Line 28: TMDB id: this TMDB id is too large"
    assert media_count() == 8


def test_a_job_whose_every_row_fails_is_failed(ctx: Flask, actors: Actors) -> None:
    job = run_records(BOB, [{"line": 2, "title": "", "source_id": "x"}])
    assert job.status == "failed" and "every row failed" in job.error


# --- dedupe -----------------------------------------------------------------------------------------------------


def test_reimporting_the_same_entries_creates_nothing_and_changes_nothing(ctx: Flask, actors: Actors) -> None:
    records = [book("a", "Dune", "0441013597", people=[["author", "Frank Herbert"]], genres=["SF"]),
               {"source_id": "b", "media_type": "movie", "title": "Alien", "year": "1979"}]
    first = run_records(BOB, records)
    assert (first.created, first.updated, first.skipped) == (2, 0, 0)
    before = [(m.id, m.title, m.copies, m.updated_at) for m in db.session.scalars(select(Media).order_by(Media.id))]
    again = run_records(BOB, records)
    assert (again.created, again.updated, again.skipped, again.failed) == (0, 0, 2, 0)
    assert [r.matched_by for r in rows(again.id)] == ["source:csv", "source:csv"]
    db.session.expire_all()
    assert [(m.id, m.title, m.copies, m.updated_at) for m in db.session.scalars(select(Media).order_by(Media.id))] \
        == before


def test_identifiers_match_in_order_and_fill_only_empty_fields(ctx: Flask, actors: Actors) -> None:
    run_records(BOB, [book("m1", "Dune", "9780441013593", notes="signed", location="Shelf A")], kind="delicious")
    job = run_records(BOB, [book("c1", "Dune: Deluxe", "0441013597", notes="other notes", overview="Spice",
                                 location="")])
    (row,) = rows(job.id)
    assert (row.outcome, row.match_mode, row.matched_by) == ("updated", "matched_by_identifier", "isbn13")
    item = db.session.get(Media, row.media_id)
    assert (item.title, item.notes, item.location, item.overview) == ("Dune", "signed", "Shelf A", "Spice")
    assert item.copies == 1  # another source's entry is the same copy, merged


def test_people_and_genres_are_filled_only_where_the_item_has_none(ctx: Flask, actors: Actors) -> None:
    run_records(BOB, [book("m1", "Dune", "9780441013593"),
                      book("m2", "Emma", "9780141439587", people=[["author", "Jane Austen"]], genres=["Classic"])],
                kind="delicious")
    job = run_records(BOB, [
        book("c1", "Dune", "9780441013593", people=[["author", "Frank Herbert"]], genres=["Science fiction"]),
        book("c2", "Emma", "9780141439587", people=[["author", "Someone Else"]], genres=["Romance"])])
    first, second = rows(job.id)
    assert (first.outcome, first.message) == ("updated", f"merged into item {first.media_id}: filled people, genres")
    assert second.outcome == "skipped"  # it has people and genres: nothing to fill
    dune, emma = db.session.get(Media, first.media_id), db.session.get(Media, second.media_id)
    assert [(mp.person.name, mp.role) for mp in dune.people] == [("Frank Herbert", "author")]
    assert [g.name for g in dune.genres] == ["Science fiction"]
    assert [mp.person.name for mp in emma.people] == ["Jane Austen"] and [g.name for g in emma.genres] == ["Classic"]
    assert "herbert" in (dune.search_text or "").casefold()  # the search index knows the new people


def test_a_books_barcode_finds_it_by_isbn_and_asin_is_the_third_choice(ctx: Flask, actors: Actors) -> None:
    run_records(BOB, [book("x1", "Dune", "9780441013593"),
                      {"source_id": "x2", "media_type": "movie", "title": "Heat", "asin": "B00003CXCT"}])
    job = run_records(BOB, [book("y1", "Dune", ean="9780441013593"),
                            {"source_id": "y2", "media_type": "movie", "title": "Heat (1995)", "asin": "b00003cxct"}],
                      kind="delicious")
    # The barcode finds the book by its ISBN-13 and is filled in (the item had no EAN yet).
    assert [(r.outcome, r.matched_by) for r in rows(job.id)] == [("updated", "ean13"), ("skipped", "asin")]
    assert db.session.scalar(select(Media.ean13).where(Media.title == "Dune")) == "9780441013593"


def test_a_different_entry_of_the_same_source_is_another_copy(ctx: Flask, actors: Actors) -> None:
    records = [book("u1", "Naked Lunch", "0802133630"), book("u2", "Naked Lunch", "0802133630"),
               book("u3", "Other", "9780441013593")]
    job = run_records(BOB, records, kind="delicious", chunk_size=1)
    assert (job.created, job.updated) == (2, 1)
    second = rows(job.id)[1]
    assert second.message == f"another copy of item {second.media_id} (now 2 copies)"
    assert db.session.get(Media, second.media_id).copies == 2
    again = run_records(BOB, records, kind="delicious")
    assert (again.created, again.updated, again.skipped) == (0, 0, 3)
    db.session.expire_all()
    assert db.session.get(Media, second.media_id).copies == 2
    assert len(db.session.scalars(select(MediaSource).where(MediaSource.media_id == second.media_id)).all()) == 2


def test_a_chunk_larger_than_one_title_lookup_still_finds_its_title_matches(ctx: Flask, actors: Actors,
                                                                            caplog: pytest.LogCaptureFixture) -> None:
    # 11,000 distinct title keys in one chunk: more than one statement's parameters on SQLite (32,766 / 3).
    run_records(BOB, [book("old", "Zebra Crossing", year="1999")], kind="delicious")
    records = [{"source_id": f"n{i}", "media_type": "book", "title": f"Title {i}", "year": "2001"}
               for i in range(11_000)]
    records.append({"source_id": "z", "media_type": "book", "title": "Zebra crossing", "year": "1999"})
    with default_sqlite_limits(), caplog.at_level(logging.WARNING, logger="collectz.imports"):
        job = run_records(BOB, records, chunk_size=20_000)
    assert (job.status, job.created, job.skipped) == ("succeeded", 11_000, 1)
    assert "retrying row by row" not in caplog.text  # the chunk went through whole
    last = rows(job.id)[-1]
    assert (last.outcome, last.match_mode, last.matched_by) == ("skipped", "fallback_title_only", "title+year")


def test_a_conflicting_strong_identifier_makes_a_new_item(ctx: Flask, actors: Actors) -> None:
    run_records(BOB, [book("a", "Dune", "9780441013593", year="1965")])
    job = run_records(BOB, [book("b", "Dune", "9780340960196", year="1965")])
    (row,) = rows(job.id)
    assert (row.outcome, row.match_mode, row.matched_by) == ("created", "identifier_conflict", "isbn13")
    assert media_count() == 2


def test_title_and_year_are_the_fallback_and_the_row_says_which(ctx: Flask, actors: Actors) -> None:
    run_records(BOB, [{"source_id": "a", "media_type": "movie", "title": "The Thing", "year": "1982"}])
    job = run_records(BOB, [
        {"source_id": "b", "media_type": "movie", "title": "thing", "year": "1982", "notes": "x"},
        {"source_id": "c", "media_type": "movie", "title": "The Thing", "year": "2011"},
        {"source_id": "d", "media_type": "movie", "title": "The Thing!", "year": "1982", "tmdb_id": "1091"},
        {"source_id": "e", "media_type": "book", "title": "The Thing", "year": "1982"},
    ], kind="delicious")
    got = [(r.outcome, r.match_mode, r.matched_by) for r in rows(job.id)]
    assert got[0] == ("updated", "fallback_title_only", "title+year")
    assert got[1] == ("created", "fallback_title_only", None)
    assert got[2] == ("updated", "identifier_no_match_fallback_title", "title+year")  # tmdb id filled in
    assert got[3] == ("created", "fallback_title_only", None)  # another media type is another item
    assert title_key("The Thing!") == title_key("thing") == "thing"
    # Accents, compatibility forms (full-width letters) and a leading article fold away, in ASCII titles and others.
    assert title_key("Amélie") == title_key("ＡＭＥＬＩＥ") == title_key("amelie") == "amelie"
    assert title_key("Thé Party") == title_key("The  Party") == "party"


# --- chunks, progress, cancel, retry ----------------------------------------------------------------------------


def test_chunks_commit_one_at_a_time_and_progress_only_grows(ctx: Flask, actors: Actors) -> None:
    job_id = staged_job(BOB, [book(f"s{i}", f"Title {i}") for i in range(10)], chunk_size=4)
    seen = []
    chunk: int | None = 0
    finishers = []
    while chunk is not None:
        done = imports.process_chunk(job_id, chunk)
        chunk = done.next_chunk
        finishers.append(done.succeeded_here)
        job = db.session.get(SyncJob, job_id)
        seen.append((job.processed, job.percent, job.status))
    assert seen == [(4, 40, "running"), (8, 80, "running"), (10, 100, "succeeded")]
    assert finishers == [False, False, True]


def test_a_chunk_that_runs_twice_changes_nothing_the_second_time(ctx: Flask, actors: Actors) -> None:
    job_id = staged_job(BOB, [book(f"s{i}", f"Title {i}") for i in range(6)], chunk_size=3)
    imports.process_chunk(job_id, 0)
    imports.process_chunk(job_id, 0)  # e.g. a sweeper re-enqueue of a chunk that had finished
    job = db.session.get(SyncJob, job_id)
    assert (job.processed, job.created, media_count()) == (3, 3, 3)
    # A revived job runs two chains of steps: only the step that finished it says so (its follow-ups start once).
    assert imports.process_chunk(job_id, 1).succeeded_here
    again = imports.process_chunk(job_id, 1)
    assert (again.next_chunk, again.succeeded_here) == (None, False)


def test_a_chunk_runs_without_cycle_passes_and_gives_the_collector_back(ctx: Flask, actors: Actors) -> None:
    job_id = staged_job(BOB, [book(f"s{i}", f"Cycles {i}") for i in range(8)], chunk_size=4)
    collector_on: list[bool] = []

    def observe(*_args: Any) -> None:
        collector_on.append(gc.isenabled())

    event.listen(db.engine, "before_cursor_execute", observe)
    try:
        assert gc.isenabled()
        assert imports.process_chunk(job_id, 0).next_chunk == 1
        assert gc.isenabled()  # given back
        first = list(collector_on)
        gc.disable()  # a caller that paused it keeps it paused
        try:
            assert imports.process_chunk(job_id, 1).next_chunk is None
            assert not gc.isenabled()
        finally:
            gc.enable()
    finally:
        event.remove(db.engine, "before_cursor_execute", observe)
    assert len(first) > 5 and not any(first)  # every statement of the chunk ran with the collector paused
    assert media_count() == 8


def test_a_failing_step_gives_the_collector_back(ctx: Flask) -> None:
    with pytest.raises(RuntimeError), imports._cycle_collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a chunk that failed")
    assert gc.isenabled()


def test_the_title_cache_covers_a_chunk_and_no_more(ctx: Flask) -> None:
    """Each cached title stays alive for the process's life: the cache holds a largest chunk's titles (each asked
    for at least twice in its chunk), and a large import does not keep every title it has seen."""
    title_key.cache_clear()
    for i in range(imports.LARGEST_CHUNK_ROWS):
        title_key(f"Chunk title {i}")
    for i in range(imports.LARGEST_CHUNK_ROWS):
        title_key(f"Chunk title {i}")
    assert title_key.cache_info().hits == imports.LARGEST_CHUNK_ROWS  # a chunk's second asks all hit
    for i in range(4 * imports.LARGEST_CHUNK_ROWS):
        title_key(f"Another title {i}")
    assert title_key.cache_info().currsize <= 2 * imports.LARGEST_CHUNK_ROWS


def test_a_row_the_database_refuses_fails_alone_and_the_rest_of_its_chunk_goes_in(
        ctx: Flask, actors: Actors, caplog: pytest.LogCaptureFixture) -> None:
    records = [book(f"w{i}", f"Whole {i}") for i in range(5)]
    # A file's size (a Plex file's) that no file has: it passes validation, and no integer column can hold it.
    records[2]["variants"] = [{"source_key": "file-1", "size_bytes": str(10**20)}]
    with caplog.at_level(logging.WARNING, logger="collectz.imports"):
        job = run_records(BOB, records, chunk_size=5)
    assert "retrying row by row" in caplog.text  # the chunk failed as a whole, then each row went on its own
    got = [(r.outcome, r.message or "", r.media_id is not None) for r in rows(job.id)]
    assert [(outcome, has_item) for outcome, _message, has_item in got] == [
        ("created", True), ("created", True), ("failed", False), ("created", True), ("created", True)]
    assert got[2][1].startswith("Could not be written: ")
    assert (job.status, job.created, job.failed, media_count()) == ("succeeded", 4, 1, 4)
    titles = db.session.scalars(select(Media.title).order_by(Media.title)).all()
    assert titles == ["Whole 0", "Whole 1", "Whole 3", "Whole 4"]


def test_cancel_stops_after_the_current_chunk_and_reports_what_was_done(ctx: Flask, actors: Actors) -> None:
    job_id = staged_job(BOB, [book(f"s{i}", f"Title {i}") for i in range(6)], chunk_size=2)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    imports.cancel(user(BOB), job_id)
    assert imports.process_chunk(job_id, 1) == imports.ChunkDone(None, succeeded_here=False)
    job = db.session.get(SyncJob, job_id)
    assert (job.status, job.processed, job.created, job.summary["created"]) == ("cancelled", 2, 2, 2)
    assert [r.outcome for r in rows(job_id)] == ["created"] * 2 + ["cancelled"] * 4
    actions = [a.action for a in db.session.scalars(select(ActivityLog).order_by(ActivityLog.id))]
    assert actions[-2:] == ["import.cancel_requested", "import.cancelled"]
    with pytest.raises(Conflict):
        imports.cancel(user(BOB), job_id)


def test_failed_rows_can_be_fixed_and_retried(ctx: Flask, actors: Actors) -> None:
    job = run_records(BOB, [book("a", "Fine"), {"line": 3, "source_id": "b", "media_type": "movie", "title": "Y",
                                                 "year": "19x5"}])
    failed = [r for r in rows(job.id) if r.outcome == "failed"]
    assert len(failed) == 1 and "year" in failed[0].message
    imports.fix_row(user(BOB), job.id, failed[0].id, {"year": "1985"})
    job, chunk = imports.retry_failed(user(BOB), job.id)
    assert (job.status, job.failed, job.processed, chunk) == ("running", 0, 1, 0)
    while chunk is not None:
        chunk = imports.process_chunk(job.id, chunk).next_chunk
    job = db.session.get(SyncJob, job.id)
    assert (job.status, job.created, job.failed, job.processed) == ("succeeded", 2, 0, 2)
    assert db.session.scalar(select(Media.year).where(Media.title == "Y")) == 1985
    with pytest.raises(Conflict):
        imports.retry_failed(user(BOB), job.id)


def test_only_the_owner_or_an_admin_sees_a_job(ctx: Flask, actors: Actors) -> None:
    job = run_records(BOB, [book("a", "Mine")])
    assert imports.get_job(user("alice@example.org"), job.id).id == job.id
    with pytest.raises(NotFound):
        imports.get_job(user("carol@example.org"), job.id)
    assert imports.list_jobs(user("carol@example.org")).total == 0
    assert imports.list_jobs(user("alice@example.org")).total == 1


# --- the sweeper -------------------------------------------------------------------------------------------------


def test_the_sweeper_revives_only_jobs_without_a_sign_of_life(ctx: Flask, actors: Actors) -> None:
    stale = staged_job(BOB, [book("a", "A"), book("b", "B"), book("c", "C")], chunk_size=1)
    fresh = staged_job(BOB, [book("d", "D")])
    imports.process_chunk(stale, 0)
    db.session.execute(update(SyncJob).where(SyncJob.id == stale).values(
        heartbeat_at=utcnow() - timedelta(minutes=10)))
    db.session.commit()
    revived = imports.sweep(stale_seconds=60)
    assert [(r.job_id, r.step, r.chunk) for r in revived] == [(stale, "chunk", 1)]
    assert fresh not in [r.job_id for r in revived]
    assert imports.sweep(stale_seconds=60) == []  # its heartbeat was reset: not revived twice in one interval


# --- staging from a file -----------------------------------------------------------------------------------------


def _csv(tmp_path: Path, text: str, name: str = "items.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _start_csv(path: Path, email: str = BOB) -> SyncJob:
    from collectz.importers import csv_generic

    upload = imports.save_upload_from_path(user(email), "csv", path)
    mapping = csv_generic.auto_mapping(csv_generic.inspect(upload.path).columns)
    job, created = imports.start_import(user(email), upload, {"mapping": mapping})
    assert created
    return job


def test_a_csv_file_is_staged_then_imported_and_the_file_is_removed(ctx: Flask, actors: Actors,
                                                                    tmp_path: Path) -> None:
    path = _csv(tmp_path, "Type,Title,Year,ISBN\nbook,Dune,1965,0441013597\nmovie,Alien,1979,\n"
                          "movie,Alien,1979,\n")
    job = _start_csv(path)
    upload_path = imports.upload_dir() / f"{job.options['upload']}.upload"
    assert upload_path.exists()
    job = imports.run_inline(job.id)
    assert (job.status, job.total, job.created, job.updated) == ("succeeded", 3, 2, 1)  # two identical rows: 2 copies
    assert not upload_path.exists()
    sources = db.session.scalars(select(MediaSource.source_id).order_by(MediaSource.id)).all()
    assert len(sources) == 3 and len(set(sources)) == 3 and sources[2].endswith("#2")
    again = imports.run_inline(_start_csv(path).id)
    assert (again.created, again.updated, again.skipped) == (0, 0, 3)


def test_staging_resumes_after_the_rows_already_stored(ctx: Flask, actors: Actors, tmp_path: Path) -> None:
    path = _csv(tmp_path, "Title\n" + "".join(f"Item {i}\n" for i in range(5)))
    job = _start_csv(path)
    # As if a worker died after storing the first two rows of the file.
    for number in (1, 2):
        db.session.add(ImportRow(job_id=job.id, row_number=number, outcome="pending",
                                 raw={"title": f"Item {number - 1}", "line": number + 1}))
    db.session.commit()
    job = imports.run_inline(job.id)
    assert (job.total, job.created) == (5, 5)
    assert db.session.scalar(select(func.count(ImportRow.id)).where(ImportRow.job_id == job.id)) == 5


def _chunks(job_id: int) -> dict[int, int]:
    """Rows per chunk of a job, as the stage stored them."""
    return dict(db.session.execute(select(ImportRow.chunk, func.count(ImportRow.id)).where(
        ImportRow.job_id == job_id).group_by(ImportRow.chunk)).all())


def test_a_file_of_short_rows_is_imported_in_larger_chunks(ctx: Flask, actors: Actors, tmp_path: Path) -> None:
    assert not ctx.config["COLLECTZ"].IMPORT_CHUNK_SIZE  # the default: chosen per import
    path = _csv(tmp_path, "Type,Title,Year\n" + "".join(f"book,Short {i},{1950 + i % 70}\n" for i in range(1500)))
    job = _start_csv(path)
    assert job.options["chunk_size"] is None
    assert imports.stage(job.id) == 0
    db.session.expire_all()
    job = db.session.get(SyncJob, job.id)
    assert job.options["chunk_size"] == imports.LARGEST_CHUNK_ROWS  # ~100-byte rows: far below 1.5 MiB a chunk
    assert _chunks(job.id) == {0: 1500}
    assert imports.process_chunk(job.id, 0).next_chunk is None  # one chunk, one transaction
    assert (job.status, job.processed, job.created) == ("succeeded", 1500, 1500)


def test_a_file_of_long_rows_keeps_chunks_of_a_thousand(ctx: Flask, actors: Actors, tmp_path: Path) -> None:
    notes = "A long note. " * 160  # about 2 KB a row: 768 rows would make 1.5 MiB, fewer than the 1,000 at least
    path = _csv(tmp_path, "Title,Notes\n" + "".join(f"Long {i},{notes}\n" for i in range(1200)))
    job = imports.run_inline(_start_csv(path).id)
    assert (job.status, job.created, job.options["chunk_size"]) == ("succeeded", 1200, imports.DEFAULT_CHUNK_ROWS)
    assert _chunks(job.id) == {0: 1000, 1: 200}


def test_a_set_chunk_size_is_kept_whatever_the_rows(ctx: Flask, actors: Actors, tmp_path: Path) -> None:
    ctx.config["COLLECTZ"].IMPORT_CHUNK_SIZE = 4
    path = _csv(tmp_path, "Title\n" + "".join(f"Fixed {i}\n" for i in range(10)))
    job = imports.run_inline(_start_csv(path).id)
    assert (job.status, job.created, job.options["chunk_size"]) == ("succeeded", 10, 4)
    assert _chunks(job.id) == {0: 4, 1: 4, 2: 2}


@pytest.mark.parametrize(("kind", "record_bytes", "rows"), [
    ("csv", 100, 5000), ("csv", 300, 5000), ("csv", 786, 2001), ("csv", 5000, 1000),
    ("delicious", 300, 2621), ("delicious", 786, 1000)])  # a Delicious export's chunks hold half as many bytes
def test_rows_per_chunk_follow_the_size_of_the_rows(ctx: Flask, kind: str, record_bytes: int, rows: int) -> None:
    padding = record_bytes - len(json.dumps({"title": ""}))
    records = [{"title": "x" * padding}] * 50
    assert imports._sized_chunk(records, kind) == rows


def test_a_stage_that_another_run_finished_meanwhile_leaves_the_job_to_its_chunks(ctx: Flask, actors: Actors,
                                                                                  tmp_path: Path) -> None:
    # The sweeper revives a job whose first stage was only slow: both runs start while the job is unstaged; one
    # stores every row and removes the file; the other then finds the file gone. The job is fine: no failure.
    import threading

    job = _start_csv(_csv(tmp_path, "Title\n" + "".join(f"Item {i}\n" for i in range(5))))
    app = ctx

    def other_run() -> None:
        with app.app_context():
            imports.stage(job.id)
            db.session.remove()

    fired: list[bool] = []

    def between_check_and_read(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # The first run has seen the job unstaged and is about to read the file: the other run goes first.
        if not fired and "max(import_rows.row_number)" in statement:
            fired.append(True)
            thread = threading.Thread(target=other_run)
            thread.start()
            thread.join(30)

    event.listen(db.engine, "before_cursor_execute", between_check_and_read)
    try:
        next_chunk = imports.stage(job.id)
    finally:
        event.remove(db.engine, "before_cursor_execute", between_check_and_read)
    assert fired and next_chunk == 0
    job = imports.run_inline(job.id)
    assert (job.status, job.error, job.total, job.created) == ("succeeded", None, 5, 5)


def test_the_same_file_twice_while_the_first_runs_returns_the_first_job(ctx: Flask, actors: Actors,
                                                                      tmp_path: Path) -> None:
    path = _csv(tmp_path, "Title\nA\n")
    first = _start_csv(path)
    upload = imports.save_upload_from_path(user(BOB), "csv", path)
    job, created = imports.start_import(user(BOB), upload, {"mapping": {"title": "Title"}})
    assert (job.id, created) == (first.id, False)
    assert not upload.path.exists()


def test_an_unreadable_file_fails_the_job_with_nothing_written(ctx: Flask, actors: Actors, tmp_path: Path) -> None:
    path = tmp_path / "export.xml"
    rows_xml = "".join(f"<dict><key>title</key><string>Book {i}</string><key>uuidString</key><string>u{i}</string>"
                       "</dict>" for i in range(1500))
    path.write_text(f'<?xml version="1.0"?><plist version="1.0"><array>{rows_xml}<dict><key>oops</array></plist>')
    upload = imports.save_upload_from_path(user(BOB), "delicious", path)
    job, _ = imports.start_import(user(BOB), upload)
    job = imports.run_inline(job.id)
    assert job.status == "failed" and "malformed" in job.error.lower()
    assert media_count() == 0
    assert db.session.scalar(select(func.count(ImportRow.id))) == 0
    failure = db.session.scalar(select(ActivityLog).where(ActivityLog.action == "import.failed"))
    assert failure.status == "failed" and failure.reason == job.error


def test_a_barcode_batch_matches_the_catalog_and_adds_stubs(ctx: Flask, actors: Actors) -> None:
    from collectz.importers.barcode import parse_codes

    run_records(BOB, [book("a", "Dune", "9780441013593")])
    job = imports.start_barcodes(user(BOB), parse_codes("978-0-441-01359-3\n036000291452\nhello"))
    job = imports.run_inline(job.id)
    got = [(r.outcome, r.matched_by) for r in rows(job.id)]
    assert got[0] == ("skipped", "isbn13")
    assert got[1] == ("created", None)
    assert got[2][0] == "failed" and "EAN/UPC" in rows(job.id)[2].message
    stub = db.session.get(Media, rows(job.id)[1].media_id)
    assert (stub.title, stub.ean13) == ("Barcode 036000291452", "0036000291452")
    assert db.session.scalar(select(MediaMetadata.value).where(
        MediaMetadata.media_id == stub.id, MediaMetadata.key == "needs_details")) == "1"


# --- the command line ---------------------------------------------------------------------------------------------


def test_flask_import_prints_a_json_summary_and_fails_loudly(app: Flask, actors: Actors, tmp_path: Path) -> None:
    path = _csv(tmp_path, "Type,Title,Year\nbook,Dune,1965\nmovie,Bad,1700\n")
    runner = app.test_cli_runner()
    dry = runner.invoke(args=["import", "csv", str(path), "--owner", BOB, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    summary = json.loads(dry.output)
    assert (summary["status"], summary["created"], summary["failed"]) == ("dry-run", 1, 1)
    with app.app_context():
        assert media_count() == 0
    result = runner.invoke(args=["import", "csv", str(path), "--owner", BOB])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert {k: summary[k] for k in ("status", "total", "created", "updated", "skipped", "failed")} == \
        {"status": "succeeded", "total": 2, "created": 1, "updated": 0, "skipped": 0, "failed": 1}
    assert isinstance(summary["job_id"], int)
    empty = _csv(tmp_path, "", "empty.csv")
    failed = runner.invoke(args=["import", "csv", str(empty), "--owner", BOB])
    assert failed.exit_code == 1 and json.loads(failed.output)["status"] == "failed"
    nobody = runner.invoke(args=["import", "csv", str(path), "--owner", "nobody@example.org"])
    assert nobody.exit_code != 0


def test_with_redis_down_a_new_import_waits_for_the_sweeper(make_app: Any, tmp_path: Path) -> None:
    """Enqueueing fails quietly (the web request still succeeds); the job row stays queued and the sweeper, once
    it finds the job stale, hands its first step to the workers again."""
    from collectz.jobs import imports as import_jobs

    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    Actors(app)
    path = _csv(tmp_path, "Title\nA\n")
    with app.app_context():
        job = _start_csv(path)
        assert import_jobs.enqueue_stage(job.id) is False
        db.session.execute(update(SyncJob).where(SyncJob.id == job.id).values(
            heartbeat_at=utcnow() - timedelta(minutes=10)))
        db.session.commit()
        assert [(r.job_id, r.step) for r in imports.sweep(stale_seconds=60)] == [(job.id, "stage")]
        assert db.session.get(SyncJob, job.id).status == "queued"
        db.session.remove()


def test_the_sweeper_leaves_a_step_that_is_only_waiting_in_the_queue(app: Flask, actors: Actors, tmp_path: Path,
                                                                      job_app: None) -> None:
    """A job queued behind other work shows no sign of life either: its step, still in the queue, is not enqueued
    a second time (two chains would run). A step that Redis lost is."""
    from collectz import jobs
    from collectz import queue as queues
    from collectz.jobs import imports as import_jobs

    jobs.set_app(app)
    with app.app_context():
        staged = staged_job(BOB, [book("a", "A"), book("b", "B")], chunk_size=1)
        unstaged = _start_csv(_csv(tmp_path, "Title\nA\n"))
        assert import_jobs.enqueue_chunk(staged, 0) and import_jobs.enqueue_stage(unstaged.id)
        stale = utcnow() - timedelta(seconds=app.config["COLLECTZ"].IMPORT_STALE_SECONDS + 60)
        db.session.execute(update(SyncJob).values(heartbeat_at=stale))
        db.session.commit()
        imports_queue = queues.get_queue("imports")
        assert import_jobs.sweep_imports() == 0
        assert sorted(imports_queue.get_job_ids()) == [f"import-{staged}-chunk-0", f"import-{unstaged.id}-stage"]
        # Redis restarted empty: both steps are gone, and both are enqueued again, once.
        queues.connection().flushdb()
        db.session.execute(update(SyncJob).values(heartbeat_at=stale))
        db.session.commit()
        assert import_jobs.sweep_imports() == 2
        assert sorted(imports_queue.get_job_ids()) == [f"import-{staged}-chunk-0", f"import-{unstaged.id}-stage"]
        db.session.remove()


def test_with_redis_down_the_sweeper_enqueues_nothing_and_says_so(make_app: Any, tmp_path: Path,
                                                                  job_app: None) -> None:
    """The sweep itself must not fail while Redis is down: it counts no step as enqueued, logs each stale job,
    and the job waits for a later sweep."""
    from collectz import jobs
    from collectz.jobs import imports as import_jobs

    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    Actors(app)
    jobs.set_app(app)
    with app.app_context():
        job = _start_csv(_csv(tmp_path, "Title\nA\n"))
        db.session.execute(update(SyncJob).where(SyncJob.id == job.id).values(
            heartbeat_at=utcnow() - timedelta(minutes=10)))
        db.session.commit()
        assert import_jobs.sweep_imports() == 0
        assert db.session.get(SyncJob, job.id).status == "queued"
        db.session.remove()


def test_rows_without_an_entry_id_keep_the_content_ids_earlier_versions_gave_them() -> None:
    """A row with no entry id is known by a hash of what it says (and which occurrence of it this is): re-importing a
    file imported by an earlier version must map its rows back to the same items, so the hash never changes."""
    records = [{"media_type": "movie", "title": "Fight Club", "year": "1999", "people": [["director", "David Fincher"]],
                "formats": ["DVD"], "location": "Shelf A"}, {"title": "Fight Club"}, {"title": "Fight Club"},
               {"title": "Named", "source_id": "mine"}]
    assert [r["source_id"] for r in imports._with_content_ids(iter(records), "csv")] == [
        "csv:6a540be045888af40819#1", "csv:7a6ea54dcd9554801a6f#1", "csv:7a6ea54dcd9554801a6f#2", "mine"]
