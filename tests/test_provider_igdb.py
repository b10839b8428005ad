"""The IGDB provider over real HTTP against the local fake IGDB + Twitch token endpoint (tests/fakes/igdb.py)."""

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
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
)
from collectz.providers.igdb import (
    GAME_FIELDS,
    IgdbClient,
    IgdbProvider,
    apicalypse_string,
    build,
    clear_token_cache,
    normalise_game,
)
from collectz.services.import_writer import convert
from tests.fakes.igdb import CLIENT_ID, CLIENT_SECRET, DATA_DIR, REDACTED, FakeIgdb, parse_query
from tests.fakes.server import RunningFake, serve_wsgi

WITCHER = 1942


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeIgdb()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> Iterator[FakeIgdb]:
    igdb: FakeIgdb = running.app  # type: ignore[assignment]
    igdb.mode, igdb.delay, igdb.expires_in, igdb.refuse_tokens = "ok", 1.0, 5_011_271, False
    igdb.requests.clear()
    igdb.revoke_tokens()
    igdb.token_requests = 0
    clear_token_cache()
    yield igdb
    clear_token_cache()


def config_for(running: RunningFake, *, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET,
               timeout: float = 5.0) -> ProviderConfig:
    return ProviderConfig("igdb", settings={"client_id": client_id}, secrets={"client_secret": secret},
                          base_url=running.url, allow_private=True, timeout=timeout)


def provider_for(running: RunningFake, **kwargs: object) -> IgdbProvider:
    return build(config_for(running, **kwargs))  # type: ignore[arg-type]


@pytest.fixture
def igdb(running: RunningFake, fake: FakeIgdb) -> IgdbProvider:
    return provider_for(running)


def games_queries(fake: FakeIgdb) -> list[str]:
    return [body for _method, path, body in fake.requests if path == "/v4/games"]


# --- auth ----------------------------------------------------------------------------------------------------------


def test_a_token_is_asked_for_once_and_sent_with_the_client_id(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    igdb.check()
    igdb.search(SearchQuery("witcher"))
    assert [(m, p) for m, p, _b in fake.requests] == [("POST", "/oauth2/token"), ("POST", "/v4/games"),
                                                       ("POST", "/v4/games")]
    token_body = fake.requests[0][2]
    assert "grant_type=client_credentials" in token_body and f"client_id={CLIENT_ID}" in token_body
    assert f"client_secret={REDACTED}" in token_body  # the secret went in the form body, not the URL
    assert fake.token_requests == 1


def test_the_token_is_cached_across_providers_until_it_expires(running: RunningFake, fake: FakeIgdb) -> None:
    now = [1000.0]
    config = config_for(running)
    first = IgdbClient.from_config(config, clock=lambda: now[0])
    first.check()
    IgdbClient.from_config(config, clock=lambda: now[0]).check()  # another build (a new request, a job) reuses it
    assert fake.token_requests == 1
    now[0] += 5_011_271 - 61  # just before the margin: still used
    first.check()
    assert fake.token_requests == 1
    now[0] += 2  # inside the last minute of its life: a new one
    first.check()
    assert fake.token_requests == 2


def test_another_secret_does_not_reuse_the_cached_token(running: RunningFake, fake: FakeIgdb) -> None:
    provider_for(running).check()
    with pytest.raises(BadCredentials):
        provider_for(running, secret="not-the-secret-000000000000").check()
    assert fake.token_requests == 1


def test_a_refused_token_is_replaced_once(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    igdb.check()
    fake.revoke_tokens()  # expired or revoked at Twitch
    assert [c.title for c in igdb.search(SearchQuery("hollow knight"))] == ["Hollow Knight"]
    assert fake.token_requests == 2


def test_tokens_can_come_from_another_host(fake: FakeIgdb) -> None:
    with serve_wsgi(fake) as api, serve_wsgi(fake) as twitch:
        client = IgdbClient.from_config(config_for(api), token_base_url=twitch.url)
        assert client.auth.http.base_url == twitch.url and client.http.base_url == api.url
        assert client.game(WITCHER) is not None
    assert fake.token_requests == 1


def test_a_wrong_client_id_is_bad_credentials(running: RunningFake, fake: FakeIgdb) -> None:
    with pytest.raises(BadCredentials, match="invalid client") as caught:
        provider_for(running, client_id="not-our-client").check()
    assert caught.value.status == "bad_credentials"
    assert "answered 400" in str(caught.value)


def test_a_wrong_secret_is_bad_credentials(running: RunningFake, fake: FakeIgdb) -> None:
    with pytest.raises(BadCredentials, match="answered 403"):
        provider_for(running, secret="wrong-secret-1234567890").check()


@pytest.mark.parametrize(("client_id", "secret"), [("", CLIENT_SECRET), (CLIENT_ID, ""), ("  ", "  ")])
def test_missing_credentials_are_refused_before_any_request(running: RunningFake, fake: FakeIgdb,
                                                            client_id: str, secret: str) -> None:
    with pytest.raises(BadCredentials, match="client ID and client secret"):
        provider_for(running, client_id=client_id, secret=secret)
    assert fake.requests == []


def test_a_token_igdb_keeps_refusing_is_bad_credentials(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    fake.refuse_tokens = True
    try:
        with pytest.raises(BadCredentials, match="IGDB refused the Twitch application's token") as caught:
            igdb.search(SearchQuery("witcher"))
    finally:
        fake.refuse_tokens = False
    assert "answered 401" in str(caught.value)
    assert fake.token_requests == 2  # asked again once, then gave up


# --- search and lookups --------------------------------------------------------------------------------------------


def test_a_title_search_sends_an_apicalypse_query(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    found = igdb.search(SearchQuery("The Witcher 3"), limit=5)
    assert [c.provider_id for c in found] == ["1942", "7331"]
    query = parse_query(games_queries(fake)[0])
    assert query["search"] == "The Witcher 3" and query["limit"] == 5
    assert query["fields"] == list(GAME_FIELDS)


def test_a_year_narrows_the_search(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    assert [c.title for c in igdb.search(SearchQuery("witcher", year=2015))] == ["The Witcher 3: Wild Hunt"]
    assert "where first_release_date >= 1420070400 & first_release_date < 1451606400;" in games_queries(fake)[0]
    assert igdb.search(SearchQuery("witcher", year=2001)) == []


def test_a_platform_ranks_the_games_on_it_first_and_becomes_their_platform(igdb: IgdbProvider) -> None:
    found = igdb.search(SearchQuery("witcher", platform="Switch"))
    assert [(c.provider_id, c.details["platform"]) for c in found] == [
        ("7331", "Nintendo Switch"), ("1942", "PC (Microsoft Windows), PlayStation 4, Xbox One")]
    [ps4, _other] = igdb.search(SearchQuery("witcher", platform="ps4"))
    assert (ps4.provider_id, ps4.details["platform"]) == ("1942", "PlayStation 4")


def test_other_media_types_and_empty_titles_ask_nothing(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    assert igdb.search(SearchQuery("witcher", media_type="book")) == []
    assert igdb.search(SearchQuery("   ")) == []
    assert fake.requests == []


def test_a_search_that_finds_nothing_is_empty(igdb: IgdbProvider) -> None:
    assert igdb.search(SearchQuery("no such game anywhere")) == []


def test_a_quote_in_a_title_cannot_add_clauses(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    assert igdb.search(SearchQuery('knight"; where id = 1942; limit 500; "')) == []
    assert apicalypse_string('a "b" \\ c\n') == '"a \\"b\\" \\\\ c"'
    assert parse_query(games_queries(fake)[0])["limit"] == 10


def test_by_igdb_id_is_the_game_in_full(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    [game] = igdb.by_identifier("igdb_id", "1942")
    assert "where id = 1942;" in games_queries(fake)[0]
    assert (game.provider, game.media_type, game.title, game.release_date, game.year) == (
        "igdb", "game", "The Witcher 3: Wild Hunt", date(2015, 5, 19), 2015)
    assert game.genres == ["Role-playing (RPG)", "Adventure"]
    assert game.people == [("developer", "CD Projekt RED")]
    assert game.details == {"platform": "PC (Microsoft Windows), PlayStation 4, Xbox One",
                            "developer": "CD Projekt RED"}
    assert game.extra == {"publisher": "CD Projekt, Warner Bros. Interactive Entertainment"}
    assert game.identifiers == {"igdb_id": "1942"}
    assert game.cover_url == "https://images.igdb.com/igdb/image/upload/t_cover_big/co1wyy.jpg"
    assert game.overview.startswith("RPG and sequel to The Witcher 2")


def test_identifiers_igdb_does_not_know_give_nothing(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    assert igdb.by_identifier("ean13", "0045496590420") == []
    assert igdb.by_identifier("isbn13", "9780141036144") == []
    assert igdb.by_identifier("igdb_id", "1942 or 1=1") == []
    assert fake.requests == []
    assert igdb.by_identifier("igdb_id", "999999") == []


def test_details_of_a_search_result_are_the_result(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    [hollow] = igdb.search(SearchQuery("hollow knight"))
    asked = len(fake.requests)
    assert igdb.details(hollow) is hollow
    assert len(fake.requests) == asked
    assert hollow.people == [("developer", "Team Cherry")] and hollow.extra == {"publisher": "Team Cherry"}


def test_it_is_a_metadata_provider(igdb: IgdbProvider) -> None:
    assert isinstance(igdb, MetadataProvider)
    assert (igdb.key, igdb.media_types) == ("igdb", ("game",))


def test_a_candidate_is_an_import_record_the_writer_accepts(igdb: IgdbProvider) -> None:
    [zelda] = igdb.by_identifier("igdb_id", "7346")
    record = zelda.to_record()
    incoming = convert(record)
    assert incoming.media_type == "game"
    assert incoming.columns["title"] == "The Legend of Zelda: Breath of the Wild"
    assert incoming.columns["year"] == 2017
    assert incoming.metadata["igdb_id"] == "7346"
    assert incoming.metadata["publisher"] == "Nintendo"
    assert record["details"] == {"platform": "Wii U, Nintendo Switch",
                                 "developer": "Nintendo EPD Production Group No. 3"}


# --- failures ------------------------------------------------------------------------------------------------------


def test_too_many_requests_is_rate_limited(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    igdb.check()
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        igdb.search(SearchQuery("witcher"))
    assert caught.value.retry_after == 1


def test_a_server_error_is_unavailable(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        igdb.check()


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeIgdb) -> None:
    fake.mode, fake.delay = "slow", 0.6
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(igdb: IgdbProvider, fake: FakeIgdb) -> None:
    igdb.check()
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        igdb.search(SearchQuery("witcher"))
    clear_token_cache()
    with pytest.raises(BadResponse, match="not a Twitch access token"):
        igdb.check()


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_error_ever_shows_the_secret_or_a_token(running: RunningFake, fake: FakeIgdb) -> None:
    failures: list[ProviderError] = []

    def catch(call) -> None:
        try:
            call()
        except ProviderError as exc:
            failures.append(exc)
        else:  # pragma: no cover - a failure case that did not fail is a broken test
            raise AssertionError("expected a ProviderError")

    provider_for(running).check()
    tokens = list(fake.tokens)
    catch(lambda: provider_for(running, secret=CLIENT_SECRET + "x").check())
    catch(lambda: provider_for(running, client_id="x" + CLIENT_ID).check())
    for mode in ("rate_limited", "error", "malformed"):
        fake.mode = mode
        catch(lambda: provider_for(running).search(SearchQuery("witcher")))
    fake.mode, fake.delay = "slow", 0.5
    catch(lambda: provider_for(running, timeout=0.1).check())
    fake.mode = "ok"
    config = ProviderConfig("igdb", settings={"client_id": CLIENT_ID}, secrets={"client_secret": CLIENT_SECRET},
                            base_url=f"http://127.0.0.1:{_refused_port()}", allow_private=True)
    catch(lambda: build(config).check())
    assert {type(f).__name__ for f in failures} == {"BadCredentials", "RateLimited", "Unavailable", "BadResponse",
                                                    "Unreachable"}
    for failure in failures:
        shown = "".join(traceback.format_exception(failure)) + repr(failure.args) + failure.message
        for secret in (CLIENT_SECRET, *tokens):
            assert secret not in shown, f"{type(failure).__name__} shows a secret: {failure}"
    client = provider_for(running).client
    assert CLIENT_SECRET not in repr(client) + repr(client.auth) + repr(client.auth.http)


# --- normalising ---------------------------------------------------------------------------------------------------


def test_normalising_refuses_a_game_without_an_id_or_a_name() -> None:
    for broken in ({}, {"id": "1942", "name": "x"}, {"id": 0, "name": "x"}, {"id": 5}, {"id": 5, "name": " "}, []):
        with pytest.raises(BadResponse):
            normalise_game(broken)  # type: ignore[arg-type]


def test_normalising_drops_what_is_missing_or_odd() -> None:
    game = normalise_game({"id": 5, "name": " Tetris ", "first_release_date": "1984", "cover": {"image_id": "../x"},
                           "involved_companies": [{"company": 12, "developer": True}], "genres": [3]})
    assert (game.title, game.release_date, game.cover_url, game.people, game.genres, game.details, game.extra) == (
        "Tetris", None, None, [], [], {}, {})


def test_recorded_games_normalise_the_same_from_file_as_over_http(igdb: IgdbProvider) -> None:
    recorded = {g["id"]: g for g in json.loads((DATA_DIR / "games.json").read_text(encoding="utf-8"))}
    assert normalise_game(recorded[14593]) == igdb.by_identifier("igdb_id", "14593")[0]
