"""The Open Library provider over real HTTP against the local fake (tests/fakes/openlibrary.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadCredentials, BadResponse, ProviderError, RateLimited, Unavailable, Unreachable
from collectz.providers.openlibrary import (
    USER_AGENT,
    OpenLibraryProvider,
    _search_docs,
    build,
    normalise_edition,
    normalise_search_doc,
)
from collectz.services.import_writer import convert
from tests.fakes.openlibrary import DATA_DIR, FakeOpenLibrary
from tests.fakes.server import RunningFake, serve_wsgi

COVERS = "https://covers.openlibrary.org"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeOpenLibrary()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeOpenLibrary:
    app: FakeOpenLibrary = running.app  # type: ignore[assignment]
    app.mode, app.delay = "ok", 1.0
    app.requests.clear()
    return app


def provider_for(running: RunningFake, timeout: float = 5.0) -> OpenLibraryProvider:
    config = ProviderConfig("books", settings={"provider": "openlibrary"}, base_url=running.url,
                            allow_private=True, timeout=timeout)
    return build(config)


@pytest.fixture
def openlibrary(running: RunningFake, fake: FakeOpenLibrary) -> OpenLibraryProvider:
    return provider_for(running)


def recorded(name: str) -> list[dict]:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


# --- lookups by identifier ---------------------------------------------------------------------------------------


def test_it_is_a_metadata_provider_for_books(openlibrary: OpenLibraryProvider) -> None:
    assert isinstance(openlibrary, MetadataProvider)
    assert (openlibrary.key, openlibrary.media_types) == ("openlibrary", ("book",))


def test_an_isbn_10_is_one_books_api_call_by_its_isbn_13(openlibrary: OpenLibraryProvider,
                                                         fake: FakeOpenLibrary) -> None:
    [book] = openlibrary.by_identifier("isbn13", "0-451-52653-8")
    assert fake.requests == [("GET", "/api/books", {"bibkeys": "ISBN:9780451526533", "jscmd": "data",
                                                    "format": "json"}, USER_AGENT)]
    assert (book.provider, book.provider_id, book.media_type) == ("openlibrary", "OL1017798M", "book")
    assert (book.title, book.year, book.release_date) == ("The adventures of Tom Sawyer", 1997, None)
    assert book.people == [("author", "Mark Twain")]
    assert book.genres == ["Sawyer, Tom (Fictitious character)", "Runaway children", "Child witnesses", "Boys",
                           "Fiction"]  # no "Accessible book", no "nyt:…" tag, "fiction" once
    assert book.details == {"publisher": "Signet Classic", "pages": 216}
    assert book.identifiers == {"openlibrary_id": "OL1017798M", "isbn13": "9780451526533", "lccn": "93005405",
                                "goodreads_id": "1929684", "librarything_id": "2236"}
    assert book.cover_url == f"{COVERS}/b/id/295577-L.jpg"


def test_a_full_publish_date_and_a_listed_isbn_13(openlibrary: OpenLibraryProvider) -> None:
    [book] = openlibrary.by_identifier("isbn13", "9780140328721")
    assert (book.title, book.year, book.release_date) == ("Fantastic Mr. Fox", 1988, date(1988, 10, 1))
    assert book.identifiers["isbn13"] == "9780140328721"
    assert book.details == {"publisher": "Puffin", "pages": 96}


def test_a_books_barcode_is_its_isbn(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    [book] = openlibrary.by_identifier("ean13", "9780261103344")
    assert (book.title, book.extra) == ("The Hobbit", {"subtitle": "or There and Back Again"})
    assert book.identifiers["isbn13"] == "9780261103344"  # the mistyped 9780261103340 it also lists is dropped
    assert book.details == {"publisher": "HarperCollins", "pages": 310}  # pages from the pagination statement
    assert openlibrary.by_identifier("ean13", "4006381333931") == []  # a pen, not a book: nothing asked
    assert len(fake.requests) == 1


def test_an_unknown_isbn_is_nothing_found(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    assert openlibrary.by_identifier("isbn13", "9781234567897") == []
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("kind", "value"), [("isbn13", "9780451526534"), ("isbn13", "not an isbn"),
                                             ("tmdb_id", "550"), ("asin", "B000FC0SIM")])
def test_what_is_no_valid_isbn_asks_nothing(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary,
                                            kind: str, value: str) -> None:
    assert openlibrary.by_identifier(kind, value) == []
    assert fake.requests == []


# --- search and details ------------------------------------------------------------------------------------------


def test_a_title_search_asks_for_the_fields_it_uses(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    found = openlibrary.search(SearchQuery(title="  The   Hobbit ", media_type="book"), limit=5)
    assert [c.title for c in found] == ["The Hobbit", "The Annotated Hobbit"]  # the Companion names no edition
    _method, path, query, agent = fake.requests[0]
    assert (path, query["title"], query["limit"], agent) == ("/search.json", "The Hobbit", "5", USER_AGENT)
    assert set(query["fields"].split(",")) >= {"key", "title", "author_name", "cover_edition_key", "cover_i"}
    hobbit = found[0]
    assert (hobbit.provider_id, hobbit.year) == ("OL26331930M", 1937)
    assert hobbit.identifiers == {"openlibrary_id": "OL26331930M", "openlibrary_work_id": "OL262758W"}
    assert hobbit.people == [("author", "J.R.R. Tolkien")]
    assert hobbit.cover_url == f"{COVERS}/b/id/14627509-L.jpg"
    assert hobbit.details == {"publisher": "HarperCollins", "pages": 304}
    assert "Accessible book" not in hobbit.genres and "Fantasy fiction" in hobbit.genres


def test_an_author_narrows_the_search(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    found = openlibrary.search(SearchQuery(title="hobbit", people=("Douglas A. Anderson",)))
    assert [c.title for c in found] == ["The Annotated Hobbit"]
    assert fake.requests[0][2]["author"] == "Douglas A. Anderson"
    assert openlibrary.search(SearchQuery(title="hobbit", people=("Roald Dahl",))) == []


def test_a_year_keeps_works_with_an_edition_that_year(openlibrary: OpenLibraryProvider) -> None:
    assert [c.title for c in openlibrary.search(SearchQuery(title="hobbit", year=2002))] == ["The Annotated Hobbit"]
    assert [c.title for c in openlibrary.search(SearchQuery(title="hobbit", year=1999))] == ["The Hobbit"]


def test_search_for_another_media_type_or_no_title_asks_nothing(openlibrary: OpenLibraryProvider,
                                                                fake: FakeOpenLibrary) -> None:
    assert openlibrary.search(SearchQuery(title="The Hobbit", media_type="movie")) == []
    assert openlibrary.search(SearchQuery(title="   ")) == []
    assert fake.requests == []


def test_details_is_one_books_api_call_for_the_cover_edition(openlibrary: OpenLibraryProvider,
                                                             fake: FakeOpenLibrary) -> None:
    [light] = openlibrary.search(SearchQuery(title="fantastic mr fox"))
    fake.requests.clear()
    full = openlibrary.details(light)
    assert [(path, query) for _m, path, query, _ua in fake.requests] == [
        ("/api/books", {"bibkeys": "OLID:OL7353617M", "jscmd": "data", "format": "json"})]
    assert (full.title, full.release_date, full.details["pages"]) == ("Fantastic Mr. Fox", date(1988, 10, 1), 96)
    assert full.identifiers["isbn13"] == "9780140328721"
    assert full.identifiers["openlibrary_work_id"] == "OL45804W"  # kept from the search result
    other = light.__class__(provider="googlebooks", provider_id="x", media_type="book", title="t")
    assert openlibrary.details(other) is other


def test_a_candidate_becomes_an_import_row(openlibrary: OpenLibraryProvider) -> None:
    [book] = openlibrary.by_identifier("isbn13", "9780140328721")
    incoming = convert(book.to_record(source="openlibrary"))
    columns = incoming.columns
    assert (columns["title"], columns["media_type"], columns["isbn13"], columns["year"]) == (
        "Fantastic Mr. Fox", "book", "9780140328721", 1988)
    assert columns["type_details"] == {"publisher": "Puffin", "pages": 96}
    assert incoming.source_id == "OL7353617M"
    assert incoming.metadata["openlibrary_id"] == "OL7353617M"
    assert incoming.metadata["cover_url"] == f"{COVERS}/b/id/8739161-L.jpg"


# --- failures ----------------------------------------------------------------------------------------------------


def test_check_is_one_cheap_call(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    openlibrary.check()
    assert [path for _m, path, _q, _ua in fake.requests] == ["/api/books"]


def test_a_blocked_client_is_bad_credentials(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    fake.mode = "forbidden"
    with pytest.raises(BadCredentials, match="^openlibrary: GET /api/books answered 403"):
        openlibrary.check()


def test_a_server_error_is_unavailable(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        openlibrary.by_identifier("isbn13", "9780140328721")


def test_too_many_requests_is_rate_limited_with_retry_after(openlibrary: OpenLibraryProvider,
                                                            fake: FakeOpenLibrary) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        openlibrary.search(SearchQuery(title="hobbit"))
    assert caught.value.retry_after == 3


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeOpenLibrary) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).by_identifier("isbn13", "9780140328721")


@pytest.mark.parametrize("call", ["isbn", "search"])
def test_a_truncated_answer_is_a_bad_response(openlibrary: OpenLibraryProvider, fake: FakeOpenLibrary,
                                              call: str) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        if call == "isbn":
            openlibrary.by_identifier("isbn13", "9780140328721")
        else:
            openlibrary.search(SearchQuery(title="hobbit"))


def test_an_error_body_or_an_unexpected_shape_is_a_bad_response() -> None:
    with pytest.raises(BadResponse, match="Open Library says 'Unknown sort'"):
        _search_docs({"error": "Unknown sort"})
    for body in ([], {"docs": "none"}, {"numFound": 0}):
        with pytest.raises(BadResponse):
            _search_docs(body)


def test_no_error_shows_the_query_string(running: RunningFake, fake: FakeOpenLibrary) -> None:
    failures: list[ProviderError] = []
    for mode in ("forbidden", "error", "rate_limited", "malformed"):
        fake.mode = mode
        try:
            provider_for(running).search(SearchQuery(title="secret-title-words"))
        except ProviderError as exc:
            failures.append(exc)
    assert len(failures) == 4
    for failure in failures:
        shown = str(failure) + repr(failure.args) + failure.message
        assert "secret-title-words" not in shown and "/search.json" in shown
        assert failure.__cause__ is None and (failure.__context__ is None or failure.__suppress_context__)


# --- normalising -------------------------------------------------------------------------------------------------


def test_normalising_refuses_an_edition_without_a_key_or_a_title() -> None:
    for broken in ({}, {"key": "/works/OL1W", "title": "x"}, {"key": "/books/OL1M"}, []):
        with pytest.raises(BadResponse):
            normalise_edition(broken)  # type: ignore[arg-type]


def test_a_cover_that_is_not_an_open_library_cover_is_dropped() -> None:
    for large in ("https://evil.example/b/id/1-L.jpg", "https://covers.openlibrary.org/b/id/x-L.jpg", None):
        book = normalise_edition({"key": "/books/OL1M", "title": "T", "cover": {"large": large}})
        assert book.cover_url is None
    assert normalise_search_doc({"key": "/works/OL1W", "title": "T", "edition_key": ["OL2M"],
                                 "cover_i": -1}).cover_url is None  # type: ignore[union-attr]


def test_recorded_documents_normalise_the_same_from_file_as_over_http(openlibrary: OpenLibraryProvider) -> None:
    [from_http] = openlibrary.by_identifier("isbn13", "9780261103344")
    from_file = normalise_edition(recorded("editions.json")[2], isbn13="9780261103344")
    assert from_file == from_http
