"""Steps and checks shared by the browser tests."""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer

PASSWORD = "correct horse battery"


def register(page: Page, server: LiveServer, *, email: str, name: str, password: str = PASSWORD) -> None:
    """Create an account through the real register page and wait for the library."""
    page.goto(server("/auth/register"))
    expect(page.get_by_role("heading", name="Create your account", level=1)).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Create account").click()
    expect_library(page, server)


def htmx_ready(page: Page) -> None:
    """Wait until the page has loaded and htmx has processed it.

    A click that navigates returns once the new URL commits, while the deferred scripts may still be loading; a form
    submitted in that gap is a plain full-page post, not an htmx request.
    """
    page.wait_for_function("() => document.readyState === 'complete' && !!window.htmx")


def expect_library(page: Page, server: LiveServer) -> None:
    expect(page).to_have_url(re.compile(re.escape(server("/library/")) + r"(\?.*)?$"))
    expect(page.get_by_role("heading", name="All", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    htmx_ready(page)


def expect_login_page(page: Page, server: LiveServer) -> None:
    expect(page).to_have_url(re.compile(re.escape(server("/auth/login")) + r"(\?.*)?$"))
    expect(page.get_by_role("heading", name="Log in", level=1)).to_be_visible()
    expect(page.get_by_role("button", name="Log out")).to_have_count(0)


def toast(page: Page, text: str) -> Any:
    return page.locator("#toasts").get_by_role("status").filter(has_text=text)


def users(app: Flask) -> list[tuple[str, str, str]]:
    """(email, name, role) of every account, read straight from the database."""
    from collectz.extensions import db
    from collectz.models import User

    with app.app_context():
        try:
            rows = db.session.scalars(db.select(User).order_by(User.id)).all()
            return [(u.email, u.name, u.role) for u in rows]
        finally:
            db.session.remove()
