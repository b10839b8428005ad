"""Cross-cutting web behaviour: CSRF, activity log modes, request logging, errors, fragments, health."""

from __future__ import annotations

import logging
import re
import time

import pytest
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Media
from collectz.services.audit import REDACTED, redact
from tests.conftest import Actors, activity


def csrf_from_page(html: str) -> str:
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


# --- CSRF -----------------------------------------------------------------------------------------

def test_post_without_csrf_token_is_403_and_audited(app, actors: Actors):
    bob = actors.client("bob")

    resp = bob.post("/library/media/new", data={"title": "Sneaky", "media_type": "movie"}, csrf=False)

    assert resp.status_code == 403
    assert b"security token" in resp.data
    assert resp.headers["X-CSRF-Error"] == "invalid"
    with app.app_context():
        assert db.session.scalar(select(func.count(Media.id))) == 0
    event = activity(app, "security.csrf_failed")[0]
    assert event.actor_id == actors.ids["bob"] and event.details["path"] == "/library/media/new"
    assert event.http_status == 403


def test_same_post_with_the_pages_form_token_works(app, actors: Actors):
    bob = actors.client("bob")
    token = csrf_from_page(bob.get("/library/media/new").get_data(as_text=True))

    resp = bob.post("/library/media/new", data={"title": "Fine", "media_type": "movie", "copies": "1",
                                                "csrf_token": token}, csrf=False)

    assert resp.status_code == 303


def test_htmx_post_sends_token_in_header_from_body_hx_headers(app, actors: Actors):
    bob = actors.client("bob")
    page = bob.get("/library/").get_data(as_text=True)
    token = re.search(r"hx-headers='\{\"X-CSRFToken\": \"([^\"]+)\"\}'", page).group(1)

    resp = bob.post("/library/media/new", data={"title": "Via htmx", "media_type": "movie", "copies": "1"},
                    headers={"HX-Request": "true", "X-CSRFToken": token}, csrf=False)

    assert resp.status_code == 204 and resp.headers["HX-Redirect"].startswith("/library/media/")


def test_expired_token_is_refused_with_a_hint_and_a_fresh_one_works(make_app):
    app = make_app(CSRF_TIME_LIMIT_SECONDS=1)
    actors = Actors(app)
    bob = actors.client("bob")
    old = bob.get("/auth/csrf").get_json()
    assert old["refresh_seconds"] == 0 or old["refresh_seconds"] <= 1
    time.sleep(2.1)  # token timestamps have one-second resolution

    stale = bob.post("/auth/profile", data={"name": "Bobby", "email": "bob@example.org"},
                     headers={"X-CSRFToken": old["token"]}, csrf=False)
    fresh = bob.get("/auth/csrf").get_json()["token"]
    retried = bob.post("/auth/profile", data={"name": "Bobby", "email": "bob@example.org"},
                       headers={"X-CSRFToken": fresh}, csrf=False)

    assert stale.status_code == 403 and stale.headers["X-CSRF-Error"] == "expired"
    assert b"expired" in stale.data
    assert retried.status_code == 303


def test_pages_tell_the_script_when_to_refresh_the_token(make_app):
    app = make_app(CSRF_TIME_LIMIT_SECONDS=600)
    page = app.test_client().get("/auth/register").get_data(as_text=True)
    assert '<meta name="csrf-refresh-seconds" content="300">' in page
    assert 'data-csrf-url="/auth/csrf"' in page


# --- activity log -----------------------------------------------------------------------------------

def test_redaction_of_secrets():
    details = {"password": "hunter22", "api_key": "abc", "nested": {"token": "t", "title": "ok"},
               "password_changed": True, "items": [{"secret": "s"}]}
    assert redact(details) == {"password": REDACTED, "api_key": REDACTED,
                               "nested": {"token": REDACTED, "title": "ok"}, "password_changed": True,
                               "items": [{"secret": REDACTED}]}


def test_audit_record_redacts_what_it_stores(ctx):
    from collectz.services import audit

    audit.record("integration.updated", details={"api_key": "sk-live-123", "provider": "tmdb"}, commit=True)

    row = activity(ctx, "integration.updated")[0]
    assert row.details == {"api_key": REDACTED, "provider": "tmdb"}


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("off", []),
        ("failures", [("GET", 404)]),
        ("mutations", [("POST", 303), ("GET", 404)]),
        ("all", [("GET", 200), ("POST", 303), ("GET", 404)]),
    ],
)
def test_audit_log_mode_adds_request_outcome_events(make_app, mode, expected):
    app = make_app(AUDIT_LOG_MODE=mode)
    actors = Actors(app)
    bob = actors.client("bob")
    bob.get("/library/")
    bob.post("/library/media/new", data={"title": "Logged", "media_type": "movie", "copies": "1"})
    bob.get("/library/media/424242")

    events = [e for e in activity(app, "http.request") if e.details["path"] != "/auth/csrf"]  # the test client's
    assert [(e.details["method"], e.details["status"]) for e in events] == expected
    assert all(e.actor_id == actors.ids["bob"] and e.request_id for e in events)
    # explicit domain events are there whatever the mode
    assert len(activity(app, "media.created")) == 1


# --- request logging ---------------------------------------------------------------------------------

class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def request_log():
    handler = Collect()
    logger = logging.getLogger("collectz.request")
    logger.addHandler(handler)
    yield handler.records
    logger.removeHandler(handler)


def test_every_request_is_logged_once_with_its_id(make_app, request_log):
    app = make_app(LOG_LEVEL="INFO")
    actors = Actors(app)
    bob = actors.client("bob")

    @app.route("/boom")
    def boom():
        raise RuntimeError("kaboom")

    ok = bob.get("/library/", headers={"X-Request-ID": "abcdef123456"})
    missing = bob.get("/nowhere")
    failed = bob.get("/boom")

    fields = [r.fields for r in request_log]
    assert [(f["path"], f["status"]) for f in fields] == [("/library/", 200), ("/nowhere", 404), ("/boom", 500)]
    assert fields[0]["request_id"] == "abcdef123456" == ok.headers["X-Request-ID"]
    assert fields[1]["request_id"] == missing.headers["X-Request-ID"] != fields[0]["request_id"]
    assert all(f["user_id"] == actors.ids["bob"] and f["duration_ms"] >= 0 and f["method"] == "GET"
               for f in fields)
    assert failed.status_code == 500 and b"Something went wrong" in failed.data


def test_json_formatter_writes_one_json_line():
    import json

    from collectz.web.requestlog import JsonFormatter

    record = logging.LogRecord("collectz.request", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"request_id": "r1", "status": 200}
    line = JsonFormatter().format(record)
    assert "\n" not in line and json.loads(line)["request_id"] == "r1"


# --- errors, fragments, headers ----------------------------------------------------------------------

def test_error_pages_are_pages_and_fragments(actors: Actors):
    bob = actors.client("bob")
    page = bob.get("/library/media/31337")
    fragment = bob.get("/library/media/31337", headers={"HX-Request": "true"})

    assert page.status_code == fragment.status_code == 404
    assert b"<html" in page.data and b"<html" not in fragment.data
    assert b"data-error-message" in fragment.data


def test_500_rolls_back_the_session(app, actors: Actors):
    bob = actors.client("bob")

    @app.route("/half-write")
    def half_write():
        db.session.add(Media(title="Half", media_type="movie", library_id=1, added_by=None))
        db.session.flush()
        raise RuntimeError("after a write")

    assert bob.get("/half-write").status_code == 500
    with app.app_context():
        assert db.session.scalar(select(func.count(Media.id))) == 0


def test_library_list_is_a_block_for_htmx_and_a_page_otherwise(actors: Actors):
    bob = actors.client("bob")
    for title in ("The Thing", "Alien", "A Bug's Life"):
        bob.post("/library/media/new", data={"title": title, "media_type": "movie", "copies": "1"})

    page = bob.get("/library/movies")
    fragment = bob.get("/library/movies", headers={"HX-Request": "true"})
    boosted = bob.get("/library/movies", headers={"HX-Request": "true", "HX-Boosted": "true"})
    restore = bob.get("/library/movies", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})

    assert b'id="item-list"' in page.data and b"<html" in page.data
    assert b"<html" not in fragment.data and b"3 items" in fragment.data
    assert b"<html" in boosted.data and b"<html" in restore.data
    for resp in (page, fragment, boosted):
        assert "HX-Request" in resp.headers["Vary"]
    text = fragment.get_data(as_text=True)
    # sorted by title without leading articles
    assert text.index("Alien") < text.index("A Bug&#39;s Life") < text.index("The Thing")


def test_security_headers_on_every_response(client, actors):
    for resp in (client.get("/auth/login"), client.get("/healthz"), client.get("/nowhere")):
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert resp.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in client.get("/auth/login").headers
    assert "Strict-Transport-Security" in client.get("/auth/login", base_url="https://localhost").headers


def test_pages_have_no_inline_scripts_or_handlers(actors: Actors):
    html = actors.client("alice").get("/library/").get_data(as_text=True)
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
    assert re.search(r"\son[a-z]+=", html) is None
    assert "/static/vendor/htmx-2." in html


def test_base_layout_shows_nav_and_version(actors: Actors):
    from collectz.version import __version__, short_sha

    admin = actors.client("alice").get("/library/").get_data(as_text=True)
    member = actors.client("bob").get("/library/").get_data(as_text=True)
    for section in ("All", "Movies", "TV", "Books", "Music", "Games", "Comics", "Other"):
        assert f">{section}</a>" in admin
    assert ">Admin</a>" in admin and ">Admin</a>" not in member
    assert f"collectZ {__version__}" in admin and short_sha() in admin
    assert 'name="viewport"' in admin


# --- health ---------------------------------------------------------------------------------------

def test_healthz_reports_version_sha_db_and_queue(client, backend):
    from collectz.version import __version__, git_sha

    body = client.get("/healthz").get_json()

    assert body["status"] == "ok"
    assert body["version"] == __version__ and body["git_sha"] == git_sha()
    assert body["database"] == "ok" and body["queue"] == "ok"
    assert body["database_backend"] == backend.name
    assert body["queue_backend"] == ("redis" if backend.redis_url else "embedded")


def test_healthz_is_503_when_the_database_is_down(make_app, tmp_path):
    app = make_app(DATABASE_URL="sqlite:///" + str(tmp_path / "missing-dir" / "x.db"))
    resp = app.test_client().get("/healthz")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["status"] == "down" and body["database"].startswith("unreachable")


def test_healthz_reports_an_unreachable_queue(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    body = app.test_client().get("/healthz").get_json()
    assert body["queue"] == "unreachable" and body["status"] == "degraded"
