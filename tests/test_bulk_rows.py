"""Driver-level bulk writes: type conversion and column defaults as SQLAlchemy would apply them, few statement
shapes, ON CONFLICT DO NOTHING, executemany updates — on both databases."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event, select

from collectz.extensions import db
from collectz.models import ImportRow, SyncJob
from collectz.services.bulk_rows import MAX_PAGE, _pages, insert_rows, update_rows


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
        job = SyncJob(kind="csv", status="running", source_name="t", source_hash="x" * 64, options={},
                      created_by=actors.ids["bob"])
        db.session.add(job)
        db.session.commit()
        statements: list[str] = []
        listener = event.listens_for(db.engine, "before_cursor_execute")(
            lambda conn, cursor, sql, params, context, many: statements.append(sql))
        rows = [{"job_id": job.id, "row_number": n, "chunk": 0, "outcome": "pending",
                 "raw": {"title": f"Item {n}", "people": [["author", "Ö Ñ"]]}} for n in range(1, 301)]
        insert_rows(ImportRow.__table__, rows, on_conflict_do_nothing=("job_id", "row_number"))
        insert_rows(ImportRow.__table__, rows[:10], on_conflict_do_nothing=("job_id", "row_number"))  # skipped
        db.session.commit()
        event.remove(db.engine, "before_cursor_execute", listener)
        inserts = [s for s in statements if s.startswith("INSERT")]
        if db.engine.dialect.name == "sqlite":  # multi-row statements: 256 + 32 + 8 + 4, then 8 + 2
            assert len(inserts) == 6
        else:  # COPY into a scratch table, then one INSERT ... SELECT ... ON CONFLICT per call
            assert len(inserts) == 2 and all("SELECT" in s and "ON CONFLICT" in s for s in inserts)
        stored = db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                    .order_by(ImportRow.row_number)).all()
        assert len(stored) == 300 and stored[0].raw == {"title": "Item 1", "people": [["author", "Ö Ñ"]]}
        assert stored[0].updated_at is not None and stored[0].match_mode is None  # the column default applied

        update_rows(ImportRow.__table__, "id", [{"id": r.id, "outcome": "created", "message": None}
                                                 for r in stored[:2]])
        db.session.commit()
        db.session.expire_all()
        assert [r.outcome for r in db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                                      .order_by(ImportRow.row_number).limit(3))] == \
            ["created", "created", "pending"]
        db.session.remove()


def test_plain_inserts_keep_every_value_exactly(app: Flask, actors) -> None:
    """Without ON CONFLICT, PostgreSQL takes the rows by COPY: text with tabs, newlines, backslashes and quotes, JSON,
    NULLs, numbers and timestamps arrive exactly as given (and no INSERT statement is sent)."""
    with app.app_context():
        job = SyncJob(kind="csv", status="running", source_name="t", source_hash="y" * 64, options={},
                      created_by=actors.ids["bob"])
        db.session.add(job)
        db.session.commit()
        tricky = "tab\there\nnew line \\N back\\slash \"quoted\" 'single' \r ünïcødé ✓ \\."
        rows = [{"job_id": job.id, "row_number": n, "chunk": n // 10, "outcome": "failed" if n % 2 else "created",
                 "message": None if n % 3 == 0 else f"{tricky} {n}", "media_id": None,
                 "raw": {"title": tricky, "n": n, "list": [1.5, None, True], "nested": {"\\N": "\t"}}}
                for n in range(1, 41)]
        statements: list[str] = []
        listener = event.listens_for(db.engine, "before_cursor_execute")(
            lambda conn, cursor, sql, params, context, many: statements.append(sql))
        insert_rows(ImportRow.__table__, rows)
        db.session.commit()
        event.remove(db.engine, "before_cursor_execute", listener)
        if db.engine.dialect.name == "postgresql":
            assert not [s for s in statements if s.startswith("INSERT")]
        db.session.expire_all()
        stored = db.session.scalars(select(ImportRow).where(ImportRow.job_id == job.id)
                                    .order_by(ImportRow.row_number)).all()
        assert [(r.row_number, r.chunk, r.outcome, r.message, r.raw) for r in stored] == [
            (r["row_number"], r["chunk"], r["outcome"], r["message"], r["raw"]) for r in rows]
        assert all(r.updated_at is not None and r.updated_at.tzinfo is not None for r in stored)
        db.session.remove()
