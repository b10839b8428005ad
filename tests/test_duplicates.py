"""Likely duplicates (same identifier, or same title with a different year or format) and merging two items."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select

from collectz.extensions import db
from collectz.models import (
    Genre,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaUserState,
    MediaVariant,
    Person,
    User,
)
from collectz.services import duplicates, merge
from collectz.services.errors import Forbidden, InvalidInput, NotFound
from collectz.services.users import ensure_default_library
from tests.conftest import Actors, activity


def add(app: Flask, title: str, owner: int | None = None, media_type: str = "movie", **fields: Any) -> int:
    """An item written straight through the ORM; returns its id."""
    with app.app_context():
        media = Media(library_id=ensure_default_library().id, media_type=media_type, title=title,
                      added_by=owner, **fields)
        db.session.add(media)
        db.session.commit()
        return media.id


def groups(app: Flask, actor: str = "alice", actors: Actors | None = None, page: int = 1,
           per_page: int = 20) -> list[tuple[str, str, list[str]]]:
    """(kind, shared key, [titles]) of one page of duplicate groups."""
    with app.app_context():
        user = db.session.get(User, actors.ids[actor]) if actors else SimpleNamespace(id=0, role="admin")
        result = duplicates.duplicates_page(user, page, per_page)
        return [(g.kind, g.key_label, [c.media.title for c in g.items]) for g in result.groups]


def exists(app: Flask, media_id: int) -> bool:
    with app.app_context():
        return db.session.get(Media, media_id) is not None


@contextmanager
def count_queries(app: Flask):
    """Counts the SQL statements run inside the block."""
    statements: list[str] = []

    def on_execute(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


# --- Detection -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("column", "value"), [("isbn13", "9780261102385"), ("ean13", "5051892012345"),
                                                ("asin", "B00005JNOG")])
def test_items_sharing_an_identifier_are_one_group(app, column, value):
    add(app, "The Fellowship of the Ring", media_type="book", year=1954, **{column: value})
    add(app, "Fellowship (paperback)", media_type="book", year=1991, **{column: value})
    add(app, "Unrelated", media_type="book", **{column: value[:-1] + "0"})

    assert groups(app) == [(column, value, ["The Fellowship of the Ring", "Fellowship (paperback)"])]


def test_same_tmdb_id_is_a_group_only_with_the_same_tmdb_type(app):
    add(app, "Alien", tmdb_id=348, tmdb_media_type="movie")
    add(app, "Alien (1979)", tmdb_id=348, tmdb_media_type="movie")
    add(app, "A show with the same number", media_type="tv_series", tmdb_id=348, tmdb_media_type="tv")

    assert groups(app) == [("tmdb", "movie 348", ["Alien", "Alien (1979)"])]


def test_same_normalised_title_with_a_different_year_or_format_is_a_group(app):
    add(app, "The Matrix", year=1999, formats=["DVD"])
    add(app, "Matrix", year=2000, formats=["DVD"])  # articles and case are ignored
    add(app, "Dune", year=1984, formats=["DVD"])
    add(app, "dune", year=1984, formats=["Blu-ray"])
    add(app, "Heat", year=1995)
    add(app, "Heat", year=None)  # a missing year differs from a year

    assert groups(app) == [
        ("title", "dune", ["Dune", "dune"]),
        ("title", "heat", ["Heat", "Heat"]),
        ("title", "matrix", ["The Matrix", "Matrix"]),
    ]


def test_same_title_of_another_media_type_is_not_a_duplicate(app):
    add(app, "Dune", media_type="movie", year=1984)
    add(app, "Dune", media_type="book", year=1965)

    assert groups(app) == []


def test_same_title_year_and_formats_is_flagged_only_by_a_shared_identifier(app):
    # Deliberate separate entries (say each member's own copy) look exactly alike: not a title duplicate.
    add(app, "Kind of Blue", media_type="audio", year=1959, formats=["CD"])
    add(app, "Kind of Blue", media_type="audio", year=1959, formats=["CD"])
    assert groups(app) == []

    add(app, "Blue Train", media_type="audio", year=1957, formats=["Vinyl"], ean13="0724349532725")
    add(app, "Blue Train", media_type="audio", year=1957, formats=["Vinyl"], ean13="0724349532725")
    assert groups(app) == [("ean13", "0724349532725", ["Blue Train", "Blue Train"])]


def test_groups_are_paged_and_say_which_items_the_member_may_merge(app, actors: Actors):
    for n in range(23):
        add(app, f"Film {n:02d}", actors.ids["bob"], year=2000)
        add(app, f"Film {n:02d}", actors.ids["carol" if n == 0 else "bob"], year=2001)

    first, second = groups(app, page=1), groups(app, page=2)

    assert [g[1] for g in first] == [f"film {n:02d}" for n in range(20)]
    assert [g[1] for g in second] == ["film 20", "film 21", "film 22"]
    with app.app_context():
        bob = db.session.get(User, actors.ids["bob"])
        page = duplicates.duplicates_page(bob, 1)
        assert (page.total, page.pages, page.has_next, page.has_prev) == (23, 2, True, False)
        assert [c.editable for c in page.groups[0].items] == [True, False]
        assert [c.editable for c in page.groups[1].items] == [True, True]
        assert page.groups[0].items[1].added_by_name == "Carol"


# --- Merging ---------------------------------------------------------------------------------------

@pytest.fixture
def pair(app: Flask, actors: Actors) -> tuple[int, int]:
    """Two of bob's items with overlapping people, genres, seasons, states, metadata, sources and variants."""
    bob, carol = actors.ids["bob"], actors.ids["carol"]
    keep = add(app, "The Expanse", bob, "tv_series", year=2015, formats=["Blu-ray"], copies=1, location="Shelf A",
               type_details={"network": "Syfy"})
    gone = add(app, "Expanse", bob, "tv_series", year=2016, formats=["DVD", "Blu-ray"], copies=2,
               overview="Space.", runtime=45, rating=8.5, tmdb_id=63639, tmdb_media_type="tv",
               release_date=date(2015, 12, 14), type_details={"network": "Amazon", "status": "Ended"})
    with app.app_context():
        holden, naomi, amos = (Person(name=n, name_key=n.casefold()) for n in ("Holden", "Naomi", "Amos"))
        drama, scifi = Genre(name="Drama", name_key="drama"), Genre(name="Sci-Fi", name_key="sci-fi")
        db.session.add_all([holden, naomi, amos, drama, scifi])
        db.session.flush()
        watched = datetime(2024, 1, 2, tzinfo=UTC)
        db.session.add_all([
            MediaPerson(media_id=keep, person_id=holden.id, role="cast", position=0, character="Jim"),
            MediaPerson(media_id=gone, person_id=holden.id, role="cast", position=0),
            MediaPerson(media_id=gone, person_id=naomi.id, role="cast", position=1),
            MediaPerson(media_id=gone, person_id=holden.id, role="director", position=2),
            MediaPerson(media_id=gone, person_id=amos.id, role="cast", position=3),
            MediaGenre(media_id=keep, genre_id=drama.id),
            MediaGenre(media_id=gone, genre_id=drama.id),
            MediaGenre(media_id=gone, genre_id=scifi.id),
            MediaSeason(media_id=keep, season_number=1, expected_episodes=10, available_episodes=4, complete=False),
            MediaSeason(media_id=gone, season_number=1, expected_episodes=8, available_episodes=6, complete=True,
                        watch_state="watched"),
            MediaSeason(media_id=gone, season_number=2, expected_episodes=13, available_episodes=13, complete=True),
            MediaUserState(media_id=keep, user_id=bob, rating=None, status="owned", watchlist=False),
            MediaUserState(media_id=gone, user_id=bob, rating=9, status="finished", watchlist=True,
                           last_watched_at=watched),
            MediaUserState(media_id=gone, user_id=carol, rating=6, status="dropped"),
            MediaMetadata(media_id=keep, key="tvdb_id", value="280619"),
            MediaMetadata(media_id=gone, key="tvdb_id", value="999999"),
            MediaMetadata(media_id=gone, key="imdb_id", value="tt3230854"),
            MediaSource(media_id=gone, source="plex", source_id="plex://show/1"),
            MediaSource(media_id=keep, source="csv", source_id="row-7"),
            MediaVariant(media_id=keep, source="plex", source_key="file-1", resolution="1080p"),
            MediaVariant(media_id=gone, source="plex", source_key="file-1", resolution="480p"),
            MediaVariant(media_id=gone, source="plex", source_key="file-2", resolution="2160p"),
        ])
        db.session.commit()
    return keep, gone


def test_merge_moves_everything_to_the_survivor_and_deletes_the_other(app, actors: Actors, pair):
    keep, gone = pair

    resp = actors.client("bob").post("/library/duplicates/merge", data={
        "keep": keep, "merge": gone, "title": "merge", "year": "keep", "formats": "both", "copies": "both"})

    assert resp.status_code == 303 and resp.headers["Location"] == f"/library/media/{keep}"
    assert not exists(app, gone)
    with app.app_context():
        media = db.session.get(Media, keep)
        # chosen values, and the defaults: the survivor's where it has one, else the other's
        assert (media.title, media.sort_title, media.year) == ("Expanse", "expanse", 2015)
        assert media.formats == ["Blu-ray", "DVD"] and media.copies == 3
        assert (media.overview, media.runtime, media.rating) == ("Space.", 45, 8.5)
        assert (media.tmdb_media_type, media.tmdb_id, media.release_date) == ("tv", 63639, date(2015, 12, 14))
        assert media.location == "Shelf A" and media.type_details == {"network": "Syfy"}

        credits = [(mp.person.name, mp.role, mp.character) for mp in media.people]
        assert credits == [("Holden", "cast", "Jim"), ("Naomi", "cast", None), ("Holden", "director", None),
                           ("Amos", "cast", None)]
        assert [g.name for g in media.genres] == ["Drama", "Sci-Fi"]
        seasons = [(s.season_number, s.expected_episodes, s.available_episodes, s.complete, s.watch_state)
                   for s in media.seasons]
        assert seasons == [(1, 10, 6, True, "watched"), (2, 13, 13, True, None)]

        states = {s.user_id: s for s in db.session.scalars(select(MediaUserState))}
        assert set(states) == {actors.ids["bob"], actors.ids["carol"]}
        bob = states[actors.ids["bob"]]
        assert (bob.media_id, bob.rating, bob.status, bob.watchlist) == (keep, 9, "owned", True)
        assert bob.last_watched_at == datetime(2024, 1, 2, tzinfo=UTC)
        assert (states[actors.ids["carol"]].media_id, states[actors.ids["carol"]].rating) == (keep, 6)

        metadata = {m.key: (m.media_id, m.value) for m in db.session.scalars(select(MediaMetadata))}
        assert metadata == {"tvdb_id": (keep, "280619"), "imdb_id": (keep, "tt3230854")}
        sources = {(s.media_id, s.source, s.source_id) for s in db.session.scalars(select(MediaSource))}
        assert sources == {(keep, "plex", "plex://show/1"), (keep, "csv", "row-7")}
        variants = {(v.media_id, v.source_key, v.resolution) for v in db.session.scalars(select(MediaVariant))}
        assert variants == {(keep, "file-1", "1080p"), (keep, "file-2", "2160p")}
        # search matches the moved people and the new title
        assert "amos" in media.search_text and "expanse" in media.search_text


def test_merge_is_one_audited_event(app, actors: Actors, pair):
    keep, gone = pair

    actors.client("bob").post("/library/duplicates/merge", data={"keep": keep, "merge": gone, "title": "merge"})

    (event,) = activity(app, "media.merged")
    assert event.actor_id == actors.ids["bob"] and event.entity_id == str(keep)
    assert event.details["survivor_id"] == keep and event.details["merged_id"] == gone
    assert event.details["merged_title"] == "Expanse"
    assert event.details["chosen"]["title"] == "merge" and event.details["chosen"]["location"] == "keep"
    assert event.details["chosen"]["overview"] == "merge"  # empty on the survivor: the default takes the other's
    assert set(event.details["chosen"]) == {f.name for f in merge.MERGE_FIELDS}


def test_details_of_another_type_are_refused_and_nothing_changes(app, actors: Actors):
    bob = actors.ids["bob"]
    keep = add(app, "Dune", bob, "movie", isbn13="9780441013593")
    gone = add(app, "Dune", bob, "book", isbn13="9780441013593", type_details={"pages": 412})

    resp = actors.client("bob").post("/library/duplicates/merge",
                                     data={"keep": keep, "merge": gone, "type_details": "merge"})

    assert resp.status_code == 422
    assert "do not fit a Movie: pages is not a field of Movie." in resp.get_data(as_text=True)
    assert exists(app, gone) and activity(app, "media.merged") == []


def test_an_unknown_choice_is_refused(app, actors: Actors, pair):
    keep, gone = pair

    resp = actors.client("bob").post("/library/duplicates/merge", data={"keep": keep, "merge": gone, "year": "2"})

    assert resp.status_code == 422 and "choose one of the two values" in resp.get_data(as_text=True)
    assert exists(app, gone)


def test_merging_an_item_with_itself_or_a_missing_item_is_a_clear_error(app, actors: Actors):
    bob = actors.client("bob")
    keep = add(app, "Alien", actors.ids["bob"])

    itself = bob.post("/library/duplicates/merge", data={"keep": keep, "merge": keep})
    missing = bob.post("/library/duplicates/merge", data={"keep": keep, "merge": keep + 100})
    no_choice = bob.get(f"/library/duplicates/merge?keep={keep}")

    assert itself.status_code == 422 and "cannot be merged with itself" in itself.get_data(as_text=True)
    assert missing.status_code == 404 and "no longer exists" in missing.get_data(as_text=True)
    assert no_choice.status_code == 422
    assert exists(app, keep)


def test_merge_service_takes_typed_ids_and_raises_domain_errors(ctx, actors: Actors):
    bob = db.session.get(User, actors.ids["bob"])
    mine = add(ctx, "Mine", bob.id)
    theirs = add(ctx, "Theirs", actors.ids["carol"])

    with pytest.raises(InvalidInput):
        merge.merge_media(bob, mine, mine, {})
    with pytest.raises(NotFound):
        merge.merge_media(bob, mine, 10_000, {})
    with pytest.raises(Forbidden):
        merge.merge_media(bob, mine, theirs, {})
    assert db.session.scalar(select(func.count(Media.id))) == 2


# --- Permissions: admin, owner of both, owner of one, viewer, signed-out ------------------------------

@pytest.mark.parametrize(("who", "status"), [("alice", 303), ("bob", 403), ("carol", 403), ("vera", 403)])
def test_only_someone_who_may_edit_both_items_may_merge_them(app, actors: Actors, who, status):
    keep = add(app, "Alien", actors.ids["bob"], year=1979)
    gone = add(app, "Alien", actors.ids["carol"], year=1980)

    page = actors.client(who).get(f"/library/duplicates/merge?keep={keep}&merge={gone}")
    resp = actors.client(who).post("/library/duplicates/merge", data={"keep": keep, "merge": gone})

    assert page.status_code == (200 if status == 303 else 403)
    assert resp.status_code == status
    assert exists(app, gone) is (status != 303)
    if status == 403:
        denied = activity(app, "permission.denied")
        assert denied and denied[-1].actor_id == actors.ids[who] and denied[-1].http_status == 403


def test_a_member_may_merge_two_items_of_their_own(app, actors: Actors):
    keep = add(app, "Alien", actors.ids["bob"], year=1979)
    gone = add(app, "Alien", actors.ids["bob"], year=1980)

    assert actors.client("carol").post("/library/duplicates/merge", data={"keep": keep, "merge": gone}).status_code \
        == 403
    assert actors.client("bob").post("/library/duplicates/merge", data={"keep": keep, "merge": gone}).status_code \
        == 303
    assert not exists(app, gone)


def test_signed_out_visitors_are_sent_to_log_in(app, client, actors: Actors):
    keep = add(app, "Alien", actors.ids["bob"], year=1979)
    gone = add(app, "Alien", actors.ids["bob"], year=1980)

    for resp in (client.get("/library/duplicates"),
                 client.post("/library/duplicates/merge", data={"keep": keep, "merge": gone})):
        assert resp.status_code in (302, 303) and "/auth/login" in resp.headers["Location"]
    assert exists(app, gone)


# --- Pages and fragments ---------------------------------------------------------------------------

def test_duplicates_is_a_page_and_its_list_a_fragment(app, actors: Actors):
    for n in range(25):
        add(app, f"Film {n:02d}", actors.ids["bob"], year=2000)
        add(app, f"Film {n:02d}", actors.ids["bob"], year=2001)
    bob = actors.client("bob")

    page = bob.get("/library/duplicates")
    fragment = bob.get("/library/duplicates?page=2", headers={"HX-Request": "true"})

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="duplicate-list"' in html
    assert "25 groups" in html and "Film 19" in html and "Film 20" not in html
    assert 'href="/library/duplicates?page=2"' in html  # a real link, enhanced by htmx
    part = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in part and 'id="duplicate-list"' not in part
    assert "Film 20" in part and "Film 19" not in part and 'hx-target="#duplicate-list"' in part
    for resp in (page, fragment):
        assert "HX-Request" in resp.headers["Vary"]


def test_each_group_is_a_form_that_opens_the_comparison(app, actors: Actors):
    keep = add(app, "Alien", actors.ids["bob"], year=1979)
    gone = add(app, "Alien", actors.ids["bob"], year=1980)
    carols = add(app, "Heat", actors.ids["carol"], year=1995)
    add(app, "Heat", actors.ids["carol"], year=1996)

    html = actors.client("bob").get("/library/duplicates").get_data(as_text=True)
    viewer = actors.client("vera").get("/library/duplicates").get_data(as_text=True)

    assert 'action="/library/duplicates/merge"' in html
    assert re.search(rf'name="keep" value="{keep}"[^>]*checked', html)
    assert re.search(rf'name="merge" value="{gone}"[^>]*checked', html)
    assert f'value="{carols}"' not in html  # bob cannot merge carol's items: no radios for them
    assert html.count("Compare and merge") == 1 and "You can merge only items you added." in html
    assert "Heat" in viewer and "Compare and merge" not in viewer and 'name="keep"' not in viewer


def test_merge_page_compares_side_by_side_with_defaults(app, actors: Actors, pair):
    keep, gone = pair
    bob = actors.client("bob")

    page = bob.get(f"/library/duplicates/merge?keep={keep}&merge={gone}")
    fragment = bob.get(f"/library/duplicates/merge?keep={keep}&merge={gone}", headers={"HX-Request": "true"})

    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="merge"' in html
    assert "The Expanse" in html and "Expanse" in html and "Network: Amazon; Status: Ended" in html
    assert re.search(r'name="title" value="keep" checked', html)
    assert re.search(r'name="overview" value="merge" checked', html)  # survivor has none
    assert re.search(r'name="copies" value="both"', html) and not re.search(r'name="title" value="both"', html)
    assert f'href="/library/duplicates/merge?keep={gone}&amp;merge={keep}"' in html  # swap sides
    assert 'name="signed"' not in html  # empty on both sides: nothing to choose
    part = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in part and 'id="merge"' not in part
    assert 'hx-target="#merge"' in part and 'name="csrf_token"' in part
    for resp in (page, fragment):
        assert "HX-Request" in resp.headers["Vary"]


def test_htmx_merge_redirects_to_the_survivor_and_a_bad_choice_swaps_the_form(app, actors: Actors, pair):
    keep, gone = pair
    bob = actors.client("bob")
    hx = {"HX-Request": "true"}

    bad = bob.post("/library/duplicates/merge", data={"keep": keep, "merge": gone, "title": "x"}, headers=hx)
    good = bob.post("/library/duplicates/merge", data={"keep": keep, "merge": gone}, headers=hx)

    assert bad.status_code == 422 and "<html" not in bad.get_data(as_text=True)
    assert 'role="alert"' in bad.get_data(as_text=True)
    assert good.status_code == 204 and good.headers["HX-Redirect"] == f"/library/media/{keep}"
    assert not exists(app, gone)


# --- Query count -----------------------------------------------------------------------------------

def _seed_groups(app: Flask, owner: int, start: int, count: int) -> None:
    with app.app_context():
        library = ensure_default_library().id
        for n in range(start, start + count):
            isbn = f"978{n:010d}"
            db.session.add_all([
                Media(library_id=library, media_type="book", title=f"Book {n}", isbn13=isbn, added_by=owner),
                Media(library_id=library, media_type="book", title=f"Book {n} (2nd)", isbn13=isbn, added_by=owner),
                Media(library_id=library, media_type="movie", title=f"Film {n}", year=2000, added_by=owner),
                Media(library_id=library, media_type="movie", title=f"Film {n}", year=2001, added_by=owner),
                Media(library_id=library, media_type="movie", title=f"Film {n}", year=2002, added_by=owner),
            ])
        db.session.commit()


def test_duplicates_page_runs_the_same_few_queries_however_many_groups_it_shows(app, actors: Actors):
    bob = actors.client("bob")
    _seed_groups(app, actors.ids["bob"], 0, 1)
    bob.get("/library/duplicates")  # warm up: first-request work is not the page's

    with count_queries(app) as few:
        small = bob.get("/library/duplicates")
    _seed_groups(app, actors.ids["carol"], 1, 9)
    with count_queries(app) as many:
        large = bob.get("/library/duplicates")

    assert small.get_data(as_text=True).count('data-testid="dup-group"') == 2
    assert large.get_data(as_text=True).count('data-testid="dup-group"') == 20
    assert len(many) == len(few), "\n".join(many)
    duplicate_queries = [s for s in many if "media" in s.lower() and "user_sessions" not in s.lower()]
    assert len(duplicate_queries) == 2, "\n".join(duplicate_queries)  # the groups with their total; the items
