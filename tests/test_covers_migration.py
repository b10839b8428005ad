"""Revision 0006 (cover thumbnails, cover downloads) goes down and up again with the data and, on SQLite, the search
index's triggers intact: it never rebuilds `media`."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask_migrate import downgrade as fm_downgrade
from sqlalchemy import inspect, text

from collectz.extensions import db
from collectz.schema import MIGRATIONS_DIR, upgrade
from tests.test_migrations import build, fresh_url  # noqa: F401 - fixtures: an empty database per test


def triggers(app: Flask) -> set[str]:
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            return set()
        return set(conn.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'")).scalars())


def media_columns(app: Flask) -> set[str]:
    with app.app_context():
        return {c["name"] for c in inspect(db.engine).get_columns("media")}


def found_by_search(app: Flask, word: str) -> list[int]:
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            return list(conn.execute(text("SELECT rowid FROM media_fts WHERE media_fts MATCH :w"), {"w": word})
                        .scalars())
        return list(conn.execute(text("SELECT id FROM media WHERE search_text LIKE :w"), {"w": f"%{word}%"})
                    .scalars())


def test_0006_goes_down_and_up_keeping_items_and_search(build: Callable[..., Flask]) -> None:  # noqa: F811
    app = build()
    upgrade(app)
    assert "thumb_key" in media_columns(app)
    before = triggers(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            assert {"media_fts_ai", "media_fts_ad", "media_fts_au"} <= before
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO media (library_id, media_type, title, sort_title, formats, type_details, copies, "
            "search_text, cover_key, thumb_key, created_at, updated_at) SELECT id, 'book', 'Dune', 'dune', '[]', "
            "'{}', 1, 'dune herbert', 'covers/1/a.jpg', 'thumbs/1/a.jpg', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
            "FROM libraries WHERE is_default"))
        media_id = conn.execute(text("SELECT id FROM media")).scalar_one()
        conn.execute(text("INSERT INTO cover_downloads (media_id, url, status, attempts, created_at, updated_at) "
                          "VALUES (:m, 'https://example.org/a.jpg', 'pending', 0, CURRENT_TIMESTAMP, "
                          "CURRENT_TIMESTAMP)"), {"m": media_id})

    with app.app_context():
        fm_downgrade(directory=str(MIGRATIONS_DIR), revision="0005")
    assert "thumb_key" not in media_columns(app) and "cover_key" in media_columns(app)
    with app.app_context():
        assert "cover_downloads" not in inspect(db.engine).get_table_names()
    assert triggers(app) == before
    assert found_by_search(app, "dune") == [media_id]

    upgrade(app)
    assert "thumb_key" in media_columns(app) and triggers(app) == before
    with app.app_context(), db.engine.connect() as conn:
        assert conn.execute(text("SELECT cover_key FROM media")).scalar_one() == "covers/1/a.jpg"
