"""Duplicates → compare → merge in a real browser: a value taken from the other item lands on the survivor."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import register, toast

pytestmark = pytest.mark.e2e


def add_pair(server: LiveServer) -> tuple[int, int]:
    """Two of the signed-up admin's items whose titles match but whose formats differ."""
    from collectz.extensions import db
    from collectz.models import Media, User
    from collectz.services.users import ensure_default_library

    with server.app.app_context():
        try:
            owner = db.session.scalars(db.select(User)).one()
            library = ensure_default_library().id
            items = [Media(library_id=library, media_type="movie", title=title, year=1999, formats=formats,
                           location=location, added_by=owner.id)
                     for title, formats, location in (("Matrix", ["DVD"], "Shelf 1"),
                                                      ("The Matrix", ["Blu-ray"], None))]
            db.session.add_all(items)
            db.session.commit()
            return items[0].id, items[1].id
        finally:
            db.session.remove()


def exists(server: LiveServer, media_id: int) -> bool:
    from collectz.extensions import db
    from collectz.models import Media

    with server.app.app_context():
        try:
            return db.session.get(Media, media_id) is not None
        finally:
            db.session.remove()


def test_pick_a_pair_choose_the_other_title_and_merge(page: Page, live_server: LiveServer) -> None:
    register(page, live_server, email="grace@example.org", name="Grace")
    keep, gone = add_pair(live_server)

    page.goto(live_server("/library/duplicates"))
    expect(page.get_by_role("heading", name="Possible duplicates", level=1)).to_be_visible()
    group = page.get_by_test_id("dup-group").filter(has_text="Same title, different year or format")
    expect(group.get_by_role("link", name="The Matrix", exact=True)).to_be_visible()
    expect(group.get_by_role("radio", name=re.compile(rf"^Keep Matrix \({keep}\)"))).to_be_checked()
    expect(group.get_by_role("radio", name=re.compile(rf"^Merge away The Matrix \({gone}\)"))).to_be_checked()
    group.get_by_role("button", name="Compare and merge").click()

    expect(page.get_by_role("heading", name="Merge two items", level=1)).to_be_visible()
    title_row = page.locator('tr[data-field="title"]')
    expect(title_row.get_by_role("radio", name="Matrix", exact=True)).to_be_checked()
    title_row.get_by_role("radio", name="The Matrix", exact=True).check()
    page.locator('tr[data-field="formats"]').get_by_role("radio", name="Both").check()
    page.get_by_role("button", name="Merge", exact=True).click()

    expect(page).to_have_url(live_server(f"/library/media/{keep}"))
    expect(page.get_by_role("heading", name=re.compile(r"^The Matrix"), level=1)).to_be_visible()
    expect(page.get_by_text("DVD, Blu-ray")).to_be_visible()
    expect(page.get_by_text("Shelf 1")).to_be_visible()
    expect(toast(page, "Merged into The Matrix.")).to_be_visible()
    assert not exists(live_server, gone)

    page.goto(live_server("/library/duplicates"))
    expect(page.get_by_text("No likely duplicates.")).to_be_visible()
