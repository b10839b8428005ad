"""The Barcode Lookup provider over real HTTP against the local fake Barcode Lookup (tests/fakes/barcodelookup.py)."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.barcodelookup import BarcodeLookupProvider, build, normalise_product
from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
)
from collectz.services.import_writer import convert
from tests.fakes.barcodelookup import API_KEY, DATA_DIR, REDACTED, FakeBarcodeLookup
from tests.fakes.server import RunningFake, serve_wsgi

OTHER_KEY = "notTheKey0000000000000"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeBarcodeLookup()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeBarcodeLookup:
    lookup: FakeBarcodeLookup = running.app  # type: ignore[assignment]
    lookup.mode, lookup.delay = "ok", 1.0
    lookup.requests.clear()
    return lookup


def provider_for(running: RunningFake, key: str = API_KEY, timeout: float = 5.0) -> BarcodeLookupProvider:
    config = ProviderConfig("barcode", settings={"preset": "barcodelookup"}, secrets={"api_key": key},
                            base_url=running.url, allow_private=True, timeout=timeout)
    return build(config)


@pytest.fixture
def lookup(running: RunningFake, fake: FakeBarcodeLookup) -> BarcodeLookupProvider:
    return provider_for(running)


def test_a_barcode_lookup_sends_the_documented_parameters(lookup: BarcodeLookupProvider,
                                                          fake: FakeBarcodeLookup) -> None:
    [movie] = lookup.by_identifier("ean13", "883929596126")
    assert fake.requests == [("GET", "/v3/products", {"barcode": "0883929596126", "formatted": "y",
                                                      "key": REDACTED})]
    assert (movie.provider, movie.provider_id, movie.media_type, movie.title, movie.year) == (
        "barcodelookup", "0883929596126", "movie", "Blade Runner 2049 (Blu-ray + DVD + Digital)", 2018)
    assert movie.people == [("director", "Denis Villeneuve"), ("cast", "Ryan Gosling"), ("cast", "Harrison Ford"),
                            ("creator", "Roger Deakins")]
    assert movie.details == {"studio": "Warner Home Video"}  # no brand: the manufacturer
    assert movie.identifiers == {"ean13": "0883929596126", "asin": "B075Y2J8YW"}
    assert movie.extra == {"format": "Blu-ray", "mpn": "1000654377", "manufacturer": "Warner Home Video",
                           "category": "Media > DVDs & Videos"}
    assert movie.cover_url == "https://images.barcodelookup.example/883929596126-1.jpg"


def test_a_book_by_isbn(lookup: BarcodeLookupProvider) -> None:
    [book] = lookup.by_identifier("isbn13", "9780441172719")
    assert (book.media_type, book.title, book.release_date, book.year) == ("book", "Dune", date(1990, 9, 1), 1990)
    assert book.people == [("author", "Frank Herbert")]
    assert book.details == {"publisher": "Ace"}
    assert book.identifiers == {"ean13": "9780441172719", "isbn13": "9780441172719", "asin": "0441172717"}


def test_a_game_by_its_category(lookup: BarcodeLookupProvider) -> None:
    [game] = lookup.by_identifier("ean13", "0045496590420")
    assert (game.media_type, game.extra["brand"], game.cover_url, game.year) == ("game", "Nintendo", None, None)


def test_no_data_is_nothing_found(lookup: BarcodeLookupProvider, fake: FakeBarcodeLookup) -> None:
    assert lookup.by_identifier("ean13", "4006381333931") == []
    assert len(fake.requests) == 1
    assert lookup.search(SearchQuery("no such product")) == []


def test_what_is_no_barcode_is_never_sent(lookup: BarcodeLookupProvider, fake: FakeBarcodeLookup) -> None:
    assert lookup.by_identifier("ean13", "0883929596127") == []
    assert lookup.by_identifier("isbn13", "12345") == []
    assert lookup.by_identifier("imdb_id", "tt0137523") == []
    assert lookup.search(SearchQuery(" ")) == []
    assert fake.requests == []


def test_a_title_search_narrowed_by_type_and_year(lookup: BarcodeLookupProvider, fake: FakeBarcodeLookup) -> None:
    assert [c.title for c in lookup.search(SearchQuery("blade runner"))] == [
        "Blade Runner 2049 (Blu-ray + DVD + Digital)"]
    assert fake.requests[0][2] == {"search": "blade runner", "formatted": "y", "key": REDACTED}
    assert lookup.search(SearchQuery("blade runner", media_type="book")) == []
    assert lookup.search(SearchQuery("blade runner", year=2017)) == []
    assert len(lookup.search(SearchQuery("blade runner", media_type="movie", year=2018))) == 1


def test_details_are_the_candidate_and_it_is_a_provider(lookup: BarcodeLookupProvider) -> None:
    [book] = lookup.by_identifier("isbn13", "9780441172719")
    assert lookup.details(book) is book
    assert isinstance(lookup, MetadataProvider) and lookup.key == "barcodelookup"


def test_candidates_are_import_records_the_writer_accepts(lookup: BarcodeLookupProvider) -> None:
    [book] = lookup.by_identifier("isbn13", "9780441172719")
    incoming = convert(book.to_record())
    assert (incoming.media_type, incoming.columns["isbn13"], incoming.columns["year"]) == (
        "book", "9780441172719", 1990)
    assert incoming.metadata["format"] == "Paperback"
    [movie] = lookup.by_identifier("ean13", "883929596126")
    assert convert(movie.to_record()).columns["ean13"] == "0883929596126"


# --- failures ----------------------------------------------------------------------------------------------------


def test_no_key_is_refused_before_any_request(running: RunningFake, fake: FakeBarcodeLookup) -> None:
    with pytest.raises(BadCredentials, match="needs an API key"):
        provider_for(running, key="  ")
    assert fake.requests == []


def test_a_refused_key_is_bad_credentials(running: RunningFake, fake: FakeBarcodeLookup) -> None:
    with pytest.raises(BadCredentials, match="refused the API key") as caught:
        provider_for(running, OTHER_KEY).check()
    assert "answered 403" in str(caught.value)


def test_past_the_call_limit_is_rate_limited(lookup: BarcodeLookupProvider, fake: FakeBarcodeLookup) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        lookup.by_identifier("ean13", "883929596126")
    assert caught.value.retry_after == 60


def test_a_server_error_is_unavailable(lookup: BarcodeLookupProvider, fake: FakeBarcodeLookup) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        lookup.check()


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeBarcodeLookup) -> None:
    fake.mode, fake.delay = "slow", 0.6
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(lookup: BarcodeLookupProvider, fake: FakeBarcodeLookup) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        lookup.by_identifier("isbn13", "9780441172719")


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_error_ever_shows_the_key(running: RunningFake, fake: FakeBarcodeLookup) -> None:
    failures: list[ProviderError] = []
    for mode in ("ok", "rate_limited", "error", "malformed", "slow"):
        fake.mode, fake.delay = mode, 0.5
        key = OTHER_KEY if mode == "ok" else API_KEY
        try:
            provider_for(running, key, timeout=0.2).by_identifier("ean13", "883929596126")
        except ProviderError as exc:
            failures.append(exc)
    config = ProviderConfig("barcode", secrets={"api_key": API_KEY}, base_url=f"http://127.0.0.1:{_refused_port()}",
                            allow_private=True)
    try:
        build(config).check()
    except ProviderError as exc:
        failures.append(exc)
    assert [type(f).__name__ for f in failures] == ["BadCredentials", "RateLimited", "Unavailable", "BadResponse",
                                                    "Unreachable", "Unreachable"]
    for failure in failures:
        shown = "".join(traceback.format_exception(failure)) + repr(failure.args) + failure.message
        assert API_KEY not in shown and OTHER_KEY not in shown
    assert API_KEY not in repr(provider_for(running)) + repr(provider_for(running).client.http)


# --- normalising -------------------------------------------------------------------------------------------------


def test_normalising_refuses_a_product_without_a_barcode_or_a_title() -> None:
    for broken in ({}, {"barcode_number": "883929596126"}, {"title": "x"}, []):
        with pytest.raises(BadResponse):
            normalise_product(broken)  # type: ignore[arg-type]


def test_a_recorded_product_normalises_the_same_from_file_as_over_http(lookup: BarcodeLookupProvider) -> None:
    recorded = json.loads((DATA_DIR / "products.json").read_text(encoding="utf-8"))
    assert normalise_product(recorded[0]) == lookup.by_identifier("isbn13", "9780441172719")[0]
