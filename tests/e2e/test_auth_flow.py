"""Register, log out, log in and log out again in a real browser, with CSRF protection on."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import PASSWORD, expect_library, expect_login_page, toast, users

pytestmark = pytest.mark.e2e

EMAIL = "ada@example.org"
NAME = "Ada"


def test_first_account_registers_logs_out_and_logs_back_in(page: Page, live_server: LiveServer) -> None:
    assert users(live_server.app) == []

    # An empty collection sends every visitor to the register page, which says the first account is the admin.
    page.goto(live_server("/"))
    expect(page).to_have_url(live_server("/auth/register"))
    expect(page.get_by_role("heading", name="Create your account", level=1)).to_be_visible()
    expect(page.get_by_text("this first account becomes the admin")).to_be_visible()

    # CSRF is on: the same register post without the page's token is refused and creates nothing.
    refused = page.request.post(live_server("/auth/register"),
                                form={"email": EMAIL, "name": NAME, "password": PASSWORD}, max_redirects=0)
    assert refused.status == 403
    assert refused.headers.get("x-csrf-error") == "invalid"
    assert "missing its security token" in refused.text()
    assert users(live_server.app) == []

    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect_library(page, live_server)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Admin")).to_be_visible()
    expect(nav.get_by_role("link", name=NAME, exact=True)).to_be_visible()
    assert users(live_server.app) == [(EMAIL, NAME, "admin")]

    # CSRF is on for a signed-in user too: a logout post without the token is refused and the session survives.
    refused = page.request.post(live_server("/auth/logout"), max_redirects=0)
    assert refused.status == 403
    assert refused.headers.get("x-csrf-error") == "invalid"
    page.reload()
    expect_library(page, live_server)

    page.get_by_role("button", name="Log out").click()
    expect_login_page(page, live_server)
    expect(toast(page, "You are signed out.")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    # The session really ended: the library sends us back to the login page.
    page.goto(live_server("/library/"))
    expect_login_page(page, live_server)

    # A wrong password is answered in place, without leaving the page.
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#login-form").get_by_text("Email or password is incorrect.")).to_be_visible()
    expect_login_page(page, live_server)

    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect_library(page, live_server)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")).to_be_visible()

    page.get_by_role("button", name="Log out").click()
    expect_login_page(page, live_server)
    expect(toast(page, "You are signed out.")).to_be_visible()


def test_register_shows_field_errors_in_place(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server("/auth/register"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill("too short")  # nine characters

    with page.expect_response(lambda r: r.url == live_server("/auth/register") and r.request.method == "POST") as info:
        page.get_by_role("button", name="Create account").click()
    response = info.value
    assert response.status == 422
    # A fragment came back, not a page: htmx swapped it into the form's place.
    assert "<html" not in response.text().lower()

    password_error = page.locator("#password-error")
    expect(password_error).to_have_text("Use at least 10 characters.")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Password")).to_have_attribute("aria-describedby", "password-error")
    # Only the form was replaced: still one page, one heading, the typed values kept, no other field in error.
    expect(page).to_have_url(live_server("/auth/register"))
    expect(page.get_by_role("heading", level=1)).to_have_count(1)
    expect(page.get_by_label("Email")).to_have_value(EMAIL)
    expect(page.get_by_label("Name")).to_have_value(NAME)
    expect(page.locator("#register-form p.error")).to_have_count(1)
    assert users(live_server.app) == []

    # The swapped-in form (with its own CSRF token) works once the password is long enough.
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect_library(page, live_server)
    assert users(live_server.app) == [(EMAIL, NAME, "admin")]


def test_register_rejects_an_invalid_email_in_place(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server("/auth/register"))
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page.locator("#email-error")).to_have_text("Enter a valid email address.")
    expect(page.locator("#password-error")).to_have_count(0)
    expect(page).to_have_url(re.compile(re.escape(live_server("/auth/register")) + "$"))
    assert users(live_server.app) == []


def test_flash_message_survives_the_redirect_after_an_htmx_post(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server("/auth/register"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Name").fill(NAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect_library(page, live_server)
    expect(toast(page, "Welcome, Ada. You are the admin of this collection.")).to_be_visible(timeout=1_000)
