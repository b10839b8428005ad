"""The UPCitemdb provider over real HTTP against the local fake UPCitemdb (tests/fakes/upcitemdb.py), and the shared
category → media type mapping (collectz/providers/barcode_types.py)."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Iterator

import pytest

from collectz.providers.barcode_types import category_leaf, first_web_image, media_type_for_category
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
from collectz.providers.upcitemdb import UpcitemdbProvider, build, error_from_body, normalise_item
from collectz.services.import_writer import convert
from tests.fakes.server import RunningFake
from tests.fakes.upcitemdb import API_KEY, DATA_DIR, FakeUpcitemdb, serve_upcitemdb

OTHER_KEY = "0000aaaa1111bbbb2222cccc3333dddd"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_upcitemdb(FakeUpcitemdb()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeUpcitemdb:
    upc: FakeUpcitemdb = running.app  # type: ignore[assignment]
    upc.mode, upc.delay = "ok", 1.0
    upc.requests.clear()
    return upc


def provider_for(running: RunningFake, key: str = "", timeout: float = 5.0) -> UpcitemdbProvider:
    config = ProviderConfig("barcode", settings={"preset": "upcitemdb"}, secrets={"api_key": key} if key else {},
                            base_url=running.url, allow_private=True, timeout=timeout)
    return build(config)


@pytest.fixture
def upc(running: RunningFake, fake: FakeUpcitemdb) -> UpcitemdbProvider:
    return provider_for(running)


# --- the category mapping ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("category", "media_type"), [
    ("Media > DVDs & Videos", "movie"),
    ("Movies & TV > Blu-ray", "movie"),
    ("Media > Books > Print Books", "book"),
    ("Books", "book"),
    ("Media > Music & Sound Recordings > Music CDs", "audio"),
    ("Media > Music & Sound Recordings > Vinyl", "audio"),
    ("CDs & Vinyl", "audio"),
    ("Software > Video Game Software > Console Games", "game"),
    ("Electronics > Video Games", "game"),
    ("Video Games > PlayStation 4 > Games", "game"),
    ("Electronics > Video Game Consoles", "other"),
    ("Electronics > Video > DVD & Blu-ray Players", "other"),
    ("Electronics > Audio > Audio Players & Recorders > CD Players", "other"),
    ("Toys & Games > Games > Board Games", "other"),
    ("Home & Garden > Kitchen & Dining", "other"),
    ("", "other"),
    (None, "other"),
])
def test_a_category_says_the_media_type(category: str | None, media_type: str) -> None:
    assert media_type_for_category(category) == media_type


def test_the_category_leaf_and_the_first_web_image() -> None:
    assert category_leaf("Home & Garden > Kitchen & Dining > Toasters") == "Toasters"
    assert category_leaf(" > ") is None
    assert first_web_image(["data:image/png;base64,AA", "javascript:x", "/a.jpg", " https://x.example/a.jpg "]) == (
        "https://x.example/a.jpg")
    assert first_web_image([]) is None


# --- lookups -----------------------------------------------------------------------------------------------------


def test_a_upc_lookup_on_the_trial_plan_sends_no_key(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    [movie] = upc.by_identifier("ean13", "883929596126")  # a UPC-A, as scanned
    assert fake.requests == [("GET", "/prod/trial/lookup", {"upc": "0883929596126"}, False)]
    assert (movie.provider, movie.provider_id, movie.media_type, movie.title) == (
        "upcitemdb", "0883929596126", "movie", "Blade Runner 2049 (Blu-ray + DVD + Digital)")
    assert movie.identifiers == {"ean13": "0883929596126", "asin": "B075Y2J8YW"}
    assert movie.details == {"studio": "Warner Home Video"}
    assert movie.cover_url == "https://images.upcitemdb.example/blade-runner-2049.jpg"
    assert movie.extra == {"category": "Media > DVDs & Videos"}
    assert movie.overview.startswith("Thirty years after")


def test_a_key_moves_to_the_paid_endpoints_in_the_documented_headers(running: RunningFake,
                                                                     fake: FakeUpcitemdb) -> None:
    [book] = provider_for(running, API_KEY).by_identifier("isbn13", "978-0-441-17271-9")
    assert fake.requests == [("GET", "/prod/v1/lookup", {"upc": "9780441172719"}, True)]
    assert (book.media_type, book.title, book.details) == ("book", "Dune", {"publisher": "Ace"})
    assert book.identifiers == {"ean13": "9780441172719", "isbn13": "9780441172719", "asin": "0441172717"}
    assert book.cover_url == "http://images.upcitemdb.example/dune.jpg"  # the data: image is skipped


def test_each_category_gives_its_type(upc: UpcitemdbProvider) -> None:
    [cd] = upc.by_identifier("ean13", "0888837168625")
    assert (cd.media_type, cd.details, cd.extra["model"]) == ("audio", {"label": "Columbia"}, "88883716862")
    [game] = upc.by_identifier("ean13", "045496590420")
    assert (game.media_type, game.extra["brand"], game.extra["model"]) == ("game", "Nintendo", "HACPAAAAA")
    [toaster] = upc.by_identifier("ean13", "078917002103")
    assert (toaster.media_type, toaster.details, toaster.cover_url) == ("other", {"kind": "Toasters"}, None)
    assert toaster.extra["brand"] == "Proctor Silex"


def test_an_unknown_barcode_is_nothing_found(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    assert upc.by_identifier("ean13", "4006381333931") == []
    assert fake.requests[-1][1] == "/prod/trial/lookup"


def test_what_is_no_barcode_is_never_sent(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    assert upc.by_identifier("ean13", "0883929596127") == []  # wrong check digit
    assert upc.by_identifier("isbn13", "not an isbn") == []
    assert upc.by_identifier("tmdb_id", "550") == []
    assert upc.by_identifier("asin", "B075Y2J8YW") == []
    assert fake.requests == []


def test_a_title_search(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    found = upc.search(SearchQuery("blade runner"))
    assert [c.provider_id for c in found] == ["0883929596126"]
    assert fake.requests == [("GET", "/prod/trial/search", {"s": "blade runner", "match_mode": "0",
                                                            "type": "product"}, False)]
    assert upc.search(SearchQuery("zelda", media_type="movie")) == []
    assert [c.media_type for c in upc.search(SearchQuery("zelda", media_type="game"))] == ["game"]
    assert upc.search(SearchQuery("  ")) == [] and len(fake.requests) == 3


def test_details_are_the_candidate(upc: UpcitemdbProvider) -> None:
    [dune] = upc.by_identifier("isbn13", "9780441172719")
    assert upc.details(dune) is dune


def test_it_is_a_metadata_provider(upc: UpcitemdbProvider) -> None:
    assert isinstance(upc, MetadataProvider) and upc.key == "upcitemdb"


def test_candidates_are_import_records_the_writer_accepts(upc: UpcitemdbProvider) -> None:
    [dune] = upc.by_identifier("isbn13", "9780441172719")
    incoming = convert(dune.to_record())
    assert (incoming.media_type, incoming.columns["title"], incoming.columns["isbn13"]) == (
        "book", "Dune", "9780441172719")
    [movie] = upc.by_identifier("ean13", "883929596126")
    incoming = convert(movie.to_record())
    assert (incoming.media_type, incoming.columns["ean13"], incoming.columns["asin"]) == (
        "movie", "0883929596126", "B075Y2J8YW")
    [toaster] = upc.by_identifier("ean13", "078917002103")
    assert convert(toaster.to_record()).metadata["brand"] == "Proctor Silex"


# --- failures ----------------------------------------------------------------------------------------------------


def test_a_refused_key_is_bad_credentials(running: RunningFake, fake: FakeUpcitemdb) -> None:
    with pytest.raises(BadCredentials, match="UPCitemdb refused the API key") as caught:
        provider_for(running, OTHER_KEY).check()
    assert "answered 403" in str(caught.value)


def test_the_daily_limit_is_rate_limited_with_retry_after(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        upc.by_identifier("ean13", "883929596126")
    assert caught.value.retry_after == 3600


def test_a_server_error_is_unavailable(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        upc.check()


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeUpcitemdb) -> None:
    fake.mode, fake.delay = "slow", 0.6
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(upc: UpcitemdbProvider, fake: FakeUpcitemdb) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        upc.by_identifier("ean13", "883929596126")


def test_an_error_body_is_mapped_by_its_code() -> None:
    cases = {"EXCEED_LIMIT": RateLimited, "TOO_FAST": RateLimited, "SERVER_ERR": Unavailable,
             "INVALID_KEY": BadCredentials, "INVALID_QUERY": BadResponse}
    for code, kind in cases.items():
        assert type(error_from_body({"code": code, "message": "x"}, "GET /prod/trial/lookup")) is kind, code
    assert error_from_body({"code": "OK", "items": []}, "GET /x") is None
    assert error_from_body({"code": "NOT_FOUND", "message": "none"}, "GET /x") is None
    assert isinstance(error_from_body([], "GET /x"), BadResponse)


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_error_ever_shows_the_key(running: RunningFake, fake: FakeUpcitemdb) -> None:
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
    assert API_KEY not in repr(provider_for(running, API_KEY)) + repr(provider_for(running, API_KEY).client.http)


# --- normalising -------------------------------------------------------------------------------------------------


def test_normalising_refuses_an_item_without_a_barcode_or_a_title() -> None:
    for broken in ({}, {"ean": "0883929596126"}, {"title": "x"}, {"ean": " ", "title": "x"}, []):
        with pytest.raises(BadResponse):
            normalise_item(broken)  # type: ignore[arg-type]


def test_a_barcode_with_a_wrong_check_digit_is_kept_as_the_id_only() -> None:
    item = normalise_item({"ean": "0883929596127", "title": "Odd", "asin": "not-an-asin", "images": "x"})
    assert (item.provider_id, item.identifiers, item.cover_url, item.media_type) == (
        "0883929596127", {}, None, "other")


def test_recorded_items_normalise_the_same_from_file_as_over_http(upc: UpcitemdbProvider) -> None:
    recorded = json.loads((DATA_DIR / "items.json").read_text(encoding="utf-8"))
    assert normalise_item(recorded[3]) == upc.by_identifier("ean13", "0045496590420")[0]
