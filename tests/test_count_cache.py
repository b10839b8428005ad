"""Kept library counts and pages (services.count_cache, PostgreSQL): a total is counted, and a page's rows found,
once while nothing they read changes, and every committed write to what they read — by the app, by an import's bulk
statements or by hand — makes the next page count and find again. A member rating an item keeps the counts and
pages that do not read ratings, and still sees the rating at once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from collectz.extensions import db
from collectz.models import User
from collectz.services import backup, count_cache, queries
from tests.conftest import Actors, pg_database_url
from tests.conftest import statements as sql_statements
from tests.test_library_browse import HX, add_item, titles, total


@pytest.fixture(autouse=True)
def postgresql_only(backend: Any) -> None:
    if backend.name != "postgresql":
        pytest.skip("SQLite counts are not kept (it has no count generations)")


@pytest.fixture
def shelf(app: Flask, actors: Actors) -> dict[str, int]:
    count_cache.clear()
    bob = actors.ids["bob"]
    return {
        "Alien": add_item(app, "Alien", year=1979, added_by=bob, genres=("Horror",),
                          people=(("Ridley Scott", "director"),)),
        "Heat": add_item(app, "Heat", year=1995, added_by=bob, genres=("Crime",),
                         people=(("Michael Mann", "director"),)),
        "Dune": add_item(app, "Dune", "book", year=1965, added_by=bob),
    }


def counted(app: Flask, client: Any, url: str) -> tuple[int, bool]:
    """(the total the page shows, whether the request counted it in SQL)."""
    with sql_statements(app) as seen:
        resp = client.get(url, headers=HX)
    assert resp.status_code == 200, url
    return total(resp), any(s.lstrip().startswith("SELECT count(*)") for s in seen)


def paged(app: Flask, client: Any, url: str) -> tuple[list[str], bool]:
    """(the titles the page shows, whether the request found its rows in SQL)."""
    with sql_statements(app) as seen:
        resp = client.get(url, headers=HX)
    assert resp.status_code == 200, url
    return titles(resp), any(" AS byline" in s for s in seen)


def run_sql(app: Flask, sql: str, **params: Any) -> None:
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(text(sql), params)


def test_a_total_is_counted_once_while_nothing_changes(app: Flask, shelf: dict[str, int], actors: Actors) -> None:
    bob = actors.client("bob")
    assert counted(app, bob, "/library/") == (3, True)
    assert counted(app, bob, "/library/") == (3, False)
    assert counted(app, bob, "/library/?sort=year&per_page=10") == (3, False)  # same filter set, same total
    assert counted(app, bob, "/library/movies") == (2, True)  # another filter set: its own count
    assert counted(app, actors.client("alice"), "/library/movies") == (2, False)


WRITES = {  # (what changes, page, total before, SQL, total after)
    "item added": ("/library/", 3, "INSERT INTO media (library_id, media_type, title, sort_title, formats, "
                   "type_details, copies, created_at, updated_at, search_text) SELECT library_id, 'movie', 'Ran', "
                   "'ran', '[]', '{}', 1, now(), now(), 'ran' FROM media LIMIT 1", 4),
    "item deleted": ("/library/", 3, "DELETE FROM media WHERE title = 'Dune'", 2),
    "item changed": ("/library/?year_from=1990", 1, "UPDATE media SET year = 1999 WHERE title = 'Alien'", 2),
    "genre renamed": ("/library/?genre=horror", 1,
                      "UPDATE genres SET name_key = 'terror' WHERE name_key = 'horror'", 0),
    "genre link removed": ("/library/?genre=crime", 1, "DELETE FROM media_genres", 0),
    "person renamed": ("/library/?director=Ridley+Scott", 1,
                       "UPDATE people SET name_key = 'someone else' WHERE name_key = 'ridley scott'", 0),
    "credit removed": ("/library/?director=Michael+Mann", 1, "DELETE FROM media_people", 0),
    "library emptied": ("/library/", 3, "TRUNCATE media CASCADE", 0),
}


@pytest.mark.parametrize("change", list(WRITES))
def test_every_committed_write_to_what_a_count_reads_counts_again(app: Flask, shelf: dict[str, int],
                                                                  actors: Actors, change: str) -> None:
    url, before, sql, after = WRITES[change]
    bob = actors.client("bob")
    assert counted(app, bob, url) == (before, True)
    assert counted(app, bob, url) == (before, False)
    run_sql(app, sql)
    assert counted(app, bob, url) == (after, True), change


def test_a_rating_keeps_the_counts_that_do_not_read_ratings(app: Flask, shelf: dict[str, int],
                                                            actors: Actors) -> None:
    bob = actors.client("bob")
    assert counted(app, bob, "/library/") == (3, True)
    assert counted(app, bob, "/library/?my_rating_min=7") == (0, True)
    resp = bob.post(f"/library/media/{shelf['Heat']}/state", data={"rating": "8", "status": ""})
    assert resp.status_code in (200, 303)
    assert counted(app, bob, "/library/") == (3, False)
    assert counted(app, bob, "/library/?my_rating_min=7") == (1, True)
    # Another member's ratings are their own filter set: carol's count was never bob's.
    assert counted(app, actors.client("carol"), "/library/?my_rating_min=7") == (0, True)


def test_a_transaction_that_wrote_neither_uses_nor_keeps_counts(app: Flask, shelf: dict[str, int],
                                                                actors: Actors) -> None:
    bob = actors.client("bob")
    assert counted(app, bob, "/library/") == (3, True)
    with app.test_request_context():
        actor = db.session.get(User, actors.ids["bob"])
        params = queries.BrowseParams.from_args("all", {})
        db.session.execute(text("DELETE FROM media WHERE title = 'Heat'"))
        assert queries.browse(actor, params).total == 2  # its own write, not the kept 3
        db.session.rollback()
        db.session.remove()
    assert counted(app, bob, "/library/") == (3, False)  # the kept count is still right: the delete rolled back
    run_sql(app, "DELETE FROM media WHERE title = 'Dune'")
    assert counted(app, bob, "/library/") == (2, True)


@pytest.fixture
def other_database(backend: Any) -> Iterator[Flask]:
    from collectz import create_app
    from collectz.schema import upgrade

    app = create_app(settings=backend.settings(DATABASE_URL=pg_database_url("count_cache_other")))
    upgrade(app)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_database_made_again_is_not_taken_for_the_old_one(app: Flask, shelf: dict[str, int], actors: Actors,
                                                            other_database: Flask) -> None:
    """Same statements, same generations (both fresh): the instance number tells the databases apart."""
    with app.app_context():
        generations = count_cache.tune_and_read()
        db.session.rollback()
    with other_database.app_context():
        other = count_cache.tune_and_read()
        db.session.rollback()
    assert generations is not None and other is not None and generations.instance != other.instance
    actor_id = actors.ids["bob"]
    with app.test_request_context():
        assert queries.browse(db.session.get(User, actor_id), queries.BrowseParams.from_args("all", {})).total == 3
        db.session.remove()
    with other_database.app_context(), db.engine.begin() as conn:  # the old database's generations, exactly
        for kind, value in (("catalog", generations.catalog), ("user_state", generations.user_state)):
            conn.execute(text("UPDATE count_generations SET value = CASE slot WHEN 0 THEN :v ELSE 0 END "
                              "WHERE kind = :kind"), {"v": value, "kind": kind})
    with other_database.test_request_context():
        bench = User(email="other@example.org", name="Other", role="admin", password_hash="x")
        db.session.add(bench)
        db.session.commit()
        assert queries.browse(bench, queries.BrowseParams.from_args("all", {})).total == 0
        db.session.remove()


def test_the_generations_are_not_backed_up_nor_in_the_models(app: Flask, shelf: dict[str, int]) -> None:
    with app.app_context(), db.engine.connect() as conn:
        names = {table.name for table in backup.data_tables(conn)}
        assert "media" in names and "count_generations" not in names
        assert conn.scalar(text("SELECT count(*) FROM count_generations WHERE kind = 'catalog'")) == 8
    assert "count_generations" not in db.metadata.tables


def test_filter_sets_with_the_same_values_are_kept_apart(app: Flask, shelf: dict[str, int], actors: Actors,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bob = actors.client("bob")
    assert counted(app, bob, "/library/?year_from=1965") == (3, True)
    assert counted(app, bob, "/library/?year_to=1965") == (1, True)  # same value, another statement
    assert counted(app, bob, "/library/?year_from=1965") == (3, False)
    # Past MAX_SHAPES distinct statements everything is forgotten; no number is given to two statements.
    monkeypatch.setattr(count_cache, "MAX_SHAPES", 2)
    for url, expected in (("/library/?year_from=1990", 1), ("/library/?genre=crime", 1),
                          ("/library/?year_to=1965", 1), ("/library/?year_from=1965", 3)):
        assert counted(app, bob, url)[0] == expected, url
        assert len(count_cache._shapes) <= 2


def test_a_transaction_moves_a_generation_once_however_many_statements_it_runs(app: Flask,
                                                                                shelf: dict[str, int]) -> None:
    def catalog() -> int:
        with app.app_context(), db.engine.connect() as conn:
            return int(conn.scalar(text("SELECT sum(value) FROM count_generations WHERE kind = 'catalog'")))

    before = catalog()
    with app.app_context(), db.engine.begin() as conn:
        for n in range(300):  # one statement each, as an ORM flush of many objects sends them
            conn.execute(text("UPDATE media SET notes = :n WHERE title = 'Alien'"), {"n": str(n)})
        conn.execute(text("DELETE FROM media_genres"))
    assert catalog() == before + 1
    run_sql(app, "UPDATE media SET notes = NULL")
    run_sql(app, "UPDATE media SET notes = 'x'")
    assert catalog() == before + 3


@pytest.mark.parametrize("change", list(WRITES))
def test_every_committed_write_to_what_a_page_reads_finds_it_again(app: Flask, shelf: dict[str, int],
                                                                   actors: Actors, change: str) -> None:
    url, before, sql, after = WRITES[change]
    bob = actors.client("bob")
    shown, found = paged(app, bob, url)
    assert (len(shown), found) == (before, True)
    assert paged(app, bob, url) == (shown, False)
    run_sql(app, sql)
    shown, found = paged(app, bob, url)
    assert (len(shown), found) == (after, after > 0), change  # (no rows to find when the total is 0)


def test_a_kept_page_is_each_viewers_own_and_shows_a_new_rating_at_once(app: Flask, shelf: dict[str, int],
                                                                        actors: Actors) -> None:
    bob, carol = actors.client("bob"), actors.client("carol")
    assert paged(app, bob, "/library/") == (["Alien", "Dune", "Heat"], True)
    assert paged(app, bob, "/library/") == (["Alien", "Dune", "Heat"], False)
    assert paged(app, carol, "/library/")[1] is True  # carol's page is her own
    assert paged(app, bob, "/library/?sort=my_rating") == (["Dune", "Heat", "Alien"], True)  # unrated: by id
    resp = bob.post(f"/library/media/{shelf['Heat']}/state", data={"rating": "8", "status": ""})
    assert resp.status_code in (200, 303)
    # The rows of /library/ do not depend on ratings: kept, and the rating (read apart) shows at once.
    with sql_statements(app) as seen:
        html = bob.get("/library/", headers=HX).get_data(as_text=True)
    assert not any(" AS byline" in s for s in seen)
    assert "Mine 8" in html
    assert "Mine 8" not in carol.get("/library/", headers=HX).get_data(as_text=True)
    # A sort by the viewer's rating reads ratings: found again, in the new order.
    assert paged(app, bob, "/library/?sort=my_rating") == (["Heat", "Dune", "Alien"], True)


def test_a_transaction_that_wrote_neither_uses_nor_keeps_pages(app: Flask, shelf: dict[str, int],
                                                               actors: Actors) -> None:
    bob = actors.client("bob")
    assert paged(app, bob, "/library/") == (["Alien", "Dune", "Heat"], True)
    with app.test_request_context():
        actor = db.session.get(User, actors.ids["bob"])
        db.session.execute(text("UPDATE media SET title = 'Ran' WHERE title = 'Heat'"))
        page = queries.browse(actor, queries.BrowseParams.from_args("all", {}))
        assert [row.title for row in page.rows] == ["Alien", "Dune", "Ran"]  # its own write, not the kept page
        db.session.rollback()
        db.session.remove()
    assert paged(app, bob, "/library/") == (["Alien", "Dune", "Heat"], False)  # still right: rolled back


def test_an_export_walks_its_pages_without_keeping_them(app: Flask, shelf: dict[str, int], actors: Actors) -> None:
    from collectz.services import export

    with app.test_request_context():
        actor = db.session.get(User, actors.ids["bob"])
        text_out = "".join(export.export_csv(actor, queries.BrowseParams.from_args("all", {}), page_size=1))
        db.session.remove()
    assert all(title in text_out for title in ("Alien", "Dune", "Heat"))
    assert not count_cache._pages  # three pages of one item, none kept
    assert paged(app, actors.client("bob"), "/library/")[1] is True


def test_a_view_keeps_one_page_however_often_ratings_change(app: Flask, shelf: dict[str, int],
                                                            actors: Actors) -> None:
    bob = actors.client("bob")
    for rating in ("3", "5", "9"):  # each rating moves user_state: the view sorted by ratings is found again
        assert bob.post(f"/library/media/{shelf['Dune']}/state", data={"rating": rating, "status": ""}
                        ).status_code in (200, 303)
        assert paged(app, bob, "/library/?sort=my_rating")[1] is True
        assert paged(app, bob, "/library/")[1] is (rating == "3")  # ratings do not decide its rows
    assert len(count_cache._pages) == 2  # the latest page of each view, not one per rating


def test_a_view_asked_again_costs_one_query_its_generations_with_the_viewers_ratings(
        app: Flask, shelf: dict[str, int], actors: Actors) -> None:
    bob = actors.client("bob")
    assert bob.post(f"/library/media/{shelf['Heat']}/state", data={"rating": "8", "status": ""}
                    ).status_code in (200, 303)
    assert paged(app, bob, "/library/")[1] is True
    with sql_statements(app) as seen:
        html = bob.get("/library/", headers=HX).get_data(as_text=True)
    library = [s for s in seen if "count_generations" in s or "media_user_state" in s or "FROM media" in s]
    assert len(library) == 1 and "count_generations" in library[0] and "media_user_state" in library[0]
    assert "Mine 8" in html
    run_sql(app, "UPDATE media SET title = 'Heat (1995)' WHERE title = 'Heat'")  # the kept page is stale now
    shown, found = paged(app, bob, "/library/")
    assert found and "Heat (1995)" in shown
