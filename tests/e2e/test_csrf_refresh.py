"""A page left open longer than the CSRF token lifetime keeps working (static/js/app.js refreshes the token).

The apps here use a 2 s token lifetime; pages wait ~3.5 s, so the token they were rendered with has expired.
The second test blocks the refresh for a while to show that the expiry is real.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Page, Response, Route, expect

from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import expect_library, expect_login_page, register, toast, users

pytestmark = pytest.mark.e2e

TOKEN_LIFETIME_S = 2
OPEN_LONGER_THAN_LIFETIME_MS = 3_500
EMAIL = "grace@example.org"


@pytest.fixture
def short_token_server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve(CSRF_TIME_LIMIT_SECONDS=TOKEN_LIFETIME_S)


def refusals(page: Page) -> list[str]:
    """Every 403 the page receives from now on, as 'METHOD url'."""
    seen: list[str] = []

    def on_response(response: Response) -> None:
        if response.status == 403:
            seen.append(f"{response.request.method} {response.url}")

    page.on("response", on_response)
    return seen


class RefreshSwitch:
    """Blocks one tab's token refreshes (like a laptop asleep or offline) while `blocked` is true."""

    def __init__(self, tab: Page, server: LiveServer):
        self.blocked = False
        self.aborted = 0
        tab.route(server("/auth/csrf"), self._handle)

    def _handle(self, route: Route) -> None:
        if self.blocked:
            self.aborted += 1
            route.abort()
        else:
            route.continue_()


def open_profile(page: Page, server: LiveServer) -> None:
    page.goto(server("/auth/profile"))
    expect(page.get_by_role("heading", name="Your profile", level=1)).to_be_visible()


def save_name(page: Page, name: str) -> None:
    page.bring_to_front()  # a background tab gets no animation frames, which slows Playwright's clicks down
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Save").click()


def log_out(tab: Page) -> None:
    tab.bring_to_front()
    tab.get_by_role("button", name="Log out").click()


def expect_saved(page: Page, server: LiveServer, name: str) -> None:
    expect(page.locator("#toasts .toast", has_text="Profile saved.")).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_have_value(name)
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)).to_be_visible()
    assert [u[1] for u in users(server.app)] == [name]


def test_open_pages_keep_working_past_the_token_lifetime(page: Page, short_token_server: LiveServer) -> None:
    server = short_token_server
    register(page, server, email=EMAIL, name="Grace")

    # Two tabs left open: the profile (an htmx form) and the library (the nav's plain logout form).
    library = page.context.new_page()
    library.goto(server("/library/"))
    expect_library(library, server)
    open_profile(page, server)
    refused, library_refused = refusals(page), refusals(library)
    page.wait_for_timeout(OPEN_LONGER_THAN_LIFETIME_MS)

    save_name(page, "Grace Hopper")
    expect_saved(page, server, "Grace Hopper")

    log_out(library)
    expect_login_page(library, server)
    expect(toast(library, "You are signed out.")).to_be_visible()
    assert refused == [] and library_refused == []


def test_missed_refreshes_expire_the_token_and_the_next_submit_catches_up(
    page: Page, short_token_server: LiveServer
) -> None:
    """The token refresh cannot be reached for a while (a laptop asleep, the network down).

    While it is blocked the server refuses the stale token (so the 2 s lifetime is real and the other test
    could not pass without the refresh); once it answers again, each form fetches a fresh token before posting.
    Each tab is unblocked just before its form is used, so the timers have no chance to refresh it first.
    """
    server = short_token_server
    register(page, server, email=EMAIL, name="Grace")
    refused_logout, library = page.context.new_page(), page.context.new_page()
    for tab in (refused_logout, library):
        tab.goto(server("/library/"))
        expect_library(tab, server)
    open_profile(page, server)
    switches = {tab: RefreshSwitch(tab, server) for tab in (page, refused_logout, library)}

    for switch in switches.values():
        switch.blocked = True
    page.wait_for_timeout(OPEN_LONGER_THAN_LIFETIME_MS)
    assert switches[page].aborted > 0 and switches[library].aborted > 0, "the tabs should have tried to refresh"

    with page.expect_response(lambda r: r.request.method == "POST") as info:
        save_name(page, "Grace Hopper")
    assert info.value.status == 403
    assert info.value.headers.get("x-csrf-error") == "expired"
    expect(page.locator("#toasts .toast-error")).to_have_text(
        "This page was open too long and its security token expired. Reload the page and try again.")
    assert [u[1] for u in users(server.app)] == ["Grace"]

    log_out(refused_logout)
    expect(refused_logout.get_by_role("heading", name="Not allowed", level=1)).to_be_visible()
    expect(refused_logout.get_by_text("This page was open too long")).to_be_visible()

    refused, library_refused = refusals(page), refusals(library)
    switches[page].blocked = False
    save_name(page, "Grace Hopper")
    expect_saved(page, server, "Grace Hopper")  # so the refused logout did not end the session either

    switches[library].blocked = False
    log_out(library)
    expect_login_page(library, server)
    expect(toast(library, "You are signed out.")).to_be_visible()
    assert refused == [] and library_refused == []
