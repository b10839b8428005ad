"""RBAC regression pack: every admin and member route in app.url_map, for every role.

Routes are enumerated from the URL map, so a route added later is covered without touching this file,
unless it needs a new URL placeholder (add it to PLACEHOLDERS; an unknown one fails loudly) or has a
special rule (add it to SPECIAL with the reason). The expected outcome is a small table:

             | read (GET-only)   | form (GET of a write route) | write (POST, PUT, PATCH, DELETE)
  anonymous  | 303 → /auth/login | 303 → /auth/login            | 303 → /auth/login
  viewer     | allowed           | 403                          | 403
  user       | allowed           | not refused                  | not refused
  admin      | allowed           | not refused                  | not refused

and under /admin/ users and viewers get 403 for everything. "allowed" is a 2xx/3xx that is not a
redirect to sign in; "not refused" also admits the 400/404/409/422 an empty form may earn; every 403
is the error page (`data-error-message`) and is audited as `permission.denied` with its method and path.
Every feature flag is turned on first, so a route behind `require_feature` is checked, not hidden.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from werkzeug.routing import Rule

from collectz.extensions import db
from collectz.models import ImportRow, Invite, Media, PasswordReset, SyncJob, User, UserSession
from collectz.models.base import utcnow
from collectz.queue import get_queue
from collectz.security import passwords
from collectz.services import enrichment, flags
from tests.conftest import Actors, activity

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
LOGIN = "/auth/login"

# Routes outside the role table, each with why. Anything not listed here is a member route, or an
# admin route when its path starts with /admin/.
SPECIAL = {
    "static": "CSS, JS and htmx are public: the sign-in page needs them",
    "core.healthz": "load balancers and Docker health checks call it without an account",
    "core.index": "sends a visitor to the library or to sign in; shows nothing itself",
    "auth.csrf_token": "a page left open (even the sign-in page) refreshes its CSRF token",
    "api.health": "the API's health check answers without credentials, like /healthz",
    "api.openapi": "the API's OpenAPI description is public (tests/test_api_openapi.py)",
    "metrics": "Prometheus scrapes it with the METRICS_TOKEN bearer token, not an account (tests/test_metrics.py)",
}
# The auth blueprint is sign-in itself (log in, register, log out, claim an invite, reset a password) and
# the signed-in account's own profile: public or own-account by design; tests/test_auth.py covers it.
SPECIAL_BLUEPRINTS = {"auth": "sign-in flows and the account's own profile (tests/test_auth.py)"}
# GET-only routes that serve a write form's parts, so viewers get 403 there as on the form itself.
WRITE_HELPERS = {"library.media_fields": "the type-specific part of the add/edit item form",
                 "library.lookup": "the look-up box of the add/edit item form (candidates to fill it with)",
                 "imports.csv_map": "the column-mapping step of the CSV import form"}
# Member routes about one member's own record (the placeholder's import job is bob's): another member who is not
# an admin reading them gets 404, as if it did not exist (tests/test_imports_web.py covers owner and admin).
OWNER_SCOPED = {"imports.job_detail", "imports.job_rows", "imports.job_rows_csv", "api.import_get", "api.import_rows"}
RECORD_OWNER = "bob"
# Path prefixes of admin-only areas (an admin-only area outside /admin/ would be added here).
ADMIN_PREFIXES = ("/admin/", "/api/v1/admin/")
# Routes answering JSON: an anonymous request is 401, not a redirect, and a 403 is the API's JSON error
# (tests/test_api_contract.py covers each API operation per role and per token scope).
JSON_BLUEPRINTS = {"api"}


@dataclass
class World:
    """The data every route's placeholders point at; built once per test."""

    app: Flask
    actors: Actors
    media_id: int
    target_user_id: int  # "dave": admin routes about a member act on him, never on a signed-in actor
    _cache: dict[str, Any]

    def lazy(self, name: str, make: Callable[[], Any]) -> Any:
        if name not in self._cache:
            with self.app.app_context():
                self._cache[name] = make()
                db.session.commit()
        return self._cache[name]


def _invite_id(w: World) -> int:
    invite = Invite(email="invited@example.org", token_hash="rbac-invite", role="user",
                    expires_at=utcnow() + timedelta(days=1), created_by=w.actors.ids["alice"])
    db.session.add(invite)
    db.session.flush()
    return invite.id


def _session_id(w: World) -> int:
    row = UserSession(token_hash="rbac-session", user_id=w.target_user_id, expires_at=utcnow() + timedelta(days=1))
    db.session.add(row)
    db.session.flush()
    return row.id


def _reset_id(w: World) -> int:
    row = PasswordReset(user_id=w.target_user_id, token_hash="rbac-reset", expires_at=utcnow() + timedelta(hours=1),
                        created_by=w.actors.ids["alice"])
    db.session.add(row)
    db.session.flush()
    return row.id


def _job_id(w: World) -> int:
    job = SyncJob(kind="csv", status="succeeded", created_by=w.actors.ids["bob"])
    db.session.add(job)
    db.session.flush()
    return job.id


def _row_id(w: World) -> int:
    row = ImportRow(job_id=PLACEHOLDERS["job_id"](w), row_number=1, outcome="failed", message="no title",
                    raw={"line": 2, "title": ""})
    db.session.add(row)
    db.session.flush()
    return row.id


def _upload_token(w: World) -> str:
    from collectz.services import imports

    bob = db.session.get(User, w.actors.ids["bob"])
    return imports.save_upload(bob, "csv", "rbac.csv", io.BytesIO(b"title,year\nDune,1965\n")).token


# Every URL placeholder an admin or member route uses, with a real value. A new placeholder fails the pack
# until it is added here.
PLACEHOLDERS: dict[str, Callable[[World], Any]] = {
    "media_id": lambda w: w.media_id,  # an item bob added: bob may edit it as its owner, carol may not
    "section": lambda w: "books",  # not "all": /library/all is a canonical redirect (308) to /library/
    "key": lambda w: "import_csv",  # a feature flag
    "provider": lambda w: "tmdb",  # an integration card (not configured: its Test answers without the network)
    "user_id": lambda w: w.target_user_id,
    "member_id": lambda w: w.target_user_id,
    "invite_id": lambda w: w.lazy("invite_id", lambda: _invite_id(w)),
    "session_id": lambda w: w.lazy("session_id", lambda: _session_id(w)),
    "reset_id": lambda w: w.lazy("reset_id", lambda: _reset_id(w)),
    "job_id": lambda w: w.lazy("job_id", lambda: _job_id(w)),
    "row_id": lambda w: w.lazy("row_id", lambda: _row_id(w)),  # a failed row of that job
    "review_id": lambda w: w.lazy("review_id", lambda: enrichment.open_review(w.media_id, [], "rbac").id),  # bob's item
    "token": lambda w: w.lazy("token", lambda: _upload_token(w)),  # a CSV file bob uploaded, not yet imported
    # an rq job waiting on one of our queues (Admin → Queues shows it; retry/delete answer 409 for it)
    "rq_job_id": lambda w: w.lazy(
        "rq_job_id", lambda: get_queue("maintenance").enqueue("collectz.jobs.maintenance.cleanup_sessions").id),
}
_PLACEHOLDER = re.compile(r"<(?:[^:<>]+:)?([^<>:]+)>")


@dataclass(frozen=True)
class Probe:
    endpoint: str
    area: str  # "admin" | "member"
    kind: str  # "read" | "form" | "write"
    method: str
    url: str

    def __str__(self) -> str:
        return f"{self.method} {self.url} ({self.endpoint}, {self.area} {self.kind})"


def special_reason(rule: Rule) -> str | None:
    if rule.endpoint in SPECIAL:
        return SPECIAL[rule.endpoint]
    return SPECIAL_BLUEPRINTS.get(rule.endpoint.split(".", 1)[0]) if "." in rule.endpoint else None


def fill(rule: Rule, world: World | None) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in PLACEHOLDERS:
            pytest.fail(f"{rule.rule} ({rule.endpoint}) has the placeholder <{name}>: add a value for it to "
                        "PLACEHOLDERS in tests/test_rbac.py", pytrace=False)
        return str(PLACEHOLDERS[name](world)) if world else "1"

    return _PLACEHOLDER.sub(value, rule.rule)


def probes(app: Flask, world: World | None = None) -> Iterator[Probe]:
    """One probe per (route, method) of every admin and member route."""
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if special_reason(rule) is not None:
            continue
        url = fill(rule, world)
        area = "admin" if rule.rule.startswith(ADMIN_PREFIXES) else "member"
        methods = rule.methods or set()
        if "GET" in methods:
            writes = bool(methods & WRITE_METHODS) or rule.endpoint in WRITE_HELPERS
            yield Probe(rule.endpoint, area, "form" if writes else "read", "GET", url)
        for method in sorted(methods & WRITE_METHODS):
            yield Probe(rule.endpoint, area, "write", method, url)


EXPECTED = {
    ("viewer", "member", "read"): "allowed", ("viewer", "member", "form"): "denied",
    ("viewer", "member", "write"): "denied",
    ("user", "member", "read"): "allowed", ("user", "member", "form"): "not refused",
    ("user", "member", "write"): "not refused",
    ("admin", "member", "read"): "allowed", ("admin", "member", "form"): "not refused",
    ("admin", "member", "write"): "not refused",
    ("admin", "admin", "read"): "allowed", ("admin", "admin", "form"): "not refused",
    ("admin", "admin", "write"): "not refused",
}
for _role in ("viewer", "user"):
    for _kind in ("read", "form", "write"):
        EXPECTED[(_role, "admin", _kind)] = "denied"
ROLE_OF = {"vera": "viewer", "bob": "user", "alice": "admin"}


def _location_path(resp: Any) -> str:
    return (resp.headers.get("Location") or resp.headers.get("HX-Redirect") or "").split("?", 1)[0]


def check(resp: Any, expectation: str) -> str | None:
    """None if the response meets the expectation, else what went wrong."""
    status = resp.status_code
    if expectation == "hidden":
        return None if status == 404 else f"answered {status}, expected 404 (someone else's record)"
    if expectation == "denied":
        if status != 403:
            return f"answered {status}, expected 403"
        json_refusal = resp.is_json and (resp.get_json().get("error") or {}).get("code") == "forbidden"
        if b"data-error-message" not in resp.data and not json_refusal:
            return "403 without the error page (data-error-message) or the API's JSON error"
        return None
    if status >= 500:
        return f"answered {status}"
    if status in (401, 403) or _location_path(resp).endswith(LOGIN):
        return f"refused ({status} {_location_path(resp)})".rstrip()
    if expectation == "allowed" and status >= 400:
        return f"answered {status}, expected a page"
    if expectation == "not refused" and status >= 400 and status not in (400, 404, 409, 422):
        return f"answered {status}"
    return None


def table_counts(app: Flask) -> dict[str, int]:
    """Rows per table, except the ones reading and refusing write to (the log, session last-seen)."""
    with app.app_context():
        return {t.name: db.session.scalar(select(func.count()).select_from(t)) or 0
                for t in db.metadata.sorted_tables if t.name not in ("activity_log", "user_sessions")}


@pytest.fixture
def world(app: Flask, actors: Actors) -> World:
    bob = actors.client("bob")
    resp = bob.post("/library/media/new", data={"title": "Bob's film", "media_type": "movie", "copies": "1"})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    with app.app_context():
        media_id = db.session.scalar(select(Media.id).where(Media.title == "Bob's film"))
        dave = User(email="dave@example.org", name="Dave", role="user",
                    password_hash=passwords.hash_password(actors.PASSWORD))
        db.session.add(dave)
        db.session.commit()
        alice = db.session.get(User, actors.ids["alice"])
        for state in flags.list_flags():
            if not state.enabled and not state.locked:
                flags.set_enabled(alice, state.key, True)
        target = dave.id
    return World(app, actors, media_id, target, {})


def run_role(world: World, name: str) -> tuple[list[str], list[Probe]]:
    """Probe every route as `name`: reads first, then writes (which may delete what later reads need)."""
    client = world.actors.client(name)
    role = ROLE_OF[name]
    failures: list[str] = []
    denied: list[Probe] = []
    ordered = sorted(probes(world.app, world), key=lambda p: p.kind == "write")
    for probe in ordered:
        expectation = EXPECTED[(role, probe.area, probe.kind)]
        if probe.endpoint in OWNER_SCOPED and expectation == "allowed" and role != "admin" and name != RECORD_OWNER:
            expectation = "hidden"
        resp = client.open(probe.url, method=probe.method, data={})
        problem = check(resp, expectation)
        if problem:
            failures.append(f"{name} ({role}): {probe} {problem}")
        if expectation == "denied":
            denied.append(probe)
    return failures, denied


def assert_denials_audited(app: Flask, actor_id: int, denied: list[Probe]) -> None:
    events = [e for e in activity(app, "permission.denied") if e.actor_id == actor_id]
    seen = {(e.details.get("method"), e.details.get("path")) for e in events}
    missing = [str(p) for p in denied if (p.method, p.url) not in seen]
    assert not missing, "403 without a permission.denied event:\n" + "\n".join(missing)
    assert all(e.http_status == 403 and e.reason for e in events)


def test_every_route_is_classified_and_fillable(app: Flask) -> None:
    found: dict[str, Probe] = {}
    for probe in probes(app):
        found.setdefault(probe.endpoint, probe)  # the GET probe comes first
    # The pack really enumerates the map: the routes that exist today are all in it.
    assert {"admin.index", "admin.members", "admin.activity", "admin.activity_export", "admin.flags",
            "admin.flag_set", "library.index", "library.media_new", "library.media_edit",
            "library.media_delete"} <= set(found)
    assert found["admin.flag_set"].kind == "write" and found["admin.activity"].area == "admin"
    assert found["library.media_detail"].kind == "read" and found["library.media_new"].kind == "form"
    for rule in app.url_map.iter_rules():
        assert special_reason(rule) is not None or rule.endpoint in found, rule.endpoint
    assert all(ep in {r.endpoint for r in app.url_map.iter_rules()} for ep in SPECIAL), "stale SPECIAL entry"


def test_anonymous_visitors_are_sent_to_sign_in_everywhere(app: Flask, world: World) -> None:
    client = app.test_client()
    failures = []
    for probe in probes(app, world):
        json_route = probe.endpoint.split(".", 1)[0] in JSON_BLUEPRINTS
        resp = client.open(probe.url, method=probe.method, data={})
        if json_route:
            if resp.status_code != 401:
                failures.append(f"{probe}: answered {resp.status_code}, expected 401")
        elif resp.status_code != 303 or _location_path(resp) != LOGIN:
            failures.append(f"{probe}: answered {resp.status_code} {resp.headers.get('Location')}, expected 303 → "
                            f"{LOGIN}")
        if probe.method == "GET" and not json_route:
            htmx = client.get(probe.url, headers={"HX-Request": "true"})
            if _location_path(htmx) != LOGIN:
                failures.append(f"{probe} (htmx): answered {htmx.status_code} without HX-Redirect to {LOGIN}")
    assert not failures, "\n".join(failures)
    assert [e for e in activity(app) if e.action.startswith("media.") and e.actor_id is None] == []


def test_viewer_reads_member_routes_and_is_refused_every_write_and_admin_route(app: Flask, world: World) -> None:
    list(probes(app, world))  # make the placeholder rows (an invite, a reset…) before counting
    before = table_counts(app)

    failures, denied = run_role(world, "vera")

    assert not failures, "\n".join(failures)
    assert any(p.kind == "write" for p in denied) and any(p.area == "admin" for p in denied)
    assert table_counts(app) == before, "a refused viewer request changed data"
    assert_denials_audited(app, world.actors.ids["vera"], denied)


def test_user_reads_and_writes_member_routes_but_is_refused_admin_routes(app: Flask, world: World) -> None:
    failures, denied = run_role(world, "bob")

    assert not failures, "\n".join(failures)
    assert denied and all(p.area == "admin" for p in denied)
    assert_denials_audited(app, world.actors.ids["bob"], denied)


def test_admin_reaches_every_admin_and_member_route(app: Flask, world: World) -> None:
    failures, denied = run_role(world, "alice")

    assert not failures, "\n".join(failures)
    assert denied == []
    assert [e for e in activity(app, "permission.denied") if e.actor_id == world.actors.ids["alice"]] == []


def test_special_routes_keep_their_own_rules(app: Flask, actors: Actors) -> None:
    anonymous = app.test_client()
    assert anonymous.get("/healthz").status_code == 200
    assert anonymous.get("/auth/csrf").get_json()["token"]
    assert anonymous.get("/static/css/app.css").status_code == 200
    assert anonymous.get("/auth/login").status_code == 200
    assert _location_path(anonymous.get("/")) == LOGIN
    # The own-account route of the auth blueprint still needs an account, and a viewer may use it.
    assert _location_path(anonymous.get("/auth/profile")) == LOGIN
    viewer = actors.client("vera")
    assert viewer.get("/auth/profile").status_code == 200
    saved = viewer.post("/auth/profile", data={"name": "Vera V", "email": "vera@example.org"})
    assert saved.status_code == 303
