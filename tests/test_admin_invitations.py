"""Admin → Invitations: the link is shown once, nothing secret is stored or listed, revoke, history."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text

from collectz.extensions import db
from collectz.models import Invite, User
from collectz.models.base import utcnow
from collectz.security.tokens import hash_token
from tests.conftest import Actors, activity

HX = {"HX-Request": "true"}
PASSWORD = "a long enough password"


def create(client, email: str = "dora@example.org", role: str = "user", **headers: str):
    return client.post("/admin/invitations", data={"email": email, "role": role}, headers=headers)


def token_of(resp) -> str:
    """The raw token in the link of a create response."""
    match = re.search(r'value="[^"]*/auth/register\?invite=([A-Za-z0-9_-]+)"', resp.get_data(as_text=True))
    assert match, "no invitation link in the response"
    return match.group(1)


def listed(body: str, email: str) -> bool:
    """Whether the list has a row for this email."""
    return f'class="invite-email">{email}<' in body


def invite_id(app: Flask, email: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Invite.id).where(Invite.email == email).order_by(Invite.id.desc()))


def claim(app: Flask, token: str, email: str = "dora@example.org"):
    return app.test_client().post("/auth/register", data={"email": email, "name": "Dora", "password": PASSWORD,
                                                          "invite": token})


def add_invites(app: Flask, count: int, **fields) -> None:
    with app.app_context():
        admin = db.session.scalar(select(User).where(User.role == "admin"))
        for n in range(count):
            db.session.add(Invite(email=f"guest{n:03}@example.org", token_hash=hash_token(f"t{n}-{fields}"),
                                  role="user", expires_at=utcnow() + timedelta(days=1), created_by=admin.id,
                                  **fields))
        db.session.commit()


# --- Page and fragment ---------------------------------------------------------------------------------

def test_invitations_tab_is_a_page_and_a_fragment(actors: Actors):
    admin = actors.client("alice")

    page = admin.get("/admin/invitations")
    fragment = admin.get("/admin/invitations", headers=HX)

    assert page.status_code == fragment.status_code == 200
    html, part = page.get_data(as_text=True), fragment.get_data(as_text=True)
    assert "<html" in html and 'id="admin-tab"' in html
    assert 'href="/admin/invitations" aria-current="page"' in html
    assert "<html" not in part and 'id="admin-tab"' not in part
    assert "Create invitation" in part and "Open invitations" in part
    # only the Invitations tab: nothing of the Members tab leaks in
    assert 'id="member-drawer"' not in html and 'id="member-row-' not in part
    for resp in (page, fragment):
        assert "HX-Request" in resp.headers["Vary"]


@pytest.mark.parametrize("who", ["bob", "vera"])
def test_members_and_viewers_are_refused_and_audited(app, actors: Actors, who):
    create(actors.client("alice"))
    target = invite_id(app, "dora@example.org")
    client = actors.client(who)

    assert client.get("/admin/invitations").status_code == 403
    assert create(client, "eve@example.org").status_code == 403
    assert client.post(f"/admin/invitations/{target}/revoke").status_code == 403

    with app.app_context():
        assert db.session.get(Invite, target).revoked_at is None
        assert db.session.scalar(select(Invite.id).where(Invite.email == "eve@example.org")) is None
    assert [d.actor_id for d in activity(app, "permission.denied")] == [actors.ids[who]] * 3


def test_signed_out_visitors_are_sent_to_log_in(app, client, actors: Actors):
    for resp in (client.get("/admin/invitations"), create(client), client.post("/admin/invitations/1/revoke")):
        assert resp.status_code == 303 and "/auth/login" in resp.headers["Location"]
    assert invite_id(app, "dora@example.org") is None


# --- Create: the link is shown once -------------------------------------------------------------------

def test_create_shows_the_link_once_and_never_again(app, actors: Actors):
    admin = actors.client("alice")

    resp = create(admin, "Dora@Example.org", "viewer")

    assert resp.status_code == 201
    assert resp.headers["Cache-Control"] == "no-store"
    token = token_of(resp)
    body = resp.get_data(as_text=True)
    assert "shown <strong>only now</strong>" in body and "dora@example.org" in body
    with app.app_context():
        invite = db.session.scalar(select(Invite))
        assert (invite.email, invite.role, invite.created_by) == ("dora@example.org", "viewer", actors.ids["alice"])
        assert invite.token_hash == hash_token(token)
    # the next look at the tab lists the invite but never its link or any token material
    for again in (admin.get("/admin/invitations"), admin.get("/admin/invitations?show=all", headers=HX)):
        listing = again.get_data(as_text=True)
        assert listed(listing, "dora@example.org")
        assert token not in listing and hash_token(token) not in listing and "invite=" not in listing
    [created] = activity(app, "invite.created")
    assert created.actor_id == actors.ids["alice"] and token not in str(created.details)


def test_the_link_uses_the_public_url_when_set(make_app):
    app = make_app(PUBLIC_URL="https://collectz.example.org/")
    actors = Actors(app)

    resp = create(actors.client("alice"))

    assert 'value="https://collectz.example.org/auth/register?invite=' in resp.get_data(as_text=True)


def test_htmx_create_answers_with_the_tab_fragment(actors: Actors):
    resp = create(actors.client("alice"), **HX)

    part = resp.get_data(as_text=True)
    assert resp.status_code == 201 and "<html" not in part
    assert token_of(resp) and 'data-testid="invite-row"' in part


def test_no_plaintext_token_is_stored_anywhere(app, actors: Actors):
    resp = create(actors.client("alice"))
    token = token_of(resp)

    with app.app_context():
        rows = db.session.execute(text("SELECT * FROM invites")).all()
        logged = db.session.execute(text("SELECT * FROM activity_log")).all()
    assert len(rows) == 1
    for value in [v for r in rows for v in r] + [v for r in logged for v in r]:
        assert token not in str(value)
    assert hash_token(token) in [str(v) for v in rows[0]]  # only the hash is kept


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"email": "not-an-email", "role": "user"}, "Enter a valid email address."),
        ({"email": "", "role": "user"}, "This field is required."),
        ({"email": "dora@example.org", "role": "admin"}, "Not a valid choice"),
        ({"email": "BOB@example.org", "role": "user"}, "This email already belongs to a member."),
    ],
)
def test_bad_input_is_422_with_the_fields_message(app, actors: Actors, data, message):
    resp = actors.client("alice").post("/admin/invitations", data=data, headers=HX)

    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert message in body and "invite=" not in body
    with app.app_context():
        assert db.session.scalar(select(Invite.id)) is None


# --- Revoke, claim, history ------------------------------------------------------------------------

def test_revoking_an_invite_stops_its_link_and_is_audited(app, actors: Actors):
    admin = actors.client("alice")
    token = token_of(create(admin))
    target = invite_id(app, "dora@example.org")

    resp = admin.post(f"/admin/invitations/{target}/revoke")

    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/invitations"
    with app.app_context():
        assert db.session.get(Invite, target).revoked_at is not None
    [revoked] = activity(app, "invite.revoked")
    assert revoked.actor_id == actors.ids["alice"] and revoked.actor_email == "alice@example.org"
    assert revoked.entity_id == str(target) and revoked.details["created_by"] == actors.ids["alice"]
    # the link no longer works
    refused = claim(app, token)
    assert refused.status_code == 422 and "revoked" in refused.get_data(as_text=True)
    assert [f.reason for f in activity(app, "invite.claim_failed")] == ["revoked"]
    # and it leaves the default list for the history
    assert not listed(admin.get("/admin/invitations").get_data(as_text=True), "dora@example.org")
    history = admin.get("/admin/invitations?show=all").get_data(as_text=True)
    assert listed(history, "dora@example.org") and "status-revoked" in history


def test_htmx_revoke_rerenders_the_tab_with_a_toast(app, actors: Actors):
    admin = actors.client("alice")
    create(admin)
    target = invite_id(app, "dora@example.org")

    resp = admin.post(f"/admin/invitations/{target}/revoke", headers=HX)

    part = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in part
    assert "No open invitations." in part and "was revoked" in part


def test_a_used_invite_cannot_be_replayed_or_revoked(app, actors: Actors):
    admin = actors.client("alice")
    token = token_of(create(admin))
    target = invite_id(app, "dora@example.org")

    assert claim(app, token).status_code == 303
    replay = claim(app, token)
    replay_other = claim(app, token, email="mallory@example.org")

    assert replay.status_code == replay_other.status_code == 422
    assert "already been used" in replay.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User.id).where(User.email == "mallory@example.org")) is None
    assert admin.post(f"/admin/invitations/{target}/revoke").status_code == 409
    assert "status-used" in admin.get("/admin/invitations?show=all").get_data(as_text=True)
    assert not listed(admin.get("/admin/invitations").get_data(as_text=True), "dora@example.org")


def test_used_revoked_and_expired_invites_are_history(app, actors: Actors):
    admin = actors.client("alice")
    for email in ("open@example.org", "used@example.org", "gone@example.org", "old@example.org"):
        create(admin, email)
    with app.app_context():
        now = utcnow()
        db.session.get(Invite, invite_id(app, "used@example.org")).used_at = now
        db.session.get(Invite, invite_id(app, "gone@example.org")).revoked_at = now
        db.session.get(Invite, invite_id(app, "old@example.org")).expires_at = now - timedelta(hours=1)
        db.session.commit()

    default = admin.get("/admin/invitations").get_data(as_text=True)
    history = admin.get("/admin/invitations?show=all", headers=HX).get_data(as_text=True)

    assert listed(default, "open@example.org")
    assert not any(listed(default, e) for e in ("used@example.org", "gone@example.org", "old@example.org"))
    assert "3 used, revoked or expired invitations" in default and 'href="/admin/invitations?show=all"' in default
    for email, status in (("open", "open"), ("used", "used"), ("gone", "revoked"), ("old", "expired")):
        assert re.search(rf"{email}@example.org</td>\s*<td>user</td>\s*<td><span class=\"status status-{status}\"",
                         history), email


def test_both_lists_are_paginated_and_keep_the_filter(app, actors: Actors):
    add_invites(app, 20)
    add_invites(app, 10, revoked_at=utcnow())
    admin = actors.client("alice")

    open_first = admin.get("/admin/invitations").get_data(as_text=True)
    all_first = admin.get("/admin/invitations?show=all").get_data(as_text=True)
    all_second = admin.get("/admin/invitations?show=all&page=2", headers=HX).get_data(as_text=True)

    assert open_first.count('data-testid="invite-row"') == 20 and "Page 1 of" not in open_first
    assert all_first.count('data-testid="invite-row"') == 25 and "Page 1 of 2" in all_first
    assert 'href="/admin/invitations?page=2&amp;show=all"' in all_first
    assert all_second.count('data-testid="invite-row"') == 5
    # a revoke from page 2 of the history comes back to it
    assert 'action="/admin/invitations/' in all_second and "page=2&amp;show=all" in all_second
