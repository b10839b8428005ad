"""Library export (CSV and JSON) on each backend: the template's columns, formula cells escaped, the view's filters
and order honoured across keyset pages, every stored field in JSON, a CSV round trip through the real importer,
a query count that grows with pages and not items, the download routes, their audit event and who may use them.

Items are inserted with the ORM the way the media service leaves them (search text and filter keys refreshed).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, event, select

from collectz.extensions import db
from collectz.importers import csv_generic
from collectz.models import (
    Genre,
    Library,
    Media,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaUserState,
    MediaVariant,
    Person,
    User,
)
from collectz.services import count_cache, export, imports, queries
from collectz.services.indexing import refresh_media_index
from tests.conftest import Actors, activity

BOB = "bob@example.org"


# --- helpers ----------------------------------------------------------------------------------------------------


def user(email: str = BOB) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def _named(model: type, name: str) -> Any:
    row = db.session.scalar(select(model).where(model.name_key == name.casefold()))
    if row is None:
        row = model(name=name, name_key=name.casefold())
        db.session.add(row)
        db.session.flush()
    return row


def add(title: str, media_type: str = "movie", *, people: tuple[tuple[str, str], ...] = (),
        genres: tuple[str, ...] = (), details: dict[str, Any] | None = None, metadata: dict[str, str] | None = None,
        owner: str | None = BOB, **columns: Any) -> int:
    """Insert one item (inside an app context) with its people, genres and metadata; returns its id."""
    library_id = db.session.scalar(select(Library.id).where(Library.is_default.is_(True)))
    media = Media(media_type=media_type, title=title, library_id=library_id,
                  added_by=user(owner).id if owner else None, **columns)
    media.type_details = details or {}
    positions: dict[str, int] = {}
    for name, role in people:
        media.people.append(MediaPerson(person=_named(Person, name), role=role, position=positions.get(role, 0)))
        positions[role] = positions.get(role, 0) + 1
    media.genres = [_named(Genre, g) for g in genres]
    refresh_media_index(media)
    db.session.add(media)
    db.session.flush()
    for key, value in (metadata or {}).items():
        db.session.add(MediaMetadata(media_id=media.id, key=key, value=value))
    db.session.commit()
    return media.id


def params(section: str = "all", **args: str) -> queries.BrowseParams:
    return queries.BrowseParams.from_args(section, args)


def csv_rows(actor: User, p: queries.BrowseParams, **kwargs: Any) -> list[dict[str, str]]:
    text = "".join(export.export_csv(actor, p, **kwargs))
    return list(csv.DictReader(io.StringIO(text)))


def json_doc(actor: User, p: queries.BrowseParams, **kwargs: Any) -> dict[str, Any]:
    return json.loads("".join(export.export_json(actor, p, **kwargs)))


@contextmanager
def counted() -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


# A small catalog that uses every column of the import template that maps to something we store.
def catalog() -> dict[str, int]:
    ids = {}
    ids["amelie"] = add(
        "Amélie", "movie", original_title="Le Fabuleux Destin d'Amélie Poulain", year=2001,
        release_date=date(2001, 4, 25), formats=["Blu-ray", "DVD"], overview="A shy waitress, in Montmartre.",
        runtime=122, rating=8.5, copies=2, location="Living room", ean13="3249211630454", tmdb_id=194,
        tmdb_media_type="movie", people=(("Jean-Pierre Jeunet", "director"), ("Audrey Tautou", "cast"),
                                         ("Mathieu Kassovitz", "cast")),
        genres=("Comedy", "Romance"), details={"studio": "UGC", "resolution": "1080p", "edition": "Collector"},
        metadata={"purchase_date": "2019-11-02", "purchase_price": "9.99", "cover_url": "https://img.test/a.jpg"})
    ids["hobbit"] = add(
        "The Hobbit", "book", year=1937, formats=["Paperback"], genres=("Fantasy",), rating=10.0,
        location="Study, shelf 2", notes='Gift from "Aunt May",\nsecond line', isbn13="9780261102217",
        asin="B0000DEFAB", people=(("Tolkien, J.R.R.", "author"), ("Alan Lee", "illustrator")),
        details={"publisher": "HarperCollins", "series": "Middle-earth", "series_number": "1", "pages": 310},
        metadata={"languages": "English", "kind": "Hardback box set", "condition": "Worn"},
        signed_by="Christopher Tolkien")
    ids["blue"] = add(
        "Kind of Blue", "audio", year=1959, formats=["Vinyl"], genres=("Jazz",), ean13="0074644065923",
        people=(("Miles Davis", "artist"), ("Teo Macero", "producer")), details={"label": "Columbia",
                                                                                 "track_count": 5})
    ids["zelda"] = add(
        "The Legend of Zelda: Breath of the Wild", "game", year=2017, ean13="0045496590567",
        people=(("Nintendo EPD", "developer"),), details={"platform": "Nintendo Switch", "region": "PAL"})
    ids["watchmen"] = add(
        "At Midnight, All the Agents", "comic_book", year=1986, genres=("Superhero",),
        people=(("Alan Moore", "writer"), ("Dave Gibbons", "artist"), ("John Higgins", "colorist"),
                ("Dave Gibbons", "inker")),
        details={"series": "Watchmen", "issue": "1", "volume": "1", "publisher": "DC Comics",
                 "cover_date": "1986-09", "pages": 32}, metadata={"current_value": "40"})
    ids["zen"] = add(
        "Zen, or the Skill to Catch a Killer", "tv_episode", year=1990, release_date=date(1990, 4, 19),
        people=(("David Lynch", "director"), ("Mark Frost", "writer"), ("David Lynch", "writer")),
        details={"series_title": "Twin Peaks", "season": 1, "episode": 3})
    ids["peaks"] = add("Twin Peaks", "tv_series", year=1990, people=(("Mark Frost", "creator"),),
                       details={"network": "ABC"}, metadata={"tags": "cult; 90s"})
    ids["catan"] = add("Catan", "other", year=1995, genres=("Strategy",), details={"kind": "Board game"},
                       people=(("Klaus Teuber", "creator"),), metadata={"owner": "Grandma", "review": "Great."})
    return ids


# --- CSV ----------------------------------------------------------------------------------------------------------


def test_the_csv_header_is_the_import_templates_header(ctx: Flask, actors: Actors) -> None:
    template_header = csv_generic.template_csv().splitlines()[0]
    empty = "".join(export.export_csv(user(), params()))
    assert empty.splitlines() == [template_header]
    add("Alien", year=1979)
    text = "".join(export.export_csv(user(), params()))
    assert text.splitlines()[0] == template_header
    assert next(csv.reader(io.StringIO(text))) == [f.name for f in csv_generic.FIELDS]


def test_csv_cells_that_look_like_formulas_are_escaped(ctx: Flask, actors: Actors) -> None:
    add('=HYPERLINK("http://evil.test","x")', notes="+1 555 0100", location="@shelf",
        genres=("-80s",), people=(("=cmd|' /C calc'!A0", "director"),))
    add("Plain")
    rows = {r["title"]: r for r in csv_rows(user(), params())}
    evil = rows["'=HYPERLINK(\"http://evil.test\",\"x\")"]
    assert (evil["notes"], evil["location"], evil["genres"]) == ("'+1 555 0100", "'@shelf", "'-80s")
    assert evil["directors"] == "'=cmd|' /C calc'!A0"
    assert rows["Plain"]["title"] == "Plain"


def test_csv_has_the_people_genres_identifiers_details_and_metadata(ctx: Flask, actors: Actors) -> None:
    ids = catalog()
    rows = {r["title"]: r for r in csv_rows(user(), params())}
    amelie, hobbit, comic = rows["Amélie"], rows["The Hobbit"], rows["At Midnight, All the Agents"]
    assert (amelie["import_ref"], amelie["media_type"], amelie["year"], amelie["release_date"]) == (
        f"collectz-{ids['amelie']}", "movie", "2001", "2001-04-25")
    assert (amelie["directors"], amelie["cast"], amelie["genres"], amelie["formats"]) == (
        "Jean-Pierre Jeunet", "Audrey Tautou; Mathieu Kassovitz", "Comedy; Romance", "Blu-ray; DVD")
    assert (amelie["ean"], amelie["tmdb_id"], amelie["rating"], amelie["copies"], amelie["runtime"]) == (
        "3249211630454", "194", "8.5", "2", "122")
    assert (amelie["studio"], amelie["resolution"], amelie["purchase_price"], amelie["cover_url"]) == (
        "UGC", "1080p", "9.99", "https://img.test/a.jpg")
    assert (hobbit["isbn"], hobbit["asin"], hobbit["authors"], hobbit["illustrators"]) == (
        "9780261102217", "B0000DEFAB", "Tolkien, J.R.R.", "Alan Lee")
    assert (hobbit["pages"], hobbit["series_number"], hobbit["signed_by"], hobbit["rating"]) == (
        "310", "1", "Christopher Tolkien", "10")
    assert hobbit["notes"] == 'Gift from "Aunt May",\nsecond line'
    assert hobbit["kind_of_item"] == "Hardback box set"  # a detail kept as metadata goes back to its column
    assert (comic["writers"], comic["artists"], comic["inkers"], comic["colorists"]) == (
        "Alan Moore", "Dave Gibbons", "Dave Gibbons", "John Higgins")
    assert rows["Catan"]["kind_of_item"] == "Board game" and rows["Catan"]["owner"] == "Grandma"


def test_an_item_a_csv_import_made_keeps_its_import_ref(ctx: Flask, actors: Actors) -> None:
    media_id = add("Alien", year=1979)
    db.session.add(MediaSource(media_id=media_id, source="delicious", source_id="DL-1"))
    db.session.add(MediaSource(media_id=media_id, source="csv", source_id="my-ref-7"))
    db.session.commit()
    assert [r["import_ref"] for r in csv_rows(user(), params())] == ["my-ref-7"]


# --- filters, order and pages --------------------------------------------------------------------------------------


def _browse_titles(actor: User, p: queries.BrowseParams) -> list[str]:
    """Every title of the view, as the library page pages through it."""
    out, after = [], ""
    while True:
        page = queries.browse(actor, replace(p, after=after, per_page=3))
        out += [row.title for row in page.rows]
        if page.next_cursor is None:
            return out
        after = page.next_cursor


@pytest.mark.parametrize("section, args", [
    ("all", {}),
    ("books", {}),
    ("tv", {"sort": "year", "dir": "asc"}),
    ("all", {"q": "twin"}),
    ("all", {"genre": "jazz"}),
    ("all", {"director": "Lynch"}),
    ("all", {"year_from": "1980", "sort": "year"}),
    ("all", {"format": "dvd"}),
    ("all", {"platform": "Nintendo Switch"}),
    ("all", {"signed": "1"}),
    ("all", {"rating_min": "9"}),
    ("all", {"sort": "added", "dir": "asc"}),
])
def test_an_export_has_exactly_the_views_items_in_its_order(ctx: Flask, actors: Actors, section: str,
                                                            args: dict[str, str]) -> None:
    catalog()
    p = params(section, **args)
    expected = _browse_titles(user(), p)
    assert expected, "each case must match something"
    assert [r["title"] for r in csv_rows(user(), p, page_size=2)] == expected
    doc = json_doc(user(), p, page_size=3)
    assert [i["title"] for i in doc["items"]] == expected and doc["count"] == len(expected)
    assert doc["filters"] == {"section": section, **p.args()}


def test_the_viewers_own_rating_filter_and_sort_are_honoured(ctx: Flask, actors: Actors) -> None:
    a, b, _c = add("A"), add("B"), add("C")
    for media_id, rating in ((a, 3), (b, 9)):
        db.session.add(MediaUserState(media_id=media_id, user_id=user("vera@example.org").id, rating=rating))
    db.session.commit()
    vera = user("vera@example.org")
    assert [r["title"] for r in csv_rows(vera, params(sort="my_rating"))] == ["B", "A", "C"]
    assert [r["title"] for r in csv_rows(vera, params(my_rating_min="5"))] == ["B"]
    assert [r["title"] for r in csv_rows(user(), params(my_rating_min="5"))] == []


def test_an_export_starts_at_the_first_item_whatever_page_the_user_is_on(ctx: Flask, actors: Actors) -> None:
    for i in range(5):
        add(f"Item {i}")
    first = queries.browse(user(), params(per_page="2"))
    on_page_two = params(per_page="2", after=first.next_cursor or "")
    assert [r["title"] for r in csv_rows(user(), on_page_two)] == [f"Item {i}" for i in range(5)]


# --- JSON ---------------------------------------------------------------------------------------------------------


def test_json_has_the_head_and_every_stored_field(ctx: Flask, actors: Actors) -> None:
    ids = catalog()
    peaks = ids["peaks"]
    db.session.add(MediaSeason(media_id=peaks, season_number=1, expected_episodes=8, available_episodes=8,
                               complete=True, watch_state="watched"))
    db.session.add(MediaVariant(media_id=ids["amelie"], source="plex", source_key="p-1", resolution="1080",
                                video_codec="h264", audio_codec="aac", container="mkv", edition="Director's Cut",
                                file_path="/movies/Amelie.mkv", size_bytes=123456789, duration_ms=7320000))
    db.session.add(MediaSource(media_id=ids["amelie"], source="plex", source_id="plex:guid-1"))
    db.session.add(MediaUserState(media_id=ids["amelie"], user_id=user().id, rating=9, status="finished",
                                  watchlist=True))
    amelie = db.session.get(Media, ids["amelie"])
    amelie.plex_guid, amelie.cover_key = "plex://movie/5d776", "covers/amelie.jpg"
    db.session.commit()

    doc = json_doc(user(), params())
    assert set(doc) == {"exported_at", "app_version", "count", "filters", "items"}
    assert doc["count"] == len(doc["items"]) == 8 and doc["filters"] == {"section": "all"}
    assert re.match(r"\d{4}-\d\d-\d\dT", doc["exported_at"]) and doc["app_version"]
    items = {i["title"]: i for i in doc["items"]}
    item = items["Amélie"]
    assert item["id"] == ids["amelie"] and item["owner_email"] == BOB
    assert (item["original_title"], item["year"], item["release_date"], item["formats"], item["rating"]) == (
        "Le Fabuleux Destin d'Amélie Poulain", 2001, "2001-04-25", ["Blu-ray", "DVD"], 8.5)
    assert (item["runtime"], item["copies"], item["location"], item["overview"]) == (
        122, 2, "Living room", "A shy waitress, in Montmartre.")
    assert item["identifiers"] == {"isbn13": None, "ean13": "3249211630454", "asin": None, "tmdb_id": 194,
                                   "tmdb_media_type": "movie", "plex_guid": "plex://movie/5d776"}
    assert item["type_details"] == {"studio": "UGC", "resolution": "1080p", "edition": "Collector"}
    assert item["people"] == [
        {"name": "Audrey Tautou", "role": "cast", "position": 0, "character": None},
        {"name": "Mathieu Kassovitz", "role": "cast", "position": 1, "character": None},
        {"name": "Jean-Pierre Jeunet", "role": "director", "position": 0, "character": None}]
    assert item["genres"] == ["Comedy", "Romance"]
    assert item["metadata"] == {"cover_url": "https://img.test/a.jpg", "purchase_date": "2019-11-02",
                                "purchase_price": "9.99"}
    assert [(s["source"], s["source_id"]) for s in item["sources"]] == [("plex", "plex:guid-1")]
    assert item["variants"] == [{"source": "plex", "source_key": "p-1", "resolution": "1080", "video_codec": "h264",
                                 "audio_codec": "aac", "container": "mkv", "edition": "Director's Cut",
                                 "file_path": "/movies/Amelie.mkv", "size_bytes": 123456789,
                                 "duration_ms": 7320000}]
    assert item["my_state"] == {"rating": 9, "status": "finished", "watchlist": True, "last_watched_at": None}
    assert item["cover_key"] == "covers/amelie.jpg" and item["created_at"] and item["updated_at"]
    assert items["Twin Peaks"]["seasons"] == [{"season_number": 1, "expected_episodes": 8,
                                               "available_episodes": 8, "complete": True, "watch_state": "watched"}]
    assert items["The Hobbit"]["signed"] == {"by": "Christopher Tolkien", "role": None, "on": None, "at": None,
                                             "proof_key": None}
    assert items["The Hobbit"]["identifiers"]["isbn13"] == "9780261102217"
    assert items["The Hobbit"]["type_details"]["pages"] == 310
    # Every stored column of media is in the export, except what is derived from the others.
    derived = {"sort_title", "search_text", "formats_key", "platform", "resolution", "thumb_key"}  # thumb: of the cover
    flat = set(item) | set(item["identifiers"]) | {f"signed_{k}" for k in item["signed"]} | {"added_by"}
    assert {c.name for c in Media.__table__.columns} - derived <= flat  # added_by: as owner_email
    # Another member sees their own state, not Bob's.
    assert {i["title"]: i["my_state"] for i in json_doc(user("carol@example.org"), params())["items"]}[
        "Amélie"] is None


def test_json_of_an_empty_view_is_a_valid_document(ctx: Flask, actors: Actors) -> None:
    doc = json_doc(user(), params(q="nothing-here"))
    assert doc["count"] == 0 and doc["items"] == [] and doc["filters"] == {"section": "all", "q": "nothing-here"}


# --- the round trip -------------------------------------------------------------------------------------------------


def _comparable(item: dict[str, Any]) -> dict[str, Any]:
    """An item as JSON without what an import necessarily makes anew: ids, times and its own provenance."""
    return {k: v for k, v in item.items()
            if k not in ("id", "created_at", "updated_at", "sources", "import_source", "my_state")}


def test_a_csv_export_imports_back_into_an_empty_library_as_the_same_items(ctx: Flask, actors: Actors,
                                                                            tmp_path: Path) -> None:
    catalog()
    before = sorted((_comparable(i) for i in json_doc(user(), params())["items"]), key=lambda i: i["title"])
    path = tmp_path / "export.csv"
    path.write_text("".join(export.export_csv(user(), params())), encoding="utf-8")
    db.session.execute(delete(Media))
    db.session.commit()
    assert json_doc(user(), params())["items"] == []

    upload = imports.save_upload_from_path(user(), "csv", path)
    mapping = csv_generic.auto_mapping(csv_generic.inspect(upload.path).columns)
    assert set(mapping) == {f.name for f in csv_generic.FIELDS}  # every column is recognised as itself
    assert all(mapping[name] == name for name in mapping)
    job, _ = imports.start_import(user(), upload, {"mapping": mapping})
    job = imports.run_inline(job.id)
    assert (job.status, job.created, job.failed) == ("succeeded", 8, 0)

    db.session.expire_all()
    after_doc = json_doc(user(), params())
    after = sorted((_comparable(i) for i in after_doc["items"]), key=lambda i: i["title"])
    assert after == before
    # Exporting again and importing the file again changes nothing: every row maps back to its item.
    path.write_text("".join(export.export_csv(user(), params())), encoding="utf-8")
    upload = imports.save_upload_from_path(user(), "csv", path)
    again = imports.run_inline(imports.start_import(user(), upload, {"mapping": mapping})[0].id)
    assert (again.created, again.updated, again.skipped) == (0, 0, 8)
    assert all(s.source == "csv" for s in db.session.scalars(select(MediaSource)))


# --- query count -----------------------------------------------------------------------------------------------------


def _rich(count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        media_id = add(f"Series {i:03}", "tv_series", people=((f"Actor {i}", "cast"), ("Shared", "director")),
                       genres=("Drama", f"Genre {i}"), metadata={"tags": f"t{i}"})
        db.session.add(MediaSeason(media_id=media_id, season_number=1, expected_episodes=10))
        db.session.add(MediaVariant(media_id=media_id, source="plex", source_key=f"k{i}", resolution="720"))
        db.session.add(MediaSource(media_id=media_id, source="csv", source_id=f"r{i}"))
        db.session.add(MediaUserState(media_id=media_id, user_id=user().id, rating=5))
    db.session.commit()


def _queries(fmt: str, **kwargs: Any) -> int:
    exporter = export.export_csv if fmt == "csv" else export.export_json
    count_cache.clear()  # every run counts its total (PostgreSQL keeps counts while nothing changes)
    with counted() as statements:
        for _chunk in exporter(user(), params(), **kwargs):
            pass
    return len(statements)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_the_query_count_grows_with_pages_not_items(ctx: Flask, actors: Actors, fmt: str) -> None:
    _rich(3)
    _queries(fmt)  # warm up (connections, first-use statements)
    few_one_page, few_three_pages = _queries(fmt), _queries(fmt, page_size=1)
    _rich(27, start=3)
    many_one_page, many_three_pages = _queries(fmt), _queries(fmt, page_size=10)
    assert many_one_page == few_one_page
    assert many_three_pages == few_three_pages
    assert few_three_pages > few_one_page  # each page costs its own few queries


# --- the routes -------------------------------------------------------------------------------------------------------


def test_signed_out_visitors_are_sent_to_sign_in(app: Flask, client: Any) -> None:
    for url in ("/library/export.csv", "/library/export.json"):
        resp = client.get(url)
        assert resp.status_code in (302, 303) and "/auth/login" in resp.headers["Location"]


@pytest.mark.parametrize("name", ["alice", "bob", "vera"])
def test_every_member_viewers_included_may_download_the_export(app: Flask, actors: Actors, name: str) -> None:
    with app.app_context():
        catalog()
    client = actors.client(name)
    resp = client.get("/library/export.csv?section=books&q=hobbit")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="collectz-books-') and disposition.endswith('.csv"')
    assert resp.headers["Cache-Control"] == "no-store"
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["title"] for r in rows] == ["The Hobbit"]
    resp = client.get("/library/export.json?section=tv&sort=year&dir=asc")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    assert resp.headers["Content-Disposition"].endswith('.json"')
    doc = json.loads(resp.get_data(as_text=True))
    # Both from 1990: the tie breaks on id, in the sort's direction.
    assert [i["title"] for i in doc["items"]] == ["Zen, or the Skill to Catch a Killer", "Twin Peaks"]
    assert doc["filters"] == {"section": "tv", "sort": "year", "dir": "asc"}

    events = activity(app, "library.exported")
    assert [(e.actor_email, e.details["format"], e.details["count"]) for e in events] == [
        (f"{name}@example.org", "csv", 1), (f"{name}@example.org", "json", 2)]
    assert events[0].details["filters"] == {"section": "books", "q": "hobbit"}


def test_the_library_page_links_to_the_export_of_its_current_view(app: Flask, actors: Actors) -> None:
    with app.app_context():
        catalog()
    client = actors.client("vera")
    for headers in ({}, {"HX-Request": "true"}):
        html = client.get("/library/books?genre=fantasy&sort=year", headers=headers).get_data(as_text=True)
        links = {fmt: unescape(href) for href, fmt in
                 re.findall(r'<a href="([^"]+)" download data-testid="export-(csv|json)"', html)}
        assert set(links) == {"csv", "json"}
        resp = client.get(links["csv"])
        assert [r["title"] for r in csv.DictReader(io.StringIO(resp.get_data(as_text=True)))] == ["The Hobbit"]
        assert links["json"].startswith("/library/export.json?") and "genre=fantasy" in links["json"]


def test_a_download_of_many_pages_streams_every_item_once(app: Flask, actors: Actors,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "EXPORT_PAGE", 2)
    with app.app_context():
        for i in range(7):
            add(f"Item {i}", genres=(f"G{i}",), people=((f"P{i}", "director"),))
    client = actors.client("bob")
    resp = client.get("/library/export.csv?sort=title&dir=desc", buffered=False)
    chunks = list(resp.response)
    assert len(chunks) == 4  # the header and the first page, then a chunk per page (2 items each)
    rows = list(csv.DictReader(io.StringIO(b"".join(c if isinstance(c, bytes) else c.encode() for c in chunks)
                                           .decode())))
    assert [(r["title"], r["genres"], r["directors"]) for r in rows] == [
        (f"Item {i}", f"G{i}", f"P{i}") for i in reversed(range(7))]
    doc = json.loads(client.get("/library/export.json").get_data(as_text=True))
    assert [i["title"] for i in doc["items"]] == [f"Item {i}" for i in range(7)] and doc["count"] == 7


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_download_dropped_half_way_is_closed_cleanly(app: Flask, actors: Actors,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    monkeypatch.setattr(export, "EXPORT_PAGE", 1)
    with app.app_context():
        for i in range(3):
            add(f"Item {i}")
    client = actors.client("vera")
    dropped = client.get("/library/export.csv", buffered=False)
    body = iter(dropped.response)
    assert next(body) and next(body)  # the client reads two chunks and goes away
    with app.test_request_context("/library/"):  # another request is under way when the first is collected
        del dropped, body
        gc.collect()
    other = client.get("/library/export.json")
    assert other.status_code == 200 and len(json.loads(other.get_data(as_text=True))["items"]) == 3
