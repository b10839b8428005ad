"""How an import keeps this process and the database busy at the same time: a chunk's next chunk is read and
converted on a thread while the chunk writes (and is read again when its rows changed meanwhile), planner statistics
are taken on a thread of their own, and the stage streams its rows while it parses (a run that meets rows another
run stored leaves the job to that run)."""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text, update

from collectz.extensions import db
from collectz.models import ImportRow, Media, SyncJob, User
from collectz.services import bulk_rows, imports
from tests.conftest import Actors
from tests.imports_helpers import rows, staged_job
from tests.test_imports_lookups import wait_for_counted_changes

BOB = "bob@example.org"


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


@contextmanager
def _statements() -> Iterator[list[tuple[str, str]]]:
    """(thread name, SQL) of each statement sent through SQLAlchemy meanwhile, from any thread."""
    seen: list[tuple[str, str]] = []

    def listener(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((threading.current_thread().name, statement))

    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        imports.wait_for_statistics()
        event.remove(db.engine, "before_cursor_execute", listener)


def _reads_of_records(seen: list[tuple[str, str]]) -> list[str]:
    """The threads that read staged records (the raw column) in the statements seen."""
    return [thread for thread, sql in seen if "import_rows.raw" in sql and sql.lstrip().startswith("SELECT")]


def _records(count: int, prefix: str) -> list[dict[str, Any]]:
    return [{"source_id": f"{prefix}{n}", "media_type": "book", "title": f"{prefix} {n}"} for n in range(count)]


def _titles(job_id: int) -> list[str]:
    return list(db.session.scalars(select(Media.title).join(ImportRow, ImportRow.media_id == Media.id).where(
        ImportRow.job_id == job_id).order_by(ImportRow.row_number)))


@pytest.fixture(autouse=True)
def _small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite reads ahead while one statement moves a chunk's gathered items into the catalog, and items are gathered
    when they fill more than a page of rows: these tests' small chunks do, with pages of 4 rows."""
    monkeypatch.setattr(bulk_rows, "MAX_PAGE", 4)


def test_the_next_chunk_is_read_and_converted_ahead_while_a_chunk_writes(ctx: Flask, actors: Actors) -> None:
    job_id = staged_job(BOB, _records(150, "Ahead"), chunk_size=50)
    here = threading.current_thread().name
    with _statements() as first:
        assert imports.process_chunk(job_id, 0).next_chunk == 1
    with _statements() as second:
        assert imports.process_chunk(job_id, 1).next_chunk == 2
    with _statements() as last:
        assert imports.process_chunk(job_id, 2).next_chunk is None
    assert _reads_of_records(first) == [here, f"import-{job_id}-ahead-1"]
    assert _reads_of_records(second) == [f"import-{job_id}-ahead-2"]  # its own rows were read ahead
    assert _reads_of_records(last) == []  # read ahead too; and no chunk after it to read
    job = db.session.get(SyncJob, job_id)
    assert (job.status, job.processed, job.created) == ("succeeded", 150, 150)
    assert _titles(job_id) == [f"Ahead {n}" for n in range(150)]


def test_rows_read_ahead_come_with_their_title_keys(ctx: Flask, actors: Actors) -> None:
    """The thread that reads ahead also works out each row's title key (a first import looks every row up by title),
    so that the chunk's own thread does not while the database waits."""
    job_id = staged_job(BOB, _records(10, "Keyed"), chunk_size=5)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    assert imports._ahead is not None and imports._ahead.chunk == 1
    imports._ahead.thread.join()
    items = imports._ahead.items
    assert items is not None and len(items) == 5
    assert [item.__dict__.get("title_key") for item in items] == [
        ("book", f"keyed {n}", None) for n in range(5, 10)]


def test_rows_that_changed_after_they_were_read_ahead_are_read_again(ctx: Flask, actors: Actors) -> None:
    """A row fixed (its record changed) or handled elsewhere (no longer pending) after the read-ahead: the chunk
    reads its rows itself, and imports what they say now."""
    job_id = staged_job(BOB, _records(20, "Changed"), chunk_size=10)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    assert imports._ahead is not None and imports._ahead.chunk == 1
    imports._ahead.thread.join()  # it has read row 11 as it was
    row_11, row_12 = rows(job_id)[10:12]
    row_11.raw = {"source_id": "Changed 10", "media_type": "book", "title": "Fixed title"}
    db.session.commit()
    with _statements() as seen:
        assert imports.process_chunk(job_id, 1).next_chunk is None
    assert _reads_of_records(seen) == [threading.current_thread().name]
    assert _titles(job_id)[10] == "Fixed title"

    job_id = staged_job(BOB, _records(20, "Elsewhere"), chunk_size=10)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    imports._ahead.thread.join()
    row_12 = rows(job_id)[11]
    db.session.execute(update(ImportRow).where(ImportRow.id == row_12.id).values(
        outcome="skipped", message="handled by another run"))
    db.session.commit()
    assert imports.process_chunk(job_id, 1).next_chunk is None
    job = db.session.get(SyncJob, job_id)
    assert (job.processed, job.created) == (19, 19)  # the skipped row was not handled again
    assert db.session.get(ImportRow, row_12.id).message == "handled by another run"


def test_rows_read_ahead_for_a_job_are_dropped_when_another_job_runs_first(ctx: Flask, actors: Actors) -> None:
    first = staged_job(BOB, _records(20, "First"), chunk_size=10)
    other = staged_job(BOB, _records(5, "Other"), chunk_size=10)
    assert imports.process_chunk(first, 0).next_chunk == 1
    assert imports.process_chunk(other, 0).next_chunk is None
    with _statements() as seen:
        assert imports.process_chunk(first, 1).next_chunk is None
    assert _reads_of_records(seen) == [threading.current_thread().name]
    assert _titles(first) == [f"First {n}" for n in range(20)] and _titles(other) == [f"Other {n}" for n in range(5)]


def test_statistics_are_taken_on_a_thread_of_their_own(ctx: Flask, actors: Actors) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: the planner's statistics (SQLite's import lookups use none)")
    db.session.execute(text("ANALYZE import_rows"))  # earlier tests' changes are not this test's
    db.session.commit()
    job_id = staged_job(BOB, _records(2400, "Stats"), chunk_size=1200)
    wait_for_counted_changes("import_rows", 2400)
    # The second chunk: after the first, the step takes them itself (see test_imports_lookups).
    with _statements() as seen:
        assert imports.process_chunk(job_id, 1).next_chunk == 0
    analysed = [(thread, sql) for thread, sql in seen if sql.startswith("ANALYZE")]
    assert (f"import-{job_id}-statistics", "ANALYZE import_rows") in analysed
    # Media too when its statistics described no rows (an earlier test's ANALYZE of an empty table): on the thread.
    assert {thread for thread, _sql in analysed} == {f"import-{job_id}-statistics"}


def _csv(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rows.csv"
    path.write_text(body, encoding="utf-8")
    return path


def test_a_stage_that_meets_rows_another_run_stored_leaves_the_job_to_that_run(
        ctx: Flask, actors: Actors, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The sweeper revived a job whose first stage was only slow: the other run stored rows this run was about to
    store. This run stops without failing the job; a later run resumes after the rows stored, and the job ends with
    every row once."""
    monkeypatch.setattr(imports, "LARGEST_CHUNK_ROWS", imports.STAGE_BATCH)  # stored a chunk's worth at a time
    path = _csv(tmp_path, "Title\n" + "".join(f"Staged {n}\n" for n in range(2500)))
    upload = imports.save_upload_from_path(user(BOB), "csv", path)
    job, _new = imports.start_import(user(BOB), upload, {"mapping": {"title": "Title"}})
    job_id = job.id
    stored_by_other: list[int] = []

    def other_run_stores_rows(_session: Any) -> None:
        if stored_by_other:
            return
        with db.engine.connect() as other:
            staged = other.execute(select(func.count()).where(ImportRow.job_id == job_id)).scalar()
            if staged != imports.STAGE_BATCH:
                return
            stored_by_other.append(staged)
            other.execute(ImportRow.__table__.insert(), [
                {"job_id": job_id, "row_number": n, "chunk": 0, "outcome": "pending",
                 "raw": {"title": f"Staged {n - 1}", "line": n + 1, "source_id": f"other-{n}"}}
                for n in range(imports.STAGE_BATCH + 1, imports.STAGE_BATCH + 11)])
            other.commit()

    event.listen(db.session, "after_commit", other_run_stores_rows)
    try:
        with caplog.at_level(logging.INFO, logger="collectz.imports"):
            assert imports.stage(job_id) is None
    finally:
        event.remove(db.session, "after_commit", other_run_stores_rows)
    assert stored_by_other and "import stage left to another run" in caplog.text
    job = db.session.get(SyncJob, job_id, populate_existing=True)
    assert (job.status, job.error, job.staged_at) == ("running", None, None)
    assert db.session.scalar(select(func.max(ImportRow.row_number)).where(ImportRow.job_id == job_id)) == 1010
    job = imports.run_inline(job_id)  # as the sweeper's next run of the stage, then the chunks
    assert (job.status, job.total, job.created, job.failed) == ("succeeded", 2500, 2500, 0)
    numbers = db.session.scalars(select(ImportRow.row_number).where(ImportRow.job_id == job_id)).all()
    assert sorted(numbers) == list(range(1, 2501))
    assert db.session.execute(text("SELECT count(*) FROM media")).scalar() == 2500


def test_a_chunk_does_not_wait_for_ever_for_rows_read_ahead(ctx: Flask, actors: Actors, monkeypatch: pytest.MonkeyPatch,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A read-ahead stuck on its connection: the chunk waits a bounded time, then reads its rows itself."""
    monkeypatch.setattr(imports, "_AHEAD_WAIT", 0.2)
    release = threading.Event()

    def stall_the_read_ahead(*_args: Any) -> None:
        if "-ahead-" in threading.current_thread().name:
            release.wait(10)

    job_id = staged_job(BOB, _records(20, "Stuck"), chunk_size=10)
    event.listen(db.engine, "before_cursor_execute", stall_the_read_ahead)
    try:
        assert imports.process_chunk(job_id, 0).next_chunk == 1
        with _statements() as seen, caplog.at_level(logging.WARNING, logger="collectz.imports"):
            assert imports.process_chunk(job_id, 1).next_chunk is None
    finally:
        release.set()
        event.remove(db.engine, "before_cursor_execute", stall_the_read_ahead)
    assert "did not finish in time" in caplog.text
    assert _reads_of_records(seen) == [threading.current_thread().name]
    assert _titles(job_id) == [f"Stuck {n}" for n in range(20)]


def test_rows_read_ahead_that_no_chunk_takes_are_let_go(ctx: Flask, actors: Actors,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another worker ran the next chunk, or the job was cancelled: an idle worker does not keep the records."""
    monkeypatch.setattr(imports, "_AHEAD_KEEP", 0.3)
    job_id = staged_job(BOB, _records(20, "Idle"), chunk_size=10)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    assert imports._ahead is not None
    deadline = time.monotonic() + 10
    while imports._ahead is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert imports._ahead is None
    assert imports.process_chunk(job_id, 1).next_chunk is None  # it reads its rows itself
    assert _titles(job_id) == [f"Idle {n}" for n in range(20)]


def test_rows_read_ahead_are_freed_when_their_chunk_ends_without_a_cycle_pass(ctx: Flask, actors: Actors) -> None:
    """Chunks run with the cycle collector paused: rows read ahead must not sit in a reference cycle (their timer
    once held them strongly, and a 100,000-row import grew by 15 MiB a chunk until a full pass)."""
    job_id = staged_job(BOB, _records(30, "Freed"), chunk_size=10)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    assert imports._ahead is not None
    taken = weakref.ref(imports._ahead)
    gc.disable()
    try:
        assert imports.process_chunk(job_id, 1).next_chunk == 2
        assert imports._ahead is not None and imports._ahead.chunk == 2
        assert taken() is None  # chunk 1 took its rows, and they went with it, without waiting for the collector
    finally:
        gc.enable()
    assert imports.process_chunk(job_id, 2).next_chunk is None
    assert _titles(job_id) == [f"Freed {n}" for n in range(30)]


@pytest.mark.parametrize(("step_seconds", "steps"), [(60.0, 1), (0.0, 3)])
def test_a_chunk_step_goes_on_with_its_jobs_next_chunks_for_a_few_seconds(app: Flask, actors: Actors,
                                                                          monkeypatch: pytest.MonkeyPatch,
                                                                          step_seconds: float, steps: int) -> None:
    """One rq step runs the job's chunks one after another (the rows read ahead are used in the same process) until
    its time is up, then queues the next chunk."""
    from rq.registry import FinishedJobRegistry

    from collectz import jobs
    from collectz.jobs import imports as import_jobs
    from collectz.jobs.runner import build_worker
    from collectz.queue import get_queue

    monkeypatch.setattr(import_jobs, "STEP_SECONDS", step_seconds)
    with app.app_context():
        job_id = staged_job(BOB, _records(30, "Stepped"), chunk_size=10)
        db.session.remove()
    jobs.set_app(app)
    with app.app_context():
        assert import_jobs.enqueue_chunk(job_id, 0)
    build_worker(app).work(burst=True)
    with app.app_context():
        queue = get_queue("imports")
        ran = sorted(FinishedJobRegistry(queue=queue).get_job_ids())
        job = db.session.get(SyncJob, job_id)
        assert (job.status, job.created) == ("succeeded", 30)
        assert _titles(job_id) == [f"Stepped {n}" for n in range(30)]
        db.session.remove()
    assert ran == sorted(import_jobs.step_id(job_id, "chunk", n) for n in range(steps))


def test_a_read_ahead_that_fails_leaves_the_chunk_to_read_its_rows(ctx: Flask, actors: Actors,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """The read-ahead's connection fails (the database restarted, say): it says so in the log, and the chunk reads
    its rows itself; nothing is lost."""

    def fail_the_read_ahead(*_args: Any) -> None:
        if "-ahead-" in threading.current_thread().name:
            raise RuntimeError("the connection went away")

    job_id = staged_job(BOB, _records(20, "Failed"), chunk_size=10)
    event.listen(db.engine, "before_cursor_execute", fail_the_read_ahead)
    try:
        with caplog.at_level(logging.WARNING, logger="collectz.imports"):
            assert imports.process_chunk(job_id, 0).next_chunk == 1
            with _statements() as seen:
                assert imports.process_chunk(job_id, 1).next_chunk is None
    finally:
        event.remove(db.engine, "before_cursor_execute", fail_the_read_ahead)
    assert "could not read an import chunk ahead" in caplog.text
    assert _reads_of_records(seen) == [threading.current_thread().name]
    job = db.session.get(SyncJob, job_id)
    assert (job.status, job.created, job.failed) == ("succeeded", 20, 0)
    assert _titles(job_id) == [f"Failed {n}" for n in range(20)]


def test_on_sqlite_a_chunk_waits_for_the_read_ahead_once_its_items_are_stored(ctx: Flask, actors: Actors) -> None:
    """SQLite works in this process: the next chunk is read while SQLite moves the chunk's items into the catalog
    (one statement, run without Python's lock), and the chunk waits for that read before its next statement."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("SQLite only: on PostgreSQL the read-ahead goes on while the server stores the chunk's rows")
    job_id = staged_job(BOB, _records(20, "Waited"), chunk_size=10)
    here = threading.current_thread().name
    after_the_items: list[tuple[bool, bool]] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        thread = threading.current_thread().name
        if "-ahead-" in thread:
            time.sleep(0.3)  # a slow read: the chunk's own statements would otherwise run meanwhile
        elif thread == here and statement.startswith("DROP TABLE temp.") and imports._ahead is not None:
            after_the_items.append((imports._ahead.thread.is_alive(), imports._ahead.items is not None))

    event.listen(db.engine, "before_cursor_execute", watch)
    try:
        assert imports.process_chunk(job_id, 0).next_chunk == 1
    finally:
        event.remove(db.engine, "before_cursor_execute", watch)
    assert after_the_items == [(False, True)]  # read, converted and ready by the end of the items' statement
    assert imports.process_chunk(job_id, 1).next_chunk is None
    assert _titles(job_id) == [f"Waited {n}" for n in range(20)]


def test_an_in_memory_database_is_not_read_ahead(ctx: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where every connection is the same one (an in-memory SQLite database), a thread reading "with a connection of
    its own" would share the chunk's transaction: chunks read their own rows."""
    from sqlalchemy.pool import StaticPool

    assert imports._reads_ahead()
    monkeypatch.setattr(db.engine, "pool", StaticPool(lambda: None))
    assert not imports._reads_ahead()
