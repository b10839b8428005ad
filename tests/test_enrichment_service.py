"""The enrichment service: scoring, identifier-first matching, filling empty fields, the Review queue.

Providers are served by local fakes (TMDB's, here); nothing of ours is mocked.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import EnrichmentReview, Media, MediaMetadata, User
from collectz.providers.records import Candidate, SeasonInfo
from collectz.services import enrichment, flags, integrations
from collectz.services.enrichment import ItemFacts, Scored, is_ambiguous, score
from collectz.services.errors import Conflict, Forbidden, InvalidInput
from collectz.services.media import MediaInput, create_media
from tests.conftest import Actors, activity
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import DATA_DIR, FakeTmdb

TMDB_KEY = "0123456789abcdef0123456789abcdef"

# --- helpers shared by the enrichment tests (test_enrichment_jobs, test_review_web, e2e/test_review) ---------------


def add_dunes(fake: FakeTmdb) -> None:
    """Two films called "Dune" (1984 and 2021), shaped like TMDB's /3/movie documents: a title without a year
    cannot tell them apart."""
    base = json.loads((DATA_DIR / "movie_78.json").read_text(encoding="utf-8"))
    for movie_id, released, director, imdb in ((841, "1984-12-14", "David Lynch", "tt0087182"),
                                                (438631, "2021-09-15", "Denis Villeneuve", "tt1160419")):
        movie = copy.deepcopy(base)
        movie.update(id=movie_id, title="Dune", original_title="Dune", release_date=released, imdb_id=imdb,
                     overview=f"Dune, as filmed by {director}.", popularity=50.0 if movie_id == 841 else 60.0,
                     belongs_to_collection=None)
        movie["credits"] = {"cast": [], "crew": [{**base["credits"]["crew"][0], "name": director,
                                                  "original_name": director, "id": movie_id * 10}]}
        movie["external_ids"] = {**base["external_ids"], "id": movie_id, "imdb_id": imdb, "wikidata_id": None}
        fake.add_movie(movie)


@contextmanager
def serving_tmdb() -> Iterator[tuple[FakeTmdb, str]]:
    """TMDB's fake (with the two Dunes) on a local port: (fake, base URL)."""
    fake = FakeTmdb(api_key=TMDB_KEY)
    add_dunes(fake)
    with serve_wsgi(fake) as running:
        yield fake, running.url


def turn_on_tmdb(app: Flask, admin_id: int) -> None:
    with app.app_context():
        admin = db.session.get(User, admin_id)
        integrations.save(admin, "tmdb", {"enabled": True, "language": "en-US", "api_key": TMDB_KEY})
        db.session.commit()
        db.session.remove()


def app_with_tmdb(make_app: Any, actors: Actors, url: str, **settings: Any) -> Flask:
    """An app whose TMDB card is on and points at the fake; `actors.client(...)` signs in to it."""
    app = make_app(PROVIDER_URL_OVERRIDES=f"tmdb={url}", **settings)
    turn_on_tmdb(app, actors.ids["alice"])
    actors.app = app
    return app


@pytest.fixture
def fake_tmdb() -> Iterator[tuple[FakeTmdb, str]]:
    with serving_tmdb() as served:
        yield served


@pytest.fixture
def tmdb_app(make_app: Any, actors: Actors, fake_tmdb: tuple[FakeTmdb, str]) -> Flask:
    return app_with_tmdb(make_app, actors, fake_tmdb[1])


def add_item(app: Flask, owner_id: int, **fields: Any) -> int:
    """An item added by hand (through the media service) by `owner_id`."""
    with app.app_context():
        owner = db.session.get(User, owner_id)
        media = create_media(owner, MediaInput(**fields))
        media_id = media.id
        db.session.remove()
        return media_id


def item(app: Flask, media_id: int) -> dict[str, Any]:
    """The item's state as plain values (columns, people, genres, seasons, metadata)."""
    with app.app_context():
        media = db.session.get(Media, media_id)
        state = {name: getattr(media, name) for name in ("title", "year", "overview", "runtime", "tmdb_id",
                                                         "release_date", "rating", "isbn13", "type_details")}
        state["people"] = [(mp.role, mp.person.name) for mp in media.people]
        state["genres"] = [g.name for g in media.genres]
        state["seasons"] = [(s.season_number, s.expected_episodes) for s in media.seasons]
        state["metadata"] = dict(db.session.execute(select(MediaMetadata.key, MediaMetadata.value).where(
            MediaMetadata.media_id == media_id)).all())
        db.session.remove()
        return state


def enrich(app: Flask, media_id: int, **kwargs: Any) -> enrichment.EnrichmentResult:
    with app.app_context():
        try:
            return enrichment.enrich_item(media_id, **kwargs)
        finally:
            db.session.remove()


def reviews(app: Flask, media_id: int | None = None) -> list[EnrichmentReview]:
    with app.app_context():
        query = select(EnrichmentReview).order_by(EnrichmentReview.id)
        if media_id is not None:
            query = query.where(EnrichmentReview.media_id == media_id)
        rows = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.remove()
        return rows


# --- scoring (no database) -------------------------------------------------------------------------------------


def film(title: str, year: int | None = None, *, people: list[tuple[str, str]] | None = None,
         media_type: str = "movie", provider_id: str = "1", **extra: Any) -> Candidate:
    return Candidate(provider="tmdb", provider_id=provider_id, media_type=media_type, title=title, year=year,
                     people=people or [], **extra)


def test_an_identifier_known_once_scores_one_unless_the_type_differs() -> None:
    facts = ItemFacts("Dune", "book", 1965)
    assert score(facts, film("Completely different", 2001, media_type="book"), by_identifier=True) == 1.0
    assert score(facts, film("Dune", 1965, media_type="movie"), by_identifier=True) < 1.0


def test_title_year_people_and_type_make_the_score() -> None:
    facts = ItemFacts("The Fight Club", "movie", 1999, people=("Fincher, David",))
    exact = film("Fight Club", 1999, people=[("director", "David Fincher")])
    assert score(facts, exact, by_identifier=False) == 1.0  # article, case and name order folded
    # unknown people on the candidate (a light search result) count half
    assert score(facts, film("Fight Club", 1999), by_identifier=False) == 0.925
    assert score(facts, film("Fight Club", 2000), by_identifier=False) == pytest.approx(0.845)  # ±1 year
    assert score(facts, film("Fight Club", 2010), by_identifier=False) == 0.725
    assert score(facts, film("Fight Club", 1999, media_type="tv_series"), by_identifier=False) == 0.825
    other = score(facts, film("Zombie Fight Club", 1999), by_identifier=False)
    assert 0.7 < other < 0.925
    # a title alone (no year, no people) cannot reach the default threshold
    assert score(ItemFacts("Fight Club", "movie"), film("Fight Club", 1999), by_identifier=False) == 0.825


def test_the_original_title_counts_and_games_compare_platforms() -> None:
    facts = ItemFacts("Le Fabuleux Destin d'Amélie Poulain", "movie", 2001)
    assert score(facts, film("Amélie", 2001, original_title="Le Fabuleux Destin d'Amélie Poulain"),
                 by_identifier=False) == 0.925
    game = ItemFacts("Hades", "game", 2020, platform="Nintendo Switch")
    same = film("Hades", 2020, media_type="game", details={"platform": "Switch"})
    other = film("Hades", 2020, media_type="game", details={"platform": "PlayStation 4"})
    assert score(game, same, by_identifier=False) == 1.0
    assert score(game, other, by_identifier=False) == 0.85


def test_the_best_two_within_the_margin_are_ambiguous() -> None:
    a, b = film("Dune", 1984), film("Dune", 2021)
    assert is_ambiguous([Scored(0.825, a), Scored(0.825, b)])
    assert is_ambiguous([Scored(0.9, a), Scored(0.86, b)])
    assert not is_ambiguous([Scored(0.9, a), Scored(0.85, b)])
    assert not is_ambiguous([Scored(0.9, a)])
    assert not is_ambiguous([])


def test_a_candidate_survives_its_trip_through_json() -> None:
    candidate = film("Breaking Bad", media_type="tv_series", release_date=date(2008, 1, 20),
                     people=[("creator", "Vince Gilligan")], identifiers={"tmdb_id": "1396"},
                     seasons=[SeasonInfo(1, 7, "Season 1", date(2008, 1, 20))], details={"network": "AMC"})
    data = enrichment.candidate_to_dict(candidate)
    assert json.loads(json.dumps(data)) == data
    assert enrichment.candidate_from_dict(data) == candidate


# --- enriching items against the TMDB fake ------------------------------------------------------------------------


def test_an_item_with_a_tmdb_id_is_matched_by_identifier_and_fills_only_empty_fields(
        tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Fight Club", media_type="movie", tmdb_id=550,
                        overview="Our own words.")
    result = enrich(tmdb_app, media_id)
    assert (result.status, result.match_mode, result.provider, result.score) == (
        "applied", "matched_by_identifier", "tmdb", 1.0)
    assert result.summary().startswith("matched by TMDB id (tmdb): filled ")
    state = item(tmdb_app, media_id)
    assert state["overview"] == "Our own words."  # not empty: kept
    assert state["year"] == 1999 and state["runtime"] == 139 and state["release_date"] == date(1999, 10, 15)
    assert ("director", "David Fincher") in state["people"] and "Drama" in state["genres"]
    assert state["metadata"]["imdb_id"] == "tt0137523" and state["metadata"]["cover_url"].endswith(".jpg")
    [event] = activity(tmdb_app, "media.enriched")
    assert event.details["match_mode"] == "matched_by_identifier" and event.details["provider"] == "tmdb"
    assert "overview" not in event.details["filled"] and "people" in event.details["filled"]


def test_overwrite_replaces_filled_fields_but_never_an_identifier(tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Fight Club", media_type="movie", year=1999,
                        overview="Our own words.", runtime=1)
    with tmdb_app.app_context():
        bob = db.session.get(User, actors.ids["bob"])
        result = enrichment.enrich_item(media_id, actor=bob, overwrite=True)
        db.session.remove()
    assert result.status == "applied" and result.match_mode == "fallback_title_only"
    state = item(tmdb_app, media_id)
    assert state["runtime"] == 139 and state["overview"] != "Our own words." and state["tmdb_id"] == 550


def test_a_title_and_year_without_identifier_falls_back_to_the_title_and_says_so(
        tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="fight club", media_type="movie", year=1999)
    result = enrich(tmdb_app, media_id)
    assert (result.status, result.match_mode) == ("applied", "fallback_title_only")
    assert result.summary().startswith("matched by title (tmdb, score 0.93)")
    assert item(tmdb_app, media_id)["tmdb_id"] == 550


def test_an_unknown_identifier_falls_back_to_the_title(tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Fight Club", media_type="movie", year=1999,
                        tmdb_id=99999999)
    result = enrich(tmdb_app, media_id)
    assert (result.status, result.match_mode) == ("applied", "identifier_no_match_fallback_title")
    assert "after no identifier match" in result.summary()
    assert item(tmdb_app, media_id)["tmdb_id"] == 99999999  # the member's identifier stands


def test_a_series_gets_its_seasons(tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Breaking Bad", media_type="tv_series", tmdb_id=1396,
                        tmdb_media_type="tv")
    assert enrich(tmdb_app, media_id).status == "applied"
    assert item(tmdb_app, media_id)["seasons"] == [(1, 7), (2, 13), (3, 13)]


def test_an_ambiguous_title_goes_to_review_with_nothing_applied(tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Dune", media_type="movie")
    result = enrich(tmdb_app, media_id)
    assert (result.status, result.match_mode) == ("review", "fallback_title_only")
    assert result.reason == "2 matches too close to choose"
    state = item(tmdb_app, media_id)
    assert state["overview"] is None and state["tmdb_id"] is None and state["people"] == []
    [review] = reviews(tmdb_app, media_id)
    assert review.status == "pending" and review.id == result.review_id
    assert sorted(e["candidate"]["provider_id"] for e in review.candidates) == ["438631", "841"]
    assert activity(tmdb_app, "media.enriched") == []


def test_a_weak_match_goes_to_review(tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Blade Runner", media_type="movie")
    result = enrich(tmdb_app, media_id)
    assert result.status == "review" and result.reason == "best match scores 0.82, below 0.85"
    assert reviews(tmdb_app, media_id)[0].candidates[0]["candidate"]["title"] == "Blade Runner"


def test_the_threshold_is_a_setting(make_app: Any, actors: Actors, fake_tmdb: tuple[FakeTmdb, str]) -> None:
    app = app_with_tmdb(make_app, actors, fake_tmdb[1], ENRICH_CONFIDENCE_THRESHOLD=0.8)
    media_id = add_item(app, actors.ids["bob"], title="Blade Runner", media_type="movie")
    assert enrich(app, media_id).status == "applied"


def test_nothing_found_is_no_match_and_a_flag_off_is_skipped(tmdb_app: Flask, actors: Actors) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="A Film Nobody Made", media_type="movie", year=2001)
    result = enrich(tmdb_app, media_id)
    assert result.status == "no_match" and result.summary() == "no match (nothing found at tmdb)"
    with tmdb_app.app_context():
        flags.set_enabled(db.session.get(User, actors.ids["alice"]), "enrich_tmdb", False)
        db.session.commit()
        db.session.remove()
    assert enrich(tmdb_app, media_id).status == "skipped"
    other = add_item(tmdb_app, actors.ids["bob"], title="A lamp", media_type="other")
    assert enrich(tmdb_app, other).summary() == "skipped (no provider for this media type)"


@pytest.mark.parametrize(("mode", "reason"), [("error", "tmdb: unavailable"), ("rate_limited", "tmdb: rate limited")])
def test_a_provider_failure_applies_nothing_and_is_retryable(
        tmdb_app: Flask, actors: Actors, fake_tmdb: tuple[FakeTmdb, str], mode: str, reason: str) -> None:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Fight Club", media_type="movie", tmdb_id=550)
    fake_tmdb[0].mode = mode
    result = enrich(tmdb_app, media_id)
    assert (result.status, result.reason, result.retryable) == ("failed", reason, True)
    assert result.summary() == f"failed ({reason}) — will retry"
    assert TMDB_KEY not in result.summary()
    assert item(tmdb_app, media_id)["runtime"] is None and reviews(tmdb_app) == []
    fake_tmdb[0].mode = "ok"
    assert enrich(tmdb_app, media_id).status == "applied"


# --- the Review queue -------------------------------------------------------------------------------------------


@pytest.fixture
def dune_review(tmdb_app: Flask, actors: Actors) -> tuple[int, int]:
    media_id = add_item(tmdb_app, actors.ids["bob"], title="Dune", media_type="movie")
    result = enrich(tmdb_app, media_id)
    assert result.review_id is not None
    return media_id, result.review_id


def as_user(app: Flask, actors: Actors, name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    with app.app_context():
        try:
            return fn(db.session.get(User, actors.ids[name]), *args, **kwargs)
        finally:
            db.session.remove()


def test_accepting_the_alternate_applies_it_in_full_and_is_audited(
        tmdb_app: Flask, actors: Actors, dune_review: tuple[int, int]) -> None:
    media_id, review_id = dune_review
    with tmdb_app.app_context():
        assert enrichment.review_count() == 1
        page = enrichment.pending_reviews(db.session.get(User, actors.ids["bob"]))
        assert [v.review.id for v in page.items] == [review_id] and page.items[0].can_decide
        view = enrichment.get_review(db.session.get(User, actors.ids["bob"]), review_id)
        suggested, alternate = view.candidates[0].candidate, view.candidates[1].candidate
        db.session.remove()
    result = as_user(tmdb_app, actors, "bob", enrichment.accept, review_id, 1)
    assert result.status == "applied" and "people" in result.filled
    state = item(tmdb_app, media_id)
    assert state["tmdb_id"] == int(alternate.provider_id) != int(suggested.provider_id)
    assert state["year"] == alternate.year and state["people"][0][0] == "director"
    [review] = reviews(tmdb_app, media_id)
    assert (review.status, review.chosen_index, review.decided_by) == ("accepted", 1, actors.ids["bob"])
    [event] = activity(tmdb_app, "review.accepted")
    assert event.actor_id == actors.ids["bob"] and event.details["suggested"] is False
    assert activity(tmdb_app, "media.enriched")[0].details["match_mode"] == "review_accepted"
    with tmdb_app.app_context():
        assert enrichment.review_count() == 0
        db.session.remove()
    with pytest.raises(Conflict):
        as_user(tmdb_app, actors, "bob", enrichment.keep_manual, review_id)


def test_keep_manual_applies_nothing(tmdb_app: Flask, actors: Actors, dune_review: tuple[int, int]) -> None:
    media_id, review_id = dune_review
    as_user(tmdb_app, actors, "alice", enrichment.keep_manual, review_id)  # an admin may decide any review
    assert item(tmdb_app, media_id)["tmdb_id"] is None
    assert reviews(tmdb_app, media_id)[0].status == "kept_manual"
    assert activity(tmdb_app, "review.kept_manual")[0].actor_id == actors.ids["alice"]


def test_search_again_replaces_the_candidates(tmdb_app: Flask, actors: Actors, dune_review: tuple[int, int]) -> None:
    media_id, review_id = dune_review
    found = as_user(tmdb_app, actors, "bob", enrichment.search_again, review_id, "Dune", 2021)
    assert [s.candidate.provider_id for s in found] == ["438631"]
    assert [e["candidate"]["provider_id"] for e in reviews(tmdb_app, media_id)[0].candidates] == ["438631"]
    assert activity(tmdb_app, "review.searched")[0].details["found"] == 1
    with pytest.raises(InvalidInput):
        as_user(tmdb_app, actors, "bob", enrichment.search_again, review_id, "  ")


def test_viewers_and_other_members_cannot_decide(tmdb_app: Flask, actors: Actors,
                                                 dune_review: tuple[int, int]) -> None:
    _media_id, review_id = dune_review
    for name in ("vera", "carol"):  # a viewer; a member who did not add the item
        with pytest.raises(Forbidden):
            as_user(tmdb_app, actors, name, enrichment.accept, review_id, 0)
        with pytest.raises(Forbidden):
            as_user(tmdb_app, actors, name, enrichment.keep_manual, review_id)
    with pytest.raises(InvalidInput):
        as_user(tmdb_app, actors, "bob", enrichment.accept, review_id, 7)
    assert reviews(tmdb_app)[0].status == "pending"


def test_a_new_review_supersedes_the_pending_one(tmdb_app: Flask, actors: Actors,
                                                 dune_review: tuple[int, int]) -> None:
    media_id, first = dune_review
    second = enrich(tmdb_app, media_id).review_id
    assert [(r.id, r.status) for r in reviews(tmdb_app, media_id)] == [(first, "superseded"), (second, "pending")]


@pytest.mark.parametrize("raw", ["1.5", "-0.1", "high", "nan"])
def test_the_threshold_setting_is_a_number_from_0_to_1(raw: str) -> None:
    from collectz.config import ConfigError, Settings

    assert Settings.from_env({"ENRICH_CONFIDENCE_THRESHOLD": "0.7"}).ENRICH_CONFIDENCE_THRESHOLD == 0.7
    assert Settings.from_env({}).ENRICH_CONFIDENCE_THRESHOLD == 0.85
    with pytest.raises(ConfigError, match="ENRICH_CONFIDENCE_THRESHOLD"):
        Settings.from_env({"ENRICH_CONFIDENCE_THRESHOLD": raw})
