"""services.lookup: finding candidates (TMDB fake), what a candidate fills in, barcode photos, cover recognition."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
import zxingcpp
from flask import Flask
from werkzeug.wrappers import Request, Response

from collectz.extensions import db
from collectz.models import User
from collectz.providers.records import Candidate
from collectz.services import flags, integrations, lookup
from collectz.services.errors import InvalidInput
from tests.conftest import Actors
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb
from tests.lookup_helpers import TMDB_KEY, barcode_png, blank_jpeg, turn_on_tmdb

VISION_KEY = "sk-test-vision-key-1234567890"


@pytest.fixture
def tmdb() -> Iterator[Any]:
    fake = FakeTmdb(api_key=TMDB_KEY)
    with serve_wsgi(fake) as running:
        running.fake = fake
        yield running


@pytest.fixture
def tmdb_app(make_app: Callable[..., Flask], tmdb: Any) -> Flask:
    return make_app(PROVIDER_URL_OVERRIDES=f"tmdb={tmdb.url}")


@pytest.fixture
def tmdb_ctx(tmdb_app: Flask, actors: Actors) -> Iterator[Flask]:
    turn_on_tmdb(tmdb_app, actors)
    with tmdb_app.app_context():
        yield tmdb_app
        db.session.remove()


# --- find ----------------------------------------------------------------------------------------------------------

def test_a_title_finds_tmdb_candidates_with_their_people(tmdb_ctx: Flask):
    result = lookup.find("movie", "  fight   club ")
    assert result.kind == "title" and result.term == "fight club"
    assert result.problems == [] and result.notice is None
    first = result.candidates[0]
    assert (first.provider, first.provider_id, first.title, first.year) == ("tmdb", "550", "Fight Club", 1999)
    assert "David Fincher" in first.people_in("director")  # the first results are completed for the list
    [row] = [r for r in lookup.shown(result) if r.candidate.provider_id == "550"]
    assert row.provider_name == "TMDB" and row.people[0] == "David Fincher"


def test_a_year_narrows_the_search(tmdb_ctx: Flask):
    assert [c.title for c in lookup.find("movie", "Blade Runner", year=1982).candidates] == ["Blade Runner"]
    assert lookup.find("movie", "Blade Runner", year=1950).notice == "Nothing found for “Blade Runner”."


def test_an_imdb_id_is_looked_up_as_an_identifier(tmdb_ctx: Flask):
    result = lookup.find("movie", "tt0137523")
    assert result.kind == "imdb"
    assert [(c.title, c.provider_id) for c in result.candidates] == [("Fight Club", "550")]


def test_a_barcode_nobody_knows_says_nothing_was_found(tmdb_ctx: Flask):
    result = lookup.find("movie", "0 36000 29145 2")  # a UPC: TMDB has no barcodes, no barcode service is set up
    assert result.kind == "barcode" and result.candidates == []
    assert result.notice == "Nothing found for “0 36000 29145 2”."


def test_nothing_set_up_says_where_an_admin_turns_a_provider_on(app: Flask, actors: Actors):
    with app.app_context():
        result = lookup.find("movie", "Fight Club")
        assert result.candidates == [] and result.problems == []
        assert result.notice == ("No lookup service is set up for movies: an admin enables one under Admin → "
                                 "Integrations.")
        assert "fill the form in by hand" in (lookup.find("other", "Lamp").notice or "")
        assert lookup.find("movie", "   ").notice == "Type a title, an ISBN or a barcode number to look up."
        db.session.remove()


def test_a_flag_that_is_off_is_named(tmdb_ctx: Flask, actors: Actors):
    flags.set_enabled(db.session.get(User, actors.ids["alice"]), "enrich_tmdb", False)
    db.session.commit()
    assert lookup.find("movie", "Fight Club").notice == (
        "Looking up movies is turned off: an admin can turn on “TMDB enrichment” under Admin → Flags.")


@pytest.mark.parametrize(("mode", "words"), [("error", "TMDB: "), ("rate_limited", "too many requests"),
                                             ("malformed", "not valid JSON")])
def test_provider_failures_are_messages_not_exceptions(tmdb_ctx: Flask, tmdb: Any, mode: str, words: str):
    tmdb.fake.mode = mode
    result = lookup.find("movie", "Fight Club")
    assert result.candidates == [] and result.notice is None
    assert len(result.problems) == 1 and words in result.problems[0]
    assert result.problems[0].startswith("TMDB: ")
    assert TMDB_KEY not in result.problems[0]


def test_a_refused_key_is_reported_without_the_key(tmdb_ctx: Flask, tmdb: Any):
    tmdb.fake.api_key = "f" * 32  # the saved key no longer works
    [problem] = lookup.find("movie", "Fight Club").problems
    assert "API key" in problem and TMDB_KEY not in problem


# --- form values and Apply tokens --------------------------------------------------------------------------------

def movie() -> Candidate:
    return Candidate(
        provider="tmdb", provider_id="550", media_type="movie", title="Fight Club", year=1999,
        overview="An insomniac office worker…", runtime=139, rating=8.4, genres=["Drama", "Thriller", "Drama"],
        people=[("director", "David Fincher"), ("cast", "Brad Pitt"), ("cast", "Edward Norton"),
                ("writer", "Jim Uhls")],
        identifiers={"tmdb_id": "550", "imdb_id": "tt0137523", "upc": "024543617907"},
        details={"studio": "Fox 2000 Pictures", "not_a_detail": "x"})


def test_form_values_are_the_forms_field_names_as_text():
    values = lookup.form_values(movie())
    assert values == {
        "media_type": "movie", "title": "Fight Club", "year": "1999", "overview": "An insomniac office worker…",
        "runtime": "139", "genres": "Drama, Thriller", "people_director": "David Fincher",
        "people_cast": "Brad Pitt, Edward Norton", "people_writer": "Jim Uhls", "studio": "Fox 2000 Pictures",
        "ean": "0024543617907", "tmdb_id": "550", "tmdb_media_type": "movie",
    }
    assert not {"id", "added_by", "library_id"} & set(values)


def test_form_values_of_a_book_and_names_with_commas():
    book = Candidate(provider="openlibrary", provider_id="OL1M", media_type="book", title="Dune",
                     people=[("author", "Herbert, Frank"), ("author", "Anderson, Kevin J.")],
                     identifiers={"isbn13": "978-0-306-40615-7", "tmdb_id": "9"},
                     details={"publisher": "Chilton", "pages": 412})
    values = lookup.form_values(book)
    assert values["people_author"] == "Herbert, Frank\nAnderson, Kevin J."  # one per line: the commas are names'
    assert values["isbn"] == "9780306406157" and values["pages"] == "412" and values["publisher"] == "Chilton"
    assert "tmdb_id" not in values  # TMDB ids belong to movies and series


def test_an_apply_token_carries_the_candidate_and_refuses_tampering(app: Flask):
    with app.app_context():
        original = movie()
        token = lookup.candidate_token(original)
        assert lookup.candidate_from_token(token) == original
        with pytest.raises(InvalidInput, match="no longer valid"):
            lookup.candidate_from_token(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])
        with pytest.raises(InvalidInput):
            lookup.candidate_from_token("")


# --- barcodes in photos --------------------------------------------------------------------------------------------

def test_an_ean13_and_an_isbn_barcode_are_read_back():
    assert lookup.decode_barcode(barcode_png("4006381333931")) == ["4006381333931"]
    assert lookup.decode_barcode(barcode_png("9780306406157")) == ["9780306406157"]


def test_a_upc_is_stored_as_an_ean13():
    assert lookup.decode_barcode(barcode_png("036000291452", zxingcpp.BarcodeFormat.UPCA)) == ["0036000291452"]
    assert lookup.expand_upc_e("01234565") == "012345000065"
    assert lookup.expand_upc_e("04252614") == "042100005264"


def test_a_photo_without_a_barcode_is_an_empty_list_and_a_visible_notice(app: Flask):
    assert lookup.decode_barcode(blank_jpeg()) == []
    with app.app_context():
        result = lookup.read_photo("movie", blank_jpeg())
        assert result.notice == lookup.NO_BARCODE and result.candidates == []
        db.session.remove()


@pytest.mark.parametrize(("data", "words"), [(b"title,year\nDune,1965\n", "not a photo"), (b"", "empty"),
                                             (b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "not a photo")])
def test_a_file_that_is_not_an_image_is_a_clear_error(data: bytes, words: str):
    with pytest.raises(lookup.PhotoError, match=words):
        lookup.decode_barcode(data)


def test_a_photo_over_the_size_cap_is_refused(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(lookup, "PHOTO_MAX_BYTES", 100)
    with pytest.raises(lookup.PhotoError, match="too large"):
        lookup.decode_barcode(barcode_png("4006381333931"))


def test_a_photographed_imdb_less_barcode_reports_what_was_read(tmdb_ctx: Flask):
    result = lookup.read_photo("movie", barcode_png("4006381333931"))
    assert result.codes == ["4006381333931"] and result.kind == "barcode"
    assert result.notice == "Nothing found for “4006381333931”."


# --- cover recognition ------------------------------------------------------------------------------------------

class FakeVision:
    """An OpenAI-compatible /chat/completions, answering like the API reference documents it."""

    def __init__(self, content: str = '{"title": "Fight Club", "year": 1999}') -> None:
        self.content = content
        self.status = 200
        self.seen: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if request.headers.get("Authorization") != f"Bearer {VISION_KEY}":
            body = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                              "code": "invalid_api_key"}}
            return Response(json.dumps(body), 401, content_type="application/json")(environ, start_response)
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return Response("{}", 404, content_type="application/json")(environ, start_response)
        self.seen.append(request.get_json())
        if self.status != 200:
            body = {"error": {"message": "The server had an error.", "type": "server_error"}}
            return Response(json.dumps(body), self.status, content_type="application/json")(environ, start_response)
        body = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 900, "completion_tokens": 12, "total_tokens": 912}}
        return Response(json.dumps(body), 200, content_type="application/json")(environ, start_response)


def test_cover_recognition_not_set_up_says_so(app: Flask):
    with app.app_context():
        result = lookup.recognise_cover(blank_jpeg(), media_type="movie")
        assert result.notice == lookup.COVERS_NOT_SET_UP and result.candidates == []
        db.session.remove()


def test_a_cover_is_read_by_the_vision_api_then_looked_up(make_app: Callable[..., Flask], tmdb: Any,
                                                          actors: Actors):
    vision = FakeVision()
    with serve_wsgi(vision) as running:
        app = make_app(PROVIDER_URL_OVERRIDES=f"tmdb={tmdb.url},covers={running.url}/v1")
        with app.app_context():
            admin = db.session.get(User, actors.ids["alice"])
            integrations.save(admin, "tmdb", {"enabled": True, "language": "en-US", "api_key": TMDB_KEY})
            integrations.save(admin, "covers", {"enabled": True, "model": "vision-mini", "api_key": VISION_KEY})
            result = lookup.read_photo("movie", blank_jpeg())  # no barcode: the cover is read instead
            assert result.guess == "Fight Club" and result.kind == "photo"
            assert result.candidates[0].title == "Fight Club"
            [sent] = vision.seen
            assert sent["model"] == "vision-mini"
            parts = sent["messages"][0]["content"]
            assert parts[1]["image_url"]["url"].startswith("data:image/jpeg;base64,")

            vision.status = 500
            failed = lookup.recognise_cover(blank_jpeg(), media_type="movie")
            assert failed.candidates == [] and failed.problems[0].startswith("Cover recognition: ")
            assert VISION_KEY not in failed.problems[0]
            db.session.remove()


@pytest.mark.parametrize(("reply", "guess"), [
    ('{"title": "Dune", "year": 1965}', ("Dune", 1965)),
    ('```json\n{"title": " The  Hobbit ", "year": null}\n```', ("The Hobbit", None)),
    ('{"title": null, "year": "1999"}', (None, 1999)),
    ("Blade Runner\nA film by Ridley Scott", ("Blade Runner", None)),
    ([{"type": "text", "text": '{"title": "Heat", "year": 1995}'}], ("Heat", 1995)),
    ("", (None, None)),
])
def test_the_vision_reply_is_read_leniently(reply: Any, guess: tuple[str | None, int | None]):
    assert lookup.parse_guess(reply) == guess
