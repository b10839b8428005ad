"""The Discogs provider over real HTTP against the local fake Discogs (tests/fakes/discogs.py)."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.discogs import (
    USER_AGENT,
    DiscogsProvider,
    build,
    credentials,
    normalise_release,
    normalise_search_result,
    printed_barcode,
)
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    NotFoundAt,
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
)
from collectz.services.import_writer import convert
from tests.fakes.discogs import DATA_DIR, DEFAULT_TOKEN, REDACTED, FakeDiscogs
from tests.fakes.server import RunningFake, serve_wsgi

TOKEN = DEFAULT_TOKEN
OTHER_TOKEN = "someoneElsesDiscogsToken9876543210zyxwvu"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeDiscogs(token=TOKEN)) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeDiscogs:
    discogs: FakeDiscogs = running.app  # type: ignore[assignment]
    discogs.mode, discogs.delay, discogs.retry_after = "ok", 1.0, "60"
    discogs.requests.clear()
    return discogs


def provider_for(running: RunningFake, token: str = TOKEN, timeout: float = 5.0) -> DiscogsProvider:
    config = ProviderConfig("discogs", settings={"provider": "discogs"}, secrets={"discogs_token": token},
                            base_url=running.url, allow_private=True, timeout=timeout)
    return build(config)


@pytest.fixture
def discogs(running: RunningFake, fake: FakeDiscogs) -> DiscogsProvider:
    return provider_for(running)


def recorded(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


# --- the protocol, authentication and the User-Agent -------------------------------------------------------------


def test_it_is_a_metadata_provider_for_music(discogs: DiscogsProvider) -> None:
    assert isinstance(discogs, MetadataProvider)
    assert (discogs.key, discogs.media_types) == ("discogs", ("audio",))


def test_the_token_goes_in_the_authorization_header_with_our_user_agent(discogs: DiscogsProvider,
                                                                        fake: FakeDiscogs) -> None:
    discogs.check()
    assert fake.requests == [("GET", "/oauth/identity", {}, USER_AGENT, "header")]
    assert USER_AGENT == "collectZ/0.1 (+https://github.com/collectz)"
    assert credentials(f"  {TOKEN}\n") == {"Authorization": f"Discogs token={TOKEN}", "User-Agent": USER_AGENT}


def test_built_from_the_music_card_it_names_itself(running: RunningFake, fake: FakeDiscogs) -> None:
    provider = build(ProviderConfig("music", settings={"provider": "discogs"}, secrets={"discogs_token": TOKEN},
                                    base_url=running.url, allow_private=True))
    assert provider.search(SearchQuery(title="Nevermind"))[0].provider == "discogs"
    with pytest.raises(BadCredentials, match=r"^discogs: no personal access token"):
        build(ProviderConfig("music", settings={"provider": "discogs"}))


@pytest.mark.parametrize("token", ["", "   ", "two words", "tab\there", "tökén"])
def test_a_missing_or_impossible_token_is_refused_before_any_request(running: RunningFake, fake: FakeDiscogs,
                                                                     token: str) -> None:
    with pytest.raises(BadCredentials) as caught:
        provider_for(running, token)
    assert caught.value.status == "bad_credentials" and fake.requests == []


def test_a_refused_token_is_bad_credentials(running: RunningFake, fake: FakeDiscogs) -> None:
    provider = provider_for(running, OTHER_TOKEN)
    with pytest.raises(BadCredentials, match="refused the personal access token") as caught:
        provider.check()
    assert "answered 401" in str(caught.value)
    with pytest.raises(BadCredentials):
        provider.search(SearchQuery(title="Nevermind"))
    assert [entry[4] for entry in fake.requests] == ["wrong", "wrong"]


def test_the_fake_answers_like_discogs_without_a_token(running: RunningFake, fake: FakeDiscogs) -> None:
    http = HttpClient("discogs", running.url, allow_private=True, headers={"User-Agent": USER_AGENT})
    with pytest.raises(BadCredentials):
        http.get_json("/database/search", params={"q": "nevermind"})
    unauthenticated = http.get_json("/releases/249504")
    assert unauthenticated["title"] == "Never Gonna Give You Up" and unauthenticated["images"][0]["uri"] == ""
    with_query_token = http.get_json("/database/search", params={"q": "nevermind", "token": TOKEN})
    assert with_query_token["pagination"]["items"] == 1
    assert fake.requests[-1][2:] == ({"q": "nevermind", "token": REDACTED}, USER_AGENT, "query")


# --- barcodes ----------------------------------------------------------------------------------------------------


def test_a_upc_barcode_finds_the_release_in_full(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    [release] = discogs.by_identifier("ean13", "0720642442524")
    assert (release.provider, release.provider_id, release.title) == ("discogs", "367084", "Nevermind")
    assert release.identifiers["ean13"] == "0720642442524" and release.runtime == 43
    search, lookup = fake.requests
    assert search[:3] == ("GET", "/database/search", {"barcode": "720642442524", "type": "release",
                                                      "per_page": "10", "page": "1"})
    assert lookup[1] == "/releases/367084"


def test_an_ean_barcode_and_unknown_or_invalid_ones(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    assert [c.title for c in discogs.by_identifier("ean13", "5012394144777")] == ["Never Gonna Give You Up"]
    assert printed_barcode("5012394144777") == "5012394144777"
    assert discogs.by_identifier("ean13", "4006381333931") == []
    fake.requests.clear()
    assert discogs.by_identifier("ean13", "5012394144770") == []  # bad check digit: nothing asked
    assert discogs.by_identifier("asin", "B000003TA4") == []
    assert fake.requests == []


def test_a_part_of_a_longer_number_is_no_barcode_match(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    fake.add_release({**recorded("release_249504.json"), "id": 999001, "title": "Bootleg",
                      "identifiers": [{"type": "Barcode", "value": "15012394144777 9"}]})
    try:
        assert [c.provider_id for c in discogs.by_identifier("ean13", "5012394144777")] == ["249504"]
    finally:
        fake.releases.pop(999001)


def test_a_release_id_is_an_identifier_too(discogs: DiscogsProvider) -> None:
    assert [c.title for c in discogs.by_identifier("discogs_release_id", "1743254")] == [
        "The Story Of Simon Simopath"]
    assert discogs.by_identifier("discogs_release_id", "424242") == []
    assert discogs.by_identifier("discogs_release_id", "1/../2") == []


# --- search ------------------------------------------------------------------------------------------------------


def test_a_title_search_gives_light_candidates(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    [found] = discogs.search(SearchQuery(title="never gonna", media_type="audio"))
    assert (found.provider_id, found.title, found.year, found.people) == (
        "249504", "Never Gonna Give You Up", 1987, [("artist", "Rick Astley")])
    assert found.genres == ["Electronic", "Pop", "Synth-pop"]
    assert found.identifiers == {"discogs_release_id": "249504", "discogs_master_id": "96559",
                                 "ean13": "5012394144777"}
    assert found.details == {"label": "RCA"}
    assert found.extra == {"catalog_number": "PB 41447", "country": "UK", "media_format": "Vinyl"}
    assert found.cover_url == "https://i.discogs.com/R-249504-1334592212.jpg"
    assert fake.requests[0][2] == {"release_title": "never gonna", "type": "release", "per_page": "10", "page": "1"}


def test_artist_and_year_narrow_a_search(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    fake.add_release({**recorded("release_367084.json"), "id": 999002, "year": 2011, "released": "2011-09-26"})
    try:
        assert [c.provider_id for c in discogs.search(SearchQuery(title="Nevermind"))] == ["367084", "999002"]
        assert [c.provider_id for c in discogs.search(SearchQuery(title="Nevermind", year=2011))] == ["999002"]
        assert discogs.search(SearchQuery(title="Nevermind", people=("Rick Astley",))) == []
        assert fake.requests[-1][2] == {"release_title": "Nevermind", "artist": "Rick Astley", "type": "release",
                                        "per_page": "10", "page": "1"}
        assert len(discogs.search(SearchQuery(title="Nevermind"), limit=1)) == 1
    finally:
        fake.releases.pop(999002)


def test_a_numbered_artist_is_named_without_its_number(discogs: DiscogsProvider) -> None:
    [found] = discogs.search(SearchQuery(title="simon simopath", people=("Nirvana",)))
    assert found.people == [("artist", "Nirvana")] and found.cover_url is None  # Discogs's spacer.gif
    assert found.identifiers == {"discogs_release_id": "1743254"}


def test_other_media_types_and_empty_titles_are_not_asked(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    assert discogs.search(SearchQuery(title="Nevermind", media_type="game")) == []
    assert discogs.search(SearchQuery(title="  ")) == []
    assert fake.requests == []


def test_the_fake_pages_like_discogs(discogs: DiscogsProvider) -> None:
    body = discogs.client.http.get_json("/database/search", params={"q": "n", "per_page": 1, "page": 1})
    assert body["pagination"]["pages"] == body["pagination"]["items"] == 3
    assert body["pagination"]["urls"]["next"].endswith("page=2") and len(body["results"]) == 1


# --- details -----------------------------------------------------------------------------------------------------


def test_a_release_in_full(discogs: DiscogsProvider) -> None:
    light = discogs.search(SearchQuery(title="Nevermind"))[0]
    release = discogs.details(light)
    assert (release.media_type, release.title, release.year, release.release_date) == (
        "audio", "Nevermind", 1991, date(1991, 9, 24))
    assert release.people == [("artist", "Nirvana"), ("producer", "Butch Vig"), ("producer", "Nirvana"),
                              ("writer", "Kurt Cobain")]  # "Vocals, Guitar" on tracks 1–12 is no release credit
    assert release.genres == ["Rock", "Grunge", "Alternative Rock"]
    assert release.identifiers == {"discogs_release_id": "367084", "discogs_master_id": "13814",
                                   "ean13": "0720642442524"}
    assert release.details == {"label": "DGC", "track_count": 12}  # the heading is not a track
    assert release.extra == {"catalog_number": "DGCD-24425", "country": "US", "media_format": "CD"}
    assert release.cover_url == "https://i.discogs.com/R-367084-1111.jpg"  # the primary image, not the first
    assert release.runtime == 43


def test_a_release_with_a_year_only_and_an_unknown_duration(discogs: DiscogsProvider) -> None:
    release = discogs.client.release(1743254)
    assert (release.year, release.release_date, release.runtime) == (1967, None, None)  # "1967-00-00"
    assert release.people == [("artist", "Nirvana")] and release.details == {"label": "Island Records",
                                                                              "track_count": 3}
    single = discogs.client.release("249504")
    assert single.people == [("artist", "Rick Astley"), ("producer", "Stock, Aitken & Waterman")]
    assert (single.year, single.runtime, single.extra["media_format"]) == (1987, 7, "Vinyl")


def test_details_of_another_providers_candidate_are_left_alone(discogs: DiscogsProvider,
                                                               fake: FakeDiscogs) -> None:
    other = normalise_release(recorded("release_249504.json"))
    other.provider = "musicbrainz"
    assert discogs.details(other) is other and fake.requests == []


def test_an_unknown_release_is_not_found_and_a_bad_id_never_reaches_a_url(discogs: DiscogsProvider,
                                                                          fake: FakeDiscogs) -> None:
    with pytest.raises(NotFoundAt, match="Discogs has no release 424242"):
        discogs.client.release(424242)
    fake.requests.clear()
    for bad in ("abc", "0", "-1", "1/2", True):
        with pytest.raises(ValueError):
            discogs.client.release(bad)  # type: ignore[arg-type]
    assert fake.requests == []


def test_a_candidate_is_an_import_record_the_writer_accepts(discogs: DiscogsProvider) -> None:
    record = discogs.client.release(367084).to_record()
    assert record["ean"] == "0720642442524" and record["people"][0] == ["artist", "Nirvana"]
    incoming = convert(record)
    columns = incoming.cleaned.columns
    assert (columns["title"], columns["media_type"], columns["year"], columns["ean13"]) == (
        "Nevermind", "audio", 1991, "0720642442524")
    assert columns["type_details"] == {"label": "DGC", "track_count": 12}
    assert incoming.metadata["discogs_release_id"] == "367084"
    assert [(c.role, c.name) for c in incoming.cleaned.people or []][:2] == [("artist", "Nirvana"),
                                                                             ("producer", "Butch Vig")]


def test_recorded_documents_normalise_the_same_from_file_as_over_http(discogs: DiscogsProvider) -> None:
    assert normalise_release(recorded("release_249504.json")) == discogs.client.release(249504)


def test_normalising_refuses_documents_without_an_id_or_a_title() -> None:
    for broken in ({}, {"id": "1", "title": "T"}, {"id": 0, "title": "T"}, {"id": 1, "title": " "}, []):
        with pytest.raises(BadResponse):
            normalise_release(broken)  # type: ignore[arg-type]
    for broken in ({"id": 5, "title": " "}, {"id": 5}, {"title": "A - T"}):
        with pytest.raises(BadResponse):
            normalise_search_result(broken)
    various = normalise_search_result({"id": 5, "title": "Various - Now 10", "year": "", "barcode": ["123"]})
    assert (various.title, various.people, various.year, various.identifiers) == (
        "Now 10", [], None, {"discogs_release_id": "5"})


# --- failures ----------------------------------------------------------------------------------------------------


def test_too_many_requests_is_rate_limited_with_retry_after(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    fake.mode, fake.retry_after = "rate_limited", "7"
    with pytest.raises(RateLimited, match="60 requests a minute") as caught:
        discogs.search(SearchQuery(title="Nevermind"))
    assert caught.value.retry_after == 7 and caught.value.status == "rate_limited"
    fake.retry_after = None
    with pytest.raises(RateLimited) as caught:
        discogs.client.release(249504)
    assert caught.value.retry_after == 60  # Discogs's moving minute


def test_a_server_error_is_unavailable(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        discogs.check()


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeDiscogs) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).client.release(249504)


def test_a_truncated_answer_is_a_bad_response(discogs: DiscogsProvider, fake: FakeDiscogs) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        discogs.by_identifier("ean13", "5012394144777")


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_error_or_log_ever_shows_the_token(running: RunningFake, fake: FakeDiscogs) -> None:
    failures: list[ProviderError] = []

    def catch(call) -> None:
        try:
            call()
        except ProviderError as exc:
            failures.append(exc)
        else:  # pragma: no cover - a failure case that did not fail is a broken test
            raise AssertionError("expected a ProviderError")

    catch(lambda: provider_for(running, OTHER_TOKEN).check())
    catch(lambda: provider_for(running, OTHER_TOKEN + " x"))
    catch(lambda: provider_for(running).client.release(424242))
    for mode in ("rate_limited", "error", "malformed"):
        fake.mode = mode
        catch(lambda: provider_for(running).search(SearchQuery(title="Nevermind")))
    fake.mode, fake.delay = "slow", 0.5
    catch(lambda: provider_for(running, timeout=0.1).check())
    fake.mode = "ok"
    config = ProviderConfig("discogs", secrets={"discogs_token": TOKEN},
                            base_url=f"http://127.0.0.1:{_refused_port()}", allow_private=True)
    catch(lambda: build(config).check())
    assert {type(f).__name__ for f in failures} == {"BadCredentials", "NotFoundAt", "RateLimited", "Unavailable",
                                                    "BadResponse", "Unreachable"}
    for failure in failures:
        shown = "".join(traceback.format_exception_only(failure)) + repr(failure.args) + failure.message
        assert failure.__cause__ is None and (failure.__context__ is None or failure.__suppress_context__)
        for secret in (TOKEN, OTHER_TOKEN, TOKEN[:12]):
            assert secret not in shown, f"{type(failure).__name__} shows the token: {failure}"
    assert TOKEN not in repr(provider_for(running)) and TOKEN not in repr(provider_for(running).client.http)
    assert all(TOKEN not in repr(entry) for entry in fake.requests)
