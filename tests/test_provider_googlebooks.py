"""The Google Books provider over real HTTP against the local fake (tests/fakes/googlebooks.py)."""

from __future__ import annotations

import json
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.googlebooks import (
    GoogleBooksProvider,
    build,
    error_from_body,
    normalise_volume,
    search_terms,
    volume_items,
)
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    NotFoundAt,
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
)
from collectz.services.import_writer import convert
from tests.fakes.googlebooks import DATA_DIR, DEFAULT_API_KEY, REDACTED, FakeGoogleBooks
from tests.fakes.server import RunningFake, serve_wsgi

API_KEY = DEFAULT_API_KEY
OTHER_KEY = "AIzaSyNotTheRightKeyAtAll000000000000000"
STORY = "https://books.google.com/books/content?id=zyTCAlFPjgYC&printsec=frontcover&img=1"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeGoogleBooks(api_key=API_KEY)) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeGoogleBooks:
    app: FakeGoogleBooks = running.app  # type: ignore[assignment]
    app.mode, app.delay = "ok", 1.0
    app.requests.clear()
    return app


def provider_for(running: RunningFake, key: str | None = API_KEY, timeout: float = 5.0) -> GoogleBooksProvider:
    config = ProviderConfig("books", settings={"provider": "googlebooks"},
                            secrets={"google_api_key": key} if key is not None else {}, base_url=running.url,
                            allow_private=True, timeout=timeout)
    return build(config)


@pytest.fixture
def google(running: RunningFake, fake: FakeGoogleBooks) -> GoogleBooksProvider:
    return provider_for(running)


def recorded(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


# --- lookups by identifier ---------------------------------------------------------------------------------------


def test_it_is_a_metadata_provider_for_books(google: GoogleBooksProvider) -> None:
    assert isinstance(google, MetadataProvider)
    assert (google.key, google.media_types) == ("googlebooks", ("book",))


def test_an_isbn_is_one_volumes_search_with_the_key(google: GoogleBooksProvider, fake: FakeGoogleBooks) -> None:
    [book] = google.by_identifier("isbn13", "0-553-80457-X")
    assert fake.requests == [("GET", "/books/v1/volumes", {"q": "isbn:9780553804577", "printType": "books",
                                                           "maxResults": "10", "key": REDACTED})]
    assert (book.provider, book.provider_id, book.media_type) == ("googlebooks", "zyTCAlFPjgYC", "book")
    assert (book.title, book.year, book.release_date) == ("The Google Story", 2005, date(2005, 11, 15))
    assert book.people == [("author", "David A. Vise"), ("author", "Mark Malseed")]
    assert book.identifiers == {"googlebooks_id": "zyTCAlFPjgYC", "isbn13": "9780553804577"}
    assert book.details == {"publisher": "Random House Digital, Inc.", "pages": 207}
    assert book.rating == 7.0  # 3.5 of 5 stars
    assert book.genres == ["Browsing", "Business & Economics", "Computers"]  # the list form's top-level categories
    assert book.cover_url == f"{STORY}&zoom=1&source=gbs_api"  # https, no page curl
    assert book.overview and book.overview.startswith('"Here is the story')


def test_without_a_key_no_key_is_sent(running: RunningFake, fake: FakeGoogleBooks) -> None:
    [book] = provider_for(running, key="  ").by_identifier("isbn13", "9780156030083")
    assert "key" not in fake.requests[0][2]
    assert (book.title, book.year, book.release_date) == ("Flowers for Algernon", 2004, None)
    assert book.rating is None and book.extra == {}


def test_a_books_barcode_is_its_isbn_and_other_kinds_ask_nothing(google: GoogleBooksProvider,
                                                                 fake: FakeGoogleBooks) -> None:
    assert [b.title for b in google.by_identifier("ean13", "9780547928227")] == ["The Hobbit"]
    fake.requests.clear()
    for kind, value in (("ean13", "4006381333931"), ("isbn13", "9780547928228"), ("tmdb_id", "550")):
        assert google.by_identifier(kind, value) == []
    assert fake.requests == []


def test_an_unknown_isbn_is_nothing_found(google: GoogleBooksProvider, fake: FakeGoogleBooks) -> None:
    assert google.by_identifier("isbn13", "9781234567897") == []
    assert len(fake.requests) == 1


# --- search and details ------------------------------------------------------------------------------------------


def test_search_terms_quote_the_title_and_use_author_surnames() -> None:
    assert search_terms(' The "Hobbit": ', authors=("J.R.R. Tolkien",), publisher="Houghton Mifflin") == (
        'intitle:"The Hobbit" inauthor:Tolkien inpublisher:"Houghton Mifflin"')
    assert search_terms("  ") is None


def test_a_title_and_author_search(google: GoogleBooksProvider, fake: FakeGoogleBooks) -> None:
    [hobbit] = google.search(SearchQuery(title="the hobbit", media_type="book", people=("J.R.R. Tolkien",)), limit=3)
    assert fake.requests[0][2] == {"q": 'intitle:"the hobbit" inauthor:Tolkien', "printType": "books",
                                   "maxResults": "3", "key": REDACTED}
    assert (hobbit.provider_id, hobbit.title, hobbit.extra) == ("pD6arNyKyi8C", "The Hobbit",
                                                                {"subtitle": "Or, There and Back Again"})
    assert hobbit.genres == ["Fiction", "Juvenile Fiction"]
    assert google.search(SearchQuery(title="the hobbit", people=("Daniel Keyes",))) == []


def test_a_year_narrows_the_search(google: GoogleBooksProvider) -> None:
    assert [c.year for c in google.search(SearchQuery(title="hobbit", year=2012))] == [2012]
    assert google.search(SearchQuery(title="hobbit", year=1937)) == []


def test_search_for_another_type_or_without_a_title_asks_nothing(google: GoogleBooksProvider,
                                                                 fake: FakeGoogleBooks) -> None:
    assert google.search(SearchQuery(title="The Hobbit", media_type="game")) == []
    assert google.search(SearchQuery(title=' " ')) == []
    assert fake.requests == []


def test_details_fetches_the_volume_for_large_covers_and_full_categories(google: GoogleBooksProvider,
                                                                         fake: FakeGoogleBooks) -> None:
    [light] = google.search(SearchQuery(title="google story"))
    fake.requests.clear()
    full = google.details(light)
    assert [path for _m, path, _q in fake.requests] == ["/books/v1/volumes/zyTCAlFPjgYC"]
    assert full.cover_url == f"{STORY}&zoom=6&source=gbs_api"  # extraLarge
    assert full.genres == ["Browsing", "Business & Economics", "Entrepreneurship", "Computers",
                           "Information Technology"]  # "General" dropped
    hobbit = google.details(google.by_identifier("isbn13", "9780547928227")[0])
    assert hobbit.details == {"publisher": "Houghton Mifflin Harcourt", "pages": 300}
    assert hobbit.rating == 9.0 and hobbit.cover_url and "zoom=3" in hobbit.cover_url


def test_a_volume_that_is_gone_is_not_found(google: GoogleBooksProvider) -> None:
    gone = normalise_volume({"id": "AAAAAAAAAAAA", "volumeInfo": {"title": "Gone"}})
    with pytest.raises(NotFoundAt, match="answered 404"):
        google.details(gone)
    with pytest.raises(ValueError):
        google.client.volume("../x")


def test_a_candidate_becomes_an_import_row(google: GoogleBooksProvider) -> None:
    [book] = google.by_identifier("isbn13", "9780547928227")
    incoming = convert(book.to_record())
    columns = incoming.columns
    assert (columns["title"], columns["media_type"], columns["isbn13"], columns["year"]) == (
        "The Hobbit", "book", "9780547928227", 2012)
    assert columns["type_details"] == {"publisher": "Houghton Mifflin Harcourt", "pages": 300}
    assert incoming.rating == 9.0
    assert incoming.metadata["googlebooks_id"] == "pD6arNyKyi8C"


# --- failures ----------------------------------------------------------------------------------------------------


def test_a_wrong_key_is_bad_credentials(running: RunningFake, fake: FakeGoogleBooks) -> None:
    provider = provider_for(running, key=OTHER_KEY)
    with pytest.raises(BadCredentials, match="answered 400: Google refused the API key") as caught:
        provider.check()
    assert caught.value.status == "bad_credentials"
    assert str(caught.value).startswith("googlebooks: ")  # the service, not the "books" card
    with pytest.raises(BadCredentials):
        provider.by_identifier("isbn13", "9780553804577")


def test_a_spent_quota_is_rate_limited_in_both_forms(google: GoogleBooksProvider, fake: FakeGoogleBooks) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        google.search(SearchQuery(title="hobbit"))
    assert caught.value.retry_after == 30
    fake.mode = "daily_limit"
    with pytest.raises(RateLimited, match="answered 403: Google Books quota exceeded"):
        google.check()


def test_a_server_error_is_unavailable(google: GoogleBooksProvider, fake: FakeGoogleBooks) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        google.by_identifier("isbn13", "9780553804577")


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeGoogleBooks) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(google: GoogleBooksProvider, fake: FakeGoogleBooks) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        google.search(SearchQuery(title="hobbit"))


def test_an_answer_that_is_not_a_volumes_list_is_a_bad_response() -> None:
    assert volume_items({"kind": "books#volumes", "totalItems": 0}) == []
    for body in ({"kind": "books#volume", "id": "zyTCAlFPjgYC"}, [], {"kind": "books#volumes", "items": {}}):
        with pytest.raises(BadResponse):
            volume_items(body)


def test_error_bodies_that_are_not_about_key_or_quota_are_left_to_the_status() -> None:
    assert error_from_body({"error": {"code": 400, "message": "Invalid value", "status": "INVALID_ARGUMENT",
                                      "errors": [{"reason": "invalid"}]}}, "GET /x") is None
    assert error_from_body("<html>", "GET /x") is None
    assert isinstance(error_from_body({"error": {"status": "RESOURCE_EXHAUSTED"}}, "GET /x"), RateLimited)
    assert isinstance(error_from_body({"error": {"errors": [{"reason": "keyInvalid"}]}}, "GET /x"), BadCredentials)


def test_no_error_ever_shows_the_key(running: RunningFake, fake: FakeGoogleBooks) -> None:
    failures: list[ProviderError] = []

    def catch(call) -> None:
        try:
            call()
        except ProviderError as exc:
            failures.append(exc)
        else:  # pragma: no cover - a failure case that did not fail is a broken test
            raise AssertionError("expected a ProviderError")

    catch(lambda: provider_for(running, key=OTHER_KEY).check())
    for mode in ("rate_limited", "daily_limit", "error", "malformed"):
        fake.mode = mode
        catch(lambda: provider_for(running).search(SearchQuery(title="hobbit")))
    fake.mode, fake.delay = "slow", 0.5
    catch(lambda: provider_for(running, timeout=0.1).check())
    fake.mode = "ok"
    catch(lambda: provider_for(running).details(normalise_volume({"id": "AAAAAAAAAAAA",
                                                                  "volumeInfo": {"title": "x"}})))
    assert {type(f).__name__ for f in failures} == {"BadCredentials", "RateLimited", "Unavailable", "BadResponse",
                                                    "Unreachable", "NotFoundAt"}
    for failure in failures:
        shown = "".join(traceback.format_exception(failure)) + repr(failure.args) + failure.message
        for secret in (API_KEY, OTHER_KEY):
            assert secret not in shown, f"{type(failure).__name__} shows the key: {failure}"
    assert API_KEY not in repr(provider_for(running)) and API_KEY not in repr(provider_for(running).client.http)
    assert all(query.get("key") in (None, REDACTED) for _m, _p, query in fake.requests)


# --- normalising -------------------------------------------------------------------------------------------------


def test_normalising_refuses_a_volume_without_an_id_or_a_title() -> None:
    for broken in ({}, {"id": "zyTCAlFPjgYC"}, {"id": "a/b", "volumeInfo": {"title": "x"}}, []):
        with pytest.raises(BadResponse):
            normalise_volume(broken)  # type: ignore[arg-type]


def test_a_cover_off_googles_hosts_is_dropped_and_bad_isbns_are_ignored() -> None:
    book = normalise_volume({"id": "AAAAAAAAAAAA", "volumeInfo": {
        "title": "T", "imageLinks": {"large": "https://evil.example/x.jpg", "thumbnail": "javascript:alert(1)"},
        "industryIdentifiers": [{"type": "ISBN_13", "identifier": "9780547928228"},
                                {"type": "ISBN_10", "identifier": "054792822X"}, {"type": "OTHER",
                                                                                   "identifier": "OCLC:1"}]}})
    assert book.cover_url is None
    assert book.identifiers == {"googlebooks_id": "AAAAAAAAAAAA", "isbn13": "9780547928227"}


def test_recorded_volumes_normalise_the_same_from_file_as_over_http(google: GoogleBooksProvider) -> None:
    assert normalise_volume(recorded("gK98gXR8onwC.json")) == google.client.volume("gK98gXR8onwC")
