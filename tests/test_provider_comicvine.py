"""The ComicVine provider over real HTTP against the local fake ComicVine (tests/fakes/comicvine.py)."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.comicvine import (
    ComicVineProvider,
    build,
    credentials,
    error_from_body,
    html_text,
    normalise_issue,
)
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
from collectz.services.import_writer import convert
from tests.fakes.comicvine import DEFAULT_API_KEY, REDACTED, FakeComicVine
from tests.fakes.server import RunningFake, serve_wsgi

API_KEY = DEFAULT_API_KEY
OTHER_KEY = "fedcba9876543210fedcba9876543210fedcba98"
UPLOADS = "https://comicvine.gamespot.com/a/uploads"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeComicVine()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeComicVine:
    comicvine: FakeComicVine = running.app  # type: ignore[assignment]
    comicvine.mode, comicvine.delay = "ok", 1.0
    comicvine.requests.clear()
    comicvine.user_agents.clear()
    return comicvine


def provider_for(running: RunningFake, key: str = API_KEY, *, timeout: float = 5.0) -> ComicVineProvider:
    config = ProviderConfig("comicvine", secrets={"api_key": key}, base_url=running.url, allow_private=True,
                            timeout=timeout)
    return build(config)


@pytest.fixture
def comicvine(running: RunningFake, fake: FakeComicVine) -> ComicVineProvider:
    return provider_for(running)


def calls(fake: FakeComicVine) -> list[tuple[str, dict[str, str]]]:
    return [(path, query) for _method, path, query in fake.requests]


# --- key and manners ---------------------------------------------------------------------------------------------


def test_the_key_json_and_a_user_agent_go_with_every_request(comicvine: ComicVineProvider,
                                                            fake: FakeComicVine) -> None:
    assert isinstance(comicvine, MetadataProvider) and comicvine.media_types == ("comic_book",)
    comicvine.check()
    assert calls(fake) == [("/api/issues/", {"api_key": REDACTED, "format": "json", "limit": "1",
                                             "field_list": "id"})]
    assert fake.user_agents == ["collectZ/0.1 (+https://github.com/collectz)"]


@pytest.mark.parametrize("key", ["", "  ", "not-a-key", API_KEY[:-1], API_KEY + "0"])
def test_a_key_of_the_wrong_shape_is_refused_before_any_request(running: RunningFake, fake: FakeComicVine,
                                                                key: str) -> None:
    with pytest.raises(BadCredentials, match="ComicVine"):
        provider_for(running, key)
    assert fake.requests == []


def test_a_refused_key_is_bad_credentials(running: RunningFake, fake: FakeComicVine) -> None:
    provider = provider_for(running, OTHER_KEY)
    with pytest.raises(BadCredentials, match="refused the API key") as caught:
        provider.check()
    assert "answered 401" in str(caught.value)
    assert credentials(f" {API_KEY}\n") == {"api_key": API_KEY, "format": "json"}


def test_the_envelopes_status_code_is_the_error_even_with_http_200() -> None:
    cases = {100: BadCredentials, 101: NotFoundAt, 102: BadResponse, 104: BadResponse, 107: RateLimited,
             999: BadResponse}
    for code, kind in cases.items():
        error = error_from_body({"error": "x", "status_code": code, "results": []}, "GET /api/issues/")
        assert type(error) is kind, code
    assert error_from_body({"error": "OK", "status_code": 1, "results": []}, "GET /api/issues/") is None


# --- identifiers -------------------------------------------------------------------------------------------------


def test_only_comicvine_ids_can_be_looked_up(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    assert comicvine.by_identifier("ean13", "0761941244389") == []  # ComicVine issues carry no barcode
    assert comicvine.by_identifier("isbn13", "9781607066019") == []
    assert comicvine.by_identifier("comicvine_id", "4000-1") == []
    assert fake.requests == []
    [issue] = comicvine.by_identifier("comicvine_id", "111265")
    assert issue.title == "Green Lantern #1"
    assert comicvine.by_identifier("comicvine_id", "424242") == []  # status_code 101


# --- search ------------------------------------------------------------------------------------------------------


def test_a_title_search_uses_comicvines_search(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    [issue] = comicvine.search(SearchQuery(title="green lantern airborne"))
    assert (issue.provider_id, issue.title, issue.year, issue.release_date) == (
        "111265", "Green Lantern #1", 2005, date(2005, 5, 18))
    assert issue.people == [] and issue.extra["story_title"] == "Airborne"
    assert issue.cover_url == f"{UPLOADS}/original/11112/111123579/2421-3.jpg"
    assert calls(fake) == [("/api/search/", {"api_key": REDACTED, "format": "json", "resources": "issue",
                                             "query": "green lantern airborne", "limit": "10", "page": "1"})]


def test_a_series_and_number_find_the_issue_through_its_volume(comicvine: ComicVineProvider,
                                                               fake: FakeComicVine) -> None:
    [issue] = comicvine.search(SearchQuery(title="The X-Men #2"))
    assert (issue.provider_id, issue.title, issue.year) == ("6787", "The X-Men #2", 1963)
    assert issue.release_date == date(1963, 11, 1)  # no store date: the cover date
    assert [path for path, _q in calls(fake)] == ["/api/search/", "/api/issues/"]
    assert calls(fake)[0][1]["resources"] == "volume"
    assert calls(fake)[1][1]["filter"] == "volume:2133,issue_number:2"


def test_a_year_narrows_the_search(comicvine: ComicVineProvider) -> None:
    assert [c.provider_id for c in comicvine.search(SearchQuery(title="x", series="Green Lantern", number="1",
                                                                year=2005))] == ["111265"]
    assert comicvine.search(SearchQuery(title="Green Lantern", year=1990)) == []
    assert comicvine.search(SearchQuery(title="Green Lantern #9")) == []
    assert comicvine.search(SearchQuery(title="Nothing Like It")) == []
    assert comicvine.search(SearchQuery(title="  ")) == []


def test_filter_syntax_in_a_number_is_never_sent(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    assert comicvine.client.issues([2133], "2,volume:1") == []
    assert fake.requests == []


# --- details -----------------------------------------------------------------------------------------------------


def test_an_issue_in_full_with_its_volumes_publisher(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    [light] = comicvine.search(SearchQuery(title="green lantern airborne"))
    issue = comicvine.details(light)
    assert (issue.provider, issue.provider_id, issue.media_type) == ("comicvine", "111265", "comic_book")
    assert issue.people == [("writer", "Geoff Johns"), ("artist", "Carlos Pacheco"), ("inker", "Jesus Merino"),
                            ("colorist", "Moose Baumann")]
    assert issue.overview == "Hal Jordan returns as Green Lantern."  # the deck
    assert issue.identifiers == {"comicvine_id": "111265"}
    assert issue.details == {"series": "Green Lantern", "issue": "1", "cover_date": "2005-07-01",
                             "publisher": "DC Comics"}
    assert issue.extra == {"cover_artist": "Carlos Pacheco", "letterer": "Rob Leigh", "story_title": "Airborne",
                           "comicvine_volume_id": "18216", "series_year_began": "2005"}
    assert calls(fake)[-2:] == [
        ("/api/issue/4000-111265/", {"api_key": REDACTED, "format": "json"}),
        ("/api/volume/4050-18216/", {"api_key": REDACTED, "format": "json",
                                     "field_list": "id,name,publisher,start_year"})]


def test_an_older_issue(comicvine: ComicVineProvider) -> None:
    issue = comicvine.client.issue(6787)
    assert issue.people == [("artist", "Jack Kirby"), ("writer", "Stan Lee"), ("inker", "Paul Reinman")]
    assert issue.overview is None and issue.details["publisher"] == "Marvel"


def test_html_descriptions_become_text() -> None:
    assert html_text("<p><em>Hal Jordan</em> is back &amp; wearing the ring.</p><h4>Credits</h4><p>See below.</p>"
                     ) == "Hal Jordan is back & wearing the ring.\nCredits\nSee below."
    assert html_text(None) is None and html_text("<p> </p>") is None
    assert normalise_issue({"id": 1, "name": "Solo", "description": "<p>A <b>one</b>-shot.</p>"}).overview == (
        "A one-shot.")


@pytest.mark.parametrize("bad", ["abc", "0", "4000-1", True])
def test_an_id_that_is_not_a_comicvine_id_never_reaches_a_url(comicvine: ComicVineProvider, fake: FakeComicVine,
                                                              bad: object) -> None:
    with pytest.raises(ValueError):
        comicvine.client.issue(bad)  # type: ignore[arg-type]
    assert fake.requests == []


def test_an_unknown_issue_is_not_found(comicvine: ComicVineProvider) -> None:
    with pytest.raises(NotFoundAt, match="ComicVine has no issue 5"):
        comicvine.client.issue(5)


def test_documents_without_an_id_are_refused() -> None:
    for broken in ({}, {"id": "1", "name": "x"}, {"id": 2}, []):
        with pytest.raises(BadResponse):
            normalise_issue(broken)  # type: ignore[arg-type]


def test_a_candidate_becomes_an_import_row(comicvine: ComicVineProvider) -> None:
    incoming = convert(comicvine.client.issue(111265).to_record(source="comicvine"), "other")
    assert (incoming.source_id, incoming.media_type) == ("111265", "comic_book")
    assert incoming.columns["type_details"] == {"series": "Green Lantern", "issue": "1", "cover_date": "2005-07-01",
                                                "publisher": "DC Comics"}
    assert incoming.metadata["comicvine_id"] == "111265"


# --- failures ----------------------------------------------------------------------------------------------------


def test_comicvines_own_rate_limit_answer_is_rate_limited(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    fake.mode = "velocity"
    with pytest.raises(RateLimited, match="answered 420") as caught:
        comicvine.search(SearchQuery(title="Green Lantern"))
    assert caught.value.retry_after is None


def test_too_many_requests_is_rate_limited_with_retry_after(comicvine: ComicVineProvider,
                                                            fake: FakeComicVine) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        comicvine.client.issue(111265)
    assert caught.value.retry_after == 2


def test_a_server_error_is_unavailable(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        comicvine.check()


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeComicVine) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(comicvine: ComicVineProvider, fake: FakeComicVine) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        comicvine.client.issue(111265)


def test_no_error_ever_shows_the_key(running: RunningFake, fake: FakeComicVine) -> None:
    failures: list[ProviderError] = []

    def catch(call) -> None:
        with pytest.raises(ProviderError) as caught:
            call()
        failures.append(caught.value)
        fake.mode = "ok"

    catch(lambda: provider_for(running, OTHER_KEY).check())
    catch(lambda: provider_for(running).client.issue(5))
    for mode in ("velocity", "rate_limited", "error", "malformed"):
        fake.mode = mode
        catch(lambda: provider_for(running).client.issue(111265))
    fake.mode, fake.delay = "slow", 0.5
    catch(lambda: provider_for(running, timeout=0.1).check())
    assert {type(f).__name__ for f in failures} == {"BadCredentials", "NotFoundAt", "RateLimited", "Unavailable",
                                                    "BadResponse", "Unreachable"}
    for failure in failures:
        shown = "".join(traceback.format_exception(failure)) + repr(failure.args)
        assert API_KEY not in shown and OTHER_KEY not in shown and API_KEY[:20] not in shown
    provider = provider_for(running)
    assert API_KEY not in repr(provider) + repr(provider.client.http)
