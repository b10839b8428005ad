"""The look-up box of the add/edit form: candidates, Apply (fills and marks, saves nothing), photos, permissions."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Media
from tests.conftest import Actors
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb
from tests.lookup_helpers import TMDB_KEY, barcode_png, blank_jpeg, turn_on_tmdb

HX = {"HX-Request": "true"}


@pytest.fixture
def tmdb_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    with serve_wsgi(FakeTmdb(api_key=TMDB_KEY)) as fake:
        yield make_app(PROVIDER_URL_OVERRIDES=f"tmdb={fake.url}")


@pytest.fixture
def members(tmdb_app: Flask) -> Actors:
    """alice, bob, carol and vera on the app that talks to the TMDB fake, with TMDB turned on."""
    members = Actors(tmdb_app)
    turn_on_tmdb(tmdb_app, members)
    return members


@pytest.fixture
def bob(members: Actors) -> Any:
    return members.client("bob")


def tokens(page: str) -> list[str]:
    return [html.unescape(t) for t in re.findall(r'name="candidate" value="([^"]+)"', page)]


def field_value(page: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*\bname="{re.escape(name)}"[^>]*\bvalue="([^"]*)"', page) or re.search(
        rf'<input[^>]*\bvalue="([^"]*)"[^>]*\bname="{re.escape(name)}"', page)
    if match:
        return html.unescape(match.group(1))
    area = re.search(rf'<textarea[^>]*\bname="{re.escape(name)}"[^>]*>\s*(.*?)</textarea>', page, re.S)
    return html.unescape(area.group(1)) if area else None


def media_count(app: Flask) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count(Media.id))) or 0
        finally:
            db.session.remove()


def test_lookup_is_a_full_page_without_htmx_and_the_box_with_it(bob: Any):
    page = bob.get("/library/lookup?q=Fight+Club&lookup_type=movie")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in text
    assert 'id="item-form"' in text and 'data-testid="lookup-candidate"' in text
    assert "Fight Club" in text and "(1999)" in text and "David Fincher" in text and "TMDB" in text
    assert 'form="item-form"' in text and 'formaction="/library/lookup/apply"' in text  # Apply works without JS

    fragment = bob.get("/library/lookup?q=Fight+Club&media_type=movie", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and 'id="item-form"' not in body
    assert 'data-testid="lookup"' in body and "Fight Club" in body
    assert "HX-Request" in fragment.headers.get("Vary", "")
    assert TMDB_KEY not in text + body


def test_the_form_type_wins_over_the_boxs_own_copy_and_the_title_stands_in_for_an_empty_box(bob: Any):
    # htmx includes the item form's type select and title; the box's hidden type may be stale
    body = bob.get("/library/lookup?q=&lookup_type=book&media_type=tv_series&title=Breaking+Bad",
                   headers=HX).get_data(as_text=True)
    assert "Breaking Bad" in body and "TV series · TMDB" in body


def test_nothing_configured_and_nothing_typed_are_said(app: Flask, actors: Actors):
    bob = actors.client("bob")
    body = bob.get("/library/lookup?q=Fight+Club&media_type=movie", headers=HX).get_data(as_text=True)
    assert "an admin enables one under Admin → Integrations" in body
    body = bob.get("/library/lookup?q=&media_type=movie", headers=HX).get_data(as_text=True)
    assert "Type a title, an ISBN or a barcode number" in body


def test_apply_fills_only_empty_fields_marks_them_and_saves_nothing(bob: Any, tmdb_app: Flask):
    [token, *_] = tokens(bob.get("/library/lookup?q=Fight+Club&media_type=movie").get_data(as_text=True))
    resp = bob.post("/library/lookup/apply", headers=HX, data={
        "candidate": token, "media_type": "movie", "title": "Fight Club (my copy)", "formats": "DVD", "copies": "1"})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in page and 'id="item-form"' in page
    assert field_value(page, "title") == "Fight Club (my copy)"  # typed by the person: kept
    assert field_value(page, "formats") == "DVD"
    assert field_value(page, "year") == "1999" and field_value(page, "runtime") == "139"
    assert field_value(page, "people_director") == "David Fincher"
    assert field_value(page, "tmdb_id") == "550"
    assert "Filled from TMDB" in page and 'data-testid="lookup-applied"' in page
    assert page.count('data-testid="filled-mark"') >= 8
    assert media_count(tmdb_app) == 0  # nothing is saved by Apply

    replaced = bob.post("/library/lookup/apply", data={
        "candidate": token, "overwrite": "1", "media_type": "movie", "title": "Fight Club (my copy)"})
    assert replaced.status_code == 200 and "<html" in replaced.get_data(as_text=True)  # without htmx: the page
    assert field_value(replaced.get_data(as_text=True), "title") == "Fight Club"


def test_applied_values_save_through_the_usual_form(bob: Any, tmdb_app: Flask):
    [token, *_] = tokens(bob.get("/library/lookup?q=Fight+Club&media_type=movie").get_data(as_text=True))
    page = bob.post("/library/lookup/apply", data={"candidate": token, "media_type": "movie"}).get_data(as_text=True)
    names = ("media_type", "title", "year", "release_date", "runtime", "genres", "people_director", "people_cast",
             "overview", "studio", "tmdb_id", "tmdb_media_type")
    data = {name: field_value(page, name) or "" for name in names}
    data.update(media_type="movie", tmdb_media_type="movie", copies="1")
    saved = bob.post("/library/media/new", data=data)
    assert saved.status_code == 303, saved.get_data(as_text=True)[:2000]
    detail = bob.get(saved.headers["Location"]).get_data(as_text=True)
    assert "David Fincher" in detail and "1999" in detail and "Brad Pitt" in detail


def test_apply_on_the_edit_form_keeps_the_items_values_and_posts_back_to_the_edit(bob: Any, tmdb_app: Flask):
    made = bob.post("/library/media/new", data={"title": "Fight Club", "media_type": "movie", "copies": "1",
                                                "year": "1999", "location": "Shelf 3"})
    media_id = int(made.headers["Location"].rsplit("/", 1)[1])
    page = bob.get(f"/library/lookup?q=Fight+Club&media_id={media_id}").get_data(as_text=True)
    assert f'action="/library/media/{media_id}/edit"' in page
    [token, *_] = tokens(page)
    assert f"/library/lookup/apply?media_id={media_id}" in page
    applied = bob.post(f"/library/lookup/apply?media_id={media_id}", headers=HX, data={
        "candidate": token, "media_type": "movie", "title": "Fight Club", "year": "1999", "location": "Shelf 3",
        "copies": "1"})
    body = applied.get_data(as_text=True)
    assert f'action="/library/media/{media_id}/edit"' in body
    assert field_value(body, "location") == "Shelf 3" and field_value(body, "people_director") == "David Fincher"


def test_a_tampered_candidate_is_refused(bob: Any):
    resp = bob.post("/library/lookup/apply", data={"candidate": "eyJ0aXRsZSI6IngifQ.forged", "media_type": "movie"})
    assert resp.status_code == 422 and "no longer valid" in resp.get_data(as_text=True)


def test_a_barcode_photo_is_read_and_shown(bob: Any):
    resp = bob.post("/library/lookup/photo", headers=HX, data={
        "media_type": "movie", "photo": (_file(barcode_png("9780306406157")), "shelf.png")},
        content_type="multipart/form-data")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body
    assert "Barcode read from the photo: 9780306406157" in body
    assert "Nothing found for “9780306406157”." in body  # TMDB knows no ISBNs: said, not a silent no-op


def test_a_photo_without_a_barcode_and_a_file_that_is_no_photo_are_shown(bob: Any):
    blank = bob.post("/library/lookup/photo", headers=HX, content_type="multipart/form-data",
                     data={"media_type": "movie", "photo": (_file(blank_jpeg()), "blank.jpg")})
    assert blank.status_code == 200 and "No barcode found in the photo" in blank.get_data(as_text=True)
    text = bob.post("/library/lookup/photo", headers=HX, content_type="multipart/form-data",
                    data={"media_type": "movie", "photo": (_file(b"title,year\nDune,1965\n"), "list.csv")})
    assert text.status_code == 422 and "not a photo that can be read" in text.get_data(as_text=True)
    none = bob.post("/library/lookup/photo", headers=HX, data={"media_type": "movie"})
    assert none.status_code == 422 and "Choose or take a photo first" in none.get_data(as_text=True)


def test_viewers_and_other_members_cannot_use_the_lookup_of_an_item(members: Actors, bob: Any):
    made = bob.post("/library/media/new", data={"title": "Bob's film", "media_type": "movie", "copies": "1"})
    media_id = int(made.headers["Location"].rsplit("/", 1)[1])
    vera = members.client("vera")
    assert vera.get("/library/lookup?q=Fight+Club").status_code == 403
    assert vera.post("/library/lookup/apply", data={"candidate": "x"}).status_code == 403
    assert vera.post("/library/lookup/photo", data={}).status_code == 403
    carol = members.client("carol")
    assert carol.get(f"/library/lookup?q=Fight+Club&media_id={media_id}").status_code == 403
    assert carol.post(f"/library/lookup/apply?media_id={media_id}", data={"candidate": "x"}).status_code == 403
    assert bob.get("/library/lookup?q=x&media_id=999999").status_code == 404


def test_the_add_form_has_the_lookup_box_and_the_camera_input(bob: Any):
    page = bob.get("/library/media/new").get_data(as_text=True)
    assert 'id="lookup"' in page and 'name="q"' in page
    assert 'accept="image/*" capture="environment"' in page and 'enctype="multipart/form-data"' in page
    form = bob.get("/library/media/new", headers=HX).get_data(as_text=True)
    assert 'id="lookup"' in form and "<html" not in form


def _file(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)


def test_a_candidate_of_another_type_switches_a_new_items_type_and_marks_it(bob: Any):
    [token, *_] = tokens(bob.get("/library/lookup?q=Breaking+Bad&media_type=tv_series").get_data(as_text=True))
    body = bob.post("/library/lookup/apply", headers=HX, data={"candidate": token, "media_type": "movie"}) \
        .get_data(as_text=True)
    assert re.search(r'<option selected value="tv_series">', body)
    assert 'data-media-type="tv_series"' in body and field_value(body, "network") == "AMC"
    assert body.count("Filled from TMDB") >= 5 and "Owned seasons" in body


def test_a_photo_without_htmx_answers_with_the_whole_page(bob: Any):
    resp = bob.post("/library/lookup/photo", content_type="multipart/form-data",
                    data={"lookup_type": "movie", "photo": (_file(blank_jpeg()), "blank.jpg")})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" in body and 'id="item-form"' in body
    assert "No barcode found in the photo" in body
