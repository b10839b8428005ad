"""Library → Review in the browser's shoes: pages and fragments, decisions by plain posts and htmx, permissions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import EnrichmentReview, Media
from collectz.providers.records import Candidate
from collectz.services import enrichment
from collectz.services.enrichment import Scored
from tests.conftest import Actors, activity
from tests.conftest import statements as counted
from tests.test_enrichment_service import add_item, app_with_tmdb, enrich, item, serving_tmdb

HX = {"HX-Request": "true"}


@pytest.fixture
def tmdb_app(make_app: Any, actors: Actors) -> Iterator[Flask]:
    with serving_tmdb() as (_fake, url):
        yield app_with_tmdb(make_app, actors, url)


def dune_review(app: Flask, actors: Actors) -> tuple[int, int]:
    """Bob's "Dune" (no year), which TMDB's fake cannot tell apart from the other "Dune": (item id, review id)."""
    media_id = add_item(app, actors.ids["bob"], title="Dune", media_type="movie")
    result = enrich(app, media_id)
    assert result.review_id is not None
    return media_id, result.review_id


def test_the_queue_is_a_page_and_a_fragment_with_a_nav_badge(tmdb_app: Flask, actors: Actors) -> None:
    _media_id, review_id = dune_review(tmdb_app, actors)
    client = actors.client("vera")  # a viewer reads the queue
    page = client.get("/library/review")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html and 'id="review-list"' in html
    assert f'href="/library/review/{review_id}"' in html and "2 matches too close to choose" in html
    # the nav's badge loads itself (pages do not pay for the count)
    assert 'id="review-badge"' in html and 'hx-trigger="load, import-finished from:body"' in html
    fragment = client.get("/library/review", headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in body and 'data-testid="review-row"' in body
    assert "HX-Request" in fragment.headers.get("Vary", "")
    badge = client.get("/library/review/badge", headers=HX).get_data(as_text=True)
    assert 'id="review-badge"' in badge and 'data-count="1"' in badge and "load" not in badge


def test_the_review_shows_the_item_beside_its_candidates(tmdb_app: Flask, actors: Actors) -> None:
    _media_id, review_id = dune_review(tmdb_app, actors)
    html = actors.client("bob").get(f"/library/review/{review_id}").get_data(as_text=True)
    assert "As entered" in html and html.count('data-testid="review-candidate"') == 2
    assert "Accept suggestion" in html and "Choose this one" in html and "Search again" in html
    assert "David Lynch" in html and "Denis Villeneuve" in html
    viewer = actors.client("vera").get(f"/library/review/{review_id}").get_data(as_text=True)
    assert "Accept suggestion" not in viewer and "Search again" not in viewer
    other = actors.client("carol").get(f"/library/review/{review_id}").get_data(as_text=True)
    assert "Only a member who may edit this item can decide." in other
    assert actors.client("bob").get("/library/review/999999").status_code == 404


def test_accepting_an_alternate_by_a_plain_post_applies_it_and_shows_the_item(
        tmdb_app: Flask, actors: Actors) -> None:
    media_id, review_id = dune_review(tmdb_app, actors)
    client = actors.client("bob")
    resp = client.post(f"/library/review/{review_id}/accept", data={"candidate": "1"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/library/media/{media_id}"
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "Applied tmdb&#39;s details to Dune" in page
    state = item(tmdb_app, media_id)
    assert state["tmdb_id"] in (841, 438631) and state["people"]
    assert activity(tmdb_app, "review.accepted")[0].details["candidate"] == 1
    again = client.post(f"/library/review/{review_id}/accept", data={"candidate": "0"})  # a second click
    assert again.status_code == 303 and again.headers["Location"] == f"/library/review/{review_id}"
    shown = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "This review has already been decided." in shown and "This review was accepted" in shown
    assert len(activity(tmdb_app, "review.accepted")) == 1


def test_htmx_decisions_redirect_and_search_again_swaps_the_candidates(tmdb_app: Flask, actors: Actors) -> None:
    _media_id, review_id = dune_review(tmdb_app, actors)
    client = actors.client("bob")
    searched = client.post(f"/library/review/{review_id}/search", data={"title": "Dune", "year": "1984"},
                           headers=HX)
    body = searched.get_data(as_text=True)
    assert searched.status_code == 200 and "<html" not in body
    assert body.count('data-testid="review-candidate"') == 1 and "David Lynch" in body
    bad = client.post(f"/library/review/{review_id}/search", data={"title": " ", "year": "19x4"}, headers=HX)
    assert bad.status_code == 422 and "Enter the year as four digits." in bad.get_data(as_text=True)
    plain = client.post(f"/library/review/{review_id}/search", data={"title": "Dune", "year": ""})
    assert plain.status_code == 303 and plain.headers["Location"] == f"/library/review/{review_id}"
    kept = client.post(f"/library/review/{review_id}/keep", headers=HX)
    assert kept.status_code == 204 and kept.headers["HX-Redirect"] == "/library/review"
    assert activity(tmdb_app, "review.kept_manual")[0].actor_id == actors.ids["bob"]


def test_viewers_and_other_members_are_refused_every_decision(tmdb_app: Flask, actors: Actors) -> None:
    _media_id, review_id = dune_review(tmdb_app, actors)
    for name in ("vera", "carol"):
        client = actors.client(name)
        for action, data in (("accept", {"candidate": "0"}), ("search", {"title": "Dune"}), ("keep", {})):
            resp = client.post(f"/library/review/{review_id}/{action}", data=data)
            assert resp.status_code == 403, (name, action)
    with tmdb_app.app_context():
        assert db.session.get(EnrichmentReview, review_id).status == "pending"
        db.session.remove()


def add_reviews(app: Flask, actors: Actors, n: int) -> None:
    for number in range(n):
        media_id = add_item(app, actors.ids["bob"], title=f"Film {number}", media_type="movie")
        with app.app_context():
            candidates = [Scored(0.7, Candidate("tmdb", str(i), "movie", f"Film {number}", people=[("cast", "A")]))
                          for i in (1, 2)]
            enrichment.open_review(media_id, candidates, "best match scores 0.70, below 0.85")
            db.session.commit()
            db.session.remove()


def test_the_queue_costs_the_same_queries_for_one_review_or_many(app: Flask, actors: Actors) -> None:
    client = actors.client("bob")
    add_reviews(app, actors, 1)
    client.get("/library/review")  # warm up (session row, flags)
    with counted(app) as one:
        assert client.get("/library/review", headers=HX).status_code == 200
    add_reviews(app, actors, 6)
    with counted(app) as seven:
        body = client.get("/library/review", headers=HX).get_data(as_text=True)
    assert body.count('data-testid="review-row"') == 7
    assert len(seven) == len(one), "\n".join(seven)
    with app.app_context():
        assert len(db.session.scalars(select(Media.id)).all()) == 7
        db.session.remove()
