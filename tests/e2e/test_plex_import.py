"""Import from Plex in a real browser: the Plex tab lists the sections an admin chose, one click starts the job, and
the job page reaches "Done" with the items of a local fake Plex server (tests/fakes/plex.py)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.test_imports import sign_in
from tests.e2e.test_imports import worker as worker  # noqa: PLC0414 — the fixture, shared
from tests.fakes.plex import FakePlex
from tests.fakes.server import RunningFake, serve_wsgi

pytestmark = pytest.mark.e2e

TOKEN = "plex-token-123"


@pytest.fixture
def plex() -> Iterator[tuple[FakePlex, RunningFake]]:
    fake = FakePlex(token=TOKEN, movies=20, shows=5, albums=10)
    with serve_wsgi(fake) as running:
        yield fake, running


def set_up_plex(server: LiveServer, plex_url: str) -> None:
    """What the admin did under Admin → Integrations (that page has its own browser test)."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import integrations
    from tests.conftest import Actors

    Actors(server.app)
    with server.app.app_context():
        try:
            admin = db.session.scalar(db.select(User).where(User.email == "alice@example.org"))
            integrations.save(admin, "plex", {"enabled": True, "base_url": plex_url, "token": TOKEN})
            integrations.select_plex_sections(admin, ["1", "3"])
        finally:
            db.session.remove()


def test_a_member_imports_the_chosen_plex_sections_with_one_click(
        page: Page, serve: Callable[..., LiveServer], worker: Callable[[LiveServer], None],
        plex: tuple[FakePlex, RunningFake]) -> None:
    fake, running = plex
    server = serve()
    set_up_plex(server, running.url)
    sign_in(page, server, "bob@example.org")

    page.get_by_role("link", name="Import", exact=True).click()
    page.get_by_role("link", name="Plex", exact=True).click()
    sections = page.get_by_test_id("plex-sections")
    expect(sections.locator("li")).to_have_count(2)
    expect(sections).to_contain_text("Movies")
    expect(sections).to_contain_text("Music")

    page.get_by_role("button", name="Import from Plex").click()
    expect(page).to_have_url(re.compile(re.escape(server("/imports/jobs/")) + r"\d+$"))
    worker(server)
    expect(page.get_by_test_id("job-status")).to_have_text("Done", timeout=20_000)
    expect(page.get_by_test_id("job-processed")).to_have_text("30 / 30")
    # Two of the 20 movies are unmatched copies of earlier ones: second copies, not new items.
    expect(page.locator('[data-count="created"] dd')).to_have_text(str(30 - fake.duplicates))
    expect(page.locator('[data-count="updated"] dd')).to_have_text(str(fake.duplicates))
    assert TOKEN not in page.content()
