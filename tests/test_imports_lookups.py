"""How an import's lookups stay fast as the catalog grows (PostgreSQL): the lookups of a chunk (entries, titles,
people) probe their indexes key by key, and an import refreshes the planner statistics of the tables it has grown."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

import pytest
from flask import Flask
from sqlalchemy import Column, Integer, MetaData, Table, text

from collectz.extensions import db
from collectz.models import ImportRow, Media, MediaSource, Person
from collectz.services import imports
from collectz.services.bulk_rows import insert_rows, refresh_statistics
from collectz.services.import_writer import _known_entries, _same_titles, _title_matches
from collectz.services.people import named_rows
from collectz.services.users import ensure_default_library
from tests.conftest import Actors, query_plan
from tests.imports_helpers import staged_job

BOB = "bob@example.org"


def postgres_only() -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner; SQLite's import lookups are written for its own (see _same_titles)")


def last_analyze(table: str) -> datetime | None:
    return db.session.execute(text("SELECT last_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                              {"t": table}).scalar()


def wait_for_counted_changes(table: str, at_least: int) -> None:
    """A backend reports its row counts to the statistics at most once a second: wait until they show."""
    deadline = time.monotonic() + 10
    while True:
        db.session.commit()  # a new transaction reads fresh statistics
        changed = db.session.execute(text("SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = :t"),
                                     {"t": table}).scalar()
        if changed >= at_least:
            return
        assert time.monotonic() < deadline, f"{table}: {changed} changes counted, {at_least} expected"
        time.sleep(0.2)


def test_an_import_refreshes_the_statistics_of_the_tables_it_grew(ctx: Flask, actors: Actors) -> None:
    postgres_only()
    db.session.execute(text("ANALYZE media"))
    db.session.execute(text("ANALYZE import_rows"))
    db.session.commit()
    before = {table: last_analyze(table) for table in ("media", "import_rows")}
    records = [{"source_id": f"s{i}", "media_type": "book", "title": f"Statistics {i}", "year": "2001"}
               for i in range(2400)]
    job_id = staged_job(BOB, records, chunk_size=1200)
    wait_for_counted_changes("import_rows", 2400)
    assert imports.process_chunk(job_id, 0).next_chunk == 1  # it analyses import_rows, which the staging grew
    wait_for_counted_changes("media", 1200)
    assert imports.process_chunk(job_id, 1).next_chunk is None  # ... and media, which the first chunk grew
    assert db.session.get(imports.SyncJob, job_id).created == 2400
    for table, then in before.items():
        now = last_analyze(table)
        assert now is not None and (then is None or now > then), table


def test_a_table_busy_elsewhere_is_left_alone_and_the_import_goes_on(ctx: Flask, actors: Actors,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """Another session vacuuming or analysing import_rows holds the lock ANALYZE needs: the statistics thread waits a
    moment and says so in the log, and the import goes on (nothing waits for that session to finish)."""
    postgres_only()
    db.session.execute(text("ANALYZE import_rows"))
    db.session.commit()
    before = last_analyze("import_rows")
    records = [{"source_id": f"b{i}", "media_type": "book", "title": f"Busy {i}"} for i in range(1200)]
    job_id = staged_job(BOB, records, chunk_size=600)
    wait_for_counted_changes("import_rows", 1200)
    other = db.engine.connect()
    other.execute(text("LOCK TABLE import_rows IN SHARE UPDATE EXCLUSIVE MODE"))  # what a VACUUM holds
    release = threading.Timer(5, other.rollback)  # without a bounded wait, the step would wait until then
    release.start()
    try:
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="collectz.imports"):
            assert imports.process_chunk(job_id, 0).next_chunk == 1
            imports.wait_for_statistics()
        took = time.monotonic() - started
    finally:
        release.cancel()
        other.rollback()
        other.close()
    assert took < 3
    assert "could not refresh table statistics" in caplog.text
    assert last_analyze("import_rows") == before
    assert imports.process_chunk(job_id, 1).next_chunk is None
    assert db.session.get(imports.SyncJob, job_id).created == 1200


def test_statistics_are_left_as_they_are_below_the_threshold(ctx: Flask, actors: Actors) -> None:
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("ANALYZE media"))
        db.session.execute(text("ANALYZE import_rows"))  # earlier tests' changes are not this test's
        db.session.commit()
    run = imports.run_inline(staged_job(BOB, [{"source_id": "one", "media_type": "book", "title": "Alone"}]))
    assert run.created == 1  # (its steps analysed both tables: their statistics described no rows)
    assert refresh_statistics([Media.__table__, ImportRow.__table__]) == []  # one row: nothing worth a new sample
    insert_rows(Media.__table__, [{"library_id": ensure_default_library().id, "media_type": "book",
                                   "title": "Another", "sort_title": "another", "formats": [], "search_text": ""}])
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        wait_for_counted_changes("media", 1)
    assert refresh_statistics([Media.__table__], after_rows=1) == (
        ["media"] if db.engine.dialect.name == "postgresql" else [])  # SQLite: never (no planner statistics used)


def test_a_table_whose_statistics_describe_no_rows_is_analysed_as_soon_as_it_has_some(ctx: Flask) -> None:
    """Whatever its change counts say (a session's reach the statistics views a second or more after it commits):
    without statistics of its values, the planner takes any index on its first column for one that finds a key."""
    postgres_only()
    probe = Table("statistics_probe", MetaData(), Column("id", Integer))
    db.session.execute(text("DROP TABLE IF EXISTS statistics_probe"))
    db.session.execute(text("CREATE TABLE statistics_probe (id integer)"))
    db.session.commit()
    try:
        assert refresh_statistics([probe]) == []  # empty: nothing to learn
        db.session.execute(text("ANALYZE statistics_probe"))  # analysed empty: no pages
        db.session.execute(text("INSERT INTO statistics_probe SELECT generate_series(1, 10)"))
        db.session.commit()
        assert refresh_statistics([probe]) == ["statistics_probe"]  # 10 changes, far below the 1,000 asked
        db.session.commit()
        reltuples = db.session.scalar(text("SELECT reltuples FROM pg_class WHERE relname = 'statistics_probe'"))
        assert reltuples == 10
        assert refresh_statistics([probe]) == []  # described now
    finally:
        db.session.rollback()
        db.session.execute(text("DROP TABLE IF EXISTS statistics_probe"))
        db.session.commit()


def test_the_first_chunk_takes_its_statistics_before_the_next_chunk_runs(ctx: Flask, actors: Actors) -> None:
    """The first chunk fills tables from empty: the next chunk's lookups must not be planned before their statistics
    are taken, so the step takes them itself; later chunks leave them to a thread, and the last one waits for it."""
    postgres_only()
    records = [{"source_id": f"f{i}", "media_type": "book", "title": f"First {i}"} for i in range(30)]
    job_id = staged_job(BOB, records, chunk_size=10)
    assert imports.process_chunk(job_id, 0).next_chunk == 1
    assert imports._statistics is None  # taken in the step
    assert db.session.scalar(text("SELECT relpages FROM pg_class WHERE relname = 'media'")) > 0
    assert imports.process_chunk(job_id, 1).next_chunk == 2
    assert imports._statistics is not None  # on a thread while the next chunk runs
    assert imports.process_chunk(job_id, 2).next_chunk is None
    assert imports._statistics is None


def _many_entries(count: int) -> None:
    library = ensure_default_library().id
    insert_rows(Media.__table__, [
        {"id": i, "library_id": library, "media_type": "book", "title": f"Entry {i}", "sort_title": f"entry {i}",
         "year": 2000 + i % 20, "formats": [], "search_text": f"entry {i}"} for i in range(1, count + 1)])
    insert_rows(MediaSource.__table__, [{"media_id": i, "source": "csv", "source_id": f"csv:{i}"}
                                        for i in range(1, count + 1)])
    insert_rows(Person.__table__, [{"name": f"Person {i}", "name_key": f"person {i}"} for i in range(1, count + 1)])
    for table in ("media", "media_sources", "people"):
        db.session.execute(text(f"ANALYZE {table}"))
    db.session.commit()


def test_a_chunks_lookups_probe_their_indexes_key_by_key(ctx: Flask, actors: Actors) -> None:
    """A thousand keys against a catalog of 20,000: each key is an index probe, not a pass over the whole table (which
    the planner chooses for `= ANY(array)` or a join, and which takes longer the larger the catalog)."""
    postgres_only()
    _many_entries(20_000)
    ids = {f"csv:new{i}" for i in range(1000)} | {"csv:7", "csv:19999"}
    sources = query_plan(_known_entries("csv", ids))
    assert "uq_media_sources_source_source_id" in sources and "Seq Scan on media_sources" not in sources, sources
    assert sorted(db.session.execute(_known_entries("csv", ids)).all()) == [("csv:19999", 19999), ("csv:7", 7)]
    library = ensure_default_library().id
    wanted = {("book", f"new {i}", 2001) for i in range(1000)}
    wanted |= {("book", "entry 42", 2002), ("book", "entry 43", None)}
    found = _same_titles(library, wanted)
    assert [(row.id, row.title) for row in found] == [(42, "Entry 42")]  # the year must match too (NULL is no year)
    titles = query_plan(_title_matches(library, wanted))
    assert "ix_media_type_browse" in titles and "Seq Scan on media" not in titles, titles
    names = [f"someone {i}" for i in range(2500)] + ["person 5", "person 20000"]
    people = query_plan(named_rows(Person, names))
    assert "uq_people_name_key" in people and "Seq Scan on people" not in people, people
    assert sorted(row.name for row in db.session.execute(named_rows(Person, names))) == ["Person 20000", "Person 5"]
