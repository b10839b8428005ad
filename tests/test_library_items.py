"""Items: every media type added, edited and deleted through the routes; the form adapts to the type;
bad input is a 422 that writes nothing; pages and fragments; who may do what; the activity log."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Genre, Media, MediaPerson, MediaSeason, Person, User
from collectz.services import media as media_service
from collectz.services.people import Credit, people_by_role
from tests.conftest import Actors, activity, statements

HX = {"HX-Request": "true"}


# --- helpers ---------------------------------------------------------------------------------------

def post_new(client, **fields: Any):
    data = {"media_type": "movie", "copies": "1", **fields}
    return client.post("/library/media/new", data=data)


def created_id(resp) -> int:
    assert resp.status_code == 303, resp.get_data(as_text=True)[:2000]
    return int(re.search(r"/library/media/(\d+)$", resp.headers["Location"]).group(1))


def edit_data(app: Flask, media_id: int, **changes: Any) -> dict[str, Any]:
    """What the edit form shows for the item, with some fields changed: a realistic edit post."""
    from collectz.blueprints.library.forms import media_values

    with app.test_request_context():
        values = media_values(db.session.get(Media, media_id))
        db.session.remove()
    data: dict[str, Any] = {}
    for name, value in values.items():
        if name == "seasons":
            for i, row in enumerate(value):
                data.update({f"seasons-{i}-{k}": v for k, v in row.items() if v not in (None, False)})
        elif value not in (None, "", False):
            data[name] = value.isoformat() if isinstance(value, date) else value
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def stored(app: Flask, media_id: int) -> dict[str, Any] | None:
    with app.app_context():
        m = db.session.get(Media, media_id)
        if m is None:
            return None
        result = {
            "title": m.title, "media_type": m.media_type, "year": m.year, "release_date": m.release_date,
            "formats": m.formats, "runtime": m.runtime, "copies": m.copies, "location": m.location,
            "details": m.type_details, "people": people_by_role(m), "genres": [g.name for g in m.genres],
            "seasons": [(s.season_number, s.available_episodes, s.expected_episodes, s.complete) for s in m.seasons],
            "isbn13": m.isbn13, "ean13": m.ean13, "asin": m.asin, "tmdb": (m.tmdb_id, m.tmdb_media_type),
            "signed": (m.signed_by, m.signed_role, m.signed_on, m.signed_at), "search_text": m.search_text,
            "added_by": m.added_by,
        }
        db.session.remove()
        return result


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        n = db.session.scalar(select(func.count()).select_from(model))
        db.session.remove()
        return n


# --- every media type through the routes ----------------------------------------------------------

# type: (fields to add it with, what is then stored, changes made in the edit form, what is stored after)
TYPE_CASES: dict[str, tuple[dict, dict, dict, dict]] = {
    "movie": (
        {"title": "Alien", "people_director": "Ridley Scott", "people_cast": "Sigourney Weaver, Tom Skerritt",
         "studio": "20th Century Fox", "edition": "Director's Cut", "runtime": "117", "genres": "Horror, Sci-Fi",
         "formats": "Blu-ray, DVD", "tmdb_id": "348", "ean": "012345678905", "release_date": "1979-05-25"},
        {"people": {"director": ["Ridley Scott"], "cast": ["Sigourney Weaver", "Tom Skerritt"]},
         "details": {"studio": "20th Century Fox", "edition": "Director's Cut"}, "runtime": 117,
         "genres": ["Horror", "Sci-Fi"], "formats": ["Blu-ray", "DVD"], "tmdb": (348, "movie"),
         "ean13": "0012345678905", "year": 1979, "release_date": date(1979, 5, 25)},
        {"title": "Alien (1979)", "people_cast": "Tom Skerritt\nSigourney Weaver\nJohn Hurt", "edition": "",
         "genres": "Science fiction, Horror"},
        {"people": {"director": ["Ridley Scott"], "cast": ["Tom Skerritt", "Sigourney Weaver", "John Hurt"]},
         "details": {"studio": "20th Century Fox"}, "genres": ["Horror", "Science fiction"], "title": "Alien (1979)"},
    ),
    "tv_series": (
        {"title": "The Wire", "people_cast": "Dominic West, Idris Elba", "network": "HBO", "status": "Ended",
         "tmdb_id": "1438", "seasons-0-number": "1", "seasons-0-available": "13", "seasons-0-expected": "13",
         "seasons-0-complete": "y", "seasons-1-number": "2", "seasons-1-available": "6",
         "seasons-1-expected": "12"},
        {"people": {"cast": ["Dominic West", "Idris Elba"]}, "details": {"network": "HBO", "status": "Ended"},
         "tmdb": (1438, "tv"), "seasons": [(1, 13, 13, True), (2, 6, 12, False)]},
        {"seasons-1-available": "12", "seasons-1-complete": "y", "seasons-2-number": "3",
         "seasons-2-expected": "12", "people_director": "Clark Johnson"},
        {"seasons": [(1, 13, 13, True), (2, 12, 12, True), (3, None, 12, False)],
         "people": {"director": ["Clark Johnson"], "cast": ["Dominic West", "Idris Elba"]}},
    ),
    "tv_episode": (
        {"title": "Pilot", "series_title": "Twin Peaks", "season": "1", "episode": "1",
         "people_director": "David Lynch", "runtime": "94"},
        {"details": {"series_title": "Twin Peaks", "season": 1, "episode": 1},
         "people": {"director": ["David Lynch"]}, "runtime": 94},
        {"episode": "2", "title": "Traces to Nowhere"},
        {"details": {"series_title": "Twin Peaks", "season": 1, "episode": 2}, "title": "Traces to Nowhere"},
    ),
    "book": (
        {"title": "Dune", "people_author": "Frank Herbert", "publisher": "Ace", "edition": "First",
         "series": "Dune Chronicles", "series_number": "1", "pages": "412", "isbn": "0-306-40615-2",
         "signed_by": "Frank Herbert", "signed_role": "author", "signed_on": "1984-06-01",
         "signed_at": "Worldcon"},
        {"people": {"author": ["Frank Herbert"]}, "isbn13": "9780306406157",
         "details": {"publisher": "Ace", "edition": "First", "series": "Dune Chronicles",
                     "series_number": "1", "pages": 412},
         "signed": ("Frank Herbert", "author", date(1984, 6, 1), "Worldcon")},
        {"pages": "420", "signed_at": "", "people_author": "Frank Herbert, Brian Herbert"},
        {"details": {"publisher": "Ace", "edition": "First", "series": "Dune Chronicles", "series_number": "1",
                     "pages": 420},
         "people": {"author": ["Frank Herbert", "Brian Herbert"]},
         "signed": ("Frank Herbert", "author", date(1984, 6, 1), None)},
    ),
    "audio": (
        {"title": "Kind of Blue", "people_artist": "Miles Davis", "label": "Columbia", "track_count": "5",
         "runtime": "46", "formats": "Vinyl", "asin": "b000002ado"},
        {"people": {"artist": ["Miles Davis"]}, "details": {"label": "Columbia", "track_count": 5},
         "runtime": 46, "asin": "B000002ADO"},
        {"track_count": "6", "formats": "Vinyl, CD"},
        {"details": {"label": "Columbia", "track_count": 6}, "formats": ["Vinyl", "CD"]},
    ),
    "game": (
        {"title": "Halo", "people_developer": "Bungie", "platform": "Xbox", "region": "PAL",
         "ean": "5012345678900"},
        {"people": {"developer": ["Bungie"]}, "details": {"platform": "Xbox", "region": "PAL"},
         "ean13": "5012345678900"},
        {"platform": "Xbox 360", "people_developer": "Bungie, 343 Industries"},
        {"details": {"platform": "Xbox 360", "region": "PAL"},
         "people": {"developer": ["Bungie", "343 Industries"]}},
    ),
    "comic_book": (
        {"title": "Watchmen #1", "people_writer": "Alan Moore", "people_artist": "Dave Gibbons",
         "people_colorist": "John Higgins", "series": "Watchmen", "issue": "1", "volume": "1",
         "publisher": "DC", "cover_date": "September 1986", "pages": "32"},
        {"people": {"writer": ["Alan Moore"], "artist": ["Dave Gibbons"], "colorist": ["John Higgins"]},
         "details": {"series": "Watchmen", "issue": "1", "volume": "1", "publisher": "DC",
                     "cover_date": "September 1986", "pages": 32}},
        {"people_inker": "Dave Gibbons", "issue": "2", "title": "Watchmen #2"},
        {"people": {"writer": ["Alan Moore"], "artist": ["Dave Gibbons"], "inker": ["Dave Gibbons"],
                    "colorist": ["John Higgins"]}, "title": "Watchmen #2",
         "details": {"series": "Watchmen", "issue": "2", "volume": "1", "publisher": "DC",
                     "cover_date": "September 1986", "pages": 32}},
    ),
    "other": (
        {"title": "Catan", "kind": "Board game", "people_creator": "Klaus Teuber", "location": "Hall cupboard",
         "copies": "2"},
        {"details": {"kind": "Board game"}, "people": {"creator": ["Klaus Teuber"]},
         "location": "Hall cupboard", "copies": 2},
        {"copies": "3", "location": ""},
        {"copies": 3, "location": None},
    ),
}


@pytest.mark.parametrize("media_type", list(TYPE_CASES))
def test_every_type_is_added_edited_and_deleted_through_the_routes(app, actors: Actors, media_type):
    create, created, changes, updated = TYPE_CASES[media_type]
    bob = actors.client("bob")

    media_id = created_id(post_new(bob, media_type=media_type, **create))
    after_create = stored(app, media_id)
    assert after_create["media_type"] == media_type and after_create["added_by"] == actors.ids["bob"]
    assert {k: after_create[k] for k in created} == created

    resp = bob.post(f"/library/media/{media_id}/edit", data=edit_data(app, media_id, **changes))
    assert resp.status_code == 303 and resp.headers["Location"] == f"/library/media/{media_id}"
    after_edit = stored(app, media_id)
    assert {k: after_edit[k] for k in updated} == updated
    untouched = {k: v for k, v in after_create.items() if k not in updated and k != "search_text"}
    assert {k: after_edit[k] for k in untouched} == untouched

    page = bob.get(f"/library/media/{media_id}").get_data(as_text=True)
    for names in after_edit["people"].values():
        assert all(name in page for name in names)

    assert bob.post(f"/library/media/{media_id}/delete").status_code == 303
    assert stored(app, media_id) is None
    assert [e.action for e in activity(app) if e.action.startswith("media.")] == [
        "media.created", "media.updated", "media.deleted"]


def test_search_text_is_refreshed_with_people_series_and_identifiers(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="book", title="Dune", people_author="Frank Herbert",
                                   series="Dune Chronicles", isbn="080442957X"))
    text = stored(app, media_id)["search_text"]
    assert "frank herbert" in text and "dune chronicles" in text and "9780804429573" in text

    bob.post(f"/library/media/{media_id}/edit", data=edit_data(app, media_id, people_author="Brian Herbert"))
    text = stored(app, media_id)["search_text"]
    assert "brian herbert" in text and "frank herbert" not in text


def test_people_and_genres_are_shared_by_normalised_name(app, actors: Actors):
    bob = actors.client("bob")
    first = created_id(post_new(bob, title="Alien", people_director="Ridley Scott", genres="Sci-Fi, Horror"))
    second = created_id(post_new(bob, title="Blade Runner", people_director="ridley  SCOTT",
                                 genres="sci-fi, horror, Horror"))

    assert count(app, Person) == 1 and count(app, Genre) == 2
    assert stored(app, second)["people"] == {"director": ["Ridley Scott"]}  # the first spelling is kept
    assert stored(app, second)["genres"] == ["Horror", "Sci-Fi"]  # genres list in name order
    assert stored(app, first)["genres"] == ["Horror", "Sci-Fi"]


def test_cast_positions_follow_the_order_typed_and_a_person_is_listed_once_per_role(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Alien", people_cast="C, A, B, A", people_director="A"))
    with app.app_context():
        rows = db.session.scalars(select(MediaPerson).where(MediaPerson.media_id == media_id)
                                  .order_by(MediaPerson.role, MediaPerson.position)).all()
        assert [(r.role, r.person.name, r.position) for r in rows] == [
            ("cast", "C", 0), ("cast", "A", 1), ("cast", "B", 2), ("director", "A", 0)]
        db.session.remove()


def test_names_with_commas_go_one_per_line_and_round_trip(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Roots", people_cast="Sammy Davis, Jr.\nLeVar Burton"))
    assert stored(app, media_id)["people"] == {"cast": ["Sammy Davis, Jr.", "LeVar Burton"]}
    form = bob.get(f"/library/media/{media_id}/edit").get_data(as_text=True)
    assert "Sammy Davis, Jr.\nLeVar Burton</textarea>" in form


def test_edit_keeps_what_the_form_does_not_show(app, actors: Actors):
    """A game's developer detail and people in roles the form does not ask for (from imports) survive an edit,
    and so does a cast member's character."""
    with app.test_request_context():
        bob_user = db.session.get(User, actors.ids["bob"])
        game = media_service.create_media(bob_user, media_service.MediaInput(
            title="Halo", media_type="game", type_details={"platform": "Xbox", "developer": "Bungie Studios"},
            people=[Credit("Joseph Staten", "writer")]))
        movie = media_service.create_media(bob_user, media_service.MediaInput(
            title="Alien", media_type="movie",
            people=[Credit("Sigourney Weaver", "cast", "Ripley"), Credit("Walter Hill", "producer")]))
        game_id, movie_id = game.id, movie.id
        db.session.remove()
    bob = actors.client("bob")

    bob.post(f"/library/media/{game_id}/edit", data=edit_data(app, game_id, platform="Xbox One"))
    bob.post(f"/library/media/{movie_id}/edit",
             data=edit_data(app, movie_id, people_cast="Sigourney Weaver, John Hurt"))

    assert stored(app, game_id)["details"] == {"platform": "Xbox One", "developer": "Bungie Studios"}
    assert stored(app, game_id)["people"] == {"writer": ["Joseph Staten"]}
    assert stored(app, movie_id)["people"] == {"cast": ["Sigourney Weaver", "John Hurt"], "producer": ["Walter Hill"]}
    with app.app_context():
        characters = dict(db.session.execute(select(Person.name, MediaPerson.character).join(MediaPerson.person)
                                             .where(MediaPerson.media_id == movie_id)).all())
        db.session.remove()
    assert characters["Sigourney Weaver"] == "Ripley"


def test_changing_the_type_drops_the_old_types_fields(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="tv_series", title="Dune", people_director="Denis",
                                   network="HBO", tmdb_id="1", **{"seasons-0-number": "1"}))
    data = {k: v for k, v in edit_data(app, media_id, media_type="book", people_author="Frank Herbert").items()
            if not k.startswith("seasons-")}
    assert bob.post(f"/library/media/{media_id}/edit", data=data).status_code == 303
    after = stored(app, media_id)
    assert after["media_type"] == "book" and after["details"] == {} and after["seasons"] == []
    assert after["people"] == {"author": ["Frank Herbert"]} and after["tmdb"] == (None, None)


def test_emptying_a_season_row_removes_that_season(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="tv_series", title="Lost", **{
        "seasons-0-number": "1", "seasons-1-number": "2", "seasons-1-available": "3"}))
    data = {k: v for k, v in edit_data(app, media_id).items() if not k.startswith("seasons-1-")}
    bob.post(f"/library/media/{media_id}/edit", data=data)
    assert stored(app, media_id)["seasons"] == [(1, None, None, False)]


# --- the form adapts to the type -------------------------------------------------------------------

def test_new_form_shows_the_fields_of_the_type_asked_for(actors: Actors):
    bob = actors.client("bob")
    book = bob.get("/library/media/new?media_type=book").get_data(as_text=True)
    movie = bob.get("/library/media/new").get_data(as_text=True)
    comic = bob.get("/library/media/new?media_type=comic_book").get_data(as_text=True)

    assert 'name="people_author"' in book and 'name="publisher"' in book and 'name="pages"' in book
    assert 'name="people_director"' not in book and 'name="runtime"' not in book
    assert 'name="people_director"' in movie and 'name="runtime"' in movie and 'name="tmdb_id"' in movie
    assert all(f'name="people_{r}"' in comic for r in ("writer", "artist", "inker", "colorist"))
    assert 'name="cover_date"' in comic and 'name="tmdb_id"' not in comic
    for page in (book, movie, comic):  # the common part and the no-JS type switch
        assert all(f'name="{n}"' in page for n in ("title", "isbn", "ean", "asin", "genres", "signed_by",
                                                   "signed_on", "signed_role", "signed_at", "copies"))
        assert '<noscript><input class="button" formnovalidate id="item-change_type" name="change_type"' in page


def test_type_select_fetches_the_type_part_keeping_shared_values(actors: Actors):
    bob = actors.client("bob")
    page = bob.get("/library/media/new").get_data(as_text=True)
    assert 'hx-get="/library/media/fields"' in page and 'hx-include="#type-fields"' in page
    assert 'hx-target="#type-fields"' in page and '<div id="type-fields"' in page
    assert re.search(r'<select[^>]*hx-swap="innerHTML"[^>]*name="media_type"', page)  # not the form's outerHTML

    resp = bob.get("/library/media/fields", headers=HX, query_string={
        "media_type": "comic_book", "people_director": "Ridley Scott", "people_artist": "Dave Gibbons",
        "series": "Watchmen", "pages": "32"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body and 'data-media-type="comic_book"' in body
    assert "Dave Gibbons</textarea>" in body and 'value="Watchmen"' in body and 'value="32"' in body
    assert "Ridley Scott" not in body and 'name="title"' not in body
    assert 'class="error"' not in body


def test_change_type_without_js_rerenders_the_form_and_saves_nothing(app, actors: Actors):
    bob = actors.client("bob")
    resp = post_new(bob, media_type="book", title="Dune", change_type="Change type", people_director="x",
                    overview="A desert planet.")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" in body
    assert 'name="people_author"' in body and 'value="Dune"' in body and "A desert planet.</textarea>" in body
    assert 'class="error"' not in body
    assert count(app, Media) == 0


def test_more_season_rows_adds_blank_rows_without_saving(app, actors: Actors):
    bob = actors.client("bob")
    plain = bob.get("/library/media/new?media_type=tv_series").get_data(as_text=True)
    assert 'name="seasons-1-number"' in plain and 'name="seasons-2-number"' not in plain

    resp = post_new(bob, media_type="tv_series", title="Lost", more_seasons="More season rows",
                    **{"seasons-0-number": "1", "seasons-1-number": "2"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and 'name="seasons-4-number"' in body and 'value="2"' in body
    assert count(app, Media) == 0


# --- bad input: 422, a message per field, nothing written -------------------------------------------

def test_bad_input_is_422_with_a_message_per_field_and_writes_nothing(app, actors: Actors):
    bob = actors.client("bob")
    resp = post_new(bob, media_type="tv_series", title="", isbn="0804429578", ean="012345678900", asin="B00",
                    tmdb_id="-4", year="2001", release_date="1999-01-01", people_cast="Someone",
                    genres="Drama", signed_role="cast", **{"seasons-0-number": "1", "seasons-1-number": "1"})

    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    for field, message in {
        "title": "A title is needed.", "isbn": "check digit is wrong", "ean": "check digit is wrong",
        "asin": "An ASIN has 10 letters and digits.", "tmdb_id": "A positive number.",
    }.items():
        assert re.search(rf'id="item-{field}-error">[^<]*{re.escape(message)}', body), field
    assert count(app, Media) == 0 and count(app, Person) == 0 and count(app, Genre) == 0
    assert activity(app, "media.created") == []


def test_a_form_sent_back_with_errors_focuses_its_first_invalid_field(app, actors: Actors):
    bob = actors.client("bob")
    fresh = bob.get("/library/media/new").get_data(as_text=True)
    assert re.findall(r'<input[^>]*autofocus[^>]*>', fresh) and 'id="item-title"' in re.findall(
        r'<input[^>]*autofocus[^>]*>', fresh)[0]
    resp = post_new(bob, media_type="book", title="The Left Hand of Darkness", isbn="0804429578")
    focused = re.findall(r'<input[^>]*autofocus[^>]*>', resp.get_data(as_text=True))
    assert resp.status_code == 422 and len(focused) == 1 and 'id="item-isbn"' in focused[0]


def test_service_rules_are_field_errors_too(app, actors: Actors):
    """Rules the form alone cannot see come back from the service as messages on their fields."""
    bob = actors.client("bob")
    resp = post_new(bob, media_type="tv_series", title="Lost", year="2001", release_date="1999-01-01",
                    signed_role="cast", people_cast="x" * 256, **{"seasons-0-number": "1", "seasons-1-number": "1",
                                                                  "seasons-1-available": "3"})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert "The year does not match the release date." in body
    assert re.search(r'id="item-signed_by-error">Say who signed it.', body)
    assert "Season 1 is listed twice." in body
    assert re.search(r'id="item-people_cast-error">Each name can have at most 255 characters', body)
    assert count(app, Media) == 0 and count(app, Person) == 0


def test_a_tmdb_id_too_large_for_its_column_is_a_field_error(app, actors: Actors):
    bob = actors.client("bob")
    resp = post_new(bob, media_type="movie", title="Far Away", tmdb_id=str(2**31))
    assert resp.status_code == 422
    assert re.search(r'id="item-tmdb_id-error">This TMDB id is too large.', resp.get_data(as_text=True))
    assert count(app, Media) == 0


def test_invalid_edit_changes_nothing(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="book", title="Dune", people_author="Frank Herbert",
                                   isbn="080442957X"))
    before = stored(app, media_id)

    resp = bob.post(f"/library/media/{media_id}/edit", data=edit_data(
        app, media_id, title="Dune Messiah", people_author="Brian Herbert", isbn="9780804429574"))

    assert resp.status_code == 422 and "check digit is wrong" in resp.get_data(as_text=True)
    assert stored(app, media_id) == before
    assert activity(app, "media.updated") == []


# --- identifiers through the form ---------------------------------------------------------------------

@pytest.mark.parametrize("field, first, second, column, expected", [
    ("isbn", "080442957X", "9780804429573", "isbn13", "9780804429573"),
    ("isbn", "0-8044-2957-x", "978-0-8044-2957-3", "isbn13", "9780804429573"),
    ("ean", "012345678905", "0012345678905", "ean13", "0012345678905"),
])
def test_identifier_spellings_store_the_same_value(app, actors: Actors, field, first, second, column, expected):
    bob = actors.client("bob")
    one = created_id(post_new(bob, media_type="book", title="One", **{field: first}))
    two = created_id(post_new(bob, media_type="book", title="Two", **{field: second}))
    assert stored(app, one)[column] == stored(app, two)[column] == expected


def test_detail_shows_identifiers_formatted(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="movie", title="Alien", isbn="080442957X",
                                   ean="012345678905", tmdb_id="348"))
    page = bob.get(f"/library/media/{media_id}").get_data(as_text=True)
    assert "978-0-8044-2957-3" in page and "<dt>UPC</dt>" in page and "012345678905" in page
    assert 'href="https://www.themoviedb.org/movie/348"' in page


# --- pages and fragments ----------------------------------------------------------------------------

def _assert_fragment(resp, marker: str, status: int = 200) -> str:
    body = resp.get_data(as_text=True)
    assert resp.status_code == status, body[:1000]
    assert "<html" not in body and marker in body
    assert "HX-Request" in resp.headers["Vary"]
    return body


def _assert_page(resp, marker: str, status: int = 200) -> str:
    body = resp.get_data(as_text=True)
    assert resp.status_code == status, body[:1000]
    assert "<html" in body and marker in body
    assert "HX-Request" in resp.headers["Vary"]
    return body


def test_each_view_is_a_page_and_a_fragment(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Alien"))
    views = {
        f"/library/media/{media_id}": 'data-testid="item-detail"',
        f"/library/media/{media_id}/edit": 'data-testid="item-form"',
        f"/library/media/{media_id}/delete": 'data-testid="item-delete"',
        "/library/media/new": 'data-testid="item-form"',
        "/library/media/fields?media_type=book": 'data-media-type="book"',
    }
    for url, marker in views.items():
        _assert_page(bob.get(url), marker)
        _assert_fragment(bob.get(url, headers=HX), marker)
        boosted = bob.get(url, headers={**HX, "HX-Boosted": "true"})
        _assert_page(boosted, marker)


def test_detail_fragment_is_the_drawer_panel_with_its_close_link(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Alien"))
    body = _assert_fragment(bob.get(f"/library/media/{media_id}", headers=HX), 'class="item-panel"')
    assert body.lstrip().startswith('<section class="item-panel"')
    assert re.search(r'<a class="drawer-only item-close" href="/library/"[^>]*hx-swap="delete"', body)
    assert 'class="page-only item-back" href="/library/"' in body  # the page's way back, hidden in the drawer
    assert 'hx-target="closest .item-panel"' in body


def test_htmx_edit_returns_the_detail_panel_in_place_and_tells_lists(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Alien"))

    resp = bob.post(f"/library/media/{media_id}/edit", headers=HX, data=edit_data(app, media_id, title="Aliens"))

    body = _assert_fragment(resp, 'data-testid="item-detail"')
    assert "Aliens" in body and "media-changed" in resp.headers["HX-Trigger"]
    assert 'hx-swap-oob' in body and "Saved Aliens." in body  # the flash as a toast


def test_htmx_invalid_edit_is_the_form_panel_with_422(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Alien"))
    resp = bob.post(f"/library/media/{media_id}/edit", headers=HX, data=edit_data(app, media_id, title=""))
    body = _assert_fragment(resp, 'data-testid="item-form"', 422)
    assert "A title is needed." in body and "HX-Trigger" not in resp.headers


def test_htmx_create_and_delete_go_to_a_full_page(app, actors: Actors):
    bob = actors.client("bob")
    resp = bob.post("/library/media/new", headers=HX, data={"title": "Alien", "media_type": "movie"})
    assert resp.status_code == 204 and re.fullmatch(r"/library/media/\d+", resp.headers["HX-Redirect"])
    media_id = int(resp.headers["HX-Redirect"].rsplit("/", 1)[1])
    resp = bob.post(f"/library/media/{media_id}/delete", headers=HX)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/library/"
    assert count(app, Media) == 0


def test_detail_shows_the_whole_record(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(
        bob, media_type="tv_series", title="The Wire", people_director="Clark Johnson",
        people_cast="Dominic West, Idris Elba", genres="Crime, Drama", network="HBO", runtime="60",
        location="Shelf 3", notes="Box set", overview="Baltimore.", signed_by="David Simon",
        signed_role="producer", signed_on="2008-03-01", signed_at="Baltimore", formats="DVD",
        **{"seasons-0-number": "1", "seasons-0-available": "13", "seasons-0-expected": "13",
           "seasons-0-complete": "y"}))
    page = bob.get(f"/library/media/{media_id}").get_data(as_text=True)
    for text in ("<dt>Director</dt>", "Clark Johnson", "<dt>Cast</dt>", "Dominic West, Idris Elba",
                 "<li>Crime</li>", "<li>Drama</li>", "<dt>Network</dt><dd>HBO</dd>", "60 min", "Shelf 3",
                 "Box set", "Baltimore.", "<strong>David Simon</strong> (producer)", "01 Mar 2008",
                 "at Baltimore", "<td>1</td><td>13 of 13</td><td>Yes</td>", "Added by Bob on",
                 "<dt>Formats</dt><dd>DVD</dd>"):
        assert text in page, text


def test_an_item_whose_adder_left_says_former_member(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, title="Alien"))
    with app.app_context():
        db.session.delete(db.session.get(User, actors.ids["bob"]))
        db.session.commit()
        db.session.remove()
    page = actors.client("carol").get(f"/library/media/{media_id}").get_data(as_text=True)
    assert "Added by a former member on" in page


def test_detail_view_runs_a_constant_number_of_queries(app, actors: Actors):
    bob = actors.client("bob")
    small = created_id(post_new(bob, media_type="tv_series", title="Small", people_cast="A", genres="G",
                                **{"seasons-0-number": "1"}))
    big_fields = {"people_cast": "\n".join(f"Actor {i}" for i in range(30)),
                  "people_director": ", ".join(f"Director {i}" for i in range(5)),
                  "genres": ", ".join(f"Genre {i}" for i in range(12))}
    big_fields.update({f"seasons-{i}-number": str(i + 1) for i in range(15)})
    big = created_id(post_new(bob, media_type="tv_series", title="Big", **big_fields))
    bob.post(f"/library/media/{small}/state", data={"rating": "5"})
    bob.post(f"/library/media/{big}/state", data={"rating": "5"})
    bob.get(f"/library/media/{small}")  # warm up the session row

    counts = {}
    for name, media_id in (("small", small), ("big", big)):
        with statements(app) as seen:
            assert bob.get(f"/library/media/{media_id}").status_code == 200
        counts[name] = len(seen)
    assert counts["small"] == counts["big"] <= 9, counts


def test_saving_ones_rating_in_place_reads_no_credits_genres_or_seasons(app, actors: Actors):
    # The in-place answer is the state block alone: what only the rest of the page shows is never read.
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="tv_series", title="Small", people_cast="A", genres="G",
                                   **{"seasons-0-number": "1"}))
    with statements(app) as seen:
        resp = bob.post(f"/library/media/{media_id}/state", data={"rating": "5"}, headers={"HX-Request": "true"})
    assert resp.status_code == 200 and "Saved." in resp.get_data(as_text=True)
    assert not [s for s in seen if "FROM media_people" in s or "media_genres" in s or "media_seasons" in s]
    page = bob.get(f"/library/media/{media_id}").get_data(as_text=True)
    assert "<dt>Cast</dt>" in page and "<li>G</li>" in page and "Owned seasons" in page


# --- who may do what ------------------------------------------------------------------------------

ACTORS = ("alice", "bob", "carol", "vera")


def _expected(route: str, actor: str) -> int:
    """bob owns the item; alice is an admin; carol another member; vera a viewer."""
    read_only = route in ("GET detail",)
    own_state = route == "POST state"
    if actor == "vera":
        return 200 if read_only else 403
    if route in ("GET new", "GET fields", "GET detail"):
        return 200
    if route in ("POST new", "POST state"):
        return 303
    if actor == "carol" and not own_state:
        return 403
    return 200 if route.startswith("GET") else 303


def test_every_item_route_for_owner_admin_member_and_viewer(app, actors: Actors):
    owner = actors.client("bob")
    routes = {
        "GET new": ("get", "/library/media/new", None),
        "GET fields": ("get", "/library/media/fields?media_type=book", None),
        "POST new": ("post", "/library/media/new", {"title": "Another", "media_type": "book"}),
        "GET detail": ("get", "/library/media/{id}", None),
        "GET edit": ("get", "/library/media/{id}/edit", None),
        "POST edit": ("post", "/library/media/{id}/edit", {"title": "Renamed", "media_type": "movie"}),
        "POST state": ("post", "/library/media/{id}/state", {"rating": "7", "status": "finished"}),
        "GET delete": ("get", "/library/media/{id}/delete", None),
        "POST delete": ("post", "/library/media/{id}/delete", None),
    }
    denied = 0
    for actor in ACTORS:
        client = actors.client(actor)
        media_id = created_id(post_new(owner, title=f"Bob's film for {actor}"))
        for route, (method, url, data) in routes.items():
            resp = client.open(url.format(id=media_id), method=method.upper(), data=data)
            expected = _expected(route, actor)
            assert resp.status_code == expected, f"{actor} {route}: {resp.status_code}, expected {expected}"
            denied += expected == 403
        # what a page shows matches what the routes allow
        if actor != "vera" and _expected("POST delete", actor) == 403:
            page = client.get(f"/library/media/{media_id}").get_data(as_text=True)
            assert ">Edit</a>" not in page and ">Delete</a>" not in page and 'data-testid="item-state"' in page
    vera_page = actors.client("vera").get(f"/library/media/{created_id(post_new(owner, title='Seen'))}")
    assert 'data-testid="item-state"' not in vera_page.get_data(as_text=True)
    denials = activity(app, "permission.denied")
    assert len(denials) == denied and all(d.http_status == 403 for d in denials)
    assert {d.actor_id for d in denials} == {actors.ids["carol"], actors.ids["vera"]}


def test_missing_item_is_404_on_every_item_route(actors: Actors):
    bob = actors.client("bob")
    for method, url in (("GET", ""), ("GET", "/edit"), ("POST", "/edit"), ("GET", "/delete"),
                        ("POST", "/delete"), ("POST", "/state")):
        assert bob.open(f"/library/media/424242{url}", method=method, data={"title": "x"}).status_code == 404


# --- the activity log ---------------------------------------------------------------------------------

def test_activity_events_carry_the_changed_fields(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="book", title="Dune", people_author="Frank Herbert",
                                   genres="Sci-Fi", isbn="080442957X", overview="x" * 500, pages="412"))
    bob.post(f"/library/media/{media_id}/edit", data=edit_data(
        app, media_id, title="Dune (1965)", people_author="Frank Herbert, Brian Herbert", pages="",
        signed_by="Frank Herbert"))
    bob.post(f"/library/media/{media_id}/delete")

    created, = activity(app, "media.created")
    assert created.actor_id == actors.ids["bob"] and created.entity_id == str(media_id)
    changed = created.details["changed"]
    assert changed["title"] == {"from": None, "to": "Dune"}
    assert changed["people"] == {"from": None, "to": {"author": ["Frank Herbert"]}}
    assert changed["isbn13"]["to"] == "9780804429573" and changed["genres"]["to"] == ["Sci-Fi"]
    assert changed["overview"]["to"].endswith("…") and len(changed["overview"]["to"]) < 250
    assert "asin" not in changed and "signed_by" not in changed  # nothing given, nothing listed

    updated, = activity(app, "media.updated")
    assert set(updated.details["changed"]) == {"title", "people", "type_details", "signed_by"}
    assert updated.details["changed"]["title"] == {"from": "Dune", "to": "Dune (1965)"}
    assert updated.details["changed"]["type_details"] == {"from": {"pages": 412}, "to": {}}
    assert updated.details["changed"]["people"]["to"] == {"author": ["Frank Herbert", "Brian Herbert"]}

    deleted, = activity(app, "media.deleted")
    assert deleted.details["title"] == "Dune (1965)" and deleted.details["media_type"] == "book"


def test_deleting_removes_seasons_people_links_and_member_state(app, actors: Actors):
    bob = actors.client("bob")
    media_id = created_id(post_new(bob, media_type="tv_series", title="Lost", people_cast="A, B", genres="G",
                                   **{"seasons-0-number": "1"}))
    actors.client("carol").post(f"/library/media/{media_id}/state", data={"rating": "9"})
    bob.post(f"/library/media/{media_id}/delete")
    from collectz.models import MediaGenre, MediaUserState

    for model in (Media, MediaPerson, MediaSeason, MediaGenre, MediaUserState):
        assert count(app, model) == 0, model
    assert count(app, Person) == 2  # people stay for other items
