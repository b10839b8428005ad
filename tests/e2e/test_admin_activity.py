"""Admin → Activity in a real browser: search with Enter, the list narrows in place and the URL keeps the query."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Actors
from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import PASSWORD, htmx_ready

pytestmark = pytest.mark.e2e


def seed(server: LiveServer) -> None:
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import audit

    Actors(server.app)
    with server.app.app_context():
        try:
            bob = db.session.scalar(db.select(User).where(User.email == "bob@example.org"))
            audit.record("media.created", actor=bob, entity_type="media", entity_id=1,
                         details={"title": "Blade Runner", "media_type": "movie"})
            audit.record("media.created", actor=bob, entity_type="media", entity_id=2,
                         details={"title": "Alien", "media_type": "movie"})
            audit.record("permission.denied", status="failed", http_status=403, reason="Only an admin may do that.",
                         details={"method": "GET", "path": "/admin/members"})
            db.session.commit()
        finally:
            db.session.remove()


def sign_in_to_activity(page: Page, server: LiveServer, *, scripts: bool = True) -> None:
    page.goto(server("/auth/login?next=/admin/activity"))
    page.get_by_label("Email").fill("alice@example.org")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(server("/admin/activity"))
    expect(page.get_by_role("heading", name="Activity", level=2)).to_be_visible()
    if scripts:
        htmx_ready(page)


def rows(page: Page) -> Any:
    return page.get_by_test_id("activity-row")


def test_admin_searches_the_activity_log_with_enter(page: Page, serve) -> None:
    server = serve()
    seed(server)
    sign_in_to_activity(page, server)
    expect(rows(page)).to_have_count(4)  # the three seeded events and alice's own sign-in
    page.evaluate("window.__stillTheSamePage = true")

    search = page.get_by_role("searchbox", name="Search the activity log")
    search.fill("blade runner")
    with page.expect_response(lambda r: "/admin/activity?" in r.url and r.request.headers.get("hx-request")):
        search.press("Enter")

    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("media.created")
    expect(rows(page).first).to_contain_text("bob@example.org")
    expect(page).to_have_url(re.compile(r"/admin/activity\?(.*&)?q=blade(\+|%20)runner(&|$)"))
    assert page.evaluate("window.__stillTheSamePage") is True  # htmx swapped the tab; no full reload
    expect(page.get_by_role("searchbox", name="Search the activity log")).to_have_value("blade runner")

    # The row opens to its details without any script of ours: a <details> element.
    rows(page).first.locator("summary").click()
    expect(rows(page).first.locator("pre")).to_contain_text('"title": "Blade Runner"')

    # The pushed URL is a real page: reloading it shows the same filtered list.
    page.reload()
    expect(rows(page)).to_have_count(1)
    expect(page.get_by_role("searchbox", name="Search the activity log")).to_have_value("blade runner")


def test_search_works_without_javascript(new_context, serve) -> None:
    server = serve()
    seed(server)
    page = new_context(java_script_enabled=False).new_page()
    sign_in_to_activity(page, server, scripts=False)

    search = page.get_by_role("searchbox", name="Search the activity log")
    search.fill("admin may")
    search.press("Enter")

    expect(page).to_have_url(re.compile(r"/admin/activity\?(.*&)?q=admin(\+|%20)may(&|$)"))
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("permission.denied")
    expect(rows(page).first).to_contain_text("GET /admin/members")
