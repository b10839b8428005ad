"""Browsing in a real browser: search as you type, filters + sort + load more, bulk delete, and a phone screen."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import toast
from tests.test_library_browse import add_item

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


def sign_in(server: LiveServer, context: Any, role: str = "admin") -> int:
    """An account and a live session cookie for it (the login form has its own tests)."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.security.passwords import hash_password
    from collectz.services.sessions import create_session

    with server.app.test_request_context():
        user = User(email=f"{role}@example.org", name=role.title(), role=role, password_hash=hash_password("x" * 12))
        db.session.add(user)
        db.session.commit()
        token, _row = create_session(user, remember=False, ip="127.0.0.1", user_agent="e2e")
        db.session.commit()
        user_id = user.id
        db.session.remove()
    context.add_cookies([{"name": "collectz_session", "value": token, "url": server.url}])
    return user_id


def seed_items(server: LiveServer, user_id: int, items: int = 120) -> None:
    from bench.seed import seed
    from collectz.extensions import db

    with server.app.app_context(), db.engine.begin() as conn:
        seed(conn, items, users={"admin@example.org": user_id})


def shown_titles(page: Page) -> list[str]:
    return [t.strip() for t in page.locator("#item-list [data-testid=item-link] .name, "
                                            "#item-list td.title [data-testid=item-link]").all_inner_texts()]


def query(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlsplit(page.url).query)


def test_search_as_you_type_updates_the_list_and_the_url(new_context: Callable[..., Any],
                                                         serve: Callable[..., LiveServer]) -> None:
    server = serve()
    context = new_context(viewport={"width": 1280, "height": 800})
    admin = sign_in(server, context)
    seed_items(server, admin, 60)
    add_item(server.app, "Night of the Hunter", year=1955, added_by=admin,
             people=(("Charles Laughton", "director"), ("Robert Mitchum", "cast")))
    add_item(server.app, "The Hunt for Red October", year=1990, added_by=admin)
    page = context.new_page()
    page.goto(server("/library/"))
    expect(page.get_by_test_id("total")).to_have_text("62 items")
    page.evaluate("window.__samePage = true")

    page.get_by_test_id("search").press_sequentially("hunt", delay=40)
    expect(page.get_by_test_id("total")).to_have_text(re.compile(r"^2 items"))
    assert sorted(shown_titles(page)) == ["Night of the Hunter", "The Hunt for Red October"]
    expect(page).to_have_url(re.compile(r"[?&]q=hunt"))

    page.get_by_test_id("search").press_sequentially("er", delay=40)
    expect(page.get_by_test_id("total")).to_have_text(re.compile(r"^1 item\b"))
    assert shown_titles(page) == ["Night of the Hunter"]

    # a person's name finds the film too, and clearing the box brings everything back
    page.get_by_test_id("search").fill("mitchum")
    expect(page.get_by_test_id("total")).to_have_text(re.compile(r"^1 item\b"))
    page.get_by_test_id("search").fill("")
    expect(page.get_by_test_id("total")).to_have_text("62 items")
    assert page.evaluate("window.__samePage") is True, "the list was swapped, not the page reloaded"

    # the pushed URL is a real page
    page.goto(server("/library/?q=laughton"))
    expect(page.get_by_test_id("search")).to_have_value("laughton")
    assert shown_titles(page) == ["Night of the Hunter"]


def test_filter_sort_load_more_and_the_drawer(new_context: Callable[..., Any], serve: Callable[..., LiveServer]
                                              ) -> None:
    server = serve()
    context = new_context(viewport={"width": 1280, "height": 800})
    admin = sign_in(server, context)
    seed_items(server, admin, 150)
    page = context.new_page()
    page.goto(server("/library/movies"))
    movies = int(page.get_by_test_id("total").get_attribute("data-total"))

    page.get_by_test_id("filters-toggle").click()
    page.get_by_label("Year from").fill("1970")
    page.get_by_label("Year from").press("Tab")  # a text field's change fires as it loses focus
    expect(page).to_have_url(re.compile(r"year_from=1970"))
    page.get_by_label("Per page").select_option("25")
    expect(page).to_have_url(re.compile(r"per_page=25"))
    matching = int(page.get_by_test_id("total").get_attribute("data-total"))
    assert 25 < matching < movies

    page.get_by_test_id("sort").select_option("year")  # years start newest first
    expect(page).to_have_url(re.compile(r"sort=year"))
    assert "dir" not in query(page)
    expect(page.locator("#item-list [data-testid=item-link]")).to_have_count(25)
    years = [int(y) for y in re.findall(r"· (\d{4})", " ".join(
        page.locator("#item-list .meta").all_inner_texts()))]
    assert years == sorted(years, reverse=True) and min(years) >= 1970

    page.get_by_test_id("load-more").click()
    expect(page.locator("#item-list [data-testid=item-link]")).to_have_count(min(50, matching))
    expect(page).to_have_url(re.compile(r"after="))
    assert page.locator('[data-testid="load-more"]').count() <= 1
    years = [int(y) for y in re.findall(r"· (\d{4})", " ".join(page.locator("#item-list .meta").all_inner_texts()))]
    assert years == sorted(years, reverse=True)

    # the pushed URL reloads as that page; the list can go back to the first page
    page.reload()
    expect(page.get_by_role("link", name=re.compile("Back to the first page"))).to_be_visible()
    expect(page.get_by_test_id("total")).to_have_text(f"{matching} items")

    # an item opens in the drawer beside the list
    first = page.locator("#item-list [data-testid=item-link]").first
    first.click()
    expect(page).to_have_url(re.compile(r"/library/media/\d+$"))
    expect(page.locator("#drawer")).not_to_be_empty()
    expect(page.locator("#item-list [data-testid=item-link]").first).to_be_visible()


def test_bulk_delete_asks_then_deletes(new_context: Callable[..., Any], serve: Callable[..., LiveServer]) -> None:
    server = serve()
    context = new_context(viewport={"width": 1280, "height": 800})
    admin = sign_in(server, context)
    for title in ("Keep me", "Delete me", "Delete me too"):
        add_item(server.app, title, added_by=admin)
    page = context.new_page()
    page.goto(server("/library/?view=table"))
    page.get_by_label("Select Delete me", exact=True).check()
    page.get_by_label("Select Delete me too").check()
    page.get_by_test_id("bulk-delete").click()

    panel = page.locator("#bulk-panel")
    expect(panel.get_by_role("heading", name="Delete 2 items?")).to_be_visible()
    expect(page.get_by_test_id("total")).to_have_text("3 items")  # nothing deleted yet
    panel.get_by_test_id("bulk-confirm").click()

    expect(toast(page, "Deleted 2 of 2 selected items.")).to_be_visible()
    expect(page.get_by_test_id("total")).to_have_text("1 item")
    assert shown_titles(page) == ["Keep me"]


def test_a_phone_gets_two_columns_and_no_sideways_scroll(new_context: Callable[..., Any],
                                                         serve: Callable[..., LiveServer],
                                                         screenshot_path: Callable[[str], Path]) -> None:
    server = serve()
    context = new_context(**PHONE)
    admin = sign_in(server, context)
    seed_items(server, admin, 40)
    add_item(server.app, "The Lord of the Rings: The Fellowship of the Ring (Extended Edition)", year=2001,
             added_by=admin, formats=["Blu-ray", "DVD", "4K UHD"], people=(("Peter Jackson", "director"),))
    page = context.new_page()

    def fits(what: str) -> None:
        width = max(page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth]"))
        assert width <= 390, f"{what} is {width} px wide on a 390 px screen"

    page.goto(server("/library/"))
    expect(page.locator("details.filters")).not_to_have_attribute("open", "")
    cards = page.locator("#item-list .card-item")
    boxes = [cards.nth(i).bounding_box() for i in range(4)]
    assert boxes[0]["y"] == boxes[1]["y"] and boxes[2]["y"] > boxes[0]["y"], "two cards per row"
    fits("the grid")
    page.screenshot(path=screenshot_path("library-phone-grid"), full_page=False)

    page.get_by_test_id("filters-toggle").click()
    expect(page.get_by_label("Genre")).to_be_visible()
    fits("the open filter panel")
    page.screenshot(path=screenshot_path("library-phone-filters"), full_page=False)

    page.get_by_test_id("view-table").click()
    expect(page.locator("table.items")).to_be_visible()
    fits("the table")
    page.screenshot(path=screenshot_path("library-phone-table"), full_page=False)
