"""Driver-level bulk writes: type conversion and column defaults as SQLAlchemy would apply them, few statement
shapes, ON CONFLICT DO NOTHING, updates a page of rows at a time — on both databases."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from sqlalchemy import event, select, text
from sqlalchemy.exc import IntegrityError

from collectz.extensions import db
from collectz.models import ImportRow, Media, SyncJob
from collectz.models.media import make_sort_title
from collectz.services.bulk_rows import MAX_PAGE, _pages, insert_rows, insert_stream, update_rows
from collectz.services.users import ensure_default_library
from tests.test_library_browse import browse_service


def _running_job(actors, mark: str) -> SyncJob:
    job = SyncJob(kind="csv", status="running", source_name="t", source_hash=mark * 64, options={},
                  created_by=actors.ids["bob"])
    db.session.add(job)
    db.session.commit()
    return job


@contextmanager
def _executions() -> Iterator[list[tuple[str, bool]]]:
    """(SQL, run for many rows?) of each statement sent meanwhile (through SQLAlchemy: PostgreSQL's COPY is not among
    them)."""
    executed: list[tuple[str, bool]] = []
    listener = event.listens_for(db.engine, "before_cursor_execute")(
        lambda conn, cursor, sql, params, context, many: executed.append((sql, many)))
    try:
        yield executed
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)


@contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL of each statement sent meanwhile (see _executions), once the block has ended."""
    statements: list[str] = []
    with _executions() as executed:
        yield statements
    statements.extend(sql for sql, _many in executed)


def test_pages_are_powers_of_two_within_the_limits() -> None:
    assert _pages(0, 100) == []
    assert _pages(1000, 963) == [(0, 256), (256, 256), (512, 256), (768, 128), (896, 64), (960, 32), (992, 8)]
    assert _pages(5, 2) == [(0, 2), (2, 2), (4, 1)]
    for count in (1, 7, 255, 256, 257, 3333):
        pages = _pages(count, 10_000)
        assert sum(size for _start, size in pages) == count
        assert all(size <= MAX_PAGE and size & (size - 1) == 0 for _start, size in pages)


def test_rows_go_in_converted_with_defaults_and_conflicts_skipped(app: Flask, actors) -> None:
    with app.app_context():
        job = _running_job(actors, "x")
        with _executions() as executed:
            rows = [{"job_id": job.id, "row_number": n, "chunk": 0, "outcome": "pending",
                     "raw": {"title": f"Item {n}", "people": [["author", "Ö Ñ"]]}} for n in range(1, 301)]
            insert_rows(ImportRow.__table__, rows, on_conflict_do_nothing=("job_id", "row_number"))
            insert_rows(ImportRow.__table__, rows[:10], on_conflict_do_nothing=("job_id", "row_number"))  # skipped
            db.session.commit()
        inserts = [(sql, many) for sql, many in executed if sql.startswith("INSERT")]
        assert len(inserts) == 2
        if db.engine.dialect.name == "sqlite":  # a single-row statement run for every row: no statement journal
            assert all(many and sql.count("(?") == 1 and "ON CONFLICT" in sql for sql, many in inserts)
        else:  # COPY into a scratch table, then one INSERT ... SELECT ... ON CONFLICT per call
            assert all("SELECT" in sql and "ON CONFLICT" in sql for sql, _many in inserts)
        stored = db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                    .order_by(ImportRow.row_number)).all()
        assert len(stored) == 300 and stored[0].raw == {"title": "Item 1", "people": [["author", "Ö Ñ"]]}
        assert stored[0].updated_at is not None and stored[0].match_mode is None  # the column default applied
        if db.engine.dialect.name == "sqlite":  # the defaults went in converted by their type, as the ORM's do
            stamps = [*db.session.scalars(text("SELECT updated_at FROM import_rows WHERE job_id = :job"),
                                          {"job": job.id}),
                      db.session.scalar(text("SELECT created_at FROM sync_jobs WHERE id = :job"), {"job": job.id})]
            assert len(stamps) == 301 and all(
                re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", stamp) for stamp in stamps)

        update_rows(ImportRow.__table__, "id", [{"id": r.id, "outcome": "created", "message": None}
                                                 for r in stored[:2]])
        db.session.commit()
        db.session.expire_all()
        assert [r.outcome for r in db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                                      .order_by(ImportRow.row_number).limit(3))] == \
            ["created", "created", "pending"]
        db.session.remove()


def test_updates_go_a_page_at_a_time_and_change_exactly_their_rows(app: Flask, actors) -> None:
    """Each row gets its own values (text, NULLs, timestamps converted by their type), rows left out keep theirs.
    SQLite: an UPDATE ... FROM a page of rows' VALUES per statement, not a statement per row (within a transaction,
    SQLite journals every page each statement changes); PostgreSQL: one UPDATE ... FROM a scratch table."""
    with app.app_context():
        job = _running_job(actors, "u")
        insert_rows(ImportRow.__table__, [{"job_id": job.id, "row_number": n, "chunk": 0, "outcome": "pending",
                                           "message": f"before {n}", "raw": {"n": n}} for n in range(1, 311)])
        db.session.commit()
        ids = {number: row_id for number, row_id in db.session.execute(
            select(ImportRow.row_number, ImportRow.id).where(ImportRow.job_id == job.id))}
        stamp = datetime(2026, 11, 27, 18, 30, 5, 123456, tzinfo=UTC)
        changes = [{"id": ids[n], "outcome": "failed" if n % 2 else "created",
                    "match_mode": None if n % 3 else "fallback_title_only",
                    "message": None if n % 5 == 0 else f"row {n}: \"quoted\", 'single', ünïcødé", "updated_at": stamp}
                   for n in range(1, 301)]
        with _executions() as executed:
            update_rows(ImportRow.__table__, "id", changes)
            db.session.commit()
        updates = [sql for sql, _many in executed if sql.startswith("UPDATE")]
        if db.engine.dialect.name == "sqlite":  # 256 + 32 + 8 + 4 rows
            assert len(updates) == 4 and all("FROM (VALUES" in sql for sql in updates)
        else:
            assert len(updates) == 1 and "FROM bulk_scratch_" in updates[0]
        db.session.expire_all()
        stored = db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                    .order_by(ImportRow.row_number)).all()
        assert [(r.outcome, r.match_mode, r.message, r.updated_at) for r in stored[:300]] == [
            (c["outcome"], c["match_mode"], c["message"], stamp) for c in changes]
        assert [(r.outcome, r.message, r.raw) for r in stored[300:]] == [
            ("pending", f"before {n}", {"n": n}) for n in range(301, 311)]
        assert all(r.raw == {"n": r.row_number} for r in stored)  # columns not named are left as they were
        db.session.remove()


def test_plain_inserts_keep_every_value_exactly(app: Flask, actors) -> None:
    """Without ON CONFLICT, PostgreSQL takes the rows by COPY: text with tabs, newlines, backslashes and quotes, JSON,
    NULLs, numbers and timestamps arrive exactly as given (and no INSERT statement is sent)."""
    with app.app_context():
        job = _running_job(actors, "y")
        tricky = "tab\there\nnew line \\N back\\slash \"quoted\" 'single' \r ünïcødé ✓ \\."
        rows = [{"job_id": job.id, "row_number": n, "chunk": n // 10, "outcome": "failed" if n % 2 else "created",
                 "message": None if n % 3 == 0 else f"{tricky} {n}", "media_id": None,
                 "raw": {"title": tricky, "n": n, "list": [1.5, None, True], "nested": {"\\N": "\t"}}}
                for n in range(1, 41)]
        with _statements() as statements:
            insert_rows(ImportRow.__table__, rows)
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            assert not [s for s in statements if s.startswith("INSERT")]
        db.session.expire_all()
        stored = db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                    .order_by(ImportRow.row_number)).all()
        assert [(r.row_number, r.chunk, r.outcome, r.message, r.raw) for r in stored] == [
            (r["row_number"], r["chunk"], r["outcome"], r["message"], r["raw"]) for r in rows]
        assert all(r.updated_at is not None and r.updated_at.tzinfo is not None for r in stored)
        db.session.remove()


def test_json_columns_are_written_by_orjson_with_keys_made_strings_as_json_does(app: Flask, actors) -> None:
    """JSON columns go through orjson (engine options), by the ORM and by bulk writes alike: compact text with
    characters as they are (an import stores a record per row), and keys that are not strings made strings, as the
    standard library's json makes them."""
    with app.app_context():
        job = _running_job(actors, "j")
        job.options = {7: "seven", None: "none", True: "yes", "é": ["ü", 1.5]}
        insert_rows(ImportRow.__table__, [{"job_id": job.id, "row_number": 1, "chunk": 0, "outcome": "pending",
                                            "raw": {"title": "Über", 2: "two"}}])
        db.session.commit()
        db.session.expire_all()
        assert db.session.get(SyncJob, job.id).options == {"7": "seven", "null": "none", "true": "yes", "é": ["ü", 1.5]}
        assert db.session.scalar(select(ImportRow.raw).where(ImportRow.job_id == job.id)) == {"title": "Über",
                                                                                               "2": "two"}
        cast = "::text" if db.engine.dialect.name == "postgresql" else ""
        stored = db.session.execute(text(f"SELECT raw{cast} FROM import_rows WHERE job_id = :j"), {"j": job.id})
        assert stored.scalar_one() == '{"title":"Über","2":"two"}'
        db.session.remove()


def test_columns_empty_in_every_row_are_left_to_the_database(app: Flask, actors) -> None:
    """A nullable column with no default that is None in every row of a call is not sent (the database stores its
    NULL all the same); one with a value in any row is, and so is every column that has a default."""
    with app.app_context():
        job = _running_job(actors, "z")
        rows = [{"job_id": job.id, "row_number": n, "chunk": 0, "outcome": "pending", "message": None,
                 "match_mode": "fallback_title_only" if n == 30 else None, "media_id": None, "raw": {"n": n}}
                for n in range(1, 31)]
        with _statements() as statements:
            insert_rows(ImportRow.__table__, rows)
            db.session.commit()
        if db.engine.dialect.name == "sqlite":  # (PostgreSQL's COPY goes past the statement events)
            columns = statements[-1].split("(", 1)[1].split(")", 1)[0].split(", ")
            assert "message" not in columns and "media_id" not in columns
            assert {"match_mode", "raw", "updated_at"} <= set(columns)  # a value in one row; a default
        db.session.expire_all()
        stored = db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                    .order_by(ImportRow.row_number)).all()
        assert [(r.row_number, r.message, r.match_mode, r.media_id, r.raw) for r in stored] == [
            (n, None, "fallback_title_only" if n == 30 else None, None, {"n": n}) for n in range(1, 31)]
        assert all(r.updated_at is not None for r in stored)
        db.session.remove()


def _items(library_id: int, numbers: range) -> list[dict]:
    return [{"library_id": library_id, "media_type": "book", "title": f"Quillwort {n}",
             "sort_title": make_sort_title(f"Quillwort {n}"), "formats": ["Paperback"], "type_details": {"pages": n},
             "copies": 1, "release_date": date(2001, 2, 3), "rating": 7.5, "year": 2001,
             "search_text": f"quillwort {n} qx{n:04d}z"} for n in numbers]


def test_items_go_in_with_one_statement_and_search_finds_every_one(app: Flask, actors) -> None:
    """SQLite: the items of a call go into the table with one INSERT ... SELECT from a temporary copy filled a page
    at a time, so its full-text index takes them in one statement (a statement per page made its index write and
    merge many small segments). Every item is stored as given and found by search, and no call sees another's rows
    in the copy, also after a rollback."""
    with app.app_context():
        library_id = ensure_default_library().id
        db.session.commit()
        with _statements() as statements:
            insert_rows(Media.__table__, _items(library_id, range(1, 601)))
            db.session.commit()
        if db.engine.dialect.name == "sqlite":
            into_media = [s for s in statements if s.startswith("INSERT INTO main.media ")]
            into_copy = [s for s in statements if s.startswith("INSERT INTO temp.bulk_media ")]
            assert len(into_media) == 1 and "SELECT" in into_media[0]
            assert len(into_copy) == 5  # 256 + 256 + 64 + 16 + 8 rows, into the copy

        insert_rows(Media.__table__, _items(library_id, range(601, 901)))  # the copy holds none of the first call's
        db.session.rollback()
        insert_rows(Media.__table__, _items(library_id, range(901, 1201)))  # nor of the rolled-back call's
        db.session.commit()
        stored = db.session.execute(select(Media.title, Media.release_date, Media.formats, Media.type_details,
                                           Media.rating, Media.copies).order_by(Media.id)).all()
        numbers = [*range(1, 601), *range(901, 1201)]
        assert [tuple(row) for row in stored] == [
            (f"Quillwort {n}", date(2001, 2, 3), ["Paperback"], {"pages": n}, 7.5, 1) for n in numbers]
        if db.engine.dialect.name == "sqlite":  # the copy is gone with its call
            assert db.session.scalar(text("SELECT count(*) FROM temp.sqlite_master WHERE name = 'bulk_media'")) == 0
        db.session.remove()
    bob = actors.ids["bob"]
    for n in (1, 417, 600, 901, 1200):
        page = browse_service(app, bob, q=f"qx{n:04d}z")
        assert page.total == 1 and [row.title for row in page.rows] == [f"Quillwort {n}"]
    assert browse_service(app, bob, q="qx0700z").total == 0  # rolled back
    assert browse_service(app, bob, q="quillwort").total == 900


def _copying_into(table: str) -> int | None:
    """PostgreSQL: the rows a COPY into `table` has stored so far, as another session sees them (None: no COPY)."""
    with db.engine.connect() as other:
        return other.execute(text("SELECT tuples_processed FROM pg_stat_progress_copy "
                                  "WHERE relid = CAST(:t AS regclass)"), {"t": table}).scalar()


def test_streamed_rows_are_stored_while_the_caller_still_makes_the_rest(app: Flask, actors) -> None:
    """insert_stream takes rows as they are made. PostgreSQL: the server has stored the first ones before the last
    one is made (the client's work and the server's overlap); both: every row with its values and defaults."""
    with app.app_context():
        job = _running_job(actors, "s")
        seen_while_making: list[int | None] = []

        def made() -> Iterator[dict]:
            for n in range(1, 3001):
                if n == 2001 and db.engine.dialect.name == "postgresql":
                    deadline = time.monotonic() + 10
                    while not (_copying_into("import_rows") or 0) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    seen_while_making.append(_copying_into("import_rows"))
                yield {"job_id": job.id, "row_number": n, "chunk": n // 1000, "outcome": "pending",
                       "raw": {"title": f"Streamed {n}"}}

        insert_stream(ImportRow.__table__, made())
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            assert seen_while_making and 0 < seen_while_making[0] <= 2000
        stored = db.session.execute(select(ImportRow.row_number, ImportRow.raw, ImportRow.updated_at).where(
            ImportRow.job_id == job.id).order_by(ImportRow.row_number)).all()
        assert [r.row_number for r in stored] == list(range(1, 3001))
        assert stored[-1].raw == {"title": "Streamed 3000"} and all(r.updated_at is not None for r in stored)
        insert_stream(ImportRow.__table__, iter(()))  # nothing to store: no statement, no error
        db.session.remove()


def test_a_copy_that_breaks_a_constraint_raises_as_sqlalchemy_does(app: Flask, actors) -> None:
    """PostgreSQL's COPY goes through the driver itself; its errors come out as SQLAlchemy's own (an IntegrityError
    for a duplicate key), so callers handle them as they handle any statement's."""
    with app.app_context():
        job = _running_job(actors, "d")
        row = {"job_id": job.id, "row_number": 1, "chunk": 0, "outcome": "pending", "raw": {}}
        insert_rows(ImportRow.__table__, [row])
        db.session.commit()
        with pytest.raises(IntegrityError):
            insert_rows(ImportRow.__table__, [row])
        db.session.rollback()
        with pytest.raises(IntegrityError):
            insert_stream(ImportRow.__table__, iter([row]))
        db.session.rollback()
        db.session.remove()
