"""Library → Review in a real browser: an ambiguous movie waits in Review, the member picks the alternate, and the
item shows what was applied."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import htmx_ready, register, toast
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb
from tests.test_enrichment_service import TMDB_KEY, add_dunes, turn_on_tmdb

pytestmark = pytest.mark.e2e


@pytest.fixture
def tmdb_url() -> Iterator[str]:
    fake = FakeTmdb(api_key=TMDB_KEY)
    add_dunes(fake)  # two films called "Dune": 2021 (more popular, TMDB lists it first) and 1984
    with serve_wsgi(fake) as running:
        yield running.url


def dune_in_review(server: LiveServer) -> int:
    """The signed-up member's "Dune" (no year), enriched: it lands in Review. Returns the item's id."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import enrichment
    from collectz.services.media import MediaInput, create_media

    with server.app.app_context():
        try:
            owner = db.session.scalars(db.select(User)).one()
            owner_id = owner.id
            media_id = create_media(owner, MediaInput(title="Dune", media_type="movie")).id
        finally:
            db.session.remove()
    turn_on_tmdb(server.app, owner_id)
    with server.app.app_context():
        try:
            assert enrichment.enrich_item(media_id).status == "review"
        finally:
            db.session.remove()
    return media_id


def test_an_ambiguous_movie_waits_in_review_and_the_alternate_is_applied(
        page: Page, serve: Callable[..., LiveServer], tmdb_url: str) -> None:
    server = serve(PROVIDER_URL_OVERRIDES=f"tmdb={tmdb_url}")
    register(page, server, email="ada@example.org", name="Ada")
    media_id = dune_in_review(server)

    page.reload()
    page.get_by_text("Library", exact=True).click()  # the Library menu
    review_link = page.get_by_role("link", name=re.compile(r"^Review"))
    expect(review_link.get_by_test_id("review-badge")).to_have_attribute("data-count", "1")
    review_link.click()
    expect(page.get_by_role("heading", name="Review", level=1)).to_be_visible()
    row = page.get_by_test_id("review-row").filter(has_text="2 matches too close to choose")
    row.get_by_role("link", name="Dune").click()

    expect(page.get_by_role("heading", name="Review: Dune", level=1)).to_be_visible()
    htmx_ready(page)
    suggested = page.get_by_role("article", name="Suggested: Dune (2021)")
    alternate = page.get_by_role("article", name="Alternative: Dune (1984)")
    expect(suggested).to_contain_text("Denis Villeneuve")
    expect(alternate).to_contain_text("David Lynch")
    alternate.get_by_role("button", name="Choose this one").click()

    expect(page).to_have_url(server(f"/library/media/{media_id}"))
    expect(page.get_by_role("heading", name=re.compile(r"^Dune \(1984\)"), level=1)).to_be_visible()
    expect(page.get_by_test_id("item-detail")).to_contain_text("David Lynch")
    expect(page.get_by_test_id("item-detail")).to_contain_text("Dune, as filmed by David Lynch.")
    expect(toast(page, "Applied tmdb's details to Dune")).to_be_visible()

    page.goto(server("/library/review"))
    expect(page.get_by_text("Nothing to review.")).to_be_visible()
    expect(page.get_by_test_id("review-badge")).to_have_attribute("data-count", "0")
