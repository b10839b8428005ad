"""Hardening: the trusted-proxy rule, security headers on every kind of answer, templates without inline script,
rate limits per endpoint class (with their 429 page, fragment and activity event), production refusals."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask

from collectz.config import ConfigError, Settings
from collectz.extensions import db, limiter
from collectz.models import UserSession
from collectz.web import limits
from tests.conftest import PROJECT_ROOT, Actors, activity

HTMX = {"HX-Request": "true"}
TEMPLATES = PROJECT_ROOT / "templates"
GOOD_SECRET = "k3y-" + "".join(chr(97 + i % 26) for i in range(40))
PROD = {"COLLECTZ_ENV": "production", "SECRET_KEY": GOOD_SECRET, "REDIS_URL": "redis://redis:6379/0",
        "INTEGRATION_ENCRYPTION_KEY": "enc-" + "".join(chr(65 + i % 26) for i in range(40))}


def wrong_login(client: Any, email: str = "bob@example.org", **kwargs: Any) -> Any:
    return client.post("/auth/login", data={"email": email, "password": "not the password"}, **kwargs)


# --- the trusted-proxy rule -----------------------------------------------------------------------------------


def test_a_forged_forwarded_for_is_ignored_without_a_trusted_proxy(make_app):
    app = make_app(TRUST_PROXY_HOPS=0, LOGIN_LIMIT_PER_IP="2 per minute", LOGIN_LIMIT_PER_ACCOUNT="100 per minute")
    actors = Actors(app)
    client = app.test_client()

    codes = [wrong_login(client, f"user{i}@example.org", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
             for i in range(3)]
    signed_in = client.post("/auth/login", data={"email": "bob@example.org", "password": actors.PASSWORD},
                            headers={"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"})

    assert codes == [422, 422, 429]  # a new forged address per attempt does not buy new attempts
    assert signed_in.status_code == 429
    assert {e.ip for e in activity(app, "auth.login_failed")} == {"127.0.0.1"}
    page = client.get("/auth/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in page.headers  # nor is a forged scheme believed


def test_behind_one_trusted_proxy_its_forwarded_for_is_the_client(make_app):
    app = make_app(TRUST_PROXY_HOPS=1, LOGIN_LIMIT_PER_IP="2 per minute", LOGIN_LIMIT_PER_ACCOUNT="100 per minute")
    actors = Actors(app)
    client = app.test_client()

    # The proxy appends the address it saw; whatever the client wrote before it is not trusted.
    codes = [wrong_login(client, f"user{i}@example.org",
                         headers={"X-Forwarded-For": f"6.6.6.6, 192.0.2.{i}"}).status_code for i in range(3)]
    limited = [wrong_login(client, f"other{i}@example.org",
                           headers={"X-Forwarded-For": f"192.0.2.{i % 1}, 192.0.2.50"}).status_code for i in range(3)]
    signed_in = client.post("/auth/login", data={"email": "bob@example.org", "password": actors.PASSWORD},
                            headers={"X-Forwarded-For": "6.6.6.6, 192.0.2.99", "X-Forwarded-Proto": "https",
                                     "Referer": "https://localhost/auth/login"})  # CSRF over HTTPS checks it

    assert codes == [422, 422, 422]  # three clients behind the proxy, one attempt each
    assert limited == [422, 422, 429]  # one client behind the proxy, whatever it forges in front
    assert signed_in.status_code == 303 and "Strict-Transport-Security" in signed_in.headers
    assert {e.ip for e in activity(app, "auth.login_failed")} == {"192.0.2.0", "192.0.2.1", "192.0.2.2",
                                                                  "192.0.2.50"}
    with app.app_context():
        assert [s.ip for s in db.session.scalars(db.select(UserSession))] == ["192.0.2.99"]


# --- security headers -----------------------------------------------------------------------------------------


def csp(resp: Any) -> dict[str, list[str]]:
    policy = resp.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


def assert_hardened(resp: Any, *, static: bool = False) -> None:
    directives = csp(resp)
    script = directives.get("script-src", directives["default-src"])
    assert script == ["'self'"], script
    assert not [d for d, v in directives.items() if "'unsafe-inline'" in v and d != "style-src-attr"]
    assert not [d for d, v in directives.items() if "'unsafe-eval'" in v]
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert directives["base-uri"] == ["'self'"] and directives["form-action"] == ["'self'"]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "same-origin"
    if not static:
        assert resp.headers["Cache-Control"] == "no-store", resp.request.path


def test_every_kind_of_answer_carries_the_security_headers(make_app):
    app = make_app(RATELIMIT_LOOKUPS="1 per minute", METRICS_TOKEN="t" * 32)
    actors = Actors(app)
    anon, bob, vera = app.test_client(), actors.client("bob"), actors.client("vera")

    @app.route("/boom")
    def boom():
        raise RuntimeError("kaboom")

    answers = {
        "login page": anon.get("/auth/login"),
        "redirect to sign in": anon.get("/library/"),
        "signed-in page": bob.get("/library/"),
        "fragment": bob.get("/library/movies", headers=HTMX),
        "form refused (422)": bob.post("/library/media/new", data={"title": "", "media_type": "movie"}),
        "write (303)": bob.post("/library/media/new", data={"title": "Alien", "media_type": "movie",
                                                             "copies": "1"}),
        "forbidden (403)": vera.post("/library/media/new", data={"title": "X", "media_type": "movie"}),
        "csrf refused": bob.post("/library/media/new", data={"title": "X"}, csrf=False),
        "not found": bob.get("/library/media/999999"),
        "server error": bob.get("/boom"),
        "json": bob.get("/auth/csrf"),
        "health": anon.get("/healthz"),
        "metrics refused": anon.get("/metrics"),
        "first lookup": bob.get("/library/lookup?q=Alien&media_type=movie", headers=HTMX),
        "rate limited": bob.get("/library/lookup?q=Alien&media_type=movie", headers=HTMX),
    }
    assert answers["rate limited"].status_code == 429 and answers["server error"].status_code == 500
    for name, resp in answers.items():
        assert_hardened(resp), name
    assert_hardened(anon.get("/static/js/app.js"), static=True)
    assert "no-store" not in anon.get("/static/js/app.js").headers.get("Cache-Control", "")
    secure = bob.get("/library/", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "Strict-Transport-Security" not in answers["signed-in page"].headers  # plain http: no HSTS


# --- no inline script anywhere --------------------------------------------------------------------------------

_HANDLER = re.compile(r"""<[a-zA-Z][^>]*?\s(on[a-z]+|hx-on[:\-][^\s=]*)\s*=""", re.S)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
_JS_URL = re.compile(r"""(href|src|action|formaction)\s*=\s*["']?\s*javascript:""", re.I)


def inline_script_problems(text: str) -> list[str]:
    """Inline handlers (onclick=, hx-on:…), <script> with a body or without src, javascript: URLs."""
    problems = [f"inline handler {m.group(1)}=" for m in _HANDLER.finditer(text)]
    for attrs, body in _SCRIPT.findall(text):
        if body.strip() or not re.search(r"\ssrc\s*=", attrs):
            problems.append("inline <script>")
    problems += [f"javascript: URL in {m.group(1)}" for m in _JS_URL.finditer(text)]
    return problems


@pytest.mark.parametrize("snippet", [
    '<button onclick="go()">', '<body onload=\'x()\'>', '<div hx-on:click="alert(1)">', '<a hx-on-click="x">',
    "<script>alert(1)</script>", '<script type="module">import("x")</script>', '<a href="javascript:void(0)">',
    '<form\n  class="x"\n  onsubmit="return false">',
])
def test_the_scanner_finds_each_kind_of_inline_script(snippet: str):
    assert inline_script_problems(snippet)


def test_no_template_has_inline_script_or_handlers():
    files = sorted(TEMPLATES.rglob("*.html"))
    assert len(files) > 20
    found = {str(f.relative_to(TEMPLATES)): p for f in files if (p := inline_script_problems(f.read_text()))}
    assert found == {}
    # and what is allowed stays allowed: external scripts and data attributes
    assert inline_script_problems('<script src="/static/js/app.js" defer></script><p data-online="1">') == []


def test_htmx_is_configured_by_a_meta_tag_that_forbids_eval_and_script_tags():
    import json

    base = (TEMPLATES / "base.html").read_text()
    config = json.loads(re.search(r"""<meta name="htmx-config" content='([^']+)'>""", base).group(1))
    assert config["allowEval"] is False and config["allowScriptTags"] is False
    assert {"code": "422", "swap": True} in config["responseHandling"]


# --- rate limits per endpoint class ---------------------------------------------------------------------------


def test_every_endpoint_has_a_class_and_the_named_endpoints_exist(app: Flask):
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    assert limits.LOOKUPS | limits.AUTH | limits.EXEMPT <= endpoints
    expected = {
        ("auth.login", "POST"): "auth", ("auth.login", "GET"): "default", ("auth.reset", "GET"): "auth",
        ("auth.register", "POST"): "auth", ("auth.password", "POST"): "auth",
        ("library.media_new", "POST"): "writes", ("library.media_new", "GET"): "default",
        ("admin.member_role", "POST"): "writes", ("imports.delicious_upload", "POST"): "imports",
        ("imports.csv_start", "POST"): "imports", ("imports.job_detail", "GET"): "default",
        ("library.lookup", "GET"): "lookups", ("integrations.card_test", "POST"): "lookups",
        ("integrations.plex_sections", "GET"): "lookups", ("library.review_search", "POST"): "lookups",
        ("library.index", "GET"): "default", ("static", "GET"): None, ("core.healthz", "GET"): None,
        ("metrics", "GET"): None,
    }
    assert {key: limits.endpoint_class(*key) for key in expected} == expected
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert limits.endpoint_class(rule.endpoint, method) in (*limits.CLASSES, None)


def test_writes_are_limited_per_member_and_apart_from_reading(make_app):
    app = make_app(RATELIMIT_WRITES="2 per minute")
    actors = Actors(app)
    bob, carol = actors.client("bob"), actors.client("carol")

    def add(client: Any, title: str) -> int:
        return client.post("/library/media/new", data={"title": title, "media_type": "movie",
                                                       "copies": "1"}).status_code

    assert [add(bob, f"Film {i}") for i in range(3)] == [303, 303, 429]
    assert bob.get("/library/").status_code == 200  # reading is another class
    assert add(carol, "Carol's film") == 303  # another member, another budget
    assert bob.post("/library/duplicates/merge", data={}).status_code == 429  # every write shares the class


def test_imports_lookups_auth_and_everything_else_have_their_own_limits(make_app):
    app = make_app(RATELIMIT_IMPORTS="1 per minute", RATELIMIT_LOOKUPS="1 per minute", RATELIMIT_AUTH="2 per minute",
                   RATELIMIT_DEFAULT="12 per minute", RATELIMIT_WRITES="off")
    actors = Actors(app)
    bob, anon = actors.client("bob"), app.test_client()

    imports = [bob.post("/imports/barcodes", data={"codes": "9780441013593"}).status_code for _ in range(2)]
    lookups = [bob.get("/library/lookup?q=Dune&media_type=book", headers=HTMX).status_code for _ in range(2)]
    resets = [anon.get("/auth/reset?token=guess" + str(i)).status_code for i in range(3)]
    writes = [bob.post("/library/media/new", data={"title": f"T{i}", "media_type": "book", "copies": "1"})
              .status_code for i in range(5)]
    reads = [anon.get("/auth/login").status_code for _ in range(13)]  # bob's budget went on CSRF tokens
    health = {anon.get("/healthz").status_code for _ in range(6)}

    assert imports[0] in (200, 303) and imports[1] == 429
    assert lookups == [200, 429]
    assert resets[:2] != [429, 429] and resets[2] == 429  # guessing reset links is an auth-class action
    assert writes == [303] * 5  # "off"
    assert reads[:12] == [200] * 12 and reads[12] == 429
    assert health == {200}


def test_signing_in_counts_against_the_auth_class_even_when_it_succeeds(make_app):
    app = make_app(RATELIMIT_AUTH="3 per minute", LOGIN_LIMIT_PER_IP="100 per minute")
    actors = Actors(app)
    codes = [actors.app.test_client().post("/auth/login", data={"email": "bob@example.org",
                                                                "password": actors.PASSWORD}).status_code
             for _ in range(4)]
    assert codes == [303, 303, 303, 429]


def test_a_refusal_is_a_page_or_a_fragment_with_retry_after_and_one_activity_event(make_app):
    app = make_app(RATELIMIT_DEFAULT="1 per minute")
    actors = Actors(app)
    bob = actors.client("bob")
    assert bob.get("/library/").status_code == 200

    page = bob.get("/library/")
    fragment = bob.get("/library/movies", headers=HTMX)
    more = [bob.get("/library/").status_code for _ in range(5)]

    assert page.status_code == fragment.status_code == 429 and set(more) == {429}
    assert "<html" in page.get_data(as_text=True) and "Too many" in page.get_data(as_text=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "data-error-message" in body
    for resp in (page, fragment):
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    events = activity(app, "security.rate_limited")
    assert len(events) == 1  # seven refusals, one event: a flood must not flood the activity log
    assert events[0].actor_id == actors.ids["bob"] and events[0].details["limit_class"] == "default"
    assert events[0].http_status == 429


def test_limits_are_kept_in_redis_when_it_is_configured(app: Flask, actors: Actors, backend):
    actors.client("bob").get("/library/")
    storage = type(limiter.storage).__name__
    if not backend.redis_url:
        assert storage == "MemoryStorage"
        return
    from collectz import queue

    assert storage == "RedisStorage"
    keys = [k.decode() for k in queue.connection(app).keys("*collectz-limits*")]
    assert any("class:default" in k and f"member:{actors.ids['bob']}" in k for k in keys), keys


# --- production refuses weak operations settings --------------------------------------------------------------


@pytest.mark.parametrize("env,message", [
    ({"RATELIMIT_WRITES": "lots"}, "RATELIMIT_WRITES must be a rate"),
    ({"LOGIN_LIMIT_PER_IP": "20 per fortnight"}, "LOGIN_LIMIT_PER_IP must be a rate"),
    ({"LOG_EXPORT": "splunk"}, "LOG_EXPORT must be gelf, syslog or both"),
    ({"LOG_EXPORT": "gelf"}, "LOG_EXPORT=gelf needs LOG_EXPORT_GELF_URL"),
    ({"LOG_EXPORT": "syslog", "LOG_EXPORT_SYSLOG_URL": "http://logs:514"}, "LOG_EXPORT_SYSLOG_URL must be udp://"),
    ({"LOG_EXPORT": "gelf", "LOG_EXPORT_GELF_URL": "udp://graylog"}, "LOG_EXPORT_GELF_URL must be udp://"),
    ({"LOG_EXPORT_LEVEL": "LOUD"}, "LOG_EXPORT_LEVEL must be one of"),
    ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN is too short"),
])
def test_production_refuses_malformed_operations_settings(env: dict[str, str], message: str):
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({**PROD, **env})
    assert message in str(excinfo.value)


def test_good_operations_settings_start():
    s = Settings.from_env({**PROD, "RATELIMIT_LOOKUPS": "off", "RATELIMIT_AUTH": "5/minute;50/day",
                           "LOG_EXPORT": "gelf,syslog", "LOG_EXPORT_GELF_URL": "tcp://graylog:12201",
                           "LOG_EXPORT_SYSLOG_URL": "udp://10.0.0.2:514", "METRICS_TOKEN": "m" * 32})
    assert s.RATELIMIT_LOOKUPS == "off" and s.METRICS_TOKEN == "m" * 32
    assert Settings.from_env({"METRICS_TOKEN": "short"}).METRICS_TOKEN == "short"  # development tolerates it


def test_values_in_a_failed_statement_are_not_echoed_in_its_error(make_app):
    """A database error is logged with its traceback: SQLAlchemy must leave the statement's values out of it."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    app = make_app()
    with app.app_context():
        with pytest.raises(DBAPIError) as excinfo:
            db.session.execute(text("SELECT no_such_column FROM users WHERE email = :v"), {"v": "canary-7f3a9"})
        db.session.rollback()
    assert "canary-7f3a9" not in str(excinfo.value) and "no_such_column" in str(excinfo.value)
