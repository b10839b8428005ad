"""Look-up in a real browser: the add form looks a film up on TMDB (a local fake), applies it, and saves it."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Actors
from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import htmx_ready
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb
from tests.lookup_helpers import TMDB_KEY, turn_on_tmdb

pytestmark = pytest.mark.e2e


def sign_in_bob(server: LiveServer, page: Page) -> None:
    """Bob (a member) with a server-side session, its cookie put straight into the browser."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services.sessions import create_session

    actors = Actors(server.app)
    turn_on_tmdb(server.app, actors)
    with server.app.test_request_context():
        token, _row = create_session(db.session.get(User, actors.ids["bob"]), remember=False, ip="127.0.0.1",
                                     user_agent="playwright")
        db.session.commit()
        db.session.remove()
    cookie = server.app.config["COLLECTZ"].SESSION_COOKIE_NAME
    page.context.add_cookies([{"name": cookie, "value": token, "url": server.url}])


def test_look_up_a_film_apply_it_review_the_marked_fields_and_save(page: Page,
                                                                    serve: Callable[..., LiveServer]) -> None:
    with serve_wsgi(FakeTmdb(api_key=TMDB_KEY)) as tmdb:
        server = serve(PROVIDER_URL_OVERRIDES=f"tmdb={tmdb.url}")
        sign_in_bob(server, page)
        # Poster URLs point at TMDB's image host: the browser must never reach the internet in a test.
        page.route(re.compile(r"^https?://(?!127\.0\.0\.1[:/])"), lambda route: route.abort())
        page.goto(server("/library/media/new"))
        htmx_ready(page)
        page.evaluate("window.__stillTheSamePage = true")

        page.get_by_role("searchbox", name="Look up").fill("Fight Club")
        page.get_by_role("button", name="Look up", exact=True).click()
        first = page.get_by_test_id("lookup-candidate").first
        expect(first).to_contain_text("Fight Club")
        expect(first).to_contain_text("(1999)")
        expect(first).to_contain_text("David Fincher")
        expect(first).to_contain_text("TMDB")

        first.get_by_role("button", name="Apply Fight Club (1999)").click()
        expect(page.get_by_test_id("lookup-applied")).to_contain_text("from TMDB")
        expect(page.get_by_label("Title", exact=True)).to_have_value("Fight Club")
        expect(page.get_by_label("Year", exact=True)).to_have_value("1999")
        directors = page.get_by_label("Directors")
        expect(directors).to_have_value("David Fincher")
        marked: Any = page.locator(".field").filter(has=directors).get_by_test_id("filled-mark")
        expect(marked).to_have_text("Filled from TMDB")
        expect(page.locator(".field").filter(has=page.get_by_label("Copies")).get_by_test_id("filled-mark")) \
            .to_have_count(0)
        assert page.evaluate("window.__stillTheSamePage") is True  # looked up and applied in place

        page.get_by_label("Owned formats").fill("Blu-ray")
        page.get_by_role("button", name="Save").click()
        expect(page).to_have_url(re.compile(re.escape(server("/library/media/")) + r"\d+$"))
        expect(page.get_by_role("heading", name="Fight Club", level=1)).to_be_visible()
        expect(page.locator("main")).to_contain_text("David Fincher")
        expect(page.locator("main")).to_contain_text("1999")
        expect(page.locator("main")).to_contain_text("Blu-ray")
