"""A 360 px wide phone: no page scrolls sideways. Screenshots go to a temporary directory for a human look."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import expect_library, expect_login_page, register

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
WIDTH = PHONE["viewport"]["width"]

ITEMS = [
    ("The Lord of the Rings: The Fellowship of the Ring (Extended Edition)", "movie", 2001, ["Blu-ray", "DVD", "4K"]),
    ("Donaudampfschifffahrtsgesellschaftskapitänsmützensammlung", "book", 1999, ["Hardcover"]),
    ("Kind of Blue", "audio", 1959, ["Vinyl", "CD"]),
]


def add_items(server: LiveServer) -> None:
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import media

    with server.app.test_request_context():
        owner = db.session.scalars(db.select(User)).one()
        for title, media_type, year, formats in ITEMS:
            media.create_media(owner, media.MediaInput(title=title, media_type=media_type, year=year, formats=formats))
        db.session.remove()


def assert_no_sideways_scroll(page: Page, what: str) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth]")
    assert max(widths) <= WIDTH, f"{what} is {max(widths)} px wide on a {WIDTH} px screen"


def test_pages_fit_a_phone_screen(new_context: Callable[..., Any], serve: Callable[..., LiveServer],
                                  screenshot_path: Callable[[str], Path]) -> None:
    server = serve()
    page = new_context(**PHONE).new_page()

    page.goto(server("/auth/register"))
    assert_no_sideways_scroll(page, "the register page")
    register(page, server, email="margaret.hamilton@example.org", name="Margaret Hamilton")
    add_items(server)

    page.reload()
    expect_library(page, server)
    expect(page.get_by_role("link", name=ITEMS[0][0])).to_be_visible()
    assert_no_sideways_scroll(page, "the library")
    page.screenshot(path=screenshot_path("mobile-library"), full_page=True)

    page.get_by_text("Library", exact=True).click()  # the nav's submenu
    expect(page.get_by_role("link", name="Movies").first).to_be_visible()
    assert_no_sideways_scroll(page, "the library with the menu open")
    page.screenshot(path=screenshot_path("mobile-library-menu"))

    page.goto(server("/library/"))
    page.get_by_role("button", name="Log out").click()
    expect_login_page(page, server)
    assert_no_sideways_scroll(page, "the login page")
    page.screenshot(path=screenshot_path("mobile-login"), full_page=True)
