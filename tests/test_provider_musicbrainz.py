"""The MusicBrainz provider over real HTTP against the local fake MusicBrainz (tests/fakes/musicbrainz.py)."""

from __future__ import annotations

import json
import socket
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.config import ProviderConfig
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
from collectz.providers.musicbrainz import (
    MusicBrainzClient,
    MusicBrainzProvider,
    barcode_query,
    build,
    normalise_release,
    release_query,
    user_agent,
)
from collectz.services.import_writer import convert
from tests.fakes.musicbrainz import DATA_DIR, FakeMusicBrainz
from tests.fakes.server import RunningFake, serve_wsgi

NEVERMIND = "29906411-0197-5316-b32a-0409c15a3882"
OK_COMPUTER = "e4a57f25-062d-59a0-b2e2-2e718180f0bb"
LULU = "5a7f3f6b-593f-5569-9e83-86b71b4ca86f"
COVERS = "https://coverartarchive.org"
CONTACT = "admin@example.org"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeMusicBrainz()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeMusicBrainz:
    musicbrainz: FakeMusicBrainz = running.app  # type: ignore[assignment]
    musicbrainz.mode, musicbrainz.delay, musicbrainz.retry_after = "ok", 1.0, "2"
    musicbrainz.requests.clear()
    return musicbrainz


def provider_for(running: RunningFake, timeout: float = 5.0, **settings: str) -> MusicBrainzProvider:
    config = ProviderConfig("musicbrainz", settings={"contact": CONTACT, **settings}, base_url=running.url,
                            allow_private=True, timeout=timeout)
    return build(config)


@pytest.fixture
def musicbrainz(running: RunningFake, fake: FakeMusicBrainz) -> MusicBrainzProvider:
    return provider_for(running)


def recorded(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


# --- the protocol and the User-Agent -----------------------------------------------------------------------------


def test_it_is_a_metadata_provider_for_music(musicbrainz: MusicBrainzProvider) -> None:
    assert isinstance(musicbrainz, MetadataProvider)
    assert (musicbrainz.key, musicbrainz.media_types) == ("musicbrainz", ("audio",))


def test_every_request_names_the_application_and_the_admins_contact(musicbrainz: MusicBrainzProvider,
                                                                    fake: FakeMusicBrainz) -> None:
    musicbrainz.check()
    [(method, path, query, agent)] = fake.requests
    assert (method, path, query["fmt"], query["limit"]) == ("GET", "/ws/2/release", "json", "1")
    assert agent == "collectZ/0.1 (+https://github.com/collectz; admin@example.org)"


def test_built_from_the_music_card_it_names_itself(running: RunningFake, fake: FakeMusicBrainz) -> None:
    provider = build(ProviderConfig("music", settings={"provider": "musicbrainz", "contact": CONTACT},
                                    base_url=running.url, allow_private=True))
    assert provider.search(SearchQuery(title="Lulu"))[0].provider == "musicbrainz"
    fake.mode = "error"
    with pytest.raises(Unavailable, match=r"^musicbrainz: "):
        provider.check()


def test_the_user_agent_without_a_contact_still_names_the_application() -> None:
    assert user_agent(None) == user_agent("  ") == "collectZ/0.1 (+https://github.com/collectz)"
    assert user_agent("https://music.example.org/about") == (
        "collectZ/0.1 (+https://github.com/collectz; https://music.example.org/about)")


def test_a_contact_cannot_break_the_header_or_the_parentheses() -> None:
    agent = user_agent("me@example.org)\r\nX-Evil: 1 (")
    assert "\r" not in agent and "\n" not in agent and agent.count("(") == 1 and agent.count(")") == 1
    assert agent == "collectZ/0.1 (+https://github.com/collectz; me@example.org X-Evil: 1)"


def test_a_refused_user_agent_is_bad_credentials_that_says_what_to_do(running: RunningFake,
                                                                      fake: FakeMusicBrainz) -> None:
    client = MusicBrainzClient(HttpClient("musicbrainz", running.url, allow_private=True,
                                          headers={"User-Agent": "python-requests/2.34.2"}))
    with pytest.raises(BadCredentials, match="refused our User-Agent") as caught:
        client.check()
    assert "answered 403" in str(caught.value) and caught.value.status == "bad_credentials"


# --- barcodes ----------------------------------------------------------------------------------------------------


def test_a_upc_barcode_finds_the_release_in_full(musicbrainz: MusicBrainzProvider, fake: FakeMusicBrainz) -> None:
    [release] = musicbrainz.by_identifier("ean13", "0720642442524")
    assert (release.provider, release.provider_id, release.title) == ("musicbrainz", NEVERMIND, "Nevermind")
    assert release.identifiers["ean13"] == "0720642442524"
    assert release.people == [("artist", "Nirvana")] and release.runtime == 43
    search, lookup = fake.requests
    assert search[2]["query"] == "barcode:0720642442524 OR barcode:720642442524"
    assert (lookup[1], lookup[2]) == (f"/ws/2/release/{NEVERMIND}", {
        "inc": "artist-credits labels recordings release-groups genres", "fmt": "json"})


def test_the_lookup_sends_inc_joined_with_plus_signs_as_documented(musicbrainz: MusicBrainzProvider,
                                                                   running: RunningFake) -> None:
    musicbrainz.client.release(NEVERMIND)
    response = musicbrainz.client.http.request("GET", f"/ws/2/release/{NEVERMIND}",
                                               params={"inc": "artist-credits labels", "fmt": "json"})
    assert "inc=artist-credits+labels&fmt=json" in response.url
    assert "label-info" in response.json() and "media" not in response.json()


def test_a_twelve_digit_upc_and_an_unknown_or_invalid_barcode(musicbrainz: MusicBrainzProvider,
                                                              fake: FakeMusicBrainz) -> None:
    assert [c.title for c in musicbrainz.by_identifier("ean13", "724385522925")] == ["OK Computer"]
    assert musicbrainz.by_identifier("ean13", "4006381333931") == []
    fake.requests.clear()
    assert musicbrainz.by_identifier("ean13", "720642442525") == []  # bad check digit: nothing asked
    assert musicbrainz.by_identifier("isbn13", "9780306406157") == []
    assert fake.requests == []


def test_a_release_id_is_an_identifier_too(musicbrainz: MusicBrainzProvider) -> None:
    assert [c.title for c in musicbrainz.by_identifier("musicbrainz_release_id", LULU)] == ["Lulu"]
    assert musicbrainz.by_identifier("musicbrainz_release_id", "00000000-0000-0000-0000-000000000000") == []
    assert musicbrainz.by_identifier("musicbrainz_release_id", "../x") == []


# --- search ------------------------------------------------------------------------------------------------------


def test_a_title_search_gives_light_candidates(musicbrainz: MusicBrainzProvider, fake: FakeMusicBrainz) -> None:
    [found] = musicbrainz.search(SearchQuery(title="nevermind", media_type="audio"))
    assert (found.provider_id, found.title, found.year, found.people) == (
        NEVERMIND, "Nevermind", 1991, [("artist", "Nirvana")])
    assert found.details == {"label": "DGC", "track_count": 12}
    assert found.cover_url is None and found.genres == [] and found.runtime is None  # search does not say
    assert fake.requests[0][2] == {"query": 'release:"nevermind"', "limit": "10", "offset": "0", "fmt": "json"}


def test_artists_narrow_a_search(musicbrainz: MusicBrainzProvider, fake: FakeMusicBrainz) -> None:
    assert [c.title for c in musicbrainz.search(SearchQuery(title="Lulu", people=("Metallica",)))] == ["Lulu"]
    assert musicbrainz.search(SearchQuery(title="Lulu", people=("Nirvana",))) == []
    assert fake.requests[-1][2]["query"] == 'release:"Lulu" AND artist:"Nirvana"'


def test_a_year_ranks_that_years_releases_first(musicbrainz: MusicBrainzProvider, fake: FakeMusicBrainz) -> None:
    fake.add_release({**recorded("release_nevermind.json"), "id": "11111111-2222-4333-8444-555555555555",
                      "date": "2011-09-26", "barcode": "602527779034"})
    try:
        assert [c.year for c in musicbrainz.search(SearchQuery(title="Nevermind"))] == [1991, 2011]
        assert [c.year for c in musicbrainz.search(SearchQuery(title="Nevermind", year=2011))] == [2011, 1991]
        assert len(musicbrainz.search(SearchQuery(title="Nevermind"), limit=1)) == 1
    finally:
        fake.releases.pop("11111111-2222-4333-8444-555555555555")


def test_other_media_types_and_empty_titles_are_not_asked(musicbrainz: MusicBrainzProvider,
                                                         fake: FakeMusicBrainz) -> None:
    assert musicbrainz.search(SearchQuery(title="Nevermind", media_type="book")) == []
    assert musicbrainz.search(SearchQuery(title="   ")) == []
    assert fake.requests == []


def test_a_title_with_lucene_syntax_is_searched_as_a_phrase(musicbrainz: MusicBrainzProvider) -> None:
    assert release_query('Exit "Music" (For a Film) AND', ["AC\\DC"]) == (
        'release:"Exit \\"Music\\" (For a Film) AND" AND artist:"AC\\\\DC"')
    assert musicbrainz.search(SearchQuery(title='Exit "Music" OR (x')) == []
    assert barcode_query("4006381333931") == "barcode:4006381333931"


# --- details -----------------------------------------------------------------------------------------------------


def test_a_release_in_full(musicbrainz: MusicBrainzProvider) -> None:
    light = musicbrainz.search(SearchQuery(title="Nevermind"))[0]
    release = musicbrainz.details(light)
    assert (release.media_type, release.title, release.year, release.release_date) == (
        "audio", "Nevermind", 1991, date(1991, 9, 24))
    assert release.genres == ["Alternative Rock", "Grunge", "Rock"]
    group_id = recorded("release_nevermind.json")["release-group"]["id"]
    assert release.identifiers == {"musicbrainz_release_id": NEVERMIND, "musicbrainz_release_group_id": group_id,
                                   "ean13": "0720642442524", "asin": "B000003TA4"}
    assert release.cover_url == f"{COVERS}/release/{NEVERMIND}/front-500"
    assert release.details == {"label": "DGC", "track_count": 12}
    assert release.extra == {"catalog_number": "DGCD-24425", "country": "US", "media_format": "CD",
                             "release_type": "Album"}
    assert release.runtime == 43  # 42:31 of tracks


def test_joint_credits_several_discs_and_no_cover(musicbrainz: MusicBrainzProvider) -> None:
    lulu = musicbrainz.client.release(LULU.upper())
    assert lulu.people == [("artist", "Lou Reed"), ("artist", "Metallica")]
    assert lulu.details == {"label": "Vertigo", "track_count": 10} and lulu.runtime == 87
    assert lulu.genres == ["Heavy Metal", "Experimental Rock"]
    ok_computer = musicbrainz.client.release(OK_COMPUTER)
    assert (ok_computer.year, ok_computer.release_date) == (1997, None)  # "1997-06": a partial date
    assert ok_computer.cover_url is None and ok_computer.runtime is None  # one track of unknown length
    assert "asin" not in ok_computer.identifiers and ok_computer.genres == []


def test_details_of_another_providers_candidate_are_left_alone(musicbrainz: MusicBrainzProvider,
                                                               fake: FakeMusicBrainz) -> None:
    other = normalise_release(recorded("release_lulu.json"))
    other.provider = "discogs"
    assert musicbrainz.details(other) is other and fake.requests == []


def test_an_unknown_release_is_not_found_and_a_bad_id_never_reaches_a_url(musicbrainz: MusicBrainzProvider,
                                                                          fake: FakeMusicBrainz) -> None:
    with pytest.raises(NotFoundAt, match="MusicBrainz has no release"):
        musicbrainz.client.release("00000000-0000-0000-0000-000000000000")
    fake.requests.clear()
    for bad in ("abc", f"{NEVERMIND}/x", "", None):
        with pytest.raises(ValueError):
            musicbrainz.client.release(bad)  # type: ignore[arg-type]
    assert fake.requests == []


def test_a_candidate_is_an_import_record_the_writer_accepts(musicbrainz: MusicBrainzProvider) -> None:
    release = musicbrainz.client.release(NEVERMIND)
    record = release.to_record()
    assert record["ean"] == "0720642442524" and record["asin"] == "B000003TA4"
    assert record["people"] == [["artist", "Nirvana"]]
    incoming = convert(record)
    columns = incoming.cleaned.columns
    assert (columns["title"], columns["media_type"], columns["year"], columns["runtime"]) == (
        "Nevermind", "audio", 1991, 43)
    assert columns["type_details"] == {"label": "DGC", "track_count": 12}
    assert (columns["ean13"], columns["asin"]) == ("0720642442524", "B000003TA4")
    assert incoming.cleaned.genres == ["Alternative Rock", "Grunge", "Rock"]
    assert incoming.metadata["musicbrainz_release_id"] == NEVERMIND
    assert incoming.metadata["cover_url"] == f"{COVERS}/release/{NEVERMIND}/front-500"


def test_recorded_documents_normalise_the_same_from_file_as_over_http(musicbrainz: MusicBrainzProvider) -> None:
    assert normalise_release(recorded("release_lulu.json")) == musicbrainz.client.release(LULU)


def test_normalising_refuses_a_release_without_an_id_or_a_title() -> None:
    for broken in ({}, {"id": "x", "title": "T"}, {"id": NEVERMIND, "title": " "}, []):
        with pytest.raises(BadResponse):
            normalise_release(broken)  # type: ignore[arg-type]
    bare = normalise_release({"id": NEVERMIND, "title": "T", "date": "", "barcode": "not a barcode",
                              "label-info": [{"label": {"name": "[no label]"}}]})
    assert (bare.year, bare.details, bare.identifiers) == (None, {}, {"musicbrainz_release_id": NEVERMIND})


# --- failures ----------------------------------------------------------------------------------------------------


def test_the_rate_limit_answer_is_rate_limited_with_retry_after(musicbrainz: MusicBrainzProvider,
                                                                fake: FakeMusicBrainz) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited, match="rate limit") as caught:
        musicbrainz.search(SearchQuery(title="Nevermind"))
    assert caught.value.retry_after == 2 and caught.value.status == "rate_limited"
    fake.retry_after = None
    with pytest.raises(RateLimited) as caught:
        musicbrainz.client.release(NEVERMIND)
    assert caught.value.retry_after == 1.0  # MusicBrainz's one request per second


def test_a_429_is_rate_limited_too(running: RunningFake) -> None:
    def too_many(environ, start_response):
        start_response("429 Too Many Requests", [("Retry-After", "3"), ("Content-Type", "application/json")])
        return [b'{"error": "slow down"}']

    with serve_wsgi(too_many) as other:
        with pytest.raises(RateLimited) as caught:
            build(ProviderConfig("musicbrainz", base_url=other.url, allow_private=True)).check()
    assert caught.value.retry_after == 3


def test_a_server_error_is_unavailable(musicbrainz: MusicBrainzProvider, fake: FakeMusicBrainz) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        musicbrainz.client.release(NEVERMIND)


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeMusicBrainz) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).search(SearchQuery(title="Nevermind"))


def test_a_truncated_answer_is_a_bad_response(musicbrainz: MusicBrainzProvider, fake: FakeMusicBrainz) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        musicbrainz.by_identifier("ean13", "0720642442524")


def test_a_query_musicbrainz_cannot_parse_is_a_bad_response(musicbrainz: MusicBrainzProvider) -> None:
    with pytest.raises(BadResponse, match="answered 400"):
        musicbrainz.client.http.get_json("/ws/2/release", params={"query": 'release:"open', "fmt": "json"})


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_error_shows_the_contact_or_the_query(running: RunningFake, fake: FakeMusicBrainz) -> None:
    """MusicBrainz has no secret, but the admin's contact and the searched text stay out of messages all the same."""
    failures: list[ProviderError] = []
    for mode in ("rate_limited", "error", "malformed"):
        fake.mode = mode
        try:
            provider_for(running).search(SearchQuery(title="Secret Title", people=("Secret Artist",)))
        except ProviderError as exc:
            failures.append(exc)
    config = ProviderConfig("musicbrainz", settings={"contact": CONTACT},
                            base_url=f"http://127.0.0.1:{_refused_port()}", allow_private=True)
    try:
        build(config).check()
    except ProviderError as exc:
        failures.append(exc)
    assert {type(f).__name__ for f in failures} == {"RateLimited", "Unavailable", "BadResponse", "Unreachable"}
    for failure in failures:
        shown = "".join(traceback.format_exception_only(failure)) + repr(failure.args) + failure.message
        assert failure.__cause__ is None and (failure.__context__ is None or failure.__suppress_context__)
        assert CONTACT not in shown and "Secret" not in shown, shown
