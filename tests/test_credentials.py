"""Credentials: changing your password, your sessions, admin reset links, must-reset."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import ActivityLog, PasswordReset, User, UserSession
from collectz.models.base import utcnow
from collectz.security.tokens import hash_token
from collectz.services.resets import RESET_TTL_HOURS
from collectz.web.requestlog import JsonFormatter
from tests.conftest import Actors, activity

NEW_PASSWORD = "a brand new passphrase"
TOKEN_IN_URL = re.compile(r"/auth/reset\?token=([A-Za-z0-9_-]+)")


def sent_to(resp, path: str) -> bool:
    """A redirect to `path`: 303 for a plain request, HX-Redirect for htmx."""
    target = resp.headers.get("HX-Redirect") or resp.headers.get("Location") or ""
    return resp.status_code in (204, 303) and target.split("?")[0].endswith(path)


def signed_in(client) -> bool:
    return client.get("/auth/profile").status_code == 200


def can_log_in(app, name: str, password: str) -> bool:
    resp = app.test_client().post("/auth/login", data={"email": f"{name}@example.org", "password": password})
    return resp.status_code == 303


def change_password(client, current=Actors.PASSWORD, new=NEW_PASSWORD, confirm=None, **kwargs):
    data = {"current_password": current, "new_password": new, "confirm_password": new if confirm is None else confirm}
    return client.post("/auth/password", data=data, **kwargs)


def session_ids(app, name_id: int) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(UserSession.id).where(UserSession.user_id == name_id)
                                       .order_by(UserSession.id)))


def user(app, user_id: int) -> User:
    with app.app_context():
        row = db.session.get(User, user_id)
        db.session.expunge(row)
        return row


def make_link(actors: Actors, member: str = "bob", **headers) -> tuple[str, str]:
    """Alice makes a reset link for `member`; returns (the page that showed it, the token)."""
    resp = actors.client("alice").post(f"/admin/members/{actors.ids[member]}/reset-links", headers=headers)
    assert resp.status_code == 200, resp.status_code
    body = resp.get_data(as_text=True)
    return body, TOKEN_IN_URL.search(body).group(1)


def use_link(client, token: str, password: str = NEW_PASSWORD, confirm: str | None = None):
    return client.post("/auth/reset", data={"token": token, "new_password": password,
                                            "confirm_password": password if confirm is None else confirm})


def everything_recorded(app) -> str:
    """Every activity event, flattened to text (to look for secrets in it)."""
    with app.app_context():
        rows = db.session.scalars(select(ActivityLog)).all()
        return "\n".join(f"{r.action} {r.reason} {r.entity_id} {json.dumps(r.details)}" for r in rows)


# --- changing your password ----------------------------------------------------------------------------

def test_password_change_without_the_current_password_fails_and_other_sessions_keep_working(app, actors: Actors):
    here, elsewhere = actors.client("bob"), actors.client("bob")

    missing = change_password(here, current="")
    wrong = change_password(here, current="not my password")

    assert missing.status_code == 422 and b"This field is required." in missing.data
    assert wrong.status_code == 422 and b"This is not your current password." in wrong.data
    assert signed_in(here) and signed_in(elsewhere)
    assert can_log_in(app, "bob", Actors.PASSWORD) and not can_log_in(app, "bob", NEW_PASSWORD)
    [failure] = activity(app, "user.password_change_failed")
    assert failure.actor_id == actors.ids["bob"] and failure.status == "failed"
    assert failure.reason == "wrong_current_password"
    assert "not my password" not in everything_recorded(app)
    assert activity(app, "user.profile_updated") == []


def test_password_change_signs_out_every_other_session_and_keeps_this_one(app, actors: Actors):
    here, elsewhere, remembered = actors.client("bob"), actors.client("bob"), actors.client("bob", remember=True)
    carol = actors.client("carol")

    resp = change_password(here)

    assert sent_to(resp, "/auth/password")
    assert signed_in(here)
    assert sent_to(elsewhere.get("/auth/profile"), "/auth/login")
    assert sent_to(remembered.get("/auth/sessions"), "/auth/login")
    assert signed_in(carol)
    assert len(session_ids(app, actors.ids["bob"])) == 1
    assert not can_log_in(app, "bob", Actors.PASSWORD) and can_log_in(app, "bob", NEW_PASSWORD)
    [event] = activity(app, "user.profile_updated")
    assert event.details["password_changed"] is True and event.details["other_sessions_revoked"] == 2
    recorded = everything_recorded(app)
    assert NEW_PASSWORD not in recorded and Actors.PASSWORD not in recorded


@pytest.mark.parametrize(
    "new, confirm, message",
    [
        ("short", None, b"Use at least 10 characters."),
        (NEW_PASSWORD, "something else entirely", b"The two passwords differ."),
        (Actors.PASSWORD, None, b"Choose a password you are not using now."),
        ("x" * 257, None, b"Field cannot be longer than 256 characters."),
    ],
)
def test_bad_new_passwords_are_422_on_their_field(app, actors: Actors, new, confirm, message):
    bob = actors.client("bob")

    resp = change_password(bob, new=new, confirm=confirm)

    assert resp.status_code == 422 and message in resp.data
    assert can_log_in(app, "bob", Actors.PASSWORD)


def test_password_tab_is_a_page_a_tab_fragment_and_a_form_fragment(actors: Actors):
    bob = actors.client("bob")

    page = bob.get("/auth/password")
    tab = bob.get("/auth/password", headers={"HX-Request": "true"})
    bad = change_password(bob, current="nope nope nope", headers={"HX-Request": "true"})

    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert 'id="account-tab"' in page.get_data(as_text=True)
    assert tab.status_code == 200 and "<html" not in tab.get_data(as_text=True)
    assert 'aria-current="page">Password</a>' in tab.get_data(as_text=True)
    assert 'autocomplete="current-password"' in tab.get_data(as_text=True)
    assert bad.status_code == 422
    assert "<html" not in bad.get_data(as_text=True) and 'action="/auth/password"' in bad.get_data(as_text=True)
    assert "This is not your current password." in bad.get_data(as_text=True)
    assert all("HX-Request" in r.headers["Vary"] for r in (page, tab, bad))


def test_profile_tab_keeps_working_as_page_and_fragment(actors: Actors):
    bob = actors.client("bob")

    page = bob.get("/auth/profile").get_data(as_text=True)
    tab = bob.get("/auth/profile", headers={"HX-Request": "true"}).get_data(as_text=True)
    bad = bob.post("/auth/profile", data={"name": "", "email": "bob@example.org"}, headers={"HX-Request": "true"})

    assert "<html" in page and 'href="/auth/sessions"' in page
    assert "<html" not in tab and 'aria-current="page">Profile</a>' in tab and "Your profile" in tab
    assert bad.status_code == 422 and "<html" not in bad.get_data(as_text=True)
    assert "<nav" not in bad.get_data(as_text=True)  # only the form block


def test_password_change_attempts_are_rate_limited(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT="2 per minute")
    actors = Actors(app)
    bob = actors.client("bob")

    codes = [change_password(bob, current=f"guess number {i}").status_code for i in range(3)]

    assert codes == [422, 422, 429]
    assert len(activity(app, "user.password_change_failed")) == 2


# --- your sessions --------------------------------------------------------------------------------------

def test_my_sessions_lists_mine_and_marks_this_device(app, actors: Actors):
    here = actors.client("bob")
    actors.client("bob")
    actors.client("carol")

    page = here.get("/auth/sessions")
    html = page.get_data(as_text=True)

    assert page.status_code == 200 and "<html" in html
    assert html.count('data-testid="session"') == 2  # carol's is not listed
    assert html.count("This device") == 1 and html.count("data-this-device") == 1
    assert "pytest" in html and "127.0.0.1" in html and "last seen" in html
    tab = here.get("/auth/sessions", headers={"HX-Request": "true"})
    assert "<html" not in tab.get_data(as_text=True) and 'id="session-list"' in tab.get_data(as_text=True)
    assert "HX-Request" in tab.headers["Vary"]


def test_revoking_another_of_my_sessions_signs_it_out(app, actors: Actors):
    here, other = actors.client("bob"), actors.client("bob")
    mine, theirs = session_ids(app, actors.ids["bob"])

    resp = here.post(f"/auth/sessions/{theirs}/revoke")

    assert sent_to(resp, "/auth/sessions")
    assert sent_to(other.get("/auth/profile"), "/auth/login")
    assert signed_in(here)
    assert session_ids(app, actors.ids["bob"]) == [mine]
    [event] = activity(app, "session.revoked")
    assert event.actor_id == actors.ids["bob"] and event.details["session_id"] == theirs


def test_revoking_from_htmx_answers_with_the_refreshed_list(app, actors: Actors):
    here = actors.client("bob")
    actors.client("bob")
    _mine, theirs = session_ids(app, actors.ids["bob"])

    resp = here.post(f"/auth/sessions/{theirs}/revoke", headers={"HX-Request": "true"})

    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body
    assert body.count('data-testid="session"') == 1 and "That session is signed out." in body  # toast
    assert "HX-Request" in resp.headers["Vary"]


def test_revoking_this_session_logs_me_out(app, actors: Actors):
    here = actors.client("bob")
    [mine] = session_ids(app, actors.ids["bob"])

    resp = here.post(f"/auth/sessions/{mine}/revoke")

    assert sent_to(resp, "/auth/login")
    assert here.get_cookie("collectz_session") is None
    assert sent_to(here.get("/auth/profile"), "/auth/login")
    assert session_ids(app, actors.ids["bob"]) == []


def test_someone_elses_session_cannot_be_revoked_from_my_page(app, actors: Actors):
    bob, carol = actors.client("bob"), actors.client("carol")
    [carols] = session_ids(app, actors.ids["carol"])

    assert bob.post(f"/auth/sessions/{carols}/revoke").status_code == 403
    assert bob.post("/auth/sessions/999999/revoke").status_code == 404
    assert signed_in(carol)


def test_sign_out_everywhere_else(app, actors: Actors):
    here, a, b = actors.client("bob"), actors.client("bob"), actors.client("bob")

    resp = here.post("/auth/sessions/revoke-others")

    assert sent_to(resp, "/auth/sessions")
    assert signed_in(here) and not signed_in(a) and not signed_in(b)
    assert activity(app, "session.revoked_all")[0].details["count"] == 2


# --- admin reset links ----------------------------------------------------------------------------------

def test_reset_link_end_to_end(app, actors: Actors):
    bob_here, bob_there = actors.client("bob"), actors.client("bob")
    alice = actors.client("alice")

    shown, token = make_link(actors)

    assert "only once" in shown and f"http://localhost/auth/reset?token={token}" in shown
    # the link is in the answer to the create POST only
    again = alice.get(f"/admin/members/{actors.ids['bob']}/credentials").get_data(as_text=True)
    assert token not in again and "1 unused" in again
    with app.app_context():
        [row] = db.session.scalars(select(PasswordReset)).all()
        assert row.token_hash == hash_token(token)
        assert token not in " ".join(str(getattr(row, c.key)) for c in PasswordReset.__table__.columns)
        assert row.created_by == actors.ids["alice"]
        assert timedelta(hours=RESET_TTL_HOURS - 1) < row.expires_at - utcnow() <= timedelta(hours=RESET_TTL_HOURS)

    stranger = app.test_client()
    form = stranger.get(f"/auth/reset?token={token}")
    assert form.status_code == 200 and b"bob@example.org" in form.data and b"Choose a new password" in form.data
    assert form.headers["Referrer-Policy"] == "same-origin"

    done = use_link(stranger, token)

    assert sent_to(done, "/auth/login")
    assert not signed_in(bob_here) and not signed_in(bob_there)
    assert session_ids(app, actors.ids["bob"]) == []
    assert not can_log_in(app, "bob", Actors.PASSWORD) and can_log_in(app, "bob", NEW_PASSWORD)

    replay_get = app.test_client().get(f"/auth/reset?token={token}")
    replay_post = use_link(app.test_client(), token, password="yet another passphrase")
    assert replay_get.status_code == replay_post.status_code == 410
    assert b"already been used" in replay_get.data and b"already been used" in replay_post.data
    assert can_log_in(app, "bob", NEW_PASSWORD)

    assert [e.details["reset_id"] for e in activity(app, "password_reset.started")] == [row.id]
    [succeeded] = activity(app, "password_reset.succeeded")
    assert succeeded.entity_id == str(actors.ids["bob"]) and succeeded.details["sessions_revoked"] >= 2
    assert [f.reason for f in activity(app, "password_reset.failed")] == ["used", "used"]
    assert token not in everything_recorded(app)


def test_tokens_never_reach_the_request_log(make_app):
    app = make_app(LOG_LEVEL="INFO", AUDIT_LOG_MODE="all")
    actors = Actors(app)
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(JsonFormatter().format(record))  # type: ignore[method-assign]
    logger = logging.getLogger("collectz")
    logger.addHandler(handler)
    try:
        _shown, token = make_link(actors)
        app.test_client().get(f"/auth/reset?token={token}")
        use_link(app.test_client(), token, confirm="typo typo typo")
        use_link(app.test_client(), token)
        use_link(app.test_client(), token)
    finally:
        logger.removeHandler(handler)

    assert any('"/auth/reset"' in line for line in lines)
    assert all(token not in line for line in lines)
    assert token not in everything_recorded(app)


def test_htmx_create_answers_with_the_panel_showing_the_link(actors: Actors):
    shown, token = make_link(actors, **{"HX-Request": "true"})

    assert "<html" not in shown and 'id="member-credentials"' in shown
    assert f'data-copy="#reset-url-{actors.ids["bob"]}"' in shown and token in shown


def test_link_uses_public_url_when_set(make_app):
    actors = Actors(make_app(PUBLIC_URL="https://collectz.example.org/"))

    shown, token = make_link(actors)

    assert f"https://collectz.example.org/auth/reset?token={token}" in shown


def test_expired_link_is_refused(app, actors: Actors):
    _shown, token = make_link(actors)
    with app.app_context():
        db.session.scalar(select(PasswordReset)).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()

    opened = app.test_client().get(f"/auth/reset?token={token}")
    used = use_link(app.test_client(), token)

    assert opened.status_code == used.status_code == 410
    assert b"has expired" in opened.data
    assert can_log_in(app, "bob", Actors.PASSWORD)
    assert [f.reason for f in activity(app, "password_reset.failed")] == ["expired", "expired"]


def test_invalidated_links_are_refused(app, actors: Actors):
    alice = actors.client("alice")
    _shown, first = make_link(actors)
    _shown, second = make_link(actors)  # a new link cancels the older one

    resp = alice.post(f"/admin/members/{actors.ids['bob']}/reset-links/invalidate",
                      data={"next": f"/admin/members/{actors.ids['bob']}"})

    assert sent_to(resp, f"/admin/members/{actors.ids['bob']}")
    for token in (first, second):
        refused = use_link(app.test_client(), token)
        assert refused.status_code == 410 and b"cancelled by an admin" in refused.data
    assert can_log_in(app, "bob", Actors.PASSWORD)
    assert [e.details["replaced"] for e in activity(app, "password_reset.started")] == [0, 1]
    assert [e.details["count"] for e in activity(app, "password_reset.invalidated")] == [1]
    assert [f.reason for f in activity(app, "password_reset.failed")] == ["invalidated", "invalidated"]
    panel = alice.get(f"/admin/members/{actors.ids['bob']}/credentials").get_data(as_text=True)
    assert "none open" in panel


@pytest.mark.parametrize("token", ["not-a-real-token", "", "x" * 500])
def test_unknown_link_is_404_and_audited(app, actors: Actors, token):
    resp = app.test_client().get(f"/auth/reset?token={token}")

    assert resp.status_code == 404 and b"not valid" in resp.data
    assert [f.reason for f in activity(app, "password_reset.failed")] == ["unknown"]


def test_bad_new_password_on_the_reset_page_keeps_the_link_usable(app, actors: Actors):
    _shown, token = make_link(actors)
    client = app.test_client()

    short = use_link(client, token, password="short")
    differ = use_link(client, token, confirm="not the same thing")
    fragment = client.post("/auth/reset", data={"token": token, "new_password": "short", "confirm_password": "short"},
                           headers={"HX-Request": "true"})

    assert short.status_code == differ.status_code == fragment.status_code == 422
    assert b"Use at least 10 characters." in short.data and b"The two passwords differ." in differ.data
    assert "<html" not in fragment.get_data(as_text=True) and "HX-Request" in fragment.headers["Vary"]
    assert sent_to(use_link(client, token), "/auth/login")


def test_copying_or_sending_the_link_is_recorded_as_delivered(app, actors: Actors):
    alice = actors.client("alice")
    _shown, _token = make_link(actors)
    with app.app_context():
        reset_id = db.session.scalar(select(PasswordReset.id))
    url = f"/admin/members/{actors.ids['bob']}/reset-links/{reset_id}/delivered"

    copied = alice.post(url, data={"how": "copied"})
    marked = alice.post(url, data={"how": "marked", "next": f"/admin/members/{actors.ids['bob']}"})
    elsewhere = alice.post(f"/admin/members/{actors.ids['carol']}/reset-links/{reset_id}/delivered")

    assert copied.status_code == 204
    assert sent_to(marked, f"/admin/members/{actors.ids['bob']}")
    assert elsewhere.status_code == 404
    assert [e.details["how"] for e in activity(app, "password_reset.delivered")] == ["copied", "marked"]


def test_credentials_page_is_a_page_and_a_fragment(actors: Actors):
    alice = actors.client("alice")
    url = f"/admin/members/{actors.ids['bob']}/credentials"

    page = alice.get(url)
    fragment = alice.get(url, headers={"HX-Request": "true"})

    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    for resp in (page, fragment):
        assert 'id="member-credentials"' in resp.get_data(as_text=True)
        assert "HX-Request" in resp.headers["Vary"]
    assert alice.get("/admin/members/999999/credentials").status_code == 404


def test_member_drawer_includes_the_credentials_panel(actors: Actors):
    drawer = actors.client("alice").get(f"/admin/members/{actors.ids['bob']}").get_data(as_text=True)

    assert 'id="member-credentials"' in drawer
    assert f'name="next" value="/admin/members/{actors.ids["bob"]}"' in drawer


def admin_credential_routes(actors: Actors) -> list[tuple[str, str]]:
    bob = actors.ids["bob"]
    return [
        ("GET", f"/admin/members/{bob}/credentials"),
        ("POST", f"/admin/members/{bob}/reset-links"),
        ("POST", f"/admin/members/{bob}/reset-links/1/delivered"),
        ("POST", f"/admin/members/{bob}/reset-links/invalidate"),
        ("POST", f"/admin/members/{bob}/must-reset"),
    ]


def test_only_admins_reach_the_credential_controls(app, actors: Actors):
    routes = admin_credential_routes(actors)
    endpoints = {r.endpoint for r in app.url_map.iter_rules() if r.endpoint.startswith("admin.member_")
                 and ("reset" in r.endpoint or "credentials" in r.endpoint)}
    assert len(endpoints) == len(routes)

    for name in ("bob", "carol", "vera"):
        client = actors.client(name)
        for method, url in routes:
            resp = client.open(url, method=method, data={"required": "1", "how": "marked"})
            assert resp.status_code == 403, f"{name}: {method} {url} answered {resp.status_code}"
    for method, url in routes:
        assert sent_to(app.test_client().open(url, method=method), "/auth/login")

    with app.app_context():
        assert db.session.scalar(select(PasswordReset.id)) is None
        assert db.session.get(User, actors.ids["bob"]).must_reset is False
    assert not activity(app, "password_reset.started") and not activity(app, "user.must_reset_changed")
    assert len(activity(app, "permission.denied")) == 3 * len(routes)


# --- must reset -----------------------------------------------------------------------------------------

def require_new_password(actors: Actors, member: str = "bob", required: bool = True, **headers):
    return actors.client("alice").post(f"/admin/members/{actors.ids[member]}/must-reset",
                                       data={"required": "1" if required else "0"}, headers=headers)


def test_must_reset_holds_the_member_at_the_password_page_until_done(app, actors: Actors):
    already_in = actors.client("bob")

    resp = require_new_password(actors)

    assert sent_to(resp, f"/admin/members/{actors.ids['bob']}/credentials")
    assert user(app, actors.ids["bob"]).must_reset is True
    assert [e.details["must_reset"] for e in activity(app, "user.must_reset_changed")] == [True]
    # an open session is held too, for pages and fragments alike
    assert sent_to(already_in.get("/auth/profile"), "/auth/password")
    assert sent_to(already_in.get("/library/"), "/auth/password")
    assert sent_to(already_in.get("/auth/sessions", headers={"HX-Request": "true"}), "/auth/password")
    # signing in lands on the password page
    fresh = app.test_client()
    login = fresh.post("/auth/login", data={"email": "bob@example.org", "password": Actors.PASSWORD})
    assert sent_to(login, "/auth/password")
    page = fresh.get("/auth/password").get_data(as_text=True)
    assert "Choose a new password" in page and 'data-testid="must-reset"' in page
    assert 'aria-label="Your account"' not in page  # no tabs to wander off to
    # others are not affected
    assert signed_in(actors.client("carol"))

    done = change_password(fresh)

    assert sent_to(done, "/library/")
    assert user(app, actors.ids["bob"]).must_reset is False
    assert signed_in(fresh)
    assert sent_to(already_in.get("/auth/profile"), "/auth/login")  # signed out by the change
    assert activity(app, "user.profile_updated")[0].details["was_required"] is True


def test_must_reset_can_be_lifted_and_a_reset_link_clears_it(app, actors: Actors):
    require_new_password(actors)
    fragment = require_new_password(actors, required=False, **{"HX-Request": "true"})

    assert fragment.status_code == 200 and "<html" not in fragment.get_data(as_text=True)
    assert "not required" in fragment.get_data(as_text=True)
    assert user(app, actors.ids["bob"]).must_reset is False
    assert signed_in(actors.client("bob"))

    require_new_password(actors)
    _shown, token = make_link(actors)
    use_link(app.test_client(), token)
    assert user(app, actors.ids["bob"]).must_reset is False
    assert [e.details["must_reset"] for e in activity(app, "user.must_reset_changed")] == [True, False, True]


def test_must_reset_form_needs_a_choice(app, actors: Actors):
    resp = actors.client("alice").post(f"/admin/members/{actors.ids['bob']}/must-reset", data={"required": "maybe"})

    assert resp.status_code == 422 and b"Choose on or off." in resp.data
    assert user(app, actors.ids["bob"]).must_reset is False


def test_credential_pages_have_no_inline_scripts_or_handlers(app, actors: Actors):
    _shown, token = make_link(actors)
    alice, bob = actors.client("alice"), actors.client("bob")
    pages = [bob.get("/auth/password"), bob.get("/auth/sessions"), app.test_client().get(f"/auth/reset?token={token}"),
             alice.post(f"/admin/members/{actors.ids['carol']}/reset-links")]

    for resp in pages:
        html = resp.get_data(as_text=True)
        assert resp.status_code == 200 and "<html" in html
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None
        assert re.search(r"\son[a-z]+=", html) is None
