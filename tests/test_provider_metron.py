"""The Metron provider over real HTTP against the local fake Metron (tests/fakes/metron.py)."""

from __future__ import annotations

import base64
import traceback
from collections.abc import Iterator
from datetime import date

import pytest

from collectz.providers.base import MetadataProvider, SearchQuery
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
from collectz.providers.metron import (
    MetronClient,
    MetronProvider,
    barcode_parts,
    build,
    credentials,
    normalise_issue,
)
from collectz.services.import_writer import convert
from tests.fakes.metron import DEFAULT_PASSWORD, DEFAULT_USERNAME, FakeMetron
from tests.fakes.server import RunningFake, serve_wsgi

COVER = "https://static.metron.cloud/media/issue/2018/11/11/6497376-01.jpg"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningFake]:
    with serve_wsgi(FakeMetron()) as server:
        yield server


@pytest.fixture
def fake(running: RunningFake) -> FakeMetron:
    metron: FakeMetron = running.app  # type: ignore[assignment]
    metron.mode, metron.delay = "ok", 1.0
    metron.requests.clear()
    metron.user_agents.clear()
    return metron


def provider_for(running: RunningFake, *, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD,
                 timeout: float = 5.0) -> MetronProvider:
    config = ProviderConfig("metron", settings={"primary": "metron", "metron_username": username},
                            secrets={"metron_password": password}, base_url=running.url, allow_private=True,
                            timeout=timeout)
    return build(config)


@pytest.fixture
def metron(running: RunningFake, fake: FakeMetron) -> MetronProvider:
    return provider_for(running)


def queries(fake: FakeMetron) -> list[tuple[str, dict[str, str]]]:
    return [(path, query) for _method, path, query in fake.requests]


# --- credentials -------------------------------------------------------------------------------------------------


def test_it_is_a_metadata_provider_for_comics(metron: MetronProvider) -> None:
    assert isinstance(metron, MetadataProvider)
    assert (metron.key, metron.media_types) == ("metron", ("comic_book",))


def test_basic_auth_and_a_descriptive_user_agent_go_with_every_request(metron: MetronProvider,
                                                                       fake: FakeMetron) -> None:
    metron.check()
    assert queries(fake) == [("/api/issue/", {"upc": "000000000000"})]
    assert fake.user_agents == ["collectZ/0.1 (+https://github.com/collectz)"]
    header = credentials("collector", "pa:ss word")["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == "collector:pa:ss word"


@pytest.mark.parametrize(("username", "password"), [("", DEFAULT_PASSWORD), ("  ", DEFAULT_PASSWORD),
                                                    (DEFAULT_USERNAME, "")])
def test_missing_credentials_are_refused_before_any_request(running: RunningFake, fake: FakeMetron,
                                                            username: str, password: str) -> None:
    with pytest.raises(BadCredentials, match="Comics card"):
        provider_for(running, username=username, password=password)
    assert fake.requests == []


def test_a_wrong_password_is_bad_credentials(running: RunningFake, fake: FakeMetron) -> None:
    provider = provider_for(running, password="not-the-password")
    with pytest.raises(BadCredentials, match="refused the user name or password") as caught:
        provider.check()
    assert "answered 401" in str(caught.value) and caught.value.status == "bad_credentials"
    with pytest.raises(BadCredentials):
        provider.search(SearchQuery(title="Death of the Inhumans"))


# --- identifiers -------------------------------------------------------------------------------------------------


def test_a_barcode_finds_the_issue_in_full(metron: MetronProvider, fake: FakeMetron) -> None:
    fake.add_issue({**normalise_issue_document(2), "id": 90, "upc": "761941244389"})  # stored without an add-on
    [issue] = metron.by_identifier("ean13", "0761941244389")
    assert (issue.provider_id, issue.title) == ("90", "Death of the Inhumans #2")
    assert issue.people_in("writer") == ["Donny Cates"] and issue.identifiers["ean13"] == "0761941244389"
    assert queries(fake) == [("/api/issue/", {"upc": "761941244389"}), ("/api/issue/90/", {})]
    del fake.issues[90]


def test_metron_matches_the_printed_upc_exactly(metron: MetronProvider, fake: FakeMetron) -> None:
    # Issue 1 is stored with its 17-digit UPC (UPC-A + add-on): the bare UPC-A does not match it, as on Metron.
    assert metron.by_identifier("ean13", "0759606089369") == []
    assert queries(fake) == [("/api/issue/", {"upc": "759606089369"})]


def test_a_barcode_with_its_add_on_is_asked_as_printed(metron: MetronProvider, fake: FakeMetron) -> None:
    assert [c.provider_id for c in metron.by_identifier("ean13", "75960608936900111")] == ["1"]
    assert queries(fake)[0] == ("/api/issue/", {"upc": "75960608936900111"})


def test_identifiers_it_cannot_look_up(metron: MetronProvider, fake: FakeMetron) -> None:
    assert metron.by_identifier("ean13", "0012345678905") == []  # valid, unknown to Metron
    assert metron.by_identifier("ean13", "0759606089360") == []  # bad check digit: never asked
    assert metron.by_identifier("isbn13", "9781302913229") == []
    assert metron.by_identifier("tmdb_id", "550") == []
    assert len(fake.requests) == 1
    assert [c.title for c in metron.by_identifier("metron_id", "31660")] == ["The Amazing Spider-Man #68"]
    assert metron.by_identifier("metron_id", "999999") == []


# --- search ------------------------------------------------------------------------------------------------------


def test_title_search_lists_the_series_issues(metron: MetronProvider, fake: FakeMetron) -> None:
    found = metron.search(SearchQuery(title="death of the inhumans", media_type="comic_book"))
    assert [(c.provider_id, c.title, c.year) for c in found] == [("1", "Death of the Inhumans #1", 2018),
                                                                 ("2", "Death of the Inhumans #2", 2018)]
    light = found[0]
    assert light.people == [] and light.cover_url == COVER
    assert light.details == {"series": "Death of the Inhumans", "issue": "1", "volume": "1",
                             "cover_date": "2018-09-01"}
    assert light.release_date == date(2018, 7, 4)
    assert queries(fake) == [("/api/issue/", {"series_name": "death of the inhumans"})]


def test_search_narrows_by_number_year_and_publisher(metron: MetronProvider, fake: FakeMetron) -> None:
    found = metron.search(SearchQuery(title="Death of the Inhumans #2", year=2018, publisher="marvel"))
    assert [c.provider_id for c in found] == ["2"]
    assert queries(fake)[-1] == ("/api/issue/", {"series_name": "Death of the Inhumans", "number": "2",
                                                 "cover_year": "2018", "publisher_name": "marvel"})
    assert metron.search(SearchQuery(title="x", series="Amazing Spider-Man", number="68"))[0].year == 1969
    assert metron.search(SearchQuery(title="Death of the Inhumans", year=1999)) == []
    assert metron.search(SearchQuery(title="Death of the Inhumans", publisher="DC")) == []
    assert metron.search(SearchQuery(title="   ")) == []


def test_search_keeps_to_the_limit_and_pages_like_metron(metron: MetronProvider, fake: FakeMetron) -> None:
    for number in range(30):
        fake.add_issue({**normalise_issue_document(1), "id": 5000 + number, "number": str(100 + number),
                        "series": {"id": 9, "name": "Paging Probe", "sort_name": "Paging Probe", "volume": 1,
                                   "year_began": 2001, "series_type": {"id": 1, "name": "Ongoing Series"},
                                   "genres": []}})
    assert len(metron.search(SearchQuery(title="Paging Probe"), limit=5)) == 5
    page = metron.client.http.get_json("/api/issue/", params={"series_name": "paging probe"})
    assert page["count"] == 30 and len(page["results"]) == 25 and page["previous"] is None
    assert page["next"].endswith("/api/issue/?series_name=paging+probe&page=2")
    assert [c.provider_id for c in metron.client.issues(series_name="paging probe", page=2)] == [
        str(5000 + n) for n in range(25, 30)]


def normalise_issue_document(issue_id: int) -> dict:
    import json

    from tests.fakes.metron import DATA_DIR
    return json.loads((DATA_DIR / f"issue_{issue_id}.json").read_text(encoding="utf-8"))


# --- details -----------------------------------------------------------------------------------------------------


def test_an_issue_in_full(metron: MetronProvider) -> None:
    [light] = metron.search(SearchQuery(title="Death of the Inhumans", number="1"))
    issue = metron.details(light)
    assert (issue.provider, issue.provider_id, issue.media_type, issue.title) == (
        "metron", "1", "comic_book", "Death of the Inhumans #1")
    assert (issue.year, issue.release_date) == (2018, date(2018, 7, 4))
    assert issue.overview == "The Kree have a new, dangerous weapon: Vox."
    assert issue.genres == ["Super-Hero", "Horror"]
    assert issue.people == [("writer", "Donny Cates"), ("artist", "Ariel Olivetti"), ("colorist", "Ariel Olivetti")]
    assert issue.identifiers == {"metron_id": "1", "ean13": "0759606089369", "comicvine_id": "657946",
                                 "gcd_id": "1725123"}
    assert issue.cover_url == COVER
    assert issue.details == {"series": "Death of the Inhumans", "issue": "1", "volume": "1", "publisher": "Marvel",
                             "cover_date": "2018-09-01", "pages": 32}
    assert issue.extra == {"cover_artist": "Kaare Andrews", "letterer": "Clayton Cowles",
                           "story_title": "Chapter One: Vox", "age_rating": "Teen", "upc_supplement": "00111"}


def test_older_credits_map_to_our_roles(metron: MetronProvider) -> None:
    issue = metron.client.issue(31660)
    assert issue.people == [("writer", "Stan Lee"), ("writer", "John Romita Sr."), ("artist", "John Romita Sr."),
                            ("inker", "Jim Mooney")]
    assert issue.release_date == date(1969, 1, 1)  # no store date: the cover date
    assert "age_rating" not in issue.extra  # Metron's "Unknown"


def test_a_sparse_issue_leaves_unknowns_out(metron: MetronProvider) -> None:
    issue = metron.client.issue("2")
    assert issue.cover_url is None and issue.overview is None
    assert issue.identifiers == {"metron_id": "2"}
    assert "pages" not in issue.details


def test_details_of_another_providers_candidate_is_unchanged(metron: MetronProvider, fake: FakeMetron) -> None:
    other = normalise_issue(normalise_issue_document(1))
    other.provider = "gcd"
    assert metron.details(other) is other and fake.requests == []


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "1/../2", True])
def test_an_id_that_is_not_a_metron_id_never_reaches_a_url(metron: MetronProvider, fake: FakeMetron,
                                                           bad: object) -> None:
    with pytest.raises(ValueError):
        metron.client.issue(bad)  # type: ignore[arg-type]
    assert fake.requests == []


def test_an_unknown_issue_is_not_found(metron: MetronProvider) -> None:
    with pytest.raises(NotFoundAt, match="Metron has no issue 424242"):
        metron.client.issue(424242)


def test_barcodes_split_into_ean_and_add_on() -> None:
    assert barcode_parts("76194124438900111") == ("0761941244389", "00111")
    assert barcode_parts("761941244389") == ("0761941244389", None)
    assert barcode_parts("75960608936000111") == (None, None)  # bad check digit
    assert barcode_parts("") == (None, None) and barcode_parts(None) == (None, None)


def test_a_candidate_becomes_an_import_row(metron: MetronProvider) -> None:
    incoming = convert(metron.client.issue(1).to_record(source="metron"), "other")
    assert (incoming.source_id, incoming.media_type, incoming.columns["ean13"]) == ("1", "comic_book",
                                                                                  "0759606089369")
    assert incoming.columns["type_details"] == {"series": "Death of the Inhumans", "issue": "1", "volume": "1",
                                                "publisher": "Marvel", "cover_date": "2018-09-01", "pages": 32}
    assert [(c.role, c.name) for c in incoming.cleaned.people][0] == ("writer", "Donny Cates")
    assert incoming.metadata["metron_id"] == "1" and incoming.metadata["upc_supplement"] == "00111"


# --- failures ----------------------------------------------------------------------------------------------------


def test_too_many_requests_is_rate_limited_with_retry_after(metron: MetronProvider, fake: FakeMetron) -> None:
    fake.mode = "rate_limited"
    with pytest.raises(RateLimited) as caught:
        metron.search(SearchQuery(title="Death of the Inhumans"))
    assert caught.value.retry_after == 2


def test_a_server_error_is_unavailable(metron: MetronProvider, fake: FakeMetron) -> None:
    fake.mode = "error"
    with pytest.raises(Unavailable, match="answered 500"):
        metron.client.issue(1)


def test_a_slow_answer_past_the_timeout_is_unreachable(running: RunningFake, fake: FakeMetron) -> None:
    fake.mode, fake.delay = "slow", 1.0
    with pytest.raises(Unreachable, match="no answer within 0.2 s"):
        provider_for(running, timeout=0.2).check()


def test_a_truncated_answer_is_a_bad_response(metron: MetronProvider, fake: FakeMetron) -> None:
    fake.mode = "malformed"
    with pytest.raises(BadResponse, match="not valid JSON"):
        metron.client.issue(1)


def test_an_answer_that_is_not_a_page_is_a_bad_response(metron: MetronProvider) -> None:
    with pytest.raises(BadResponse):
        normalise_issue({"id": 1})
    with pytest.raises(BadResponse):
        normalise_issue({"id": "1", "series": {"name": "x"}})


def test_no_error_ever_shows_the_password(running: RunningFake, fake: FakeMetron) -> None:
    failures: list[ProviderError] = []
    wrong = "wrong-" + DEFAULT_PASSWORD
    calls = [lambda: provider_for(running, password=wrong).check(),
             lambda: provider_for(running).client.issue(77777)]
    for mode in ("rate_limited", "error", "malformed"):
        calls.append(lambda mode=mode: (setattr(fake, "mode", mode), provider_for(running).client.issue(1)))
    calls.append(lambda: (setattr(fake, "mode", "slow"), setattr(fake, "delay", 0.5),
                          provider_for(running, timeout=0.1).check()))
    for call in calls:
        with pytest.raises(ProviderError) as caught:
            call()
        failures.append(caught.value)
        fake.mode = "ok"
    assert {type(f).__name__ for f in failures} == {"BadCredentials", "NotFoundAt", "RateLimited", "Unavailable",
                                                    "BadResponse", "Unreachable"}
    token = credentials(DEFAULT_USERNAME, DEFAULT_PASSWORD)["Authorization"].split()[1]
    for failure in failures:
        shown = "".join(traceback.format_exception(failure)) + repr(failure.args)
        for secret in (DEFAULT_PASSWORD, wrong, token):
            assert secret not in shown
    client: MetronClient = provider_for(running).client
    assert DEFAULT_PASSWORD not in repr(client) + repr(client.http) + repr(provider_for(running))
