"""Browsing the library: pages and fragments, filters, sorts, keyset pages, query counts, view toggle, bulk delete.

Items are inserted with the ORM (then refresh_media_index, as the media service does), so these tests do not
depend on the add/edit form.
"""

from __future__ import annotations

import html as htmllib
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import Select, event, func, select
from sqlalchemy.sql.util import find_tables

from collectz.extensions import db
from collectz.models import Genre, Library, Media, MediaPerson, MediaUserState, MediaVariant, Person, User
from collectz.services import count_cache, queries
from collectz.services.indexing import refresh_media_index
from tests.conftest import Actors, activity
from tests.conftest import statements as count_queries

HX = {"HX-Request": "true"}


# --- helpers ----------------------------------------------------------------------------------------------

def _named(model: type, name: str) -> Any:
    row = db.session.scalar(select(model).where(model.name_key == name.casefold()))
    if row is None:
        row = model(name=name, name_key=name.casefold())
        db.session.add(row)
    return row


def add_item(app: Flask, title: str, media_type: str = "movie", *, people: tuple[tuple[str, str], ...] = (),
             genres: tuple[str, ...] = (), details: dict[str, Any] | None = None, variants: tuple[str, ...] = (),
             **columns: Any) -> int:
    """Insert one item the way the media service leaves it (search text and filter keys refreshed)."""
    with app.app_context():
        library_id = db.session.scalar(select(Library.id).where(Library.is_default.is_(True)))
        media = Media(media_type=media_type, title=title, library_id=library_id, **columns)
        media.type_details = details or {}
        for position, (name, role) in enumerate(people):
            media.people.append(MediaPerson(person=_named(Person, name), role=role, position=position))
        media.genres = [_named(Genre, g) for g in genres]
        refresh_media_index(media)
        db.session.add(media)
        db.session.flush()
        for n, resolution in enumerate(variants):
            db.session.add(MediaVariant(media_id=media.id, source="plex", source_key=f"{media.id}-{n}",
                                        resolution=resolution))
        if variants:
            db.session.flush()
            refresh_media_index(media)
        db.session.commit()
        media_id = media.id
        db.session.remove()
        return media_id


def rate(app: Flask, user_id: int, media_id: int, rating: int | None) -> None:
    with app.app_context():
        db.session.add(MediaUserState(media_id=media_id, user_id=user_id, rating=rating))
        db.session.commit()


def titles(resp: Any) -> list[str]:
    """Item titles in the order a list page or fragment shows them."""
    html = resp.get_data(as_text=True)
    return [htmllib.unescape(m).strip() for m in
            re.findall(r'data-testid="item-link">(?:\s*<span class="cover[^>]*>[^<]*</span>)?\s*'
                       r'(?:<span class="name">)?([^<]*)', html)]


def total(resp: Any) -> int:
    return int(re.search(r'data-total="(\d+)"', resp.get_data(as_text=True)).group(1))


def next_link(resp: Any) -> str | None:
    match = re.search(r'data-next="([^"]+)"', resp.get_data(as_text=True))
    return match.group(1).replace("&amp;", "&") if match else None


def browse_service(app: Flask, user_id: int, section: str = "all", strategy: str = "auto",
                   **args: Any) -> queries.BrowsePage:
    with app.test_request_context():
        actor = db.session.get(User, user_id)
        params = queries.BrowseParams.from_args(section, {k: str(v) for k, v in args.items()})
        page = queries.browse(actor, params, strategy=strategy)
        db.session.remove()
        return page


# --- a small library with something for every filter and sort --------------------------------------------

@pytest.fixture
def library(app: Flask, actors: Actors) -> dict[str, int]:
    bob, carol = actors.ids["bob"], actors.ids["carol"]
    ids = {
        "Alien": add_item(app, "Alien", year=1979, formats=["Blu-ray", "DVD"], rating=8.5, added_by=bob,
                          people=(("Ridley Scott", "director"), ("Sigourney Weaver", "cast")),
                          genres=("Science Fiction", "Horror"), details={"resolution": "1080p"},
                          location="Living room"),
        "The Thing": add_item(app, "The Thing", year=1982, formats=["DVD"], rating=8.2, added_by=carol,
                              people=(("John Carpenter", "director"), ("Kurt Russell", "cast")),
                              genres=("Horror",), variants=("4k",)),
        "A Bug's Life": add_item(app, "A Bug's Life", year=1998, formats=["4K UHD"], added_by=bob,
                                 people=(("John Lasseter", "director"),), genres=("Animation",),
                                 details={"resolution": "SD"}),
        "Blade Runner": add_item(app, "Blade Runner", year=1982, formats=["VHS"], rating=8.1, added_by=carol,
                                 people=(("Ridley Scott", "director"), ("Harrison Ford", "cast")),
                                 genres=("Science Fiction",), signed_by="Ridley Scott", signed_role="producer"),
        "Dune": add_item(app, "Dune", "book", year=1965, formats=["Paperback"], rating=9.0, added_by=bob,
                         people=(("Frank Herbert", "author"),), genres=("Science Fiction",),
                         details={"series": "Dune Chronicles"}, location="Study", signed_by="Frank Herbert"),
        "Kindred": add_item(app, "Kindred", "book", year=None, formats=["Hardcover"], added_by=carol,
                            people=(("Octavia E. Butler", "author"),), genres=("Fiction",)),
        "Halo": add_item(app, "Halo", "game", year=2001, formats=["Disc"], rating=None, added_by=bob,
                         details={"platform": "Xbox"}, genres=("Action",)),
        "Tetris": add_item(app, "Tetris", "game", year=1989, formats=["Cartridge"], rating=7.0, added_by=carol,
                           details={"platform": "Game Boy"}),
        "Kind of Blue": add_item(app, "Kind of Blue", "audio", year=1959, formats=["Vinyl", "CD"], rating=9.5,
                                 added_by=bob, people=(("Miles Davis", "artist"),), genres=("Jazz",),
                                 location="Living room"),
        "Twin Peaks": add_item(app, "Twin Peaks", "tv_series", year=1990, formats=[], rating=8.8, added_by=carol,
                               people=(("David Lynch", "director"), ("Kyle MacLachlan", "cast"))),
    }
    rate(app, bob, ids["Alien"], 10)
    rate(app, bob, ids["Dune"], 7)
    rate(app, bob, ids["Tetris"], 3)
    rate(app, bob, ids["Kindred"], None)  # a state row without a rating counts as unrated
    rate(app, carol, ids["Halo"], 9)
    return ids


# --- pages and fragments ------------------------------------------------------------------------------------

VIEWS = ["/library/", "/library/movies", "/library/all/more", "/library/?q=alien&sort=year&view=table",
         "/library/games/more?view=table&sort=rating"]


def test_each_view_is_a_page_and_a_fragment(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    for path in VIEWS:
        page = bob.get(path)
        fragment = bob.get(path, headers=HX)

        assert page.status_code == fragment.status_code == 200, path
        html = page.get_data(as_text=True)
        assert "<html" in html and 'id="item-list"' in html and 'id="drawer"' in html, path
        # the drawer is outside the list, so a list swap never clears an open item
        assert re.search(r'<div id="item-list"[^>]*>.*</div>\s*<aside id="drawer"', html, re.S), path
        frag = fragment.get_data(as_text=True)
        assert "<html" not in frag and 'id="drawer"' not in frag and 'id="item-list"' not in frag, path
        assert 'data-testid="item-link"' in frag, path
        for resp in (page, fragment):
            assert "HX-Request" in resp.headers["Vary"], path


def test_list_fragment_has_the_count_and_the_rows_fragment_only_rows(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    listing = bob.get("/library/?per_page=3", headers=HX).get_data(as_text=True)
    rows = bob.get("/library/all/more?per_page=3", headers=HX).get_data(as_text=True)

    assert 'data-total="10"' in listing and "10 items" in listing
    assert "data-total" not in rows and rows.count('data-testid="item-link"') == 3
    assert 'data-testid="load-more"' in rows


def test_item_links_open_the_drawer(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    alien = library["Alien"]
    contract = (f'<a href="/library/media/{alien}" hx-get="/library/media/{alien}" hx-target="#drawer" '
                f'hx-swap="innerHTML" hx-push-url="true" data-testid="item-link"')
    for view in ("grid", "table"):
        html = bob.get(f"/library/?view={view}", headers=HX).get_data(as_text=True)
        assert contract in html.replace(' class="poster"', ""), view


def test_every_member_browses_and_an_outsider_is_sent_to_sign_in(app: Flask, library: dict[str, int],
                                                                 actors: Actors):
    for name in ("alice", "bob", "carol", "vera"):
        resp = actors.client(name).get("/library/")
        assert resp.status_code == 200 and total(resp) == 10, name
    outsider = app.test_client()
    plain = outsider.get("/library/?q=alien")
    htmx = outsider.get("/library/?q=alien", headers=HX)
    assert plain.status_code in (302, 303) and "/auth/login" in plain.headers["Location"]
    assert htmx.status_code == 204 and "/auth/login" in htmx.headers["HX-Redirect"]
    assert outsider.get("/library/all/more").status_code in (302, 303)
    assert "Alien" not in plain.get_data(as_text=True)


def test_viewer_sees_no_selection_or_bulk_controls(library: dict[str, int], actors: Actors):
    viewer = actors.client("vera").get("/library/").get_data(as_text=True)
    member = actors.client("bob").get("/library/").get_data(as_text=True)
    assert 'data-testid="select-item"' not in viewer and 'id="bulk-form"' not in viewer
    assert 'id="bulk-form"' in member
    # a member can tick only the items they may delete: bob added five of the ten
    assert member.count('data-testid="select-item"') == 5
    assert actors.client("alice").get("/library/").get_data(as_text=True).count('data-testid="select-item"') == 10


def test_unknown_section_is_404(actors: Actors):
    assert actors.client("bob").get("/library/spaceships").status_code == 404
    assert actors.client("bob").get("/library/spaceships/more").status_code == 404


def test_the_full_page_offers_filters_in_a_details_panel(library: dict[str, int], actors: Actors):
    html = actors.client("bob").get("/library/").get_data(as_text=True)
    form = re.search(r'<form class="browse-form" method="get" action="/library/"(.*?)</form>', html, re.S).group(0)
    assert 'hx-trigger="input changed delay:300ms, search"' in form and 'name="q"' in form
    assert "<details class=\"filters\"" in form and "<details class=\"filters\" open" not in form
    for name in ("format", "year_from", "year_to", "genre", "director", "cast", "author", "platform",
                 "resolution", "rating_min", "rating_max", "my_rating_min", "my_rating_max", "location", "signed",
                 "sort", "dir", "per_page"):
        assert f'name="{name}"' in form, name
    assert '<option value="horror">Horror</option>' in form
    assert "<option>Xbox</option>" in form and "<option>Living room</option>" in form
    filtered = actors.client("bob").get("/library/?genre=horror").get_data(as_text=True)
    assert '<details class="filters" open' in filtered


# --- filters ------------------------------------------------------------------------------------------------

FILTERS = [
    ({"format": "dvd"}, {"Alien", "The Thing"}),
    ({"format": "4k uhd"}, {"A Bug's Life"}),
    ({"format": "VINYL"}, {"Kind of Blue"}),
    ({"year_from": 1980, "year_to": 1989}, {"The Thing", "Blade Runner", "Tetris"}),
    ({"year_from": 1990}, {"A Bug's Life", "Halo", "Twin Peaks"}),
    ({"year_to": 1970}, {"Dune", "Kind of Blue"}),
    ({"genre": "science fiction"}, {"Alien", "Blade Runner", "Dune"}),
    ({"director": "ridley scott"}, {"Alien", "Blade Runner"}),
    ({"director": "Carpenter"}, {"The Thing"}),
    ({"cast": "weaver"}, {"Alien"}),
    ({"cast": "Ridley"}, set()),  # a director, not cast
    ({"author": "octavia"}, {"Kindred"}),
    ({"platform": "Xbox"}, {"Halo"}),
    ({"resolution": "1080p"}, {"Alien"}),
    ({"resolution": "4K"}, {"The Thing"}),  # from a Plex variant
    ({"resolution": "SD"}, {"A Bug's Life"}),
    ({"rating_min": 8.5}, {"Alien", "Dune", "Kind of Blue", "Twin Peaks"}),
    ({"rating_min": 8, "rating_max": 8.5}, {"Alien", "The Thing", "Blade Runner"}),
    ({"my_rating_min": 5}, {"Alien", "Dune"}),
    ({"my_rating_max": 5}, {"Tetris"}),
    ({"location": "Living room"}, {"Alien", "Kind of Blue"}),
    ({"signed": 1}, {"Blade Runner", "Dune"}),
    ({"genre": "science fiction", "year_to": 1980, "signed": 1}, {"Dune"}),
    ({"director": "scott", "format": "vhs", "rating_min": 8}, {"Blade Runner"}),
]


def test_each_filter(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    for args, expected in FILTERS:
        resp = bob.get("/library/", query_string=args, headers=HX)
        assert resp.status_code == 200, args
        assert (set(titles(resp)), total(resp)) == (expected, len(expected)), args


SECTIONS = [
    ("movies", {"Alien", "The Thing", "A Bug's Life", "Blade Runner"}),
    ("books", {"Dune", "Kindred"}), ("games", {"Halo", "Tetris"}), ("music", {"Kind of Blue"}),
    ("tv", {"Twin Peaks"}), ("comics", set()),
]


def test_each_section_shows_its_types(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    for section, expected in SECTIONS:
        assert set(titles(bob.get(f"/library/{section}", headers=HX))) == expected, section


def test_my_rating_is_each_members_own(library: dict[str, int], actors: Actors):
    carol = actors.client("carol")
    assert set(titles(carol.get("/library/?my_rating_min=5", headers=HX))) == {"Halo"}


def test_the_same_view_shows_each_member_their_own_ratings(library: dict[str, int], actors: Actors):
    # A view's statements are kept and run again: the viewer is part of what they are kept under.
    bob, carol = actors.client("bob"), actors.client("carol")
    for _ in range(2):
        assert set(titles(bob.get("/library/?my_rating_min=5", headers=HX))) == {"Alien", "Dune"}
        assert set(titles(carol.get("/library/?my_rating_min=5", headers=HX))) == {"Halo"}
        assert titles(bob.get("/library/?sort=my_rating", headers=HX))[:3] == ["Alien", "Dune", "Tetris"]
        assert titles(carol.get("/library/?sort=my_rating", headers=HX))[:1] == ["Halo"]


def test_a_view_asked_again_runs_the_statements_it_built_before(app: Flask, library: dict[str, int],
                                                                 actors: Actors):
    """Building a page's statements (and SQLAlchemy's key for their compiled SQL) cost this process more than
    the rest of a list request: the same view asked again reuses them; another view builds its own."""
    with app.app_context():
        engine = db.engine
    ran: list[Any] = []

    def record(_conn: Any, clauseelement: Any, *_args: Any) -> None:
        if isinstance(clauseelement, Select) and Media.__table__ in find_tables(clauseelement):
            ran.append(clauseelement)

    bob = actors.client("bob")
    event.listen(engine, "before_execute", record)
    try:
        runs = []
        for url in ("/library/?genre=horror", "/library/?genre=horror", "/library/?genre=jazz"):
            count_cache.clear()  # each request counts its total
            ran.clear()
            assert bob.get(url, headers=HX).status_code == 200
            runs.append(list(ran))
    finally:
        event.remove(engine, "before_execute", record)
    first, again, other = runs
    assert len(first) == 2  # the total and the page
    assert all(a is b for a, b in zip(first, again, strict=True))
    assert not any(a is b for a in first for b in other)


def test_a_page_row_names_each_column_the_page_statement_reads(app: Flask, library: dict[str, int],
                                                                actors: Actors):
    # Rows become plain named tuples by position: their names must be the statement's columns, in order (then the
    # viewer's own rating, read apart).
    with app.test_request_context():
        actor = db.session.get(User, actors.ids["bob"])
        for sort in queries.SORTS:
            for strategy in ("walk", "collect"):
                params = queries.BrowseParams.from_args("all", {"sort": sort})
                stmt = queries._page_statement(db.session.get_bind().dialect.name, actor.id, params, strategy)
                assert (*db.session.execute(stmt).keys(), "my_rating") == queries.ListRow._fields, (sort, strategy)
                page = queries.browse(actor, params, strategy=strategy)
                assert page.rows and all(type(row) is queries.ListRow for row in page.rows)


def test_nonsense_filter_values_are_ignored(library: dict[str, int], actors: Actors):
    resp = actors.client("bob").get("/library/?year_from=abc&rating_min=11&resolution=8K&sort=colour&dir=up"
                                    "&per_page=-4&signed=maybe", headers=HX)
    assert resp.status_code == 200 and total(resp) == 10


def test_active_filters_are_shown_and_removable(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    html = bob.get("/library/?genre=horror&signed=1&q=alien", headers=HX).get_data(as_text=True)
    chips = re.findall(r'<a class="chip" href="([^"]+)"', html)
    assert len(chips) == 2
    without_genre = [c for c in chips if "genre" not in c][0].replace("&amp;", "&")
    assert parse_qs(urlsplit(without_genre).query) == {"q": ["alien"], "signed": ["1"]}


# --- sorts --------------------------------------------------------------------------------------------------

def _expected_order(app: Flask, user_id: int, sort: str, direction: str) -> list[str]:
    """Titles sorted in Python: NULL keys last in both directions, ties by id in the sort's direction."""
    with app.app_context():
        items = db.session.scalars(select(Media)).all()
        mine = dict(db.session.execute(select(MediaUserState.media_id, MediaUserState.rating)
                                       .where(MediaUserState.user_id == user_id)).all())
        key = {
            "title": lambda m: m.sort_title, "year": lambda m: m.year, "format": lambda m: m.formats_key,
            "added": lambda m: m.created_at, "rating": lambda m: m.rating, "my_rating": lambda m: mine.get(m.id),
        }[sort]
        present = sorted((m for m in items if key(m) is not None), key=lambda m: (key(m), m.id),
                         reverse=direction == "desc")
        missing = sorted((m for m in items if key(m) is None), key=lambda m: m.id, reverse=direction == "desc")
        result = [m.title for m in present + missing]
        db.session.remove()
        return result


def test_each_sort_in_both_directions(app: Flask, library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    for sort in queries.SORTS:
        for direction in ("asc", "desc"):
            resp = bob.get(f"/library/?sort={sort}&dir={direction}&view=table", headers=HX)
            assert titles(resp) == _expected_order(app, actors.ids["bob"], sort, direction), (sort, direction)


def test_title_sort_ignores_articles_and_shows_the_full_title(library: dict[str, int], actors: Actors):
    shown = titles(actors.client("bob").get("/library/movies", headers=HX))
    assert shown == ["Alien", "Blade Runner", "A Bug's Life", "The Thing"]


def test_default_directions_and_sort_links(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    assert titles(bob.get("/library/?sort=rating", headers=HX))[0] == "Kind of Blue"  # best first
    assert titles(bob.get("/library/?sort=year", headers=HX))[0] == "Halo"  # newest first
    html = bob.get("/library/?view=table&sort=year", headers=HX).get_data(as_text=True)
    assert 'href="/library/?sort=year&amp;dir=asc" hx-get="/library/?sort=year&amp;dir=asc"' in html
    assert 'aria-sort="descending"' in html


# --- keyset pages -------------------------------------------------------------------------------------------

@pytest.fixture
def ties(app: Flask, actors: Actors) -> list[int]:
    """37 items with many equal titles, years and ratings, and NULLs in every nullable key."""
    bob = actors.ids["bob"]
    ids = []
    for n in range(37):
        ids.append(add_item(
            app, ("The Same Title", "A Same Title", "Other")[n % 3], ("movie", "book")[n % 2],
            year=None if n % 5 == 0 else 1990 + n % 4, rating=None if n % 4 == 0 else (7.5, 8.0)[n % 2],
            formats=[] if n % 6 == 0 else [("DVD", "Blu-ray", "dvd")[n % 3]], added_by=bob))
        if n % 3 == 0:
            rate(app, bob, ids[-1], None if n % 9 == 0 else n % 2)
    return ids


@pytest.mark.parametrize("strategy", ["walk", "collect"])
def test_keyset_pages_never_repeat_or_skip(app: Flask, ties: list[int], actors: Actors, strategy: str):
    with app.app_context():
        by_id = {m.id: m.title for m in db.session.scalars(select(Media))}
        db.session.remove()
    for sort in queries.SORTS:
        for direction in ("asc", "desc"):
            seen: list[int] = []
            after = ""
            for _ in range(40):
                page = browse_service(app, actors.ids["bob"], sort=sort, dir=direction, per_page=4, after=after,
                                      strategy=strategy)
                assert page.total == 37 and page.strategy == strategy
                seen += [row.id for row in page.rows]
                if not page.has_next:
                    break
                after = page.next_cursor
            assert sorted(seen) == sorted(ties), f"{sort} {direction}: every item exactly once"
            expected = _expected_order(app, actors.ids["bob"], sort, direction)
            assert [by_id[i] for i in seen] == expected, (sort, direction)


def test_load_more_link_walks_the_whole_list_without_js(ties: list[int], actors: Actors):
    bob = actors.client("bob")
    url = "/library/?per_page=10&sort=year"
    seen: list[str] = []
    pages = 0
    while url:
        resp = bob.get(url)  # a plain GET: each "Load more" is a real page
        assert resp.status_code == 200 and "<html" in resp.get_data(as_text=True)
        assert total(resp) == 37
        ids = re.findall(r'name="ids" value="(\d+)"', resp.get_data(as_text=True))
        seen += ids
        url = next_link(resp)
        pages += 1
        if pages > 1:
            assert "Back to the first page" in resp.get_data(as_text=True)
    assert pages == 4 and sorted(map(int, seen)) == sorted(ties)


def test_htmx_load_more_fetches_rows_and_pushes_the_page_url(ties: list[int], actors: Actors):
    bob = actors.client("bob")
    first = bob.get("/library/?per_page=10", headers=HX).get_data(as_text=True)
    more = re.search(r'<a class="button load-more" href="([^"]+)" hx-get="([^"]+)" hx-target="closest .more" '
                     r'hx-swap="outerHTML" hx-push-url="([^"]+)"', first)
    page_url, rows_url, pushed = (g.replace("&amp;", "&") for g in more.groups())
    assert pushed == page_url and rows_url.startswith("/library/all/more?") and "after=" in page_url
    rows = bob.get(rows_url, headers=HX).get_data(as_text=True)
    assert rows.count('data-testid="item-link"') == 10 and "data-total" not in rows


def test_a_bad_cursor_starts_at_the_first_page(ties: list[int], actors: Actors):
    bob = actors.client("bob")
    first = titles(bob.get("/library/?per_page=5", headers=HX))
    for after in ("garbage", "eyJhIjoxfQ", "WyJ5ZWFyIiwiZGVzYyIsMTk5MCwxXQ"):  # the last: a cursor of another sort
        resp = bob.get(f"/library/?per_page=5&after={after}", headers=HX)
        assert resp.status_code == 200 and titles(resp) == first


def test_page_size_defaults_to_50_and_is_capped_at_200(app: Flask, actors: Actors):
    now = datetime.now(UTC)
    with app.app_context():
        library_id = db.session.scalar(select(Library.id))
        db.session.execute(Media.__table__.insert(), [
            {"library_id": library_id, "media_type": "movie", "title": f"Film {n:03d}", "sort_title": f"film {n:03d}",
             "formats": [], "type_details": {}, "copies": 1, "search_text": f"film {n:03d}",
             "created_at": now, "updated_at": now} for n in range(230)])
        db.session.commit()
    bob = actors.client("bob")
    assert len(titles(bob.get("/library/", headers=HX))) == 50
    assert len(titles(bob.get("/library/?per_page=1000", headers=HX))) == 200
    assert len(titles(bob.get("/library/?per_page=7", headers=HX))) == 7


# --- a constant number of queries ---------------------------------------------------------------------------

@pytest.fixture
def many(app: Flask, actors: Actors) -> None:
    """210 items from the benchmark's seeder: people, genres, formats, ratings and the member's own ratings."""
    from bench.seed import seed

    with app.app_context(), db.engine.begin() as conn:
        seed(conn, 210, users={"bob@example.org": actors.ids["bob"]})


QUERIES = ["/library/?", "/library/?sort=my_rating", "/library/?sort=year&dir=asc", "/library/?q=a&genre=drama",
           "/library/?view=table&sort=rating", "/library/movies?q=the", "/library/?format=dvd&year_from=1980"]


def test_list_queries_do_not_grow_with_the_page_size(app: Flask, many: None, actors: Actors):
    bob = actors.client("bob")
    for query in QUERIES:
        counts = []
        for size in (10, 200):
            count_cache.clear()  # each request counts its total (a kept count would skip that query)
            with count_queries(app) as statements:
                resp = bob.get(f"{query}&per_page={size}", headers=HX)
            assert resp.status_code == 200 and len(titles(resp)) == min(size, total(resp)), query
            counts.append(len(statements))
        # the session and its user, (PostgreSQL: planner settings), the total, the page: nothing per row
        assert counts[0] == counts[1] <= 5, (query, counts)


def test_walking_strategy_queries_do_not_grow_either(app: Flask, many: None, actors: Actors):
    for sort in queries.SORTS:
        counts = []
        for size in (10, 200):
            count_cache.clear()
            with count_queries(app) as statements:
                page = browse_service(app, actors.ids["bob"], sort=sort, per_page=size, strategy="walk")
            assert len(page.rows) == size and page.strategy == "walk"
            counts.append(len(statements))
        assert counts[0] == counts[1], sort


# --- the view toggle ----------------------------------------------------------------------------------------

def test_grid_or_table_is_remembered(library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    assert 'data-view="grid"' in bob.get("/library/", headers=HX).get_data(as_text=True)
    chosen = bob.get("/library/?view=table", headers=HX)
    assert 'data-view="table"' in chosen.get_data(as_text=True)
    assert "library_view=table" in chosen.headers["Set-Cookie"]
    assert 'data-view="table"' in bob.get("/library/books", headers=HX).get_data(as_text=True)
    bob.get("/library/?view=grid")
    assert 'data-view="grid"' in bob.get("/library/", headers=HX).get_data(as_text=True)


# --- bulk delete --------------------------------------------------------------------------------------------

def _media_titles(app: Flask) -> set[str]:
    with app.app_context():
        return set(db.session.scalars(select(Media.title)))


def test_bulk_delete_asks_first(app: Flask, library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    data = {"ids": [library["Alien"], library["Dune"]], "next": "/library/?genre=horror"}

    page = bob.post("/library/bulk/delete", data=data)
    fragment = bob.post("/library/bulk/delete", data=data, headers=HX)

    assert page.status_code == fragment.status_code == 200
    assert "<html" in page.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    for resp in (page, fragment):
        html = resp.get_data(as_text=True)
        assert "Delete 2 items?" in html and 'name="confirm" value="yes"' in html
        assert 'value="/library/?genre=horror"' in html
        assert "HX-Request" in resp.headers["Vary"]
    assert len(_media_titles(app)) == 10 and activity(app, "media.deleted") == []


def test_member_deletes_own_items_and_skips_others(app: Flask, library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    chosen = [library["Alien"], library["Dune"], library["The Thing"], 999_999]
    confirm = bob.post("/library/bulk/delete", data={"ids": chosen}).get_data(as_text=True)
    assert "Delete 2 items?" in confirm and "2 will be skipped" in confirm

    resp = bob.post("/library/bulk/delete", data={"ids": chosen, "confirm": "yes", "next": "/library/books"})

    assert resp.status_code == 303 and resp.headers["Location"] == "/library/books"
    assert _media_titles(app) == {"The Thing", "A Bug's Life", "Blade Runner", "Kindred", "Halo", "Tetris",
                                  "Kind of Blue", "Twin Peaks"}
    deleted = activity(app, "media.deleted")
    assert sorted(int(e.entity_id) for e in deleted) == sorted([library["Alien"], library["Dune"]])
    assert all(e.actor_id == actors.ids["bob"] for e in deleted)
    summary = activity(app, "media.bulk_deleted")
    assert len(summary) == 1
    assert {k: summary[0].details[k] for k in ("requested", "deleted", "skipped")} == {
        "requested": 4, "deleted": 2, "skipped": 2}
    denied = activity(app, "permission.denied")
    assert len(denied) == 1 and denied[0].details["media_ids"] == [library["The Thing"]]
    assert "Deleted 2 of 4" in bob.get("/library/books").get_data(as_text=True)  # the flash


def test_admin_deletes_anything_via_htmx(app: Flask, library: dict[str, int], actors: Actors):
    admin = actors.client("alice")
    chosen = [library["The Thing"], library["Halo"]]
    resp = admin.post("/library/bulk/delete", data={"ids": chosen, "confirm": "yes", "next": "/library/"},
                      headers=HX)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/library/"
    assert not {"The Thing", "Halo"} & _media_titles(app)
    assert activity(app, "media.bulk_deleted")[0].details["deleted"] == 2


def test_viewer_and_outsider_cannot_bulk_delete(app: Flask, library: dict[str, int], actors: Actors):
    vera = actors.client("vera")
    chosen = {"ids": [library["Alien"]], "confirm": "yes"}
    assert vera.post("/library/bulk/delete", data={"ids": [library["Alien"]]}).status_code == 403
    assert vera.post("/library/bulk/delete", data=chosen).status_code == 403
    outsider = app.test_client().post("/library/bulk/delete", data=chosen)
    assert outsider.status_code in (302, 303, 400)  # sign-in first (or no CSRF token at all)
    assert len(_media_titles(app)) == 10
    denied = activity(app, "permission.denied")
    assert len(denied) == 2 and all(d.actor_id == actors.ids["vera"] and d.http_status == 403 for d in denied)
    assert activity(app, "media.deleted") == [] and activity(app, "media.bulk_deleted") == []


def test_bulk_delete_needs_a_selection_and_a_local_next(app: Flask, library: dict[str, int], actors: Actors):
    bob = actors.client("bob")
    assert bob.post("/library/bulk/delete", data={}).status_code == 422
    resp = bob.post("/library/bulk/delete", data={"ids": [library["Alien"]], "confirm": "yes",
                                                  "next": "https://evil.example/"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/library/"


def test_bulk_delete_removes_what_hangs_off_the_items(app: Flask, library: dict[str, int], actors: Actors):
    actors.client("bob").post("/library/bulk/delete", data={"ids": [library["Alien"]], "confirm": "yes"})
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(MediaPerson)
                                 .where(MediaPerson.media_id == library["Alien"])) == 0
        assert db.session.scalar(select(func.count()).select_from(MediaUserState)
                                 .where(MediaUserState.media_id == library["Alien"])) == 0



# --- list fragments, kept (web.htmx.render_kept, keyed in blueprints.library.browse) ----------------------------

def rendered(app: Flask, client: Any, url: str, **kwargs: Any) -> tuple[str, bool]:
    """(the fragment's HTML, whether the request rendered it rather than reusing a kept one)."""
    from jinja2_fragments.flask import template_block_rendered

    blocks: list[str] = []

    def record(_sender: Any, template_name: str, block_name: str, **_extra: Any) -> None:
        blocks.append(f"{template_name}:{block_name}")

    template_block_rendered.connect(record, app)
    try:
        resp = client.get(url, headers=HX, **kwargs)
    finally:
        template_block_rendered.disconnect(record, app)
    assert resp.status_code == 200, url
    return resp.get_data(as_text=True), bool(blocks)


def test_a_list_fragment_renders_once_and_again_when_what_it_shows_changes(app: Flask, library: dict[str, int],
                                                                          actors: Actors) -> None:
    from collectz.web import htmx

    htmx._kept.clear()
    bob = actors.client("bob")
    first, again = rendered(app, bob, "/library/?q=alien"), rendered(app, bob, "/library/?q=alien")
    assert first[1] is True and again[1] is False and again[0] == first[0]
    assert "Mine 7" not in first[0]
    resp = bob.post(f"/library/media/{library['Alien']}/state", data={"rating": "7", "status": ""})
    assert resp.status_code in (200, 303)
    html, fresh = rendered(app, bob, "/library/?q=alien")  # the viewer's own rating is part of the rows
    assert fresh and "Mine 7" in html
    with app.app_context():
        media = db.session.get(Media, library["Alien"])
        media.title = "Alien (Director's Cut)"
        refresh_media_index(media)
        db.session.commit()
    html, fresh = rendered(app, bob, "/library/?q=alien")
    assert fresh and "Alien (Director&#39;s Cut)" in html
    assert rendered(app, bob, "/library/?q=alien&view=table")[1] is True  # another view of the same rows
    assert rendered(app, bob, "/library/all/more?q=alien")[1] is True  # another block
    assert rendered(app, bob, "/library/all/more?q=alien")[1] is False


def test_kept_fragments_are_not_shared_by_members_who_may_do_different_things(app: Flask, actors: Actors) -> None:
    for n, owner in enumerate(("bob", "bob", "carol")):  # nobody has rated them: the same rows for everyone
        add_item(app, f"Item {n}", added_by=actors.ids[owner])
    boxes = {name: rendered(app, actors.client(name), "/library/")[0].count('data-testid="select-item"')
             for name in ("alice", "bob", "vera", "carol")}
    assert boxes == {"alice": 3, "bob": 2, "vera": 0, "carol": 1}  # an admin any, a member their own, a viewer none
    # In a table a member has a (here empty) pick column, a viewer none: the same rows, the same (empty) ids.
    picks = {name: rendered(app, actors.client(name), "/library/?view=table&q=item+0")[0].count('<td class="pick">')
             for name in ("carol", "vera")}
    assert picks == {"carol": 1, "vera": 0}


def test_kept_fragments_link_under_the_address_they_were_asked_at(app: Flask, library: dict[str, int],
                                                             actors: Actors) -> None:
    bob = actors.client("bob")
    plain, _ = rendered(app, bob, "/library/")
    prefixed, fresh = rendered(app, bob, "/library/", base_url="http://localhost/catalog")
    assert fresh
    assert f'href="/library/media/{library["Alien"]}"' in plain
    assert f'href="/catalog/library/media/{library["Alien"]}"' in prefixed


def test_kept_fragments_follow_each_members_remembered_view(app: Flask, actors: Actors) -> None:
    add_item(app, "Unrated", added_by=actors.ids["bob"])  # nobody has rated it: the same rows for everyone
    bob, alice = actors.client("bob"), actors.client("alice")  # both may edit it: the same ids
    assert 'data-view="table"' in rendered(app, bob, "/library/?view=table")[0]  # remembered in a cookie
    assert 'data-view="table"' in rendered(app, bob, "/library/")[0]
    assert 'data-view="grid"' in rendered(app, alice, "/library/")[0]  # the same address, alice's own view


def test_a_members_changed_fragment_replaces_the_kept_one(app: Flask, library: dict[str, int],
                                                          actors: Actors) -> None:
    from collectz.web import htmx

    htmx._kept.clear()
    bob = actors.client("bob")
    for rating in ("2", "4", "6"):
        assert bob.post(f"/library/media/{library['Alien']}/state", data={"rating": rating, "status": ""}
                        ).status_code in (200, 303)
        html, fresh = rendered(app, bob, "/library/?q=alien")
        assert fresh and f"Mine {rating}" in html
    rendered(app, actors.client("carol"), "/library/?q=alien")
    assert len(htmx._kept) == 2  # bob's latest and carol's, not one per rating
