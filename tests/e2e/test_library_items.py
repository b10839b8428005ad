"""Items in a real browser: the detail drawer (open, edit in place, rate, close), adding a book by ISBN-10,
and the drawer on a phone (a screenshot goes to a temporary directory for a human look)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import toast

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def sign_in(server: LiveServer, context: Any, name: str = "Bob", role: str = "user") -> int:
    """An account with a server-side session, its cookie put straight into the browser context."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.security.passwords import hash_password
    from collectz.services.sessions import create_session

    with server.app.test_request_context():
        user = User(email=f"{name.lower()}@example.org", name=name, role=role, password_hash=hash_password("x" * 12))
        db.session.add(user)
        db.session.commit()
        token, _row = create_session(user, remember=False, ip="127.0.0.1", user_agent="playwright")
        db.session.commit()
        user_id = user.id
        db.session.remove()
    cookie = server.app.config["COLLECTZ"].SESSION_COOKIE_NAME
    context.add_cookies([{"name": cookie, "value": token, "url": server.url}])
    return user_id


def add_movie(server: LiveServer, user_id: int, title: str) -> int:
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import media
    from collectz.services.people import Credit

    with server.app.test_request_context():
        owner = db.session.get(User, user_id)
        item = media.create_media(owner, media.MediaInput(
            title=title, media_type="movie", year=1979, formats=["Blu-ray"], genres=["Horror", "Science fiction"],
            people=[Credit("Ridley Scott", "director"), Credit("Sigourney Weaver", "cast"),
                    Credit("Tom Skerritt", "cast")],
            overview="The crew of the Nostromo answers a distress call.", location="Living room shelf 2"))
        media_id = item.id
        db.session.remove()
    return media_id


def read(server: LiveServer, fn: Callable[[Any], Any]) -> Any:
    from collectz.extensions import db

    with server.app.app_context():
        try:
            return fn(db.session)
        finally:
            db.session.remove()


def drawer(page: Page) -> Any:
    return page.locator("#drawer")


def item_link(page: Page, title: str) -> Any:
    """The library list's link to an item (a table row or a grid card), whatever else the link shows."""
    return page.get_by_test_id("item-link").filter(has_text=title)


def test_open_an_item_in_the_drawer_edit_it_in_place_rate_it_and_close(
        new_context: Callable[..., Any], serve: Callable[..., LiveServer]) -> None:
    from collectz.models import Media, MediaUserState

    server = serve()
    context = new_context(viewport={"width": 1280, "height": 800})
    user_id = sign_in(server, context)
    media_id = add_movie(server, user_id, "Alien")
    page = context.new_page()
    page.goto(server("/library/"))
    expect(drawer(page)).to_be_hidden()
    page.evaluate("() => { window.stillTheSamePage = true; }")

    item_link(page, "Alien").first.click()
    expect(drawer(page).get_by_role("heading", name="Alien")).to_be_visible()
    expect(drawer(page)).to_contain_text("Sigourney Weaver, Tom Skerritt")
    expect(page).to_have_url(server(f"/library/media/{media_id}"))

    drawer(page).get_by_role("link", name="Edit").click()
    title = drawer(page).get_by_label("Title", exact=True)
    expect(title).to_be_focused()
    title.fill("Alien: Director's Cut")
    drawer(page).get_by_role("button", name="Save").click()

    expect(drawer(page).get_by_role("heading", name="Alien: Director's Cut")).to_be_visible()
    expect(toast(page, "Saved Alien: Director's Cut.")).to_be_visible()
    assert page.evaluate("() => window.stillTheSamePage") is True, "saving reloaded the page"
    assert read(server, lambda s: s.get(Media, media_id).title) == "Alien: Director's Cut"
    # The list behind the drawer refreshes itself on the media-changed event.
    expect(page.locator("#item-list")).to_contain_text("Alien: Director's Cut")

    # My own rating saves as soon as it is picked, in place.
    drawer(page).get_by_label("My rating").select_option("8")
    expect(drawer(page).get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    state = read(server, lambda s: s.query(MediaUserState).filter_by(media_id=media_id, user_id=user_id).one())
    assert state.rating == 8

    drawer(page).get_by_role("link", name="Close").click()
    expect(drawer(page)).to_be_hidden()
    expect(page).to_have_url(re.compile(re.escape(server("/library/")) + r"(\?.*)?$"))
    assert page.evaluate("() => window.stillTheSamePage") is True

    # Delete asks first, in the drawer; then the library shows without the item.
    page.reload()
    item_link(page, "Alien: Director's Cut").first.click()
    drawer(page).get_by_role("link", name="Delete").click()
    expect(drawer(page).get_by_role("heading", name="Delete “Alien: Director's Cut”?")).to_be_visible()
    drawer(page).get_by_role("button", name="Delete").click()
    expect(toast(page, "Deleted Alien: Director's Cut.")).to_be_visible()
    expect(page).to_have_url(server("/library/"))
    expect(item_link(page, "Alien")).to_have_count(0)
    assert read(server, lambda s: s.get(Media, media_id)) is None


def test_add_a_book_with_an_isbn_10_through_the_form(new_context: Callable[..., Any],
                                                     serve: Callable[..., LiveServer]) -> None:
    from collectz.models import Media

    server = serve()
    context = new_context(viewport={"width": 1280, "height": 800})
    sign_in(server, context)
    page = context.new_page()
    page.goto(server("/library/media/new"))
    expect(page.get_by_role("heading", name="Add an item", level=1)).to_be_visible()

    page.get_by_label("Title", exact=True).fill("The Left Hand of Darkness")
    page.evaluate("() => { window.stillTheSamePage = true; }")
    # The type part follows the type select without a page load, keeping what the types share.
    page.get_by_label("Type", exact=True).select_option("comic_book")
    expect(page.get_by_label("Inkers")).to_be_visible()
    page.get_by_label("Publisher").fill("Ace")
    page.get_by_label("Type", exact=True).select_option("book")
    expect(page.get_by_label("Authors")).to_be_visible()
    expect(page.get_by_label("Inkers")).to_have_count(0)
    expect(page.get_by_label("Directors")).to_have_count(0)
    expect(page.get_by_label("Publisher")).to_have_value("Ace")
    assert page.evaluate("() => window.stillTheSamePage") is True
    page.get_by_label("Authors").fill("Ursula K. Le Guin")
    page.get_by_label("ISBN", exact=True).fill("0804429578")  # a wrong check digit
    page.get_by_role("button", name="Save").click()

    expect(page.locator("#item-isbn-error")).to_have_text("This ISBN's check digit is wrong: check the number.")
    expect(page.get_by_label("Authors")).to_have_value("Ursula K. Le Guin")  # nothing typed is lost
    expect(page.get_by_label("ISBN", exact=True)).to_be_focused()  # the field to mend, once the answer settled
    assert read(server, lambda s: s.query(Media).count()) == 0

    page.get_by_label("ISBN", exact=True).fill("080442957X")
    page.get_by_role("button", name="Save").click()

    expect(page).to_have_url(re.compile(re.escape(server("/library/media/")) + r"\d+$"))
    expect(page.get_by_role("heading", name="The Left Hand of Darkness", level=1)).to_be_visible()
    expect(page.get_by_text("978-0-8044-2957-3")).to_be_visible()
    expect(page.get_by_text("Ursula K. Le Guin")).to_be_visible()
    book = read(server, lambda s: s.query(Media).one())
    assert (book.media_type, book.isbn13, book.type_details) == ("book", "9780804429573", {"publisher": "Ace"})


def test_the_drawer_fills_a_phone_screen(new_context: Callable[..., Any], serve: Callable[..., LiveServer],
                                         screenshot_path: Callable[[str], Path]) -> None:
    server = serve()
    context = new_context(**PHONE)
    user_id = sign_in(server, context)
    add_movie(server, user_id, "Alien")
    page = context.new_page()
    page.goto(server("/library/"))

    item_link(page, "Alien").first.click()
    panel = drawer(page)
    expect(panel.get_by_role("heading", name="Alien")).to_be_visible()
    box = panel.bounding_box()
    assert box is not None and (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 390, 844)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth]")
    assert max(widths) <= 390
    expect(panel.get_by_role("link", name="Close")).to_be_visible()
    page.screenshot(path=screenshot_path("mobile-item-drawer"))
