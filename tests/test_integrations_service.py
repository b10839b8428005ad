"""The integrations service: saved settings, secrets encrypted at rest, stale keys, the URL policy and Test.

Providers are reached only through local fakes (tests/fakes) served on loopback by serve_wsgi.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text

from collectz.extensions import db
from collectz.models import User
from collectz.services import integrations as service
from collectz.services.errors import InvalidInput, NotFound
from collectz.services.integrations import IntegrationProblem, SecretUnreadable
from tests.conftest import Actors, activity
from tests.fakes.plex import FakePlex
from tests.fakes.server import serve_wsgi
from tests.fakes.tmdb import FakeTmdb

TMDB_KEY = "0123456789abcdef0123456789abcdef"
PLEX_TOKEN = "plex-token-123"
RING_A = "integration-ring-a-" + "a" * 40
RING_B = "integration-ring-b-" + "b" * 40


@contextmanager
def in_app(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        try:
            yield app
        finally:
            db.session.remove()


def alice(actors: Actors) -> User:
    return db.session.get(User, actors.ids["alice"])


def raw_secrets_column(provider: str) -> str:
    """The secrets column as the database stores it (text), read without the ORM."""
    value = db.session.execute(text("SELECT secrets_encrypted FROM app_integrations WHERE provider = :p"),
                               {"p": provider}).scalar_one()
    return value if isinstance(value, str) else repr(value)


def hint(provider: str, field: str) -> str:
    state = service.get(provider).secret(field)
    assert state is not None
    return state.hint


def save_tmdb(actors: Actors, **data: Any) -> service.IntegrationView:
    return service.save(alice(actors), "tmdb", {"enabled": True, "language": "en-US", **data})


def save_plex(actors: Actors, base_url: str, token: str = PLEX_TOKEN) -> service.IntegrationView:
    return service.save(alice(actors), "plex", {"enabled": True, "base_url": base_url, "token": token})


# --- the catalogue ----------------------------------------------------------------------------------------------

def test_catalogue_has_one_card_per_provider_in_the_issues_groups():
    keys = [spec.key for spec in service.PROVIDERS]
    assert keys == ["tmdb", "plex", "barcode", "covers", "books", "music", "igdb", "comics", "comicvine"]
    assert all(spec.group in service.GROUPS for spec in service.PROVIDERS)
    by_key = service.PROVIDERS_BY_KEY
    assert {k for k, s in by_key.items() if s.enabled_by_default} == {"books", "music"}  # no key needed
    assert by_key["plex"].self_hosted and not any(s.self_hosted for k, s in by_key.items() if k != "plex")
    assert [v for v, _ in by_key["barcode"].setting("preset").choices] == ["upcitemdb", "barcodelookup"]
    assert by_key["books"].setting("provider").default == "openlibrary"
    assert by_key["music"].setting("provider").default == "musicbrainz"
    assert (by_key["comics"].setting("primary").default, by_key["comics"].setting("fallback").default) == \
        ("metron", "gcd")
    assert by_key["comicvine"].flag == "integration_comicvine"
    for spec in service.PROVIDERS:
        assert all(f.kind in service.SETTING_KINDS for f in spec.settings)


def test_cards_show_defaults_before_anything_is_saved(ctx):
    cards = {card.key: card for card in service.cards()}
    assert cards["books"].enabled and cards["music"].enabled and not cards["tmdb"].enabled
    assert cards["books"].values["provider"] == "openlibrary"
    assert cards["tmdb"].status_label == "not tested"
    assert [s.hint for s in cards["tmdb"].secrets] == ["not set"]
    assert [group for group, _ in service.grouped(cards.values())] == list(service.GROUPS)
    with pytest.raises(NotFound):
        service.get("myspace")


# --- saving secrets ---------------------------------------------------------------------------------------------

def test_a_saved_key_is_encrypted_in_the_database_and_shown_as_its_last_four(ctx, actors: Actors):
    view = save_tmdb(actors, api_key=f"  {TMDB_KEY}\n")

    assert view.enabled and view.secret("api_key").hint == "set, ends in …cdef"
    column = raw_secrets_column("tmdb")
    assert TMDB_KEY not in column and TMDB_KEY[:16] not in column and "v1." in column
    assert service.config_for("tmdb").secret("api_key") == TMDB_KEY  # pasted whitespace dropped
    [event] = activity(ctx, "integration.updated")
    assert event.entity_id == "tmdb" and event.details["changed"] == ["api_key", "enabled"]
    assert TMDB_KEY not in repr(event.details) and "cdef" not in repr(event.details)


def test_a_blank_secret_keeps_the_stored_one_and_only_changed_names_are_recorded(ctx, actors: Actors):
    save_tmdb(actors, api_key=TMDB_KEY)
    token_before = raw_secrets_column("tmdb")

    save_tmdb(actors, api_key="", language="de-DE")

    assert raw_secrets_column("tmdb") == token_before
    assert service.config_for("tmdb").secret("api_key") == TMDB_KEY
    assert service.get("tmdb").values["language"] == "de-DE"
    assert [e.details["changed"] for e in activity(ctx, "integration.updated")] == [["api_key", "enabled"],
                                                                                  ["language"]]
    save_tmdb(actors, api_key=TMDB_KEY, language="de-DE")  # the same values again: no change, no event
    assert len(activity(ctx, "integration.updated")) == 2


def test_clear_removes_a_secret_but_not_while_the_card_needs_it(ctx, actors: Actors):
    save_tmdb(actors, api_key=TMDB_KEY)

    with pytest.raises(InvalidInput) as refused:
        save_tmdb(actors, clear_api_key=True)
    assert "api_key" in refused.value.fields and hint("tmdb", "api_key") == "set, ends in …cdef"
    [failure] = activity(ctx, "integration.update_failed")
    assert failure.status == "failed" and failure.details["fields"] == ["api_key"]

    view = service.save(alice(actors), "tmdb", {"enabled": False, "clear_api_key": "y"})
    assert view.secret("api_key").hint == "not set" and service.config_for("tmdb").secret("api_key") == ""
    assert activity(ctx, "integration.updated")[-1].details["cleared"] == ["api_key"]
    assert "v1." not in raw_secrets_column("tmdb")


def test_a_short_secret_shows_no_characters_and_bad_input_writes_nothing(ctx, actors: Actors):
    service.save(alice(actors), "barcode", {"enabled": True, "preset": "barcodelookup", "api_key": "short-key"})
    assert hint("barcode", "api_key") == "set"

    with pytest.raises(InvalidInput) as bad:
        service.save(alice(actors), "barcode", {"enabled": True, "preset": "amazon", "api_key": "line\nbreak-1234"})
    assert set(bad.value.fields) == {"preset", "api_key"}
    assert service.get("barcode").values["preset"] == "barcodelookup"
    with pytest.raises(InvalidInput) as bad_language:
        save_tmdb(actors, api_key=TMDB_KEY, language="english")
    assert "language" in bad_language.value.fields and not service.get("tmdb").saved


def test_only_admins_change_or_test_integrations(ctx, actors: Actors):
    bob = db.session.get(User, actors.ids["bob"])
    from collectz.services.errors import Forbidden

    with pytest.raises(Forbidden):
        service.save(bob, "tmdb", {"enabled": True, "api_key": TMDB_KEY})
    with pytest.raises(Forbidden):
        service.test(bob, "tmdb")
    with pytest.raises(Forbidden):
        service.select_plex_sections(bob, [])
    assert not service.get("tmdb").saved


# --- a key that no longer decrypts ------------------------------------------------------------------------------

class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def integration_log() -> Iterator[Captured]:
    """Records of the collectz.integrations logger (the collectz loggers do not propagate to pytest's handler)."""
    handler = Captured()
    logger = logging.getLogger("collectz.integrations")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_a_stale_key_is_a_warning_and_a_hint_and_breaks_nothing_else(make_app, actors: Actors,
                                                                      integration_log: Captured):
    with in_app(make_app(INTEGRATION_ENCRYPTION_KEY=RING_A)):
        save_tmdb(actors, api_key=TMDB_KEY)
        service.save(alice(actors), "books", {"enabled": True, "provider": "googlebooks",
                                              "google_api_key": "google-books-key-0001"})
    assert integration_log.records == []

    with in_app(make_app(INTEGRATION_ENCRYPTION_KEY=RING_B)):
        cards = {card.key: card for card in service.cards()}
        assert cards["tmdb"].secret("api_key").hint == service.CANNOT_DECRYPT_HINT == \
            "cannot decrypt — re-enter the key"
        assert [f.name for f in cards["tmdb"].unreadable] == ["api_key"]
        assert cards["plex"].secret("token").hint == "not set" and cards["plex"].unreadable == []
        with pytest.raises(SecretUnreadable) as unreadable:
            service.config_for("tmdb")
        assert "re-enter" in unreadable.value.message and TMDB_KEY not in unreadable.value.message
        assert service.test(alice(actors), "tmdb").status == "cannot_decrypt"

        warnings = [r for r in integration_log.records if r.levelno == logging.WARNING]
        assert warnings and all("tmdb" in r.getMessage() or "books" in r.getMessage() for r in warnings)
        assert all(TMDB_KEY not in r.getMessage() and "cdef" not in r.getMessage() for r in warnings)
        assert any("tmdb" in r.getMessage() and "api_key" in r.getMessage() for r in warnings)

        # Entering the key again under the new ring repairs the card.
        view = save_tmdb(actors, api_key=TMDB_KEY)
        assert view.unreadable == [] and service.config_for("tmdb").secret("api_key") == TMDB_KEY
        assert service.test(alice(actors), "tmdb").status != "cannot_decrypt"

    # A ring that still holds the old key (rotation in progress) reads the other values.
    with in_app(make_app(INTEGRATION_ENCRYPTION_KEY=f"{RING_B},{RING_A}")):
        assert service.config_for("books").secret("google_api_key") == "google-books-key-0001"


# --- the outbound URL policy ------------------------------------------------------------------------------------

@pytest.mark.parametrize("url, problem", [
    ("ftp://192.168.1.20:32400", "http:// or https://"),
    ("http://admin:secret@192.168.1.20:32400", "user name and password"),
    ("http://192.168.1.20:32400/?X-Plex-Token=abc", "'?'"),
    ("192.168.1.20:32400", "http:// or https://"),
])
def test_a_plex_address_must_be_a_plain_http_url(ctx, actors: Actors, url: str, problem: str):
    with pytest.raises(InvalidInput) as refused:
        save_plex(actors, url)
    assert problem in refused.value.fields["base_url"]
    assert not service.get("plex").saved


def test_plex_may_be_on_the_lan_but_other_providers_may_not(ctx, actors: Actors):
    assert save_plex(actors, "http://192.168.1.20:32400/").values["base_url"] == "http://192.168.1.20:32400"
    assert save_plex(actors, "http://127.0.0.1:32400").values["base_url"] == "http://127.0.0.1:32400"

    for private in ("http://192.168.1.20:8080/v1", "http://127.0.0.1:11434/v1", "http://169.254.169.254/latest",
                    "http://[::1]:8080/v1"):
        with pytest.raises(InvalidInput) as refused:
            service.save(alice(actors), "covers", {"enabled": True, "base_url": private, "api_key": "sk-" + "x" * 20})
        assert "not a public address" in refused.value.fields["base_url"], private
    # The provider's own default address is accepted as is, and the config carries the policy along.
    service.save(alice(actors), "covers", {"enabled": True, "base_url": "", "api_key": "sk-" + "x" * 20})
    config = service.config_for("covers")
    assert config.base_url == "https://api.openai.com/v1" and config.allow_private is False
    assert service.config_for("plex").allow_private is True


# --- Test -------------------------------------------------------------------------------------------------------

def test_a_provider_without_its_key_says_so(ctx, actors: Actors):
    covers = service.test(alice(actors), "covers")
    assert covers.status == "not_configured" and "API key" in covers.last_error
    assert covers.last_checked_at is not None

    tmdb = service.test(alice(actors), "tmdb")
    assert tmdb.status == "not_configured" and "API key" in tmdb.last_error

    events = activity(ctx, "integration.tested")
    assert [(e.entity_id, e.details["result"], e.status) for e in events] == [
        ("covers", "not_configured", "failed"), ("tmdb", "not_configured", "failed")]


class FakeVisionModels:
    """An OpenAI-compatible API's GET /v1/models: the model list for a valid bearer key, its 401 error otherwise."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        from werkzeug.wrappers import Request, Response

        request = Request(environ)
        if request.path != "/v1/models":
            return Response('{"error": {"message": "Not found", "type": "invalid_request_error"}}', 404,
                            content_type="application/json")(environ, start_response)
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            refused = Response('{"error": {"message": "Incorrect API key provided.", "type": '
                               '"invalid_request_error", "code": "invalid_api_key"}}', 401,
                               content_type="application/json")
            return refused(environ, start_response)
        return Response('{"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "x"}]}',
                        content_type="application/json")(environ, start_response)


def test_cover_recognition_is_tested_against_its_api(make_app, actors: Actors):
    key = "sk-test-0123456789abcdef"
    with serve_wsgi(FakeVisionModels(key)) as server:
        app = make_app(PROVIDER_URL_OVERRIDES=f"covers={server.url}/v1")
        with in_app(app):
            service.save(alice(actors), "covers", {"enabled": True, "model": "gpt-4o-mini", "api_key": key})
            assert service.test(alice(actors), "covers").status == "ok"
            service.save(alice(actors), "covers", {"enabled": True, "model": "gpt-4o-mini",
                                                   "api_key": "sk-wrong-0123456789abcdef"})
            wrong = service.test(alice(actors), "covers")
            assert wrong.status == "bad_credentials" and "sk-wrong" not in (wrong.last_error or "")


def test_the_books_card_tests_the_chosen_service_at_the_server_s_address(make_app, actors: Actors):
    from tests.fakes.openlibrary import FakeOpenLibrary

    fake = FakeOpenLibrary()
    with serve_wsgi(fake) as server:
        app = make_app(PROVIDER_URL_OVERRIDES=f"openlibrary={server.url}", OUTBOUND_TIMEOUT_SECONDS=1)
        with in_app(app):
            assert service.test(alice(actors), "books").status == "ok"  # Open Library needs no key
            fake.mode = "error"
            assert service.test(alice(actors), "books").status == "unavailable"
            fake.mode = "ok"
            # Google Books is chosen now; the server knows no other address for it: the real one is not reachable
            # from the tests, so only the wiring is checked (not "unsupported").
            service.save(alice(actors), "books", {"enabled": True, "provider": "googlebooks"})
            assert service.test(alice(actors), "books").status != "unsupported"


def test_tmdb_test_against_the_fake_maps_each_failure_to_its_badge(make_app, actors: Actors):
    fake = FakeTmdb(api_key=TMDB_KEY)
    with serve_wsgi(fake) as server:
        app = make_app(TMDB_BASE_URL=server.url, OUTBOUND_TIMEOUT_SECONDS=1)
        with in_app(app):
            save_tmdb(actors, api_key=TMDB_KEY)
            results = [service.test(alice(actors), "tmdb")]
            save_tmdb(actors, api_key="ffffffffffffffffffffffffffffffff")
            results.append(service.test(alice(actors), "tmdb"))
            save_tmdb(actors, api_key=TMDB_KEY)
            fake.delay = 2.5
            for mode in ("rate_limited", "error", "malformed", "slow"):
                fake.mode = mode
                results.append(service.test(alice(actors), "tmdb"))
            fake.mode = "ok"

    assert [(r.status, r.status_label) for r in results] == [
        ("ok", "ok"), ("bad_credentials", "bad credentials"), ("rate_limited", "rate-limited"),
        ("unavailable", "unavailable"), ("bad_response", "bad response"), ("unreachable", "unreachable")]
    assert results[0].last_error is None and all(r.last_error for r in results[1:])
    assert "retry in 2 s" in results[2].last_error and "1 s" in results[5].last_error
    events = activity(app, "integration.tested")
    assert [e.details["result"] for e in events] == [r.status for r in results]
    assert [e.status for e in events] == ["ok"] + ["failed"] * 5
    shown = repr([e.details for e in events]) + "".join(r.last_error or "" for r in results)
    assert TMDB_KEY not in shown and "ffffffffffffffff" not in shown


def test_plex_test_against_the_fake_server(make_app, actors: Actors):
    fake = FakePlex(token=PLEX_TOKEN)
    app = make_app(OUTBOUND_TIMEOUT_SECONDS=1)
    with serve_wsgi(fake) as server, in_app(app):
        save_plex(actors, server.url)
        ok = service.test(alice(actors), "plex")
        assert (ok.status, ok.status_label, ok.last_error) == ("ok", "ok", None)

        save_plex(actors, server.url, token="wrong-token-456")
        bad = service.test(alice(actors), "plex")
        assert bad.status == "bad_credentials" and "wrong-token" not in (bad.last_error or "")

        fake.mode = "error"
        assert service.test(alice(actors), "plex").status == "unavailable"
        fake.mode, fake.slow_seconds = "slow", 1.5
        slow = service.test(alice(actors), "plex")
        assert slow.status == "unreachable" and slow.status_label == "unreachable"
        fake.mode = "ok"

    with in_app(app):
        assert service.test(alice(actors), "plex").status == "unreachable"  # the server is gone
    events = activity(app, "integration.tested")
    assert [e.details["result"] for e in events] == ["ok", "bad_credentials", "unavailable", "unreachable",
                                                      "unreachable"]
    assert all(PLEX_TOKEN not in repr(e.details) and "wrong-token-456" not in repr(e.details) for e in events)
    assert all(("X-Plex-Token", PLEX_TOKEN) not in q.items() for _m, _p, q in fake.requests)


def test_plex_sections_are_listed_and_only_reported_ones_are_kept(make_app, actors: Actors):
    app = make_app()
    with serve_wsgi(FakePlex(token=PLEX_TOKEN)) as server, in_app(app):
        save_plex(actors, server.url)
        sections = service.plex_sections(alice(actors))
        assert [(s.key, s.title, s.type) for s in sections] == [("1", "Movies", "movie"), ("2", "TV Shows", "show"),
                                                                 ("3", "Music", "artist")]

        view = service.select_plex_sections(alice(actors), ["2", "1", "2"])
        assert view.sections == [{"key": "2", "title": "TV Shows", "type": "show"},
                                 {"key": "1", "title": "Movies", "type": "movie"}]
        assert service.config_for("plex").settings["sections"] == view.sections

        with pytest.raises(InvalidInput):
            service.select_plex_sections(alice(actors), ["1", "99"])
        assert service.get("plex").sections == view.sections

        # Saving the card's other fields keeps the selection.
        save_plex(actors, server.url, token="")
        assert service.get("plex").sections == view.sections
        assert service.select_plex_sections(alice(actors), []).sections == []

    with in_app(app):
        with pytest.raises(IntegrationProblem) as gone:
            service.plex_sections(alice(actors))
        assert gone.value.badge == "unreachable"
    failures = activity(app, "integration.sections_failed")
    assert [e.details["result"] for e in failures] == ["unreachable"]
