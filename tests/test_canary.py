"""Canary secrets: plant them, use the app the way a household and a hostile visitor would, then look for them in
every log line (stdout and the GELF export), every text column of every table, the exports, the metrics and every
page that is not the one place a secret is meant to be shown.

Planted: integration secrets (TMDB key, Plex token, Barcode Lookup key, Google Books key), SECRET_KEY,
INTEGRATION_ENCRYPTION_KEY, METRICS_TOKEN, members' passwords (right and wrong ones), a password-reset token, an
invitation token and a session cookie. The providers are a local fake that refuses every call and echoes what it
was sent (URL, query string, headers) in its error body, and then a closed port, so an error path that copies a
provider's answer or an exception's URL into a log or a row is caught.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from sqlalchemy import select, text
from werkzeug.wrappers import Request, Response

from collectz import jobs
from collectz.extensions import db
from collectz.jobs.runner import build_worker
from collectz.models import User
from collectz.security import passwords
from collectz.web.requestlog import JsonFormatter
from tests.fakes.server import serve_wsgi
from tests.test_logexport import UdpCollector


def canary(kind: str) -> str:
    return f"cnry{kind}{secrets.token_hex(10)}"


C = {
    "tmdb_key": canary("tmdb"), "plex_token": canary("plex"), "barcode_key": canary("upc"),
    "google_key": canary("gbooks"), "secret_key": canary("secretkey") + "X" * 20,
    "enc_key": canary("enckey") + "Y" * 20, "metrics_token": canary("metrics"),
    "alice_password": canary("alicepw"), "bob_password": canary("bobpw"), "wrong_password": canary("wrongpw"),
    "new_password": canary("newpw"), "invitee_password": canary("invpw"),
}
HTMX = {"HX-Request": "true"}


def echo_refusal(environ: dict, start_response: Any) -> Any:
    """A provider that refuses everything and echoes the request (a badly behaved server or proxy)."""
    request = Request(environ)
    echo = {"status_message": f"Invalid API key: {request.query_string.decode()}", "url": request.url,
            "headers": dict(request.headers), "error": "forbidden " + request.full_path}
    return Response(json.dumps(echo), status=401, mimetype="application/json")(environ, start_response)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("werkzeug"):  # the fakes' own request log (our app never runs under werkzeug)
            return
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    loggers = [logging.getLogger(), logging.getLogger("collectz")]
    for logger in loggers:
        logger.addHandler(handler)
    root_level = loggers[0].level
    loggers[0].setLevel(logging.INFO)
    yield handler
    loggers[0].setLevel(root_level)
    for logger in loggers:
        logger.removeHandler(handler)


class Visit:
    """Every answer the app gave, with where it came from."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, int, str]] = []

    def __call__(self, client: Any, method: str, url: str, **kwargs: Any) -> Any:
        resp = client.open(url, method=method, **kwargs)
        self.answers.append((f"{method} {url}", resp.status_code, resp.get_data(as_text=True)))
        return resp


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def everything_in_the_database(app: Flask) -> str:
    """Every column of every row of every table, as text."""
    chunks = []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(select(table)).all():
                chunks.append(table.name + " " + " ".join(str(v) for v in row))
        db.session.remove()
    return "\n".join(chunks)


def test_canary_secrets_never_reach_logs_rows_exports_or_pages(make_app: Any, captured: Capture, job_app: None):
    gelf = UdpCollector()
    visit = Visit()
    try:
        with serve_wsgi(echo_refusal) as fake:
            overrides = f"barcodelookup={fake.url},googlebooks={fake.url},upcitemdb={fake.url}"
            app = make_app(SECRET_KEY=C["secret_key"], INTEGRATION_ENCRYPTION_KEY=C["enc_key"],
                           METRICS_TOKEN=C["metrics_token"], TMDB_BASE_URL=fake.url, LOG_LEVEL="DEBUG",
                           PROVIDER_URL_OVERRIDES=overrides, LOG_EXPORT="gelf",
                           LOG_EXPORT_GELF_URL=f"udp://127.0.0.1:{gelf.port}", AUDIT_LOG_MODE="mutations")
            tokens = exercise(app, visit, fake.url)
            # The same keys against a provider that is not there: connection errors carry the URL they tried.
            gone = make_app(SECRET_KEY=C["secret_key"], INTEGRATION_ENCRYPTION_KEY=C["enc_key"],
                            TMDB_BASE_URL=f"http://127.0.0.1:{closed_port()}", LOG_LEVEL="DEBUG",
                            PROVIDER_URL_OVERRIDES=f"barcodelookup=http://127.0.0.1:{closed_port()}")
            alice = signed_in(gone, "alice@example.org", C["alice_password"])
            for provider in ("tmdb", "barcode"):
                visit(alice, "POST", f"/admin/integrations/{provider}/test", headers=HTMX)
            visit(alice, "GET", "/library/lookup?q=Blade+Runner&media_type=movie", headers=HTMX)
        exports = {url: visit(alice, "GET", url) for url in ("/library/export.csv", "/library/export.json",
                                                             "/admin/activity.csv")}
        wanted = {**C, **tokens}
        gelf_messages = _drain(gelf)
    finally:
        gelf.close()

    assert len(captured.lines) > 50 and gelf_messages, "the exercise logged too little to mean anything"
    assert all(resp.status_code == 200 for resp in exports.values())
    places = {
        "log lines": "\n".join(captured.lines),
        "exported (GELF) log lines": "\n".join(gelf_messages),
        "database": everything_in_the_database(app),
        "exports": "\n".join(resp.get_data(as_text=True) for resp in exports.values()),
    }
    # Where a token is shown on purpose: once on the page that made it, and in the form that uses it (a hidden
    # field, also when that form comes back with a correction to make).
    shown_on_purpose = {"reset_token": ("/reset-links", "/auth/reset"),
                        "invite_token": ("/admin/invitations", "/auth/register")}
    leaks = []
    for name, secret in wanted.items():
        forms = {secret, quote(secret, safe="")}
        for place, blob in places.items():
            if any(f in blob for f in forms):
                leaks.append(f"{name} in {place}: …{_around(blob, secret)}…")
        for where, status, body in visit.answers:
            if any(f in body for f in forms) and not any(p in where for p in shown_on_purpose.get(name, ())):
                leaks.append(f"{name} in the answer to {where} ({status}): …{_around(body, secret)}…")
    assert leaks == []


def _around(blob: str, secret: str) -> str:
    at = blob.find(secret)
    if at < 0:
        at = blob.find(quote(secret, safe=""))
    return blob[max(0, at - 120):at + 40].replace("\n", " ")


def _drain(collector: UdpCollector) -> list[str]:
    import time

    time.sleep(0.3)  # the exporter's thread sends after the log call returns
    return [json.dumps(m) for m in collector.gelf()]


def signed_in(app: Flask, email: str, password: str) -> Any:
    client = app.test_client()
    resp = client.post("/auth/login", data={"email": email, "password": password})
    assert resp.status_code == 303, resp.status_code
    return client


def exercise(app: Flask, visit: Visit, fake_url: str) -> dict[str, str]:
    """A household's and a visitor's afternoon; returns the tokens the app handed out."""

    @app.route("/canary-boom")
    def boom() -> str:
        raise RuntimeError("an unexpected failure")

    with app.app_context():
        for email, name, role, password in (("alice@example.org", "Alice", "admin", C["alice_password"]),
                                            ("bob@example.org", "Bob", "user", C["bob_password"])):
            db.session.add(User(email=email, name=name, role=role, password_hash=passwords.hash_password(password)))
        db.session.commit()
        bob_id = db.session.scalar(select(User.id).where(User.email == "bob@example.org"))
        db.session.remove()
    anon = app.test_client()

    # A visitor guesses passwords (the last attempts are refused by the rate limit), then hits error pages.
    for attempt in range(8):  # the last ones against carol's account are refused by its rate limit
        email = "bob@example.org" if attempt < 2 else "carol@example.org"
        visit(anon, "POST", "/auth/login", data={"email": email, "password": C["wrong_password"]})
    visit(anon, "POST", "/auth/login", data={"email": "nobody@example.org", "password": C["wrong_password"]},
          headers=HTMX)
    visit(anon, "POST", "/auth/register", data={"email": "x@example.org", "name": "X",
                                                 "password": C["wrong_password"], "invite": "guessed-invite"})
    visit(anon, "GET", "/auth/reset?token=guessed-token-123")
    visit(anon, "GET", "/no/such/page")
    visit(anon, "POST", "/auth/logout", csrf=False)
    visit(anon, "GET", "/metrics", headers={"Authorization": "Bearer " + C["metrics_token"][:-1]})
    visit(anon, "GET", "/metrics", headers={"Authorization": "Bearer " + C["metrics_token"]})

    # Alice signs in through the form and sets up the integrations with their secrets.
    alice = app.test_client()
    visit(alice, "POST", "/auth/login", data={"email": "alice@example.org", "password": C["alice_password"]})
    session_token = alice.get_cookie(app.config["COLLECTZ"].SESSION_COOKIE_NAME).value
    cards = {
        "tmdb": {"tmdb-enabled": "y", "tmdb-language": "en-US", "tmdb-api_key": C["tmdb_key"]},
        "plex": {"plex-enabled": "y", "plex-base_url": fake_url, "plex-token": C["plex_token"]},
        "barcode": {"barcode-enabled": "y", "barcode-preset": "barcodelookup", "barcode-api_key": C["barcode_key"]},
        "books": {"books-enabled": "y", "books-provider": "googlebooks", "books-google_api_key": C["google_key"]},
    }
    for provider, data in cards.items():
        saved = visit(alice, "POST", f"/admin/integrations/{provider}", data=data)
        assert saved.status_code in (200, 303), (provider, saved.status_code, saved.get_data(as_text=True)[:300])
        visit(alice, "POST", f"/admin/integrations/{provider}/test")
        visit(alice, "POST", f"/admin/integrations/{provider}/test", headers=HTMX)
    visit(alice, "GET", "/admin/integrations/plex/sections", headers=HTMX)
    visit(alice, "GET", "/admin/integrations")
    visit(alice, "POST", "/imports/plex", data={})

    # A reset link and an invitation: tokens shown once to the admin.
    made = visit(alice, "POST", f"/admin/members/{bob_id}/reset-links")
    reset_token = re.search(r"/auth/reset\?token=([A-Za-z0-9_-]+)", made.get_data(as_text=True)).group(1)
    invited = visit(alice, "POST", "/admin/invitations", data={"email": "dora@example.org", "role": "user"})
    invite_token = re.search(r"/auth/register\?invite=([A-Za-z0-9_-]+)", invited.get_data(as_text=True)).group(1)

    # Bob looks things up, imports barcodes and uses his reset link.
    bob = signed_in(app, "bob@example.org", C["bob_password"])
    visit(bob, "GET", "/library/lookup?q=Blade+Runner&media_type=movie", headers=HTMX)
    visit(bob, "GET", "/library/lookup?q=9780441013593&media_type=book")
    visit(bob, "GET", "/library/lookup?q=036000291452&media_type=other&lookup_type=barcode", headers=HTMX)
    visit(bob, "POST", "/library/media/new", data={"title": "Blade Runner", "media_type": "movie", "copies": "1"})
    visit(bob, "POST", "/imports/barcodes", data={"codes": "036000291452\n9780441013593\n"})
    visit(bob, "POST", "/auth/password", data={"current_password": C["wrong_password"],
                                               "new_password": C["new_password"], "confirm_password": "x"})
    jobs.set_app(app)
    build_worker(app).work(burst=True)  # the import, then its enrichment against the refusing provider
    visit(bob, "GET", "/imports/jobs")
    for job_id in re.findall(r'data-job="(\d+)"', visit(bob, "GET", "/imports/jobs").get_data(as_text=True)):
        visit(bob, "GET", f"/imports/jobs/{job_id}")
        visit(bob, "GET", f"/imports/jobs/{job_id}/rows.csv")
    visit(anon, "GET", f"/auth/reset?token={reset_token}")
    visit(anon, "POST", "/auth/reset", data={"token": reset_token, "new_password": C["new_password"],
                                             "confirm_password": "mismatch"})
    visit(anon, "POST", "/auth/reset", data={"token": reset_token, "new_password": C["new_password"],
                                             "confirm_password": C["new_password"]})
    visit(anon, "GET", f"/auth/reset?token={reset_token}")  # used: refused
    fresh = app.test_client()
    visit(fresh, "GET", f"/auth/register?invite={invite_token}")
    visit(fresh, "POST", "/auth/register", data={"email": "dora@example.org", "name": "Dora",
                                                  "password": C["invitee_password"], "invite": invite_token})
    visit(alice, "GET", "/admin/activity")
    visit(alice, "GET", "/admin/members")
    visit(alice, "GET", "/canary-boom")
    visit(alice, "POST", "/library/media/new", data={"title": "No token"}, csrf=False)
    with app.app_context():
        db.session.execute(text("SELECT 1"))
        db.session.remove()
    return {"reset_token": reset_token, "invite_token": invite_token, "session_token": session_token}
