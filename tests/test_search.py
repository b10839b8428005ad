"""Search: title, original title, people, series, notes and identifiers, through the search indexes, on every
backend; rare and common terms give the same answers whichever way the page is found."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, text

from collectz import create_app
from collectz.extensions import db
from collectz.models import Media, User
from collectz.schema import upgrade
from collectz.services import queries
from collectz.services.indexing import refresh_media_index
from tests.conftest import Actors, pg_database_url, statement_plan
from tests.test_library_browse import HX, add_item, browse_service, titles, total


@pytest.fixture
def shelf(app: Flask, actors: Actors) -> dict[str, int]:
    bob = actors.ids["bob"]
    return {
        "amelie": add_item(app, "Amélie", original_title="Le Fabuleux Destin d'Amélie Poulain", year=2001,
                           people=(("Jean-Pierre Jeunet", "director"), ("Audrey Tautou", "cast")), added_by=bob),
        "dune": add_item(app, "Dune", "book", isbn13="9780804429573", details={"series": "Dune Chronicles"},
                         people=(("Frank Herbert", "author"),), added_by=bob),
        "disc": add_item(app, "Night of the Hunter", ean13="0012345678905", notes="Criterion spine 541",
                         added_by=bob),
        "night": add_item(app, "Nightcrawler", year=2014, added_by=bob),
        "knights": add_item(app, "A Knight's Tale", year=2001, added_by=bob),
        "alien": add_item(app, "Alien", year=1979, added_by=bob),
        "alamo": add_item(app, "The Alamo", year=1960, added_by=bob),
        "percent": add_item(app, "100% Wolf", year=2020, notes="a_b c", added_by=bob),
    }


SEARCHES = [
    ("amélie", {"Amélie"}),
    ("AMÉLIE", {"Amélie"}),
    ("fabuleux destin", {"Amélie"}),  # original title, every word must occur
    ("tautou", {"Amélie"}),  # cast
    ("jeunet", {"Amélie"}),  # director
    ("herbert", {"Dune"}),  # author
    ("chronicles", {"Dune"}),  # series
    ("spine 541", {"Night of the Hunter"}),  # notes
    ("night", {"Night of the Hunter", "Nightcrawler", "A Knight's Tale"}),  # anywhere in a word
    ("night hunter", {"Night of the Hunter"}),
    ("ight", {"Night of the Hunter", "Nightcrawler", "A Knight's Tale"}),
    ("al", {"Alien", "The Alamo"}),  # short: the start of the title, articles ignored
    ("ali", {"Alien"}),
    ("100%", {"100% Wolf"}),
    ("%", set()),  # LIKE wildcards are literal
    ("a_b", {"100% Wolf"}),
    ('"', set()),
    ("zzzzzz", set()),
    # identifiers: ISBN-10 (X check digit) and ISBN-13 are the same book; UPC-A and EAN-13 the same disc
    ("080442957X", {"Dune"}),
    ("0-8044-2957-X", {"Dune"}),
    ("9780804429573", {"Dune"}),
    ("978-0-8044-2957-3", {"Dune"}),
    ("012345678905", {"Night of the Hunter"}),
    ("0012345678905", {"Night of the Hunter"}),
]


def test_search_finds_by_every_searched_field(shelf: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    for term, expected in SEARCHES:
        resp = bob.get("/library/", query_string={"q": term}, headers=HX)
        assert resp.status_code == 200, term
        assert set(titles(resp)) == expected, term
        assert total(resp) == len(expected), term


def test_search_combines_with_sections_filters_and_sorts(shelf: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    assert titles(bob.get("/library/?q=night&sort=year&dir=asc", headers=HX)) == [
        "A Knight's Tale", "Nightcrawler", "Night of the Hunter"]  # no year: last
    assert titles(bob.get("/library/books?q=dune", headers=HX)) == ["Dune"]
    assert titles(bob.get("/library/movies?q=dune", headers=HX)) == []
    assert titles(bob.get("/library/?q=night&year_from=2010", headers=HX)) == ["Nightcrawler"]


def test_the_search_box_reloads_as_a_full_page(shelf: dict[str, int], actors: Actors):
    page = actors.client("bob").get("/library/?q=herbert").get_data(as_text=True)
    assert "<html" in page and 'value="herbert"' in page and "Dune" in page and "Alien" not in page


def test_the_index_follows_changes(app: Flask, shelf: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    with app.app_context():
        media = db.session.get(Media, shelf["alien"])
        media.title = "Aliens"
        media.notes = "Director's cut with the sentry guns"
        refresh_media_index(media)
        db.session.delete(db.session.get(Media, shelf["alamo"]))
        db.session.commit()
    assert titles(bob.get("/library/?q=sentry", headers=HX)) == ["Aliens"]
    assert titles(bob.get("/library/?q=alamo", headers=HX)) == []
    added = add_item(app, "The Alamo Bay", added_by=actors.ids["bob"])
    assert titles(bob.get("/library/?q=alamo", headers=HX)) == ["The Alamo Bay"] and added


@pytest.mark.parametrize("strategy", ["walk", "collect"])
def test_rare_and_common_terms_give_the_same_pages_either_way(app: Flask, actors: Actors, strategy: str):
    bob = actors.ids["bob"]
    for n in range(30):
        add_item(app, f"{'Night' if n % 3 else 'Day'} Watch {n:02d}", year=1990 + n % 7, added_by=bob)
    add_item(app, "Zephyr", year=1999, added_by=bob)
    for term, expected in (("zephyr", 1), ("night", 20), ("watch", 30)):
        seen: list[str] = []
        after = ""
        while True:
            page = browse_service(app, bob, q=term, sort="year", per_page=7, after=after, strategy=strategy)
            assert page.total == expected
            seen += [row.title for row in page.rows]
            if not page.has_next:
                break
            after = page.next_cursor
        assert len(seen) == len(set(seen)) == expected, term
        numbered = [t for t in seen if t[-2:].isdigit()]
        # newest first, ties by id (added order) in the same direction
        assert numbered == sorted(numbered, key=lambda t: (-(1990 + int(t[-2:]) % 7), -int(t[-2:]))), term


def test_search_uses_the_search_index(app: Flask, shelf: dict[str, int], actors: Actors):
    """The statements browse sends for a search are answered by FTS5 (SQLite) or the trigram index."""
    statements: list[tuple[str, Any]] = []
    with app.app_context():
        engine = db.engine

    def record(_c: Any, _cur: Any, statement: str, parameters: Any, *_a: Any) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        browse_service(app, actors.ids["bob"], q="hunter")
    finally:
        event.remove(engine, "before_cursor_execute", record)
    count_sql, params = next((sql, p) for sql, p in statements if "count(" in sql)
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            plan = statement_plan(conn, count_sql, params)
            assert "media_fts VIRTUAL TABLE" in plan, plan
            assert "SCAN media" not in plan.replace("SCAN media_fts", ""), plan
        else:  # a handful of rows: PostgreSQL rightly scans; the plan at scale is checked in test_bench_smoke
            assert "media.search_text LIKE" in count_sql and "lower(" not in count_sql


def test_search_objects_exist_and_stay_out_of_the_models(app: Flask):
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            names = set(conn.execute(text("SELECT name FROM sqlite_master WHERE name LIKE 'media_fts%'")).scalars())
            assert {"media_fts", "media_fts_ai", "media_fts_ad", "media_fts_au"} <= names
        else:
            indexes = dict(conn.execute(text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname LIKE "
                                             "'%trgm'")).all())
            assert "gin_trgm_ops" in indexes["ix_media_search_trgm"]
            assert "gin_trgm_ops" in indexes["ix_people_name_trgm"]
    assert "media_fts" not in db.metadata.tables


def test_migration_0003_backfills_existing_items(backend: Any, tmp_path: Any):
    """Items written before the search indexes existed are searchable and filterable after the upgrade."""
    url = "sqlite:///" + str(tmp_path / "old.db") if backend.name == "sqlite" else pg_database_url("search0003")
    app = create_app(settings=backend.settings(DATABASE_URL=url))
    try:
        upgrade(app, revision="0002")
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(text("INSERT INTO libraries (name, is_default, created_at) VALUES ('L', true, "
                              "CURRENT_TIMESTAMP)"))
            conn.execute(text(
                "INSERT INTO media (library_id, media_type, title, sort_title, formats, type_details, copies, "
                "search_text, notes, created_at, updated_at) VALUES (1, 'movie', 'Old Film', 'old film', "
                "'[\"Blu-ray\", \"DVD\"]', '{\"resolution\": \"720\"}', 1, '', 'kept in the attic', "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
            conn.execute(text("INSERT INTO people (name, name_key) VALUES ('Agnès Varda', 'agnès varda')"))
            conn.execute(text("INSERT INTO media_people (media_id, person_id, role, position) VALUES (1, 1, "
                              "'director', 0)"))
            conn.execute(text("INSERT INTO media_variants (media_id, source, source_key, resolution) VALUES "
                              "(1, 'plex', 'a', '2160p')"))
        upgrade(app)
        with app.app_context():
            row = db.session.execute(text("SELECT search_text, formats_key, resolution FROM media")).one()
            assert "varda" in row.search_text and "attic" in row.search_text
            assert row.formats_key == "\tblu-ray\tdvd\t" and row.resolution == "4K"
            db.session.remove()
        with app.test_request_context():
            actor = User(id=0, role="viewer", email="x@example.org", name="x", password_hash="x")
            for args in ({"q": "attic"}, {"q": "varda"}, {"format": "dvd"}, {"resolution": "4K"}):
                page = queries.browse(actor, queries.BrowseParams.from_args("all", args))
                assert [r.title for r in page.rows] == ["Old Film"], args
            db.session.remove()
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
