"""The TMDB client over real HTTP against the local fake TMDB (tests/fakes/tmdb.py)."""

from __future__ import annotations

import base64
import json
import socket
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    NotFoundAt,
    ProviderError,
    RateLimited,
    Unavailable,
    Unreachable,
)
from collectz.providers.tmdb import (
    TmdbClient,
    credentials,
    error_from_body,
    normalise_movie,
    normalise_tv,
)
from tests.fakes.server import RunningFake, serve_wsgi
from tests.fakes.tmdb import DATA_DIR, DEFAULT_API_KEY, REDACTED, FakeTmdb

API_KEY = DEFAULT_API_KEY
OTHER_KEY = "fedcba9876543210fedcba9876543210"  # well-formed, but not the fake's


def _jwt_part(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


READ_TOKEN = ".".join((_jwt_part({"alg": "HS256"}), _jwt_part({"aud": "collectz-test", "scopes": ["api_read"]}),
                       "c2lnbmF0dXJlLW5vdC1jaGVja2Vk"))
IMAGES = "https://image.tmdb.org/t/p"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    """One server for the module; each test gets the fake back in its normal state."""
    with serve_wsgi(FakeTmdb(api_key=API_KEY, read_token=READ_TOKEN)) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeTmdb:
    tmdb: FakeTmdb = running.app  # type: ignore[assignment]
    tmdb.mode, tmdb.delay = "ok", 1.0
    tmdb.requests.clear()
    return tmdb


def client_for(running: RunningFake, secret: str = API_KEY, timeout: float = 5.0, **settings: str) -> TmdbClient:
    config = ProviderConfig("tmdb", settings=settings, secrets={"api_key": secret}, base_url=running.url,
                            allow_private=True, timeout=timeout)
    return TmdbClient.from_config(config)


@pytest.fixture
def tmdb(running: RunningFake, fake: FakeTmdb) -> TmdbClient:
    return client_for(running)


def paths(fake: FakeTmdb) -> list[str]:
    return [path for _method, path, _query in fake.requests]


def recorded(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


# --- credentials -------------------------------------------------------------------------------------------------


def test_a_v3_key_is_sent_as_the_api_key_parameter(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    tmdb.check()
    assert fake.requests == [("GET", "/3/authentication", {"api_key": REDACTED})]


def test_a_v4_read_access_token_is_sent_as_a_bearer_token(running: RunningFake, fake: FakeTmdb) -> None:
    client_for(running, READ_TOKEN).check()
    assert fake.requests == [("GET", "/3/authentication", {})]  # no api_key: the token went in the header
    assert client_for(running, READ_TOKEN).movie(550).title == "Fight Club"


def test_credentials_are_told_apart_by_their_shape() -> None:
    assert credentials(f"  {API_KEY}\n") == ({}, {"api_key": API_KEY})
    assert credentials(READ_TOKEN) == ({"Authorization": f"Bearer {READ_TOKEN}"}, {})


@pytest.mark.parametrize("secret", ["", "   ", "not-a-key", API_KEY[:-1], f"{API_KEY}0", "Bearer " + READ_TOKEN])
def test_a_secret_that_is_no_tmdb_credential_is_refused_before_any_request(
        running: RunningFake, fake: FakeTmdb, secret: str) -> None:
    with pytest.raises(BadCredentials) as caught:
        client_for(running, secret)
    assert caught.value.status == "bad_credentials"
    assert str(caught.value).startswith("tmdb: ")
    assert fake.requests == []


@pytest.mark.parametrize("secret", [OTHER_KEY, READ_TOKEN[:-2] + "xx"])
def test_a_refused_key_or_token_is_bad_credentials(running: RunningFake, fake: FakeTmdb, secret: str) -> None:
    client = client_for(running, secret)
    with pytest.raises(BadCredentials, match="refused the API key or read access token") as caught:
        client.check()
    assert "answered 401" in str(caught.value)
    with pytest.raises(BadCredentials):
        client.search_movies("Fight Club")


def test_the_saved_base_url_wins_over_the_default(running: RunningFake, fake: FakeTmdb) -> None:
    config = ProviderConfig("tmdb", secrets={"api_key": API_KEY}, base_url=running.url, allow_private=True)
    client = TmdbClient.from_config(config, base_url="http://192.0.2.1", image_base_url="https://img.example/t/p/")
    assert client.http.base_url == running.url
    assert client.movie(78).cover_url == "https://img.example/t/p/w500/63N9uy8nd9j7Eog2axPQ8lbr3Wj.jpg"


def test_the_language_setting_is_sent_with_every_localised_request(running: RunningFake, fake: FakeTmdb) -> None:
    client_for(running, language="de-DE").search_movies("Fight Club")
    assert fake.requests[-1][2]["language"] == "de-DE"


# --- search ------------------------------------------------------------------------------------------------------


def test_movie_search_finds_titles_case_insensitively_most_popular_first(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    found = tmdb.search_movies("fight CLUB")
    assert [(c.provider_id, c.title, c.year) for c in found] == [("550", "Fight Club", 1999),
                                                                 ("289732", "Zombie Fight Club", 2014)]
    fight_club = found[0]
    assert fight_club.media_type == "movie" and fight_club.people == []  # light: no credits in a search
    assert fight_club.genres == ["Drama", "Thriller", "Comedy"]  # from genre_ids
    assert fight_club.identifiers == {"tmdb_id": "550"}
    assert fight_club.cover_url == f"{IMAGES}/w500/pB8BM7pdSp6B6Ih7QZ4DrQ3PmJK.jpg"
    assert fight_club.rating == 8.43 and fight_club.release_date == date(1999, 10, 15)
    assert found[1].original_title == "屍城"
    assert fake.requests == [("GET", "/3/search/movie", {"api_key": REDACTED, "language": "en-US",
                                                         "query": "fight CLUB", "include_adult": "false",
                                                         "page": "1"})]


def test_movie_search_with_a_year_keeps_that_year_only(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    assert [c.provider_id for c in tmdb.search_movies("Blade Runner")] == ["78", "335984"]
    assert [c.title for c in tmdb.search_movies("Blade Runner", year=1982)] == ["Blade Runner"]
    assert [c.title for c in tmdb.search_movies("Blade Runner", year=2017)] == ["Blade Runner 2049"]
    assert tmdb.search_movies("Blade Runner", year=1990) == []
    assert fake.requests[-1][2]["year"] == "1990"


def test_tv_search_filters_on_the_first_air_date_year(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    [series] = tmdb.search_tv("breaking bad")
    assert (series.media_type, series.provider_id, series.title, series.year) == ("tv_series", "1396",
                                                                                  "Breaking Bad", 2008)
    assert series.genres == ["Drama", "Crime"] and series.seasons == []
    assert [c.title for c in tmdb.search_tv("Breaking Bad", year=2008)] == ["Breaking Bad"]
    assert tmdb.search_tv("Breaking Bad", year=2010) == []
    assert fake.requests[-1][2]["first_air_date_year"] == "2010"


def test_multi_search_returns_movies_and_series_and_leaves_people_out(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    assert [(c.media_type, c.title) for c in tmdb.search("br")] == [("tv_series", "Breaking Bad")]
    assert [c.title for c in tmdb.search("Ridley Scott")] == []  # the fake answered with a person
    assert [c.title for c in tmdb.search("blade runner", year=2017)] == ["Blade Runner 2049"]
    assert paths(fake) == ["/3/search/multi"] * 3


def test_an_empty_query_asks_nothing(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    assert tmdb.search_movies("  ") == [] and tmdb.search_tv("") == [] and tmdb.search("") == []
    assert fake.requests == []


def test_results_come_in_pages_of_twenty_like_tmdb(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    for number in range(25):
        fake.add_movie({**recorded("movie_289732.json"), "id": 910000 + number, "title": f"Paging Probe {number}",
                        "original_title": f"Paging Probe {number}", "popularity": 100 - number})
    assert len(tmdb.search_movies("paging probe")) == 20
    assert [c.title for c in tmdb.search_movies("paging probe", page=2)] == [f"Paging Probe {n}"
                                                                             for n in range(20, 25)]
    assert tmdb.search_movies("paging probe", page=3) == []
    envelope = tmdb.http.get_json("/3/search/movie", params={"query": "paging probe", "page": 2})
    assert {k: v for k, v in envelope.items() if k != "results"} == {"page": 2, "total_pages": 2,
                                                                       "total_results": 25}
    with pytest.raises(ValueError):
        tmdb.search_movies("paging probe", page=501)


def test_the_fake_refuses_an_impossible_page_as_tmdb_does(tmdb: TmdbClient) -> None:
    with pytest.raises(BadResponse, match="answered 400"):
        tmdb.http.get_json("/3/search/movie", params={"query": "fight", "page": 501})


# --- details -----------------------------------------------------------------------------------------------------


def test_a_movie_in_full(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    movie = tmdb.movie("550")
    assert (movie.provider, movie.provider_id, movie.media_type) == ("tmdb", "550", "movie")
    assert (movie.title, movie.original_title, movie.year, movie.release_date) == (
        "Fight Club", None, 1999, date(1999, 10, 15))
    assert movie.runtime == 139 and movie.rating == 8.43
    assert movie.genres == ["Drama", "Thriller", "Comedy"]
    assert movie.people_in("director") == ["David Fincher"]
    assert movie.people_in("writer") == ["Chuck Palahniuk", "Jim Uhls"]
    assert movie.people_in("producer") == ["Art Linson", "Ross Grayson Bell", "Ceán Chaffin"]
    cast = movie.people_in("cast")
    assert cast[:3] == ["Edward Norton", "Brad Pitt", "Helena Bonham Carter"] and len(cast) == 10
    assert not {"Jeff Cronenweth", "James Haygood"} & {name for _role, name in movie.people}  # camera, editing
    assert movie.identifiers == {"tmdb_id": "550", "imdb_id": "tt0137523"}
    assert movie.cover_url == f"{IMAGES}/w500/pB8BM7pdSp6B6Ih7QZ4DrQ3PmJK.jpg"
    assert movie.details == {"studio": "Fox 2000 Pictures"}
    assert movie.extra == {"composer": "John King, Michael Simpson"}
    assert fake.requests == [("GET", "/3/movie/550", {"api_key": REDACTED, "language": "en-US",
                                                      "append_to_response": "credits,external_ids"})]


def test_a_movie_with_a_foreign_original_title_and_unknown_runtime(tmdb: TmdbClient) -> None:
    movie = tmdb.movie(289732)
    assert (movie.title, movie.original_title, movie.runtime) == ("Zombie Fight Club", "屍城", None)
    assert movie.identifiers == {"tmdb_id": "289732"} and movie.people == [] and movie.details == {}


def test_a_series_in_full_with_its_seasons(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    series = tmdb.tv(1396)
    assert (series.media_type, series.title, series.year, series.runtime) == ("tv_series", "Breaking Bad", 2008, 45)
    assert series.genres == ["Drama", "Crime"]
    assert series.people_in("creator") == ["Vince Gilligan"]
    assert series.people_in("cast")[:2] == ["Bryan Cranston", "Aaron Paul"]
    assert series.identifiers == {"tmdb_id": "1396", "imdb_id": "tt0903747", "tvdb_id": "81189",
                                  "wikidata_id": "Q1079"}
    assert series.details == {"network": "AMC", "status": "Ended"}
    assert [(s.number, s.episode_count, s.name, s.episodes) for s in series.seasons] == [
        (1, 7, "Season 1", []), (2, 13, "Season 2", []), (3, 13, "Season 3", [])]
    assert series.seasons[0].air_date == date(2008, 1, 20)
    assert paths(fake) == ["/3/tv/1396"]


def test_a_series_with_its_episodes_asks_once_per_season(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    series = tmdb.tv("1396", with_episodes=True)
    assert [len(s.episodes) for s in series.seasons] == [7, 13, 13]
    pilot = series.seasons[0].episodes[0]
    assert (pilot.number, pilot.title, pilot.air_date) == (1, "Pilot", date(2008, 1, 20))
    assert series.seasons[2].episodes[-1].title == "Full Measure"
    assert paths(fake) == ["/3/tv/1396", "/3/tv/1396/season/1", "/3/tv/1396/season/2", "/3/tv/1396/season/3"]


def test_appended_responses_are_only_sent_when_asked_for(tmdb: TmdbClient) -> None:
    bare = tmdb.http.get_json("/3/movie/550")
    assert "credits" not in bare and "external_ids" not in bare and bare["imdb_id"] == "tt0137523"
    appended = tmdb.http.get_json("/3/movie/550", params={"append_to_response": "credits,videos"})
    assert "credits" in appended and "videos" not in appended and "external_ids" not in appended
    assert tmdb.http.get_json("/3/movie/550/external_ids")["id"] == 550


def test_an_added_document_is_served_and_found(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    fake.add_movie({**recorded("movie_78.json"), "id": 424242, "title": "Replicant Probe",
                    "external_ids": {"imdb_id": "tt9999991"}})
    assert tmdb.movie(424242).people_in("director") == ["Ridley Scott"]
    assert [c.provider_id for c in tmdb.search_movies("replicant probe")] == ["424242"]
    assert [c.provider_id for c in tmdb.find("tt9999991", "imdb_id")] == ["424242"]


# --- find --------------------------------------------------------------------------------------------------------


def test_find_by_imdb_id(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    [movie] = tmdb.find("tt0137523", "imdb_id")
    assert (movie.media_type, movie.provider_id, movie.title, movie.year) == ("movie", "550", "Fight Club", 1999)
    [series] = tmdb.find("tt0903747", "imdb_id")
    assert (series.media_type, series.provider_id) == ("tv_series", "1396")
    assert fake.requests[0] == ("GET", "/3/find/tt0137523", {"api_key": REDACTED, "language": "en-US",
                                                             "external_source": "imdb_id"})


def test_find_by_tvdb_id_and_an_unknown_id(tmdb: TmdbClient) -> None:
    assert [c.title for c in tmdb.find("81189", "tvdb_id")] == ["Breaking Bad"]
    assert tmdb.find("tt0000001", "imdb_id") == []


@pytest.mark.parametrize(("external_id", "source"), [("tt0137523", "facebook_id"), ("550", "imdb_id"),
                                                      ("tt0137523/../x", "imdb_id"), ("tt1", "tvdb_id")])
def test_find_refuses_what_it_cannot_look_up_without_asking(tmdb: TmdbClient, fake: FakeTmdb,
                                                            external_id: str, source: str) -> None:
    with pytest.raises(ValueError):
        tmdb.find(external_id, source)
    assert fake.requests == []


# --- failures ----------------------------------------------------------------------------------------------------


def test_an_unknown_id_is_not_found(tmdb: TmdbClient) -> None:
    with pytest.raises(NotFoundAt, match="TMDB has no movie 999999") as caught:
        tmdb.movie(999999)
    assert caught.value.status == "not_found"
    with pytest.raises(NotFoundAt, match="season 9 of TV series 1396"):
        tmdb.season(1396, 9)
    with pytest.raises(NotFoundAt):
        tmdb.tv(550)  # a movie id is not a series


@pytest.mark.parametrize("bad", ["abc", "0", "-5", "550/credits", True])
def test_an_id_that_is_not_a_tmdb_id_never_reaches_a_url(tmdb: TmdbClient, fake: FakeTmdb, bad: object) -> None:
    with pytest.raises(ValueError):
        tmdb.movie(bad)  # type: ignore[arg-type]
    assert fake.requests == []


def test_too_many_requests_is_rate_limited_with_tmdbs_retry_after(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        tmdb.search_movies("Fight Club")
    assert caught.value.retry_after == 2
    assert caught.value.status == "rate_limited"


def test_a_server_error_is_unavailable(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        tmdb.movie(550)


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeTmdb) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        client_for(running, timeout=0.2).movie(550)


def test_a_slow_answer_within_the_timeout_is_fine(running: RunningFake, fake: FakeTmdb) -> None:
    fake.mode, fake.delay = "slow", 0.1
    assert client_for(running, timeout=5).movie(78).title == "Blade Runner"


def test_a_truncated_answer_is_a_bad_response(tmdb: TmdbClient, fake: FakeTmdb) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        tmdb.tv(1396)


def test_an_error_body_with_a_success_status_is_still_an_error() -> None:
    cases = {7: BadCredentials, 10: BadCredentials, 34: NotFoundAt, 25: RateLimited, 11: Unavailable,
             22: BadResponse}
    for code, kind in cases.items():
        error = error_from_body({"success": False, "status_code": code, "status_message": "x"}, "GET /3/x")
        assert type(error) is kind, code
    assert error_from_body({"success": True, "status_code": 1}, "GET /3/authentication") is None
    assert error_from_body({"id": 550, "title": "Fight Club"}, "GET /3/movie/550") is None


def _refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _failures(running: RunningFake, fake: FakeTmdb) -> list[ProviderError]:
    """One of every failure a TMDB call can end in, each made with a real key or token in play."""
    failures: list[ProviderError] = []

    def catch(call) -> None:
        try:
            call()
        except ProviderError as exc:
            failures.append(exc)
        else:  # pragma: no cover - a failure case that did not fail is a broken test
            raise AssertionError("expected a ProviderError")

    catch(lambda: client_for(running, OTHER_KEY).check())
    catch(lambda: client_for(running, READ_TOKEN[:-1] + "Q").movie(550))
    catch(lambda: client_for(running).movie(1))
    catch(lambda: client_for(running, "x" + API_KEY))
    for mode in ("rate_limited", "error", "malformed"):
        fake.mode = mode
        catch(lambda: client_for(running).search_movies("Fight Club"))
        catch(lambda: client_for(running, READ_TOKEN).find("tt0137523", "imdb_id"))
    fake.mode, fake.delay = "slow", 0.5
    catch(lambda: client_for(running, timeout=0.1).check())
    fake.mode = "ok"
    config = ProviderConfig("tmdb", secrets={"api_key": API_KEY}, base_url=f"http://127.0.0.1:{_refused_port()}",
                            allow_private=True)
    catch(lambda: TmdbClient.from_config(config).check())
    return failures


def test_no_error_ever_shows_the_key_or_token(running: RunningFake, fake: FakeTmdb) -> None:
    failures = _failures(running, fake)
    assert {type(f).__name__ for f in failures} == {"BadCredentials", "NotFoundAt", "RateLimited", "Unavailable",
                                                    "BadResponse", "Unreachable"}
    for failure in failures:
        shown = "".join(traceback.format_exception(failure)) + repr(failure.args) + failure.message
        for secret in (API_KEY, OTHER_KEY, READ_TOKEN, READ_TOKEN.split(".")[1], API_KEY[:16]):
            assert secret not in shown, f"{type(failure).__name__} shows a secret: {failure}"
    assert API_KEY not in repr(client_for(running)) and API_KEY not in repr(client_for(running).http)


# --- normalising -------------------------------------------------------------------------------------------------


def test_normalising_refuses_a_document_without_an_id_or_a_title() -> None:
    for broken in ({}, {"id": "550", "title": "Fight Club"}, {"id": 550}, {"id": 0, "title": "x"}, []):
        with pytest.raises(BadResponse):
            normalise_movie(broken, IMAGES)  # type: ignore[arg-type]
    with pytest.raises(BadResponse):
        normalise_tv({"id": 1396, "name": "  "}, IMAGES)


def test_normalising_drops_what_tmdb_sends_for_unknown() -> None:
    movie = normalise_movie({"id": 1, "title": " Title ", "original_title": "Title", "release_date": "",
                             "runtime": 0, "vote_average": 0, "vote_count": 0, "poster_path": None,
                             "overview": "", "genres": [], "imdb_id": None}, IMAGES)
    assert (movie.title, movie.original_title, movie.year, movie.release_date, movie.runtime, movie.rating,
            movie.cover_url, movie.overview) == ("Title", None, None, None, None, None, None, None)
    assert movie.identifiers == {"tmdb_id": "1"}


def test_a_poster_path_that_is_not_a_plain_file_name_makes_no_cover_url() -> None:
    for path in ("//evil.example/x.jpg", "/a b.jpg", "x.jpg", "/x.jpg?y=1"):
        assert normalise_movie({"id": 1, "title": "T", "poster_path": path}, IMAGES).cover_url is None
    assert normalise_movie({"id": 1, "title": "T", "poster_path": "/x.jpg"}, IMAGES + "/").cover_url == (
        f"{IMAGES}/w500/x.jpg")


def test_recorded_documents_normalise_the_same_from_file_as_over_http(tmdb: TmdbClient) -> None:
    from_file = normalise_tv(recorded("tv_1396.json"), IMAGES)
    assert from_file == tmdb.tv(1396)
