"""Admin in a real browser: invite → claim in a second browser → member drawer → role; revoking a session."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import PASSWORD, expect_login_page, htmx_ready, users

pytestmark = pytest.mark.e2e


def session_count(app: Flask, email: str) -> int:
    from sqlalchemy import func, select

    from collectz.extensions import db
    from collectz.models import User, UserSession

    with app.app_context():
        try:
            return db.session.scalar(select(func.count(UserSession.id)).join(User).where(User.email == email))
        finally:
            db.session.remove()


def expect_signed_in(page: Page, server: LiveServer) -> None:
    """Landed in the library, signed in (what the library page shows is not this test's business)."""
    expect(page).to_have_url(re.compile(re.escape(server("/library/")) + r"(\?.*)?$"))
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    htmx_ready(page)


def sign_up(page: Page, server: LiveServer, url: str, email: str, name: str) -> None:
    page.goto(url)
    expect(page.get_by_role("heading", name="Create your account", level=1)).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect_signed_in(page, server)


def log_in(page: Page, server: LiveServer, email: str) -> None:
    page.goto(server("/auth/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect_signed_in(page, server)


def test_invite_claim_and_role_change(page: Page, new_context, live_server: LiveServer) -> None:
    server = live_server
    sign_up(page, server, server("/auth/register"), "ada@example.org", "Ada")  # the first account is the admin

    # Admin → Invitations: the link appears once, in the answer to the create.
    page.goto(server("/admin/invitations"))
    page.get_by_label("Email").fill("Bea@Example.org")
    page.get_by_label("Role").select_option("user")
    page.get_by_role("button", name="Create invitation").click()
    link = page.get_by_test_id("invite-link")
    expect(link).to_have_value(re.compile(re.escape(server("/auth/register?invite=")) + r"[\w-]+$"))
    invite_url = link.input_value()
    expect(page.get_by_test_id("invite-row").filter(has_text="bea@example.org")).to_be_visible()
    page.reload()
    expect(page.get_by_test_id("invite-link")).to_have_count(0)
    expect(page.get_by_test_id("invite-row").filter(has_text="bea@example.org")).to_be_visible()

    # A second browser (its own cookies) claims the invitation through the link.
    other = new_context(viewport={"width": 390, "height": 844}).new_page()
    sign_up(other, server, invite_url, "bea@example.org", "Bea")
    assert ("bea@example.org", "Bea", "user") in users(server.app)

    # Back in the admin's browser: the Members tab replaces the Invitations tab in place.
    tabs = page.get_by_role("navigation", name="Admin sections")
    tabs.get_by_role("link", name="Members").click()
    expect(page).to_have_url(server("/admin/members"))
    expect(tabs.get_by_role("link", name="Members")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("button", name="Create invitation")).to_have_count(0)
    row = page.locator("tr", has_text="bea@example.org")
    expect(row.get_by_test_id("member-role")).to_have_text("user")

    # The row opens the drawer; choosing a role does nothing until Save.
    row.get_by_test_id("member-link").click()
    drawer = page.locator("#member-drawer")
    expect(drawer.get_by_role("heading", name="Bea")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/admin/members/\d+$"))
    role_posts: list[str] = []
    page.on("request", lambda r: role_posts.append(r.url) if r.method == "POST" and r.url.endswith("/role") else None)
    drawer.get_by_role("combobox", name="Role").select_option("viewer")
    expect(drawer.get_by_test_id("saved-role")).to_have_count(0)
    assert ("bea@example.org", "Bea", "user") in users(server.app)
    drawer.get_by_role("button", name="Save role").click()
    expect(drawer.get_by_test_id("saved-role")).to_have_text("viewer")
    expect(row.get_by_test_id("member-role")).to_have_text("viewer")
    assert ("bea@example.org", "Bea", "viewer") in users(server.app)
    assert len(role_posts) == 1  # the Save, and nothing when the select changed

    # The drawer URL is a full page of its own, with the role saved.
    page.reload()
    expect(page.locator("#member-drawer").get_by_role("combobox", name="Role")).to_have_value("viewer")


def test_admin_revokes_a_members_session(page: Page, new_context, live_server: LiveServer) -> None:
    from collectz.extensions import db
    from collectz.models import User
    from collectz.security.passwords import hash_password

    server = live_server
    with server.app.app_context():
        for email, name, role in (("ada@example.org", "Ada", "admin"), ("cy@example.org", "Cy", "user")):
            db.session.add(User(email=email, name=name, role=role, password_hash=hash_password(PASSWORD)))
        db.session.commit()
        cy_id = db.session.scalar(db.select(User.id).where(User.email == "cy@example.org"))
        db.session.remove()
    member = new_context(viewport={"width": 1280, "height": 800}).new_page()
    log_in(member, server, "cy@example.org")
    log_in(page, server, "ada@example.org")

    page.goto(server(f"/admin/members/{cy_id}"))
    sessions = page.locator("#member-drawer").get_by_test_id("member-session")
    expect(sessions).to_have_count(1)
    sessions.first.get_by_role("button", name="Revoke").click()
    expect(page.locator("#member-drawer").get_by_text("Not signed in anywhere.")).to_be_visible()
    expect(page.locator("#toasts").get_by_text("That session was signed out.")).to_be_visible()
    assert session_count(server.app, "cy@example.org") == 0

    # The member's next page load goes to the login page.
    member.goto(server("/auth/profile"))
    expect_login_page(member, server)
