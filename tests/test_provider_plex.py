"""The Plex client over real HTTP against the local fake Plex Media Server (tests/fakes/plex.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import requests

from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    HttpClient,
    NotFoundAt,
    ProviderError,
    Unavailable,
    Unreachable,
    UrlRejected,
)
from collectz.providers.plex import (
    PlexClient,
    PlexItem,
    PlexSection,
    edition_from_path,
    external_ids,
    parse_item,
    parse_variant,
)
from tests.fakes.plex import FakePlex
from tests.fakes.server import RunningFake, serve_wsgi

TOKEN = "plex-token-123"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    """One server for the module (stopping one takes half a second); each test gets it back in a clean state."""
    with serve_wsgi(FakePlex(token=TOKEN, photos=True)) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakePlex:
    plex: FakePlex = running.app  # type: ignore[assignment]
    plex.mode, plex.slow_seconds = "ok", 2.0
    plex.requests.clear()
    return plex


@pytest.fixture
def server(running: RunningFake, fake: FakePlex) -> RunningFake:
    return running


def client_for(server: RunningFake, token: str = TOKEN, timeout: float = 5.0) -> PlexClient:
    config = ProviderConfig("plex", secrets={"token": token}, base_url=server.url, timeout=timeout)
    return PlexClient.from_config(config)


@pytest.fixture
def plex(server: RunningFake) -> PlexClient:
    return client_for(server)


def listing_requests(fake: FakePlex, section: str, type_code: int) -> list[dict[str, str]]:
    return [query for _method, path, query in fake.requests
            if path == f"/library/sections/{section}/all" and query.get("type") == str(type_code)]


def by_key(items: list[PlexItem]) -> dict[str, PlexItem]:
    return {item.rating_key: item for item in items}


# --- identity and sections ---------------------------------------------------------------------------------------


def test_check_returns_the_server_identity(plex: PlexClient, fake: FakePlex) -> None:
    assert plex.check() == {"friendlyName": "Living Room PMS", "version": "1.40.2.8395-c67dce28e",
                            "machineIdentifier": fake.machine_identifier}
    assert fake.requests[-1][:2] == ("GET", "/")


def test_sections_are_the_movie_show_and_music_ones(plex: PlexClient, fake: FakePlex) -> None:
    assert len(fake.sections) == 4  # the fake also has a photo section, which is not imported
    assert plex.sections() == [PlexSection("1", "Movies", "movie"), PlexSection("2", "TV Shows", "show"),
                               PlexSection("3", "Music", "artist")]
    assert plex.sections()[2].as_dict() == {"key": "3", "title": "Music", "type": "artist"}


def test_counts_are_asked_as_empty_pages(plex: PlexClient, fake: FakePlex) -> None:
    assert [plex.count(key) for key in ("1", "2", "3")] == [20, 5, 10]
    counted = [q for key in ("1", "2", "3") for _m, path, q in fake.requests if path == f"/library/sections/{key}/all"]
    assert [q["X-Plex-Container-Size"] for q in counted] == ["0", "0", "0"]
    assert [q["type"] for q in counted] == ["1", "2", "9"]  # an artist section counts its albums


def test_an_unknown_section_is_not_found(plex: PlexClient) -> None:
    with pytest.raises(NotFoundAt, match="section 4 is not on the server"):  # the photo section is not imported
        list(plex.iter_items("4"))
    with pytest.raises(NotFoundAt):
        plex.count("99")


# --- paging ------------------------------------------------------------------------------------------------------


def test_a_section_larger_than_a_page_is_read_page_by_page(plex: PlexClient, fake: FakePlex) -> None:
    items = list(plex.iter_items("1", page_size=7))
    assert [item.rating_key for item in items] == [m["ratingKey"] for m in fake.items("1")]
    pages = listing_requests(fake, "1", 1)
    assert [(q["X-Plex-Container-Start"], q["X-Plex-Container-Size"]) for q in pages] == [
        ("0", "7"), ("7", "7"), ("14", "7")]
    assert all(q["includeGuids"] == "1" for q in pages)


def test_paging_stops_on_an_exact_multiple_and_never_repeats_an_item(plex: PlexClient, fake: FakePlex) -> None:
    items = list(plex.iter_items("3", page_size=5))
    assert len(items) == len({item.rating_key for item in items}) == 10
    assert len(listing_requests(fake, "3", 9)) == 2


def test_the_fake_pages_by_header_too_and_says_where_the_page_starts(server: RunningFake) -> None:
    response = requests.get(server.url + "/library/sections/1/all", timeout=5, headers={
        "X-Plex-Token": TOKEN, "Accept": "application/json", "X-Plex-Container-Start": "5",
        "X-Plex-Container-Size": "3"})
    container = response.json()["MediaContainer"]
    assert (container["offset"], container["size"], container["totalSize"]) == (5, 3, 20)
    assert response.headers["X-Plex-Container-Start"] == "5"
    assert response.headers["X-Plex-Container-Total-Size"] == "20"
    assert [m["ratingKey"] for m in container["Metadata"]] == ["100006", "100007", "100008"]
    assert all("Guid" not in m for m in container["Metadata"])  # only with includeGuids=1


def test_the_fake_answers_xml_unless_json_is_asked_for(server: RunningFake) -> None:
    http = HttpClient("plex", server.url, allow_private=True, headers={"X-Plex-Token": TOKEN})
    root = http.get_xml("/library/sections/1/all", params={"X-Plex-Container-Size": 2, "includeGuids": 1})
    assert root.tag == "MediaContainer" and root.get("totalSize") == "20"
    videos = root.findall("Video")
    assert len(videos) == 2 and videos[0].get("type") == "movie"
    assert [g.get("id") for g in videos[0].findall("Guid")] == ["imdb://tt1000000", "tmdb://10000",
                                                               "tvdb://50000"]


def test_the_fake_takes_the_token_in_the_query_too_but_never_records_it(server: RunningFake, fake: FakePlex) -> None:
    response = requests.get(server.url + "/library/sections/2/all", timeout=5, headers={"Accept": "application/json"},
                            params={"X-Plex-Token": TOKEN, "type": 4, "X-Plex-Container-Size": 1})
    container = response.json()["MediaContainer"]
    assert container["totalSize"] == 5 * 2 * 4 - 2 + 1  # 4 episodes a season, 2 short seasons, 1 Specials
    assert container["Metadata"][0]["grandparentTitle"] == fake.items("2")[0]["title"]
    assert fake.requests[-1][2]["X-Plex-Token"] == "<token>"
    show = fake.items("2")[2]
    children = requests.get(f"{server.url}/library/metadata/{show['ratingKey']}/children", timeout=5,
                            headers={"X-Plex-Token": TOKEN, "Accept": "application/json"}).json()["MediaContainer"]
    assert [(s["index"], s["leafCount"]) for s in children["Metadata"]] == [(0, 1), (1, 4), (2, 4)]
    assert requests.get(server.url + "/identity", timeout=5).status_code == 200  # the one page without a token
    assert requests.get(server.url + "/library/sections/all", timeout=5).status_code == 401


# --- what an item carries ----------------------------------------------------------------------------------------


def test_guids_become_tmdb_imdb_and_tvdb_ids(plex: PlexClient) -> None:
    movies = list(plex.iter_items("1"))
    assert movies[0].ids == {"imdb_id": "tt1000000", "tmdb_id": "10000", "tvdb_id": "50000"}
    assert movies[1].ids == {"imdb_id": "tt1000001", "tmdb_id": "10003"}
    assert movies[7].ids == {"imdb_id": "tt1000007"}  # matched, but Plex knows only the IMDb id
    assert movies[8].guid == "com.plexapp.agents.imdb://tt1000008?lang=en"  # legacy agent: the id is in the guid
    assert movies[8].ids == {"imdb_id": "tt1000008"} and movies[8].is_agent_matched
    assert movies[9].guid == "local://100010" and movies[9].ids == {} and not movies[9].is_agent_matched
    shows = list(plex.iter_items("2"))
    assert shows[0].ids == {"imdb_id": "tt2000000", "tmdb_id": "30000", "tvdb_id": "70000"}
    assert shows[3].ids == {"tvdb_id": "70003"}
    assert shows[4].guid.startswith("com.plexapp.agents.thetvdb://") and shows[4].ids == {"tvdb_id": "70004"}


def test_a_movie_is_read_with_its_people_genres_dates_and_rating(plex: PlexClient, fake: FakePlex) -> None:
    source = fake.items("1")[0]
    movie = list(plex.iter_items("1"))[0]
    assert (movie.type, movie.title, movie.year) == ("movie", source["title"], source["year"])
    assert movie.originally_available_at == date.fromisoformat(source["originallyAvailableAt"])
    assert movie.rating == source["audienceRating"]
    assert movie.duration_minutes == source["duration"] // 60000
    assert movie.genres == [g["tag"] for g in source["Genre"]]
    assert movie.directors == [source["Director"][0]["tag"]]
    assert movie.writers == [w["tag"] for w in source["Writer"]]
    assert movie.roles == [r["tag"] for r in source["Role"]]
    assert (movie.studio, movie.content_rating, movie.summary) == (
        source["studio"], source["contentRating"], source["summary"])
    assert movie.thumb == f"/library/metadata/{movie.rating_key}/thumb/1703239236"
    unmatched = list(plex.iter_items("1"))[9]
    assert (unmatched.rating, unmatched.summary, unmatched.genres) == (None, None, [])


def test_seasons_carry_the_episodes_owned_without_a_request_per_show(plex: PlexClient, fake: FakePlex) -> None:
    shows = list(plex.iter_items("2", page_size=3))
    assert len(shows) == 5
    for i, show in enumerate(shows):
        assert show.seasons == [(number, owned, None) for number, owned in fake.season_plan(i)]
        assert show.leaf_count == sum(owned for _n, owned in fake.season_plan(i))
    assert shows[1].seasons == [(1, 4, None), (2, 3, None)]  # one episode missing from the last season
    assert shows[2].seasons[0] == (0, 1, None)  # Specials
    # 11 seasons in pages of 3, then 5 shows in pages of 3: 6 requests, whatever the number of shows or episodes.
    assert len(listing_requests(fake, "2", 3)) == 4 and len(listing_requests(fake, "2", 2)) == 2
    assert not [path for _m, path, _q in fake.requests if path.startswith("/library/metadata")]


def test_albums_are_read_with_their_artist_label_and_tracks(plex: PlexClient, fake: FakePlex) -> None:
    albums = list(plex.iter_items("3"))
    assert [a.rating_key for a in albums] == [m["ratingKey"] for m in fake.items("3", 9)]
    first = albums[0]
    assert (first.type, first.artist, first.studio, first.leaf_count) == (
        "album", fake.items("3", 8)[0]["title"], "RCA", 8)
    assert first.ids == {"mbid": "73a757cf-ce24-4000-8000-212bfb72fae5"}
    assert albums[1].ids == {}
    assert albums[4].artist == fake.items("3", 8)[0]["title"]  # four artists for ten albums
    assert albums[8].guid == "local://500009" and albums[8].artist  # unmatched, but its folder names the artist


def test_variants_give_resolution_classes_codecs_files_and_editions(plex: PlexClient) -> None:
    movies = list(plex.iter_items("1"))
    first = movies[0].variants
    assert len(first) == 1
    assert (first[0].resolution, first[0].video_codec, first[0].audio_codec, first[0].container) == (
        "1080p", "h264", "aac", "mkv")
    assert first[0].file == "The Silent Harbor (1950).mkv"  # the base name: never the server's directories
    assert first[0].size == 1_500_000_000 and first[0].media_id == "1000000"
    assert [v.resolution for v in movies[2].variants] == ["SD"]
    assert [v.resolution for v in movies[3].variants] == ["1080p", "4K"]  # two versions of one film
    assert movies[3].variants[1].file == "The Broken Harbor (1987) - 4k.mkv"
    assert [v.resolution for v in movies[4].variants] == ["4K"]
    edition = movies[5]  # editionTitle and {edition-…} in the file name
    assert edition.edition == "Director's Cut" and edition.variants[0].edition == "Director's Cut"
    older = movies[6]  # only the file name says it, as servers before editions report it
    assert older.edition == "Director's Cut" and older.variants[0].file.endswith("{edition-Director's Cut}.mkv")
    assert movies[0].edition is None and movies[0].variants[0].edition is None


def test_edition_and_ids_parsing_rules() -> None:
    assert edition_from_path("/m/Blade Runner (1982) {edition-Final Cut}/Blade Runner (1982).mkv") == "Final Cut"
    assert edition_from_path(r"D:\Movies\Alien (1979) {EDITION-Director's Cut}.mkv") == "Director's Cut"
    assert edition_from_path("/m/Alien (1979).mkv") is None and edition_from_path("") is None
    assert external_ids("com.plexapp.agents.themoviedb://1399?lang=en", None) == {"tmdb_id": "1399"}
    assert external_ids("plex://movie/x", [{"id": "tmdb://abc"}, {"id": "imdb://nm12"}, {"id": "tvdb://7"},
                                           {"id": "unknown://1"}, "junk"]) == {"tvdb_id": "7"}
    variant = parse_variant({"id": 5, "videoResolution": "1440", "Part": [
        {"file": r"C:\Media\A (2001)\A (2001) - cd1.avi", "size": 10}, {"file": "x", "size": 5}]})
    assert (variant.resolution, variant.file, variant.size, variant.parts) == ("1440", "A (2001) - cd1.avi", 15, 2)


def test_a_container_s_hoisted_attributes_are_used_when_an_entry_lacks_them() -> None:
    container = {"parentTitle": "Nina Simone", "viewGroup": "album"}
    item = parse_item({"ratingKey": "7", "title": "Pastel Blues", "year": "1965", "rating": "12"}, container)
    assert (item.type, item.artist, item.year, item.rating) == ("album", "Nina Simone", 1965, None)


# --- failures: mapped to provider errors, never carrying the token ----------------------------------------------


def test_a_wrong_token_is_bad_credentials(server: RunningFake) -> None:
    bad = client_for(server, token="not-the-token")
    for call in (bad.check, bad.sections, lambda: bad.count("1")):
        with pytest.raises(BadCredentials) as caught:
            call()
        assert "not-the-token" not in str(caught.value)


def test_a_missing_token_or_address_is_refused_before_any_request(server: RunningFake, fake: FakePlex) -> None:
    with pytest.raises(BadCredentials, match="no token"):
        PlexClient.from_config(ProviderConfig("plex", secrets={}, base_url=server.url))
    with pytest.raises(UrlRejected, match="no server address"):
        PlexClient.from_config(ProviderConfig("plex", secrets={"token": TOKEN}))
    assert fake.requests == []


def test_a_server_error_is_unavailable(plex: PlexClient, fake: FakePlex) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable):
        plex.check()
    with pytest.raises(Unavailable):
        list(plex.iter_items("1"))


def test_a_slow_server_is_unreachable_within_the_timeout(server: RunningFake, fake: FakePlex) -> None:
    fake.mode, fake.slow_seconds = "slow", 1.5
    with pytest.raises(Unreachable, match="no answer within 0.3 s"):
        client_for(server, timeout=0.3).check()


def test_the_token_is_never_in_a_message_nor_in_a_query_string(server: RunningFake, fake: FakePlex) -> None:
    plex = client_for(server)
    plex.check()
    list(plex.iter_items("2", page_size=2))
    errors: list[ProviderError] = []
    for mode in ("error", "slow"):
        fake.mode, fake.slow_seconds = mode, 1.0
        with pytest.raises(ProviderError) as caught:
            client_for(server, timeout=0.3).check()
        errors.append(caught.value)
    fake.mode = "ok"
    with pytest.raises(BadCredentials) as caught:
        client_for(server, token=TOKEN + "-old").sections()
    errors.append(caught.value)
    for error in errors:
        assert TOKEN not in str(error) and TOKEN not in repr(error) and TOKEN not in repr(error.args)
    assert len(fake.requests) > 5
    assert all("X-Plex-Token" not in query for _m, _p, query in fake.requests)
    assert TOKEN not in repr(fake.requests) and TOKEN not in repr(plex) and TOKEN not in repr(plex.http)
