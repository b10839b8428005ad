"""The Grand Comics Database provider over real HTTP against the local fake GCD (tests/fakes/gcd.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.gcd import GcdProvider, build, credit_names, normalise_issue, normalise_series
from collectz.providers.http import BadCredentials, BadResponse, NotFoundAt, RateLimited, Unavailable, Unreachable
from collectz.services.import_writer import convert
from tests.fakes.gcd import DATA_DIR, FakeGcd
from tests.fakes.server import RunningFake, serve_wsgi

COVER = "https://files1.comics.org//img/gcd/covers_by_id/224/w400/224124.jpg"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeGcd()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeGcd:
    gcd: FakeGcd = running.app  # type: ignore[assignment]
    gcd.mode, gcd.delay, gcd.require_login = "ok", 1.0, False
    gcd.requests.clear()
    gcd.user_agents.clear()
    return gcd


def provider_for(running: RunningFake, *, timeout: float = 5.0) -> GcdProvider:
    config = ProviderConfig("gcd", settings={"primary": "gcd"}, base_url=running.url, allow_private=True,
                            timeout=timeout)
    return build(config)


@pytest.fixture
def gcd(running: RunningFake, fake: FakeGcd) -> GcdProvider:
    return provider_for(running)


def recorded(name: str) -> dict:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def calls(fake: FakeGcd) -> list[str]:
    return [path for _method, path, _query in fake.requests]


# --- the API's manners -------------------------------------------------------------------------------------------


def test_it_is_a_keyless_metadata_provider_for_comics(gcd: GcdProvider, fake: FakeGcd) -> None:
    assert isinstance(gcd, MetadataProvider) and gcd.media_types == ("comic_book",)
    gcd.check()
    assert fake.requests == [("GET", "/api/publisher/", {"format": "json"})]
    assert fake.user_agents == ["collectZ/0.1 (+https://github.com/collectz)"]


def test_without_format_json_the_api_answers_its_html_page(gcd: GcdProvider) -> None:
    response = gcd.client.http.request("GET", "/api/issue/242700/")
    assert response.headers["Content-Type"].startswith("text/html")


def test_an_api_closed_to_anonymous_calls_is_bad_credentials(gcd: GcdProvider, fake: FakeGcd) -> None:
    fake.require_login = True
    with pytest.raises(BadCredentials, match="refused the request") as caught:
        gcd.check()
    assert "answered 403" in str(caught.value)


# --- identifiers -------------------------------------------------------------------------------------------------


def test_only_gcd_ids_can_be_looked_up(gcd: GcdProvider, fake: FakeGcd) -> None:
    assert gcd.by_identifier("ean13", "0761941244389") == []  # the API has no barcode search
    assert gcd.by_identifier("isbn13", "9781607066019") == []
    assert gcd.by_identifier("gcd_id", "../1") == []
    assert fake.requests == []
    [issue] = gcd.by_identifier("gcd_id", "242700")
    assert issue.title == "Green Lantern #1" and issue.identifiers["ean13"] == "0761941244389"
    assert gcd.by_identifier("gcd_id", "999") == []


# --- search ------------------------------------------------------------------------------------------------------


def test_an_issue_search_puts_the_original_before_its_variants(gcd: GcdProvider, fake: FakeGcd) -> None:
    found = gcd.search(SearchQuery(title="Green Lantern #1", media_type="comic_book"))
    assert [(c.provider_id, c.title, c.year) for c in found] == [("242700", "Green Lantern #1", 2005),
                                                                 ("242701", "Green Lantern #1", 2005)]
    original, newsstand = found
    assert original.details == {"series": "Green Lantern", "issue": "1", "cover_date": "July 2005", "pages": 48}
    assert original.extra == {"series_year_began": "2005", "cover_price": "3.50 USD; 4.75 CAD"}
    assert newsstand.extra["variant_of"] == "gcd:242700"
    assert fake.requests == [("GET", "/api/series/name/Green Lantern/issue/1/", {"format": "json"})]


def test_an_issue_search_narrows_by_key_date_year(gcd: GcdProvider, fake: FakeGcd) -> None:
    assert len(gcd.search(SearchQuery(title="x", series="green lantern", number="1", year=2005), limit=1)) == 1
    assert gcd.search(SearchQuery(title="x", series="green lantern", number="1", year=1960)) == []
    assert gcd.search(SearchQuery(title="x", series="green lantern", number="2")) == []
    assert calls(fake)[:2] == ["/api/series/name/green lantern/issue/1/year/2005/",
                               "/api/series/name/green lantern/issue/1/year/1960/"]


def test_without_a_number_the_series_are_the_candidates(gcd: GcdProvider, fake: FakeGcd) -> None:
    [series] = gcd.search(SearchQuery(title="saga"))
    assert (series.provider_id, series.title, series.year) == ("series-66287", "Saga", 2012)
    assert series.details == {"series": "Saga"} and series.extra["publishing_format"] == "collected edition"
    assert gcd.details(series) is series  # a series names no issue: nothing more to ask
    assert [c.title for c in gcd.search(SearchQuery(title="lantern", year=2005))] == ["Green Lantern"]
    assert gcd.search(SearchQuery(title="lantern", year=2004)) == []
    assert calls(fake) == ["/api/series/name/saga/", "/api/series/name/lantern/year/2005/",
                           "/api/series/name/lantern/year/2004/"]


def test_search_results_come_in_drf_pages(gcd: GcdProvider, fake: FakeGcd) -> None:
    for number in range(12):
        fake.add_issue(900000 + number, recorded("issue_242701.json"))
    assert len(gcd.search(SearchQuery(title="Green Lantern #1"), limit=50)) == 10  # the first page only
    page = gcd.client.http.get_json("/api/series/name/Green Lantern/issue/1/", params={"format": "json"})
    assert page["count"] == 14 and page["previous"] is None and "page=2" in page["next"]
    with pytest.raises(NotFoundAt):
        gcd.client.http.get_json("/api/series/name/Green Lantern/issue/1/", params={"format": "json", "page": 9})
    for number in range(12):
        del fake.issues[900000 + number]


# --- details -----------------------------------------------------------------------------------------------------


def test_an_issue_in_full(gcd: GcdProvider, fake: FakeGcd) -> None:
    [light, _variant] = gcd.search(SearchQuery(title="x", series="Green Lantern", number="1"))
    issue = gcd.details(light)
    assert (issue.provider, issue.provider_id, issue.media_type, issue.title) == (
        "gcd", "242700", "comic_book", "Green Lantern #1")
    assert (issue.year, issue.release_date) == (2005, date(2005, 5, 25))
    assert issue.overview == "Hal Jordan returns to Coast City and to the skies as Green Lantern."
    assert issue.genres == ["Superhero", "Science fiction"]
    assert issue.people == [("artist", "Carlos Pacheco"), ("inker", "Jesús Merino"),
                            ("colorist", "Peter Steigerwald"), ("writer", "Geoff Johns"),
                            ("artist", "Ethan Van Sciver"), ("inker", "Prentis Rollins"),
                            ("colorist", "Moose Baumann")]
    assert issue.identifiers == {"gcd_id": "242700", "ean13": "0761941244389"}
    assert issue.cover_url == COVER
    assert issue.details == {"series": "Green Lantern", "issue": "1", "publisher": "DC Comics",
                             "cover_date": "July 2005", "pages": 48}
    assert issue.extra == {"series_year_began": "2005", "variant": "Direct Sales - Carlos Pacheco / Jesus Merino "
                           "Cover", "cover_price": "3.50 USD; 4.75 CAD", "story_title": "No Fear",
                           "upc_supplement": "00111"}
    assert calls(fake)[-1] == "/api/issue/242700/"


def test_a_collected_edition_has_its_isbn_and_own_title(gcd: GcdProvider) -> None:
    book = gcd.client.issue(1113434)
    assert (book.title, book.year, book.details["volume"], book.details["pages"]) == (
        "Saga Volume One", 2012, "1", 160)
    assert book.identifiers == {"gcd_id": "1113434", "ean13": "9781607066019", "isbn13": "9781607066019"}
    assert book.people_in("writer") == ["Brian K. Vaughan"]
    assert book.people_in("inker") == ["Fiona Staples"]


def test_a_variant_without_stories_or_cover(gcd: GcdProvider) -> None:
    variant = gcd.client.issue("242701")
    assert variant.people == [] and variant.cover_url is None and variant.overview is None
    assert variant.identifiers == {"gcd_id": "242701"}


@pytest.mark.parametrize("bad", ["abc", "0", "1/2", True])
def test_an_id_that_is_not_a_gcd_id_never_reaches_a_url(gcd: GcdProvider, fake: FakeGcd, bad: object) -> None:
    with pytest.raises(ValueError):
        gcd.client.issue(bad)  # type: ignore[arg-type]
    assert fake.requests == []


def test_an_unknown_issue_is_not_found(gcd: GcdProvider) -> None:
    with pytest.raises(NotFoundAt, match="the GCD has no issue 7"):
        gcd.client.issue(7)


def test_credit_strings_become_names() -> None:
    assert credit_names("Carlos Pacheco (credited) (signed as Pacheco [scratch])") == ["Carlos Pacheco"]
    assert credit_names("Peter J. Tomasi (credited as  Peter Tomasi) (editor); Dan DiDio (credited)") == [
        "Peter J. Tomasi", "Dan DiDio"]
    assert credit_names("Jesús Merino (credited); Prentis Rollins (credited)?") == ["Jesús Merino",
                                                                                   "Prentis Rollins"]
    assert credit_names("None") == [] and credit_names("") == [] and credit_names(None) == []
    assert credit_names("? ; various") == []


def test_documents_without_an_api_url_are_refused() -> None:
    for broken in ({}, {"api_url": "https://www.comics.org/api/series/1/"}, []):
        with pytest.raises(BadResponse):
            normalise_issue(broken)  # type: ignore[arg-type]
    with pytest.raises(BadResponse):
        normalise_series({"api_url": "https://www.comics.org/api/series/1/", "name": " "})


def test_a_candidate_becomes_an_import_row(gcd: GcdProvider) -> None:
    incoming = convert(gcd.client.issue(242700).to_record(source="gcd"), "other")
    assert (incoming.source_id, incoming.media_type, incoming.columns["ean13"]) == ("242700", "comic_book",
                                                                                  "0761941244389")
    assert incoming.columns["type_details"]["publisher"] == "DC Comics"
    assert incoming.metadata["gcd_id"] == "242700"
    assert convert(gcd.client.issue(1113434).to_record(), "other").columns["isbn13"] == "9781607066019"


# --- failures ----------------------------------------------------------------------------------------------------


def test_throttled_is_rate_limited_with_retry_after(gcd: GcdProvider, fake: FakeGcd) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        gcd.search(SearchQuery(title="Green Lantern #1"))
    assert caught.value.retry_after == 2


def test_a_server_error_is_unavailable(gcd: GcdProvider, fake: FakeGcd) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        gcd.client.issue(242700)


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeGcd) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(gcd: GcdProvider, fake: FakeGcd) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        gcd.client.issue(242700)
