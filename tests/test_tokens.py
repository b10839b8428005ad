"""Personal access tokens: the profile page section (create, shown once; list; revoke) and the token service
(stored hashed, scopes within the role, expiry, last use, locked and deleted owners)."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import ApiToken, User
from collectz.models.base import utcnow
from collectz.services import tokens
from collectz.services.errors import Conflict, InvalidInput, NotFound
from tests.conftest import Actors, activity

HTMX = {"HX-Request": "true"}
API_ME = "/api/v1/me"


def create_form(name: str = "home automation", scopes: tuple[str, ...] = ("media:read",), days: int = 30
                ) -> dict[str, Any]:
    return {"token-name": name, "token-scopes": list(scopes), "token-expires_in_days": str(days)}


def shown_token(html: str) -> str:
    """The token in the page's "shown once" box."""
    found = re.search(r'<input id="new-api-token"[^>]*value="(czp_[A-Za-z0-9_-]+)"', html)
    assert found, "the new token is not on the page"
    return found.group(1)


def rows(app: Flask) -> list[ApiToken]:
    with app.app_context():
        found = list(db.session.scalars(select(ApiToken).order_by(ApiToken.id)))
        db.session.expunge_all()
        return found


def me_with(app: Flask, raw: str) -> Any:
    return app.test_client().get(API_ME, headers={"Authorization": f"Bearer {raw}"})


# --- the profile page ----------------------------------------------------------------------------------------------

def test_the_profile_page_creates_a_token_and_shows_it_once(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")

    page = bob.post("/auth/tokens", data=create_form(scopes=("media:read", "media:write")))
    html = page.get_data(as_text=True)
    raw = shown_token(html)
    again = bob.get("/auth/profile").get_data(as_text=True)

    assert page.status_code == 201 and "<html" in html and "shown <strong>only once</strong>" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert raw.startswith("czp_") and len(raw) >= 44
    assert raw not in again and f"czp_…{raw[-4:]}" in again and "home automation" in again
    [row] = rows(app)
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in repr([getattr(row, c.key) for c in ApiToken.__table__.columns])
    assert row.scopes == ["media:read", "media:write"] and row.user_id == actors.ids["bob"]
    assert timedelta(days=29) < row.expires_at - utcnow() <= timedelta(days=30)
    assert me_with(app, raw).get_json()["email"] == "bob@example.org"
    [event] = activity(app, "api_token.created")
    assert event.actor_id == actors.ids["bob"] and event.details["scopes"] == ["media:read", "media:write"]
    assert raw not in str(event.details) and raw[4:] not in str(event.details)


def test_the_section_is_a_block_for_htmx(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")

    created = bob.post("/auth/tokens", data=create_form(), headers=HTMX)
    page = bob.get("/auth/profile")
    tab = bob.get("/auth/profile", headers=HTMX).get_data(as_text=True)

    body = created.get_data(as_text=True)
    assert created.status_code == 201 and "<html" not in body and 'id="api-tokens-heading"' in body
    assert 'hx-target="#api-tokens"' in body and "HX-Request" in created.headers.get("Vary", "")
    assert shown_token(body).startswith("czp_")
    assert page.status_code == 200 and '<div id="api-tokens">' in page.get_data(as_text=True)
    assert "<html" not in tab and '<div id="api-tokens">' in tab and "home automation" in tab  # the account tab


def test_a_bad_form_is_422_and_a_viewer_is_offered_only_reading(app: Flask, actors: Actors) -> None:
    vera = actors.client("vera")

    offered = vera.get("/auth/profile").get_data(as_text=True)
    no_name = vera.post("/auth/tokens", data=create_form(name=""))
    no_scope = vera.post("/auth/tokens", data=create_form(scopes=()))
    too_much = vera.post("/auth/tokens", data=create_form(scopes=("media:read", "admin")))

    assert 'value="media:read"' in offered and 'value="media:write"' not in offered
    assert [r.status_code for r in (no_name, no_scope, too_much)] == [422, 422, 422]
    assert "Choose at least one scope." in no_scope.get_data(as_text=True)
    assert "cannot use: admin" in too_much.get_data(as_text=True)
    assert rows(app) == []


def test_revoking_a_token_stops_it_at_once(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    raw = shown_token(bob.post("/auth/tokens", data=create_form()).get_data(as_text=True))
    [row] = rows(app)
    assert me_with(app, raw).status_code == 200

    revoked = bob.post(f"/auth/tokens/{row.id}/revoke")
    page = bob.get("/auth/profile").get_data(as_text=True)

    assert revoked.status_code == 303 and revoked.headers["Location"].endswith("/auth/profile")
    assert me_with(app, raw).status_code == 401
    assert "status-revoked" in page and f"/auth/tokens/{row.id}/revoke" not in page
    assert [e.entity_id for e in activity(app, "api_token.revoked")] == [str(row.id)]
    assert bob.post(f"/auth/tokens/{row.id}/revoke").status_code == 409


def test_someone_elses_token_cannot_be_revoked_and_the_htmx_revoke_answers_the_block(app: Flask,
                                                                                  actors: Actors) -> None:
    bob, carol = actors.client("bob"), actors.client("carol")
    bob.post("/auth/tokens", data=create_form())
    [row] = rows(app)

    by_carol = carol.post(f"/auth/tokens/{row.id}/revoke")
    by_bob = bob.post(f"/auth/tokens/{row.id}/revoke", headers=HTMX)

    assert by_carol.status_code == 404
    assert by_bob.status_code == 200 and "<html" not in by_bob.get_data(as_text=True)
    assert "status-revoked" in by_bob.get_data(as_text=True)


def test_visitors_are_sent_to_sign_in(app: Flask, actors: Actors) -> None:
    anonymous = app.test_client()
    resp = anonymous.post("/auth/tokens", data=create_form())
    assert resp.status_code in (302, 303) and "/auth/login" in resp.headers["Location"]


# --- the service ---------------------------------------------------------------------------------------------------

@pytest.fixture
def people(app: Flask, actors: Actors) -> dict[str, User]:
    ctx = app.test_request_context()
    ctx.push()
    found = {name: db.session.get(User, user_id) for name, user_id in actors.ids.items()}
    yield found
    db.session.remove()
    ctx.pop()


def test_scopes_are_checked_against_the_role_and_expiry_is_bounded(people: dict[str, User]) -> None:
    bob, alice = people["bob"], people["alice"]
    with pytest.raises(InvalidInput) as admin_scope:
        tokens.create_token(bob, "x", ["admin"], 30)
    with pytest.raises(InvalidInput) as unknown:
        tokens.create_token(alice, "x", ["everything"], 30)
    with pytest.raises(InvalidInput) as never:
        tokens.create_token(alice, "x", ["admin"], 0)
    with pytest.raises(InvalidInput) as too_long:
        tokens.create_token(alice, "x" * 101, ["admin"], tokens.MAX_EXPIRY_DAYS + 1)

    assert "admin" in admin_scope.value.fields["scopes"] and "scopes" in unknown.value.fields
    assert set(never.value.fields) == {"expires_in_days"} and set(too_long.value.fields) == {"name",
                                                                                          "expires_in_days"}
    row, raw = tokens.create_token(alice, "  all   of it ", ["admin", "media:read"], tokens.MAX_EXPIRY_DAYS)
    assert row.name == "all of it" and row.scopes == ["media:read", "admin"] and raw.startswith(tokens.PREFIX)


def test_use_is_recorded_at_most_once_a_minute(people: dict[str, User]) -> None:
    row, raw = tokens.create_token(people["bob"], "script", ["media:read"], 7)
    assert row.last_used_at is None

    first = tokens.authenticate(raw, "10.0.0.5")
    stamp = first.token.last_used_at
    tokens.authenticate(raw, "10.0.0.6")
    assert first.token.last_used_at == stamp and first.token.last_used_ip == "10.0.0.5"

    first.token.last_used_at = stamp - tokens.TOUCH_EVERY
    db.session.commit()
    later = tokens.authenticate(raw, "10.0.0.6").token
    assert later.last_used_at > stamp - tokens.TOUCH_EVERY and later.last_used_ip == "10.0.0.6"


def test_a_token_stops_while_its_owner_must_choose_a_new_password(people: dict[str, User]) -> None:
    bob = people["bob"]
    _row, raw = tokens.create_token(bob, "script", ["media:read"], 7)
    bob.must_reset = True
    db.session.commit()

    with pytest.raises(tokens.TokenRejected) as locked:
        tokens.authenticate(raw, None)
    bob.must_reset = False
    db.session.commit()

    assert locked.value.reason == "account_locked"
    assert tokens.authenticate(raw, None).user.id == bob.id


def test_tokens_are_refused_by_shape_before_any_lookup(people: dict[str, User]) -> None:
    for raw in ("", "czp_short", "ghp_" + "a" * 43, "czp_" + "a" * 43 + "\x00", "czp_" + "é" * 43):
        with pytest.raises(tokens.TokenRejected) as rejected:
            tokens.authenticate(raw, None)
        assert rejected.value.reason == "malformed"


def test_a_member_has_a_bounded_number_of_active_tokens(people: dict[str, User]) -> None:
    vera = people["vera"]
    for i in range(tokens.MAX_ACTIVE_PER_USER):
        tokens.create_token(vera, f"t{i}", ["media:read"], 1)
    with pytest.raises(Conflict):
        tokens.create_token(vera, "one more", ["media:read"], 1)

    first = tokens.list_tokens(vera)[-1]
    tokens.revoke_token(vera, first.id)
    assert tokens.create_token(vera, "one more", ["media:read"], 1)[0].id


def test_admins_may_revoke_anyones_token_and_others_see_none(people: dict[str, User]) -> None:
    row, _raw = tokens.create_token(people["bob"], "script", ["media:read"], 7)
    with pytest.raises(NotFound):
        tokens.revoke_token(people["carol"], row.id)
    assert tokens.list_tokens(people["carol"]) == []

    tokens.revoke_token(people["alice"], row.id)
    assert row.status(utcnow()) == "revoked"
