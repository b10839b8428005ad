"""Your sessions and admin reset links in a real browser."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import Actors, activity
from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import PASSWORD, expect_login_page, htmx_ready, toast

pytestmark = pytest.mark.e2e

NEW_PASSWORD = "a brand new passphrase"


def log_in(page: Page, server: LiveServer, email: str, next_path: str, password: str = PASSWORD) -> None:
    """Sign in through the login form and land on `next_path`."""
    page.goto(server(f"/auth/login?next={next_path}"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(server(next_path))
    htmx_ready(page)


def wait_for(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def test_revoking_my_other_session_signs_that_browser_out(new_context: Callable[..., Any],
                                                          live_server: LiveServer) -> None:
    actors = Actors(live_server.app)
    laptop = new_context(viewport={"width": 1280, "height": 800}).new_page()
    phone = new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    log_in(phone, live_server, "bob@example.org", "/auth/profile")
    log_in(laptop, live_server, "bob@example.org", "/auth/profile")
    laptop.get_by_role("navigation", name="Your account").get_by_role("link", name="Sessions").click()
    expect(laptop).to_have_url(live_server("/auth/sessions"))
    expect(laptop.get_by_role("heading", name="Your sessions", level=1)).to_be_visible()

    sessions = laptop.get_by_test_id("session")
    expect(sessions).to_have_count(2)
    this_device = laptop.locator("[data-this-device]")
    expect(this_device).to_have_count(1)
    expect(this_device).to_contain_text("This device")
    other = sessions.filter(has_not=laptop.get_by_text("This device"))
    other.get_by_role("button", name="Revoke").click()

    expect(toast(laptop, "That session is signed out.")).to_be_visible()
    expect(sessions).to_have_count(1)
    expect(laptop).to_have_url(live_server("/auth/sessions"))  # swapped in place
    assert [e.actor_id for e in activity(live_server.app, "session.revoked")] == [actors.ids["bob"]]

    phone.goto(live_server("/auth/profile"))
    expect_login_page(phone, live_server)

    laptop.reload()
    expect(laptop.get_by_role("heading", name="Your sessions", level=1)).to_be_visible()


def test_admin_copies_a_reset_link_and_the_member_sets_a_new_password(new_context: Callable[..., Any],
                                                                       live_server: LiveServer) -> None:
    actors = Actors(live_server.app)
    bob_id = actors.ids["bob"]
    admin_context = new_context(viewport={"width": 1280, "height": 800})
    admin_context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    admin = admin_context.new_page()
    log_in(admin, live_server, "alice@example.org", f"/admin/members/{bob_id}/credentials")

    admin.get_by_role("button", name="Make a reset link").click()
    link_field = admin.get_by_label("Password reset link for Bob")
    expect(link_field).to_be_visible()
    link = link_field.input_value()
    assert re.fullmatch(re.escape(live_server("/auth/reset?token=")) + r"[\w-]+", link)
    admin.get_by_role("button", name="Copy").click()
    expect(admin.get_by_role("button", name="Copied")).to_be_visible()
    assert admin.evaluate("navigator.clipboard.readText()") == link
    wait_for(lambda: activity(live_server.app, "password_reset.delivered"))
    # shown once: opening the page again (goto, not reload, which may re-post a form sent before htmx loaded)
    admin.goto(live_server(f"/admin/members/{bob_id}/credentials"))
    expect(admin.get_by_text("1 unused")).to_be_visible()
    expect(admin.get_by_label("Password reset link for Bob")).to_have_count(0)

    member = new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
    member.goto(link)
    expect(member.get_by_role("heading", name="Choose a new password", level=1)).to_be_visible()
    member.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    member.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
    member.get_by_role("button", name="Set password").click()
    expect_login_page(member, live_server)
    expect(toast(member, "Your new password is set")).to_be_visible()
    log_in(member, live_server, "bob@example.org", "/auth/password", password=NEW_PASSWORD)

    member.goto(link)
    expect(member.get_by_role("heading", name="This link cannot be used", level=1)).to_be_visible()
    expect(member.get_by_text("already been used")).to_be_visible()
