"""Admin → Integrations in the web layer: who may open it, pages and fragments, and no secret in any HTML."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from tests.conftest import Actors, activity
from tests.fakes.plex import FakePlex
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb

URL = "/admin/integrations"
TMDB_KEY = "0123456789abcdef0123456789abcdef"
PLEX_TOKEN = "plex-token-123"
HTMX = {"HX-Request": "true"}
RING_A = "integration-ring-a-" + "a" * 40
RING_B = "integration-ring-b-" + "b" * 40


def html(resp: Any) -> str:
    return resp.get_data(as_text=True)


def card(page: str, provider: str) -> str:
    """The markup of one card, from its slot to the next one."""
    start = page.index(f'id="integration-{provider}"')
    end = page.find('<div id="integration-', start)
    return page[start:end if end > 0 else len(page)]


def assert_fragment(resp: Any, provider: str) -> str:
    body = html(resp)
    assert "<html" not in body and f'data-provider="{provider}"' in body
    assert "HX-Request" in resp.headers.get("Vary", "")
    return body


def save_tmdb(client: Any, key: str = TMDB_KEY, headers: dict[str, str] | None = None, **extra: str) -> Any:
    data = {"tmdb-enabled": "y", "tmdb-language": "en-US", "tmdb-api_key": key, **extra}
    return client.post(f"{URL}/tmdb", data=data, headers=headers)


def secret_inputs(page: str) -> list[str]:
    return re.findall(r'<input[^>]*type="password"[^>]*>', page)


def test_only_admins_open_or_change_integrations(app: Flask, actors: Actors):
    anonymous = app.test_client()
    assert anonymous.get(URL).headers["Location"].startswith("/auth/login")
    for name in ("bob", "vera"):
        client = actors.client(name)
        assert client.get(URL).status_code == 403
        assert save_tmdb(client).status_code == 403
        assert client.post(f"{URL}/tmdb/test").status_code == 403
        assert client.get(f"{URL}/plex/sections").status_code == 403
        assert client.post(f"{URL}/plex/sections", data={"sections": "1"}).status_code == 403
    assert len([e for e in activity(app, "permission.denied") if e.details["path"].startswith(URL)]) == 10
    assert activity(app, "integration.updated") == []
    admin = actors.client("alice")
    assert admin.get(URL).status_code == 200
    assert admin.post(f"{URL}/myspace", data={}).status_code == 404
    # Every form carries the CSRF token; a post without it is refused.
    assert save_tmdb(admin).status_code == 303
    refused = admin.post(f"{URL}/tmdb/test", csrf=False)
    assert refused.status_code == 403 and refused.headers.get("X-CSRF-Error")


def test_the_page_lists_every_card_in_groups_with_empty_password_fields(app: Flask, actors: Actors):
    resp = actors.client("alice").get(URL)
    page = html(resp)

    assert resp.status_code == 200 and "<html" in page and 'aria-current="page">Integrations</a>' in page
    # ComicVine sits behind its flag, off by default.
    assert page.count('data-testid="integration-card"') == 8 and 'id="integration-comicvine"' not in page
    headings = re.findall(r'<h2 id="integration-group-\d+">([^<]+)</h2>', page)
    assert headings == ["Movies &amp; TV", "Media server", "Barcodes", "Covers", "Books", "Music", "Games", "Comics"]
    inputs = secret_inputs(page)
    assert len(inputs) == 8 and all('autocomplete="off"' in i and not re.search(r'value="[^"]', i) for i in inputs)
    assert page.count('name="tmdb-csrf_token"') == 1 and 'action="/admin/integrations/tmdb/test"' in page
    # The admin tab bar links here from the other admin pages too.
    assert 'href="/admin/integrations"' in html(actors.client("alice").get("/admin/flags"))
    tab = actors.client("alice").get(URL, headers=HTMX)
    assert "<html" not in html(tab) and 'id="integration-tmdb"' in html(tab)


def test_the_comicvine_card_appears_when_its_flag_is_on(app: Flask, actors: Actors):
    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import flags

    with app.app_context():
        flags.set_enabled(db.session.get(User, actors.ids["alice"]), "integration_comicvine", True)
        db.session.commit()
    page = html(actors.client("alice").get(URL))
    assert page.count('data-testid="integration-card"') == 9 and 'id="integration-comicvine"' in page


def test_saving_a_key_plain_and_with_htmx_never_shows_it(app: Flask, actors: Actors):
    admin = actors.client("alice")

    plain = save_tmdb(admin)
    assert plain.status_code == 303 and plain.headers["Location"] == f"{URL}#integration-tmdb"
    page = html(admin.get(URL))
    assert TMDB_KEY not in page and "set, ends in …cdef" in card(page, "tmdb")
    assert all(not re.search(r'value="[^"]', i) for i in secret_inputs(page))

    fragment = save_tmdb(admin, key="", **{"tmdb-language": "de-DE"}, headers=HTMX)
    body = assert_fragment(fragment, "tmdb")
    assert fragment.status_code == 200 and TMDB_KEY not in body
    assert "set, ends in …cdef" in body and 'value="de-DE"' in body and "TMDB settings saved." in body
    assert [e.details["changed"] for e in activity(app, "integration.updated")] == [["api_key", "enabled"],
                                                                                  ["language"]]


def test_a_refused_save_is_422_with_the_message_on_the_card(app: Flask, actors: Actors):
    admin = actors.client("alice")
    plex = {"plex-enabled": "y", "plex-base_url": "http://admin:pw@192.168.1.20:32400", "plex-token": PLEX_TOKEN}

    plain = admin.post(f"{URL}/plex", data=plex)
    assert plain.status_code == 422 and "<html" in html(plain)
    assert "remove the user name and password" in card(html(plain), "plex").lower()
    fragment = admin.post(f"{URL}/plex", data=plex, headers=HTMX)
    body = assert_fragment(fragment, "plex")
    assert fragment.status_code == 422 and 'aria-invalid="true"' in body
    assert PLEX_TOKEN not in html(plain) + body and "admin:pw" not in body.split("<input")[0]
    assert [e.details["fields"] for e in activity(app, "integration.update_failed")] == [["base_url"]] * 2


def test_test_button_records_a_badge_plain_and_with_htmx(app: Flask, actors: Actors):
    admin = actors.client("alice")

    plain = admin.post(f"{URL}/covers/test")
    assert plain.status_code == 303 and plain.headers["Location"] == f"{URL}#integration-covers"
    covers = card(html(admin.get(URL)), "covers")
    assert 'data-status="not_configured"' in covers and "API key" in covers

    fragment = admin.post(f"{URL}/tmdb/test", headers=HTMX)
    body = assert_fragment(fragment, "tmdb")
    assert 'data-status="not_configured"' in body and "not configured" in body
    assert [e.details["result"] for e in activity(app, "integration.tested")] == ["not_configured", "not_configured"]


def test_tmdb_saved_and_tested_against_the_fake_never_puts_the_key_in_html(make_app, actors: Actors):
    with serve_wsgi(FakeTmdb(api_key=TMDB_KEY)) as tmdb:
        app = make_app(TMDB_BASE_URL=tmdb.url)
        admin = Actors.client(actors_for(app, actors), "alice")
        bodies = [html(save_tmdb(admin, headers=HTMX))]
        tested = admin.post(f"{URL}/tmdb/test", headers=HTMX)
        bodies += [assert_fragment(tested, "tmdb"), html(admin.get(URL)), html(admin.get(URL, headers=HTMX))]
        plain = admin.post(f"{URL}/tmdb/test")
        bodies.append(html(admin.get(plain.headers["Location"].split("#")[0])))

    assert 'data-status="ok"' in bodies[1] and "TMDB: the connection works." in bodies[1]
    assert all("set, ends in …cdef" in body for body in bodies)
    assert not [body for body in bodies if TMDB_KEY in body or TMDB_KEY[:8] in body]
    assert [e.details["result"] for e in activity(app, "integration.tested")] == ["ok", "ok"]


def test_plex_sections_load_and_save_with_and_without_htmx(make_app, actors: Actors):
    app = make_app()
    admin = actors.client("alice")
    with serve_wsgi(FakePlex(token=PLEX_TOKEN)) as server:
        saved = admin.post(f"{URL}/plex", data={"plex-enabled": "y", "plex-base_url": server.url,
                                                "plex-token": PLEX_TOKEN}, headers=HTMX)
        assert saved.status_code == 200 and "set, ends in …-123" in html(saved) and PLEX_TOKEN not in html(saved)

        loaded = admin.get(f"{URL}/plex/sections", headers=HTMX)
        body = assert_fragment(loaded, "plex")
        assert re.findall(r'name="sections" value="(\d+)"', body) == ["1", "2", "3"] and PLEX_TOKEN not in body
        page = html(admin.get(f"{URL}/plex/sections"))  # the same, as a full page without JavaScript
        assert "<html" in page and 'name="sections" value="3"' in card(page, "plex")

        chosen = admin.post(f"{URL}/plex/sections", data={"sections": ["1", "3"]}, headers=HTMX)
        body = assert_fragment(chosen, "plex")
        assert "Movies" in body and "Music" in body and "2 libraries selected" in body
        plain = admin.post(f"{URL}/plex/sections", data={"sections": ["2"]})
        assert plain.status_code == 303 and plain.headers["Location"] == f"{URL}#integration-plex"
        forged = admin.post(f"{URL}/plex/sections", data={"sections": ["42"]}, headers=HTMX)
        assert forged.status_code == 422 and "no library with the key 42" in html(forged)

    with app.app_context():
        from collectz.services import integrations

        assert integrations.get("plex").sections == [{"key": "2", "title": "TV Shows", "type": "show"}]
    gone = admin.get(f"{URL}/plex/sections", headers=HTMX)  # the server is gone: said on the card, not a 500
    assert gone.status_code == 200 and 'data-testid="plex-sections-error"' in html(gone)


def test_a_stale_key_shows_the_fix_and_the_other_pages_still_work(make_app, actors: Actors):
    first = make_app(INTEGRATION_ENCRYPTION_KEY=RING_A)
    Actors.client(actors_for(first, actors), "alice").post(
        f"{URL}/tmdb", data={"tmdb-enabled": "y", "tmdb-api_key": TMDB_KEY, "tmdb-language": "en-US"})

    rotated = make_app(INTEGRATION_ENCRYPTION_KEY=RING_B)
    admin = Actors.client(actors_for(rotated, actors), "alice")
    resp = admin.get(URL)
    page = html(resp)
    assert resp.status_code == 200 and TMDB_KEY not in page
    tmdb = card(page, "tmdb")
    assert "cannot decrypt — re-enter the key" in tmdb and 'data-testid="integration-unreadable"' in tmdb
    assert "cannot decrypt" not in card(page, "books")
    tested = admin.post(f"{URL}/tmdb/test", headers=HTMX)
    assert 'data-status="cannot_decrypt"' in html(tested) and tested.status_code == 200
    assert admin.get("/library/").status_code == 200 and admin.get("/admin/members").status_code == 200


def actors_for(app: Flask, actors: Actors) -> Actors:
    """The same accounts, signed in through another app built on the same database."""
    other = object.__new__(Actors)
    other.app, other.ids = app, actors.ids
    return other


@pytest.mark.parametrize("block", ["tab", "card"])
def test_every_block_renders_on_its_own(app: Flask, actors: Actors, block: str):
    """jinja2-fragments renders a block without the template's top level: each block brings its own imports."""
    from jinja2_fragments.flask import render_block

    from collectz.blueprints.integrations.forms import card_form
    from collectz.services import integrations

    with app.test_request_context(URL):
        views = integrations.cards()
        forms = {v.key: card_form(v) for v in views}
        body = render_block("integrations/index.html", block, groups=integrations.grouped(views), forms=forms,
                            extras={}, card=views[1])
    assert 'data-provider="plex"' in body and "Load sections" in body
