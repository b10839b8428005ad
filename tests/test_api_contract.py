"""The JSON API's contract: every operation, for every role and every token scope.

Each operation has one request here (REQUESTS; a new operation fails `test_every_operation_has_a_contract_request`
until it gets one) and one expected status per role (EXPECTED). Every answer is checked against the OpenAPI
document: its status is one the operation documents, and its body matches the documented schema.

Callers: anonymous; a session of alice (admin), bob (user), vera (viewer); and personal access tokens of each with
every scope their role allows. A token lacks a scope → 403; a role lacks the right → 403 (or 404 for someone
else's import), exactly as the pages answer.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import func, select

from collectz.blueprints.api.spec import OPERATIONS, Operation
from collectz.extensions import db
from collectz.models import Invite, SyncJob, User
from collectz.models.base import utcnow
from collectz.security import passwords
from collectz.services import tokens
from tests.conftest import Actors, CsrfClient, activity

API = "/api/v1"
CSV_FILE = b"Title,Year,Type\nDune,1965,Book\nAlien,1979,Movie\n"
DELICIOUS_CSV = b"Title,Type,Creator,Release Date\nDune,Book,Frank Herbert,1965\n"


# --- the OpenAPI document as a validator -----------------------------------------------------------------------

class Contract:
    """Checks answers against the served OpenAPI document."""

    def __init__(self, document: dict[str, Any]):
        self.document = document
        self.registry = Registry().with_resource("urn:collectz-api", Resource.from_contents(
            document, default_specification=DRAFT202012))

    def operation(self, op: Operation) -> dict[str, Any]:
        return self.document["paths"][op.path][op.method.lower()]

    def check(self, op: Operation, resp: Any) -> None:
        """The status is documented for the operation and the body matches its schema."""
        responses = self.operation(op)["responses"]
        status = str(resp.status_code)
        assert status in responses, f"{op.method} {op.path} answered {status}, not documented: {resp.data[:300]!r}"
        spec = responses[status]
        if "$ref" in spec:
            spec = self.document["components"]["responses"][spec["$ref"].rsplit("/", 1)[-1]]
        content = spec.get("content")
        if content is None:
            assert not resp.data, f"{op.method} {op.path} {status} should have no body"
            return
        assert resp.mimetype == "application/json", resp.mimetype
        self.validate(content["application/json"]["schema"], resp.get_json())

    def validate(self, schema: dict[str, Any], value: Any) -> None:
        text = json.dumps(schema).replace('"#/components/', '"urn:collectz-api#/components/')
        Draft202012Validator(json.loads(text), registry=self.registry).validate(value)


def find_operation(endpoint: str) -> Operation:
    return next(op for op in OPERATIONS if op.endpoint == endpoint)


# --- the world: people, records, credentials ---------------------------------------------------------------------

@dataclass
class World:
    app: Flask
    actors: Actors
    contract: Contract
    ids: dict[str, int] = field(default_factory=dict)
    counter: int = 0

    def session(self, name: str) -> CsrfClient:
        return self.actors.client(name)

    def token(self, name: str, scopes: list[str] | None = None, days: int = 30) -> str:
        """A raw token of `name` with these scopes (default: every scope the role allows)."""
        with self.app.app_context():
            user = db.session.get(User, self.actors.ids[name])
            wanted = list(tokens.allowed_scopes(user.role)) if scopes is None else scopes
            self.counter += 1
            _row, raw = tokens.create_token(user, f"test {self.counter}", wanted, days)
        return raw

    def bearer(self, name: str, scopes: list[str] | None = None) -> CsrfClient:
        """A client that sends a token of `name` (no cookie, no CSRF token)."""
        return TokenClient(self.app, self.token(name, scopes))

    def new_item(self, owner: str = "bob", title: str = "Bob's film", **values: Any) -> int:
        """An item added by `owner` through the service (indexed for search, audited like any other)."""
        from collectz.services.media import MediaInput, create_media

        with self.app.test_request_context():
            user = db.session.get(User, self.actors.ids[owner])
            return create_media(user, MediaInput(title=title, media_type=values.pop("media_type", "movie"),
                                                 **values)).id

    def new_member(self) -> int:
        with self.app.app_context():
            self.counter += 1
            user = User(email=f"dave{self.counter}@example.org", name=f"Dave {self.counter}", role="user",
                        password_hash=passwords.hash_password(Actors.PASSWORD))
            db.session.add(user)
            db.session.commit()
            return user.id

    def new_invite(self) -> int:
        with self.app.app_context():
            self.counter += 1
            invite = Invite(email=f"invited{self.counter}@example.org", token_hash=f"contract-{self.counter}",
                            role="user", expires_at=utcnow() + timedelta(days=1), created_by=self.actors.ids["alice"])
            db.session.add(invite)
            db.session.commit()
            return invite.id

    def new_job(self, owner: str = "bob") -> int:
        with self.app.app_context():
            job = SyncJob(kind="csv", status="succeeded", source_name="old.csv", created_by=self.actors.ids[owner])
            db.session.add(job)
            db.session.commit()
            return job.id


class TokenClient(CsrfClient):
    """Sends `Authorization: Bearer <token>` and never a CSRF token."""

    def __init__(self, app: Flask, raw: str):
        super().__init__(app, app.response_class)
        self.raw = raw

    def open(self, *args: Any, **kwargs: Any):  # type: ignore[override]
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Authorization", f"Bearer {self.raw}")
        return super().open(*args, headers=headers, csrf=False, **kwargs)


@pytest.fixture
def world(app: Flask, actors: Actors) -> World:
    doc = app.test_client().get(f"{API}/openapi.json").get_json()
    return World(app, actors, Contract(doc))


# --- one request per operation -----------------------------------------------------------------------------------

Request = Callable[[World], tuple[str, dict[str, Any]]]


def _json(body: dict[str, Any]) -> dict[str, Any]:
    return {"json": body}


def _file(content: bytes, name: str) -> dict[str, Any]:
    return {"data": {"file": (io.BytesIO(content), name)}, "content_type": "multipart/form-data"}


REQUESTS: dict[str, Request] = {
    "api.health": lambda w: (f"{API}/health", {}),
    "api.openapi": lambda w: (f"{API}/openapi.json", {}),
    "api.me": lambda w: (f"{API}/me", {}),
    "api.media_list": lambda w: (f"{API}/media?sort=year&limit=5", {}),
    "api.media_get": lambda w: (f"{API}/media/{w.new_item()}", {}),
    "api.media_create": lambda w: (f"{API}/media", _json({"title": "Dune", "media_type": "book", "year": 1965,
                                                         "isbn": "0-441-01359-7"})),
    "api.media_update": lambda w: (f"{API}/media/{w.new_item()}", _json({"notes": "Director's cut"})),
    "api.media_delete": lambda w: (f"{API}/media/{w.new_item()}", {}),
    "api.media_bulk_delete": lambda w: (f"{API}/media/bulk-delete", _json({"ids": [w.new_item()]})),
    "api.media_state_get": lambda w: (f"{API}/media/{w.new_item()}/state", {}),
    "api.media_state_put": lambda w: (f"{API}/media/{w.new_item()}/state", _json({"rating": 8, "status": "owned"})),
    "api.import_csv": lambda w: (f"{API}/imports/csv", _file(CSV_FILE, "items.csv")),
    "api.import_delicious": lambda w: (f"{API}/imports/delicious", _file(DELICIOUS_CSV, "library.csv")),
    "api.import_plex": lambda w: (f"{API}/imports/plex", {}),
    "api.import_list": lambda w: (f"{API}/imports", {}),
    "api.import_get": lambda w: (f"{API}/imports/{w.new_job()}", {}),
    "api.import_rows": lambda w: (f"{API}/imports/{w.new_job()}/rows?outcome=failed", {}),
    "api.admin_members": lambda w: (f"{API}/admin/members?limit=2", {}),
    "api.admin_member": lambda w: (f"{API}/admin/members/{w.actors.ids['bob']}", {}),
    "api.admin_member_role": lambda w: (f"{API}/admin/members/{w.new_member()}", _json({"role": "viewer"})),
    "api.admin_member_delete": lambda w: (f"{API}/admin/members/{w.new_member()}", {}),
    "api.admin_invitations": lambda w: (f"{API}/admin/invitations?show=all", {}),
    "api.admin_invitation_create": lambda w: (f"{API}/admin/invitations",
                                              _json({"email": f"new{w.new_member()}@example.org", "role": "viewer"})),
    "api.admin_invitation_revoke": lambda w: (f"{API}/admin/invitations/{w.new_invite()}/revoke", {}),
    "api.admin_activity": lambda w: (f"{API}/admin/activity?status=2xx&limit=3", {}),
    "api.admin_flags": lambda w: (f"{API}/admin/flags", {}),
    "api.admin_flag_set": lambda w: (f"{API}/admin/flags/import_calibre", _json({"enabled": True})),
}

# The status each role gets (a caller with every scope its role allows; a token lacking the scope is a 403
# whatever this says). Plex is not set up in the tests, so starting a Plex import is a 409 for a writer.
OK = {"admin": 200, "user": 200, "viewer": 200}
WRITE = {"admin": 200, "user": 200, "viewer": 403}
ADMIN = {"admin": 200, "user": 403, "viewer": 403}
EXPECTED: dict[str, dict[str, int]] = {
    "api.health": OK, "api.openapi": OK, "api.me": OK, "api.media_list": OK, "api.media_get": OK,
    "api.media_state_get": OK,
    "api.media_create": {"admin": 201, "user": 201, "viewer": 403},
    "api.media_update": WRITE, "api.media_bulk_delete": WRITE, "api.media_state_put": WRITE,
    "api.media_delete": {"admin": 204, "user": 204, "viewer": 403},
    "api.import_csv": {"admin": 202, "user": 202, "viewer": 403},
    "api.import_delicious": {"admin": 202, "user": 202, "viewer": 403},
    "api.import_plex": {"admin": 409, "user": 409, "viewer": 403},
    "api.import_list": OK,
    # bob's import: the admin sees it; a viewer (not its owner) is told it does not exist
    "api.import_get": {"admin": 200, "user": 200, "viewer": 404},
    "api.import_rows": {"admin": 200, "user": 200, "viewer": 404},
    "api.admin_members": ADMIN, "api.admin_member": ADMIN, "api.admin_member_role": ADMIN,
    "api.admin_member_delete": ADMIN, "api.admin_invitations": ADMIN,
    "api.admin_invitation_create": {"admin": 201, "user": 403, "viewer": 403},
    "api.admin_invitation_revoke": ADMIN, "api.admin_activity": ADMIN, "api.admin_flags": ADMIN,
    "api.admin_flag_set": ADMIN,
}
CALLERS = {"alice": "admin", "bob": "user", "vera": "viewer"}


def call(world: World, client: Any, op: Operation) -> Any:
    url, kwargs = REQUESTS[f"api.{op.endpoint}"](world)
    resp = client.open(url, method=op.method, **kwargs)
    world.contract.check(op, resp)
    return resp


def expected_for(op: Operation, role: str, via: str) -> int:
    """What a caller of this role gets; a token lacking the operation's scope for its role gets 403."""
    if via == "token" and op.scope not in ("public", "signed-in") and op.scope not in tokens.allowed_scopes(role):
        return 403
    return EXPECTED[f"api.{op.endpoint}"][role]


# --- the tests ---------------------------------------------------------------------------------------------------

def test_every_operation_has_a_contract_request_and_expectations() -> None:
    endpoints = {f"api.{op.endpoint}" for op in OPERATIONS}
    assert set(REQUESTS) == endpoints
    assert set(EXPECTED) == endpoints


def test_anonymous_callers_get_401_except_on_public_operations(world: World) -> None:
    client = world.app.test_client()
    for op in OPERATIONS:
        resp = call(world, client, op)
        if op.scope == "public":
            assert resp.status_code == 200, op.endpoint
        else:
            assert resp.status_code == 401, (op.endpoint, resp.status_code)
            assert resp.get_json()["error"]["code"] == "unauthorized"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("via", ["session", "token"])
@pytest.mark.parametrize("name", list(CALLERS))
def test_each_role_gets_what_the_pages_allow(world: World, name: str, via: str) -> None:
    role = CALLERS[name]
    client = world.session(name) if via == "session" else world.bearer(name)
    failures = []
    for op in OPERATIONS:
        resp = call(world, client, op)
        wanted = expected_for(op, role, via)
        if resp.status_code != wanted:
            failures.append(f"{op.method} {op.path}: {resp.status_code} (expected {wanted}) {resp.data[:200]!r}")
    assert not failures, "\n".join(failures)
    denied = [e for e in activity(world.app, "permission.denied") if e.actor_id == world.actors.ids[name]]
    refusals = [op for op in OPERATIONS if expected_for(op, role, via) == 403]
    assert len(denied) == len(refusals), "every 403 is recorded as permission.denied, once"
    assert all(e.http_status == 403 and e.details["path"].startswith(API) for e in denied)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.scope not in ("public", "signed-in")],
                         ids=lambda op: op.endpoint)
def test_a_token_needs_the_operations_scope(world: World, op: Operation) -> None:
    others = [s for s in tokens.SCOPES if s != op.scope]
    without = call(world, world.bearer("alice", others), op)
    only = call(world, world.bearer("alice", [op.scope]), op)

    assert without.status_code == 403
    assert without.get_json()["error"]["code"] == "forbidden"
    assert op.scope in without.get_json()["error"]["message"]
    assert only.status_code == EXPECTED[f"api.{op.endpoint}"]["admin"]
    denied = activity(world.app, "permission.denied")
    assert denied and denied[-1].details["path"].startswith(API) and denied[-1].http_status == 403


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model)) or 0
