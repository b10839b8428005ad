"""Admin → Integrations in a real browser: a TMDB key saved and tested, Plex sections loaded and chosen, in place."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Actors
from tests.e2e.helpers import PASSWORD, htmx_ready
from tests.fakes.plex import FakePlex
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb

pytestmark = pytest.mark.e2e

TMDB_KEY = "0123456789abcdef0123456789abcdef"
PLEX_TOKEN = "plex-token-123"


def test_admin_saves_and_tests_tmdb_and_chooses_plex_sections(page: Page, serve) -> None:
    with serve_wsgi(FakeTmdb(api_key=TMDB_KEY)) as tmdb, serve_wsgi(FakePlex(token=PLEX_TOKEN)) as plex:
        server = serve(TMDB_BASE_URL=tmdb.url)
        Actors(server.app)
        page.goto(server("/auth/login?next=/admin/integrations"))
        page.get_by_label("Email").fill("alice@example.org")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(server("/admin/integrations"))
        htmx_ready(page)
        page.evaluate("window.__stillTheSamePage = true")

        card = page.locator("#integration-tmdb")
        card.get_by_label("Use TMDB").check()
        card.get_by_label("API key", exact=True).fill(TMDB_KEY)
        card.get_by_role("button", name="Save", exact=True).click()
        expect(card.get_by_test_id("secret-hint")).to_have_text("set, ends in …cdef")
        expect(card.get_by_label("API key", exact=True)).to_have_value("")  # never sent back to the browser
        card.get_by_role("button", name="Test TMDB").click()
        expect(card.get_by_test_id("integration-status")).to_have_text("ok")

        card = page.locator("#integration-plex")
        card.get_by_label("Use Plex").check()
        card.get_by_label("Server address").fill(plex.url)
        card.get_by_label("Plex token").fill(PLEX_TOKEN)
        card.get_by_role("button", name="Save", exact=True).click()
        expect(card.get_by_test_id("secret-hint")).to_have_text("set, ends in …-123")
        card.get_by_role("link", name="Load sections").click()
        card.get_by_label("Movies").check()
        card.get_by_label("TV Shows").check()
        card.get_by_role("button", name="Save sections").click()
        expect(card.get_by_test_id("plex-selected").locator("li")).to_have_count(2)
        expect(card.get_by_test_id("plex-selected")).to_contain_text("Movies")
        expect(card.get_by_test_id("plex-selected")).to_contain_text("TV Shows")
        assert page.evaluate("window.__stillTheSamePage") is True  # every step swapped one card in place

        page.reload()
        expect(page.locator("#integration-plex").get_by_test_id("plex-selected").locator("li")).to_have_count(2)
        expect(page.locator("#integration-tmdb").get_by_test_id("integration-status")).to_have_text("ok")
        assert TMDB_KEY not in page.content() and PLEX_TOKEN not in page.content()
