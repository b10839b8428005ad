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
        else:  # one pipelined executemany per call
            assert len(inserts) == 2 and inserts[0].count("VALUES (") == 1
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
