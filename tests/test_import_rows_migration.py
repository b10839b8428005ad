"""Revision 0011: import rows keep the id of the item they made (no foreign key to media), on both databases; the
downgrade blanks the ids of items that are gone and puts the foreign key back; the partial index of 0010 keeps its
WHERE clause through SQLite's table rebuild both ways."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask_migrate import downgrade as fm_downgrade
from sqlalchemy import inspect, text

from collectz.extensions import db
from collectz.schema import MIGRATIONS_DIR, upgrade
from tests.test_indexes_of_set_values import index_definition
from tests.test_migrations import build, fresh_url  # noqa: F401 - fixtures: an empty database per test


def media_foreign_keys(app: Flask) -> list[str]:
    with app.app_context():
        return [fk["name"] for fk in inspect(db.engine).get_foreign_keys("import_rows")
                if fk["referred_table"] == "media"]


def media_id_index(app: Flask) -> str:
    with app.app_context():
        return index_definition("ix_import_rows_media_id")


def item_ids(app: Flask) -> dict[int, int | None]:
    with app.app_context(), db.engine.connect() as conn:
        return dict(conn.execute(text("SELECT row_number, media_id FROM import_rows")).all())


def test_0011_rows_keep_item_ids_and_go_down_and_up(build: Callable[..., Flask]) -> None:  # noqa: F811
    app = build()
    upgrade(app)
    assert media_foreign_keys(app) == []
    assert "media_id IS NOT NULL" in media_id_index(app)
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO media (library_id, media_type, title, sort_title, formats, type_details, copies, "
            "search_text, created_at, updated_at) SELECT id, 'book', 'Dune', 'dune', '[]', '{}', 1, 'dune', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM libraries WHERE is_default"))
        kept = conn.execute(text("SELECT id FROM media")).scalar_one()
        conn.execute(text("INSERT INTO sync_jobs (kind, status, total, processed, created, updated, skipped, failed, "
                          "options, summary, cancel_requested, created_at) VALUES ('csv', 'succeeded', 2, 2, 2, "
                          "0, 0, 0, '{}', '{}', false, CURRENT_TIMESTAMP)"))
        job = conn.execute(text("SELECT id FROM sync_jobs")).scalar_one()
        for number, media_id in ((1, kept), (2, kept + 1000)):  # row 2's item was deleted since
            conn.execute(text("INSERT INTO import_rows (job_id, row_number, chunk, outcome, raw, media_id, updated_at) "
                              "VALUES (:job, :n, 0, 'created', '{}', :m, CURRENT_TIMESTAMP)"),
                         {"job": job, "n": number, "m": media_id})
    assert item_ids(app) == {1: kept, 2: kept + 1000}  # no foreign key refused the row of a deleted item

    with app.app_context():
        fm_downgrade(directory=str(MIGRATIONS_DIR), revision="0010")
    assert media_foreign_keys(app) == ["fk_import_rows_media_id_media"]
    assert item_ids(app) == {1: kept, 2: None}
    assert "media_id IS NOT NULL" in media_id_index(app)

    upgrade(app)
    assert media_foreign_keys(app) == []
    assert "media_id IS NOT NULL" in media_id_index(app)
    assert item_ids(app) == {1: kept, 2: None}
