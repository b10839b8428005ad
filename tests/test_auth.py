"""Accounts: first-run admin, invite-only registration, login, logout, sessions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Invite, User, UserSession
from collectz.models.base import utcnow
from collectz.security import passwords
from collectz.security.tokens import hash_token
from tests.conftest import Actors, activity

PASSWORD = "a long enough password"


def register(client, email="first@example.org", name="First", password=PASSWORD, invite=None, **headers):
    data = {"email": email, "name": name, "password": password}
    if invite is not None:
        data["invite"] = invite
    return client.post("/auth/register", data=data, headers=headers)


def sent_to_login(resp) -> bool:
    return resp.status_code == 303 and "/auth/login" in resp.headers["Location"]


def count_users(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(User.id)))


def make_invite(app, email="second@example.org", role="user", ttl_hours=None):
    from collectz.services.invites import create_invite

    with app.test_request_context():
        admin = db.session.scalar(select(User).where(User.role == "admin"))
        invite, token = create_invite(admin, email, role, ttl_hours)
        return invite.id, token


def test_first_registration_becomes_admin_without_invite(app, client):
    page = client.get("/auth/register")
    assert b"becomes the <strong>admin</strong>" in page.data

    resp = register(client)

    assert resp.status_code == 303
    assert resp.headers["Location"].endswith("/library/")
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.role == "admin"
        assert user.password_hash.startswith("$argon2id$")
    # registration signed the admin in
    assert client.get("/library/").status_code == 200
    assert [e.details["first_user"] for e in activity(app, "user.registered")] == [True]


def test_second_registration_needs_an_invite(app, client):
    register(client)
    other = app.test_client()

    resp = register(other, email="second@example.org", name="Second")

    assert resp.status_code == 422
    assert b"needs an invitation" in resp.data
    assert count_users(app) == 1


def test_invite_registration_takes_the_invites_role_and_is_single_use(app, client):
    register(client)
    invite_id, token = make_invite(app, "Second@Example.org", role="viewer")

    resp = register(app.test_client(), email="second@EXAMPLE.org", name="Second", invite=token)

    assert resp.status_code == 303
    with app.app_context():
        second = db.session.scalar(select(User).where(User.email == "second@example.org"))
        assert second.role == "viewer"
        invite = db.session.get(Invite, invite_id)
        assert invite.used_by == second.id and invite.used_at is not None
    claimed = activity(app, "invite.claimed")
    assert claimed[0].details["email"] == "second@example.org"

    again = register(app.test_client(), email="second@example.org", name="Again", invite=token)
    assert again.status_code == 422
    assert b"already been used" in again.data


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown", b"not valid"),
        ("expired", b"expired"),
        ("revoked", b"revoked"),
        ("wrong_email", b"different email"),
    ],
)
def test_bad_invites_are_refused_with_a_reason_and_audited(app, client, case, message):
    register(client)
    invite_id, token = make_invite(app, "second@example.org", ttl_hours=-1 if case == "expired" else None)
    email = "someone.else@example.org" if case == "wrong_email" else "second@example.org"
    if case == "unknown":
        token = "not-a-real-token"
    if case == "revoked":
        with app.app_context():
            db.session.get(Invite, invite_id).revoked_at = utcnow()
            db.session.commit()

    resp = register(app.test_client(), email=email, name="Second", invite=token)

    assert resp.status_code == 422
    assert message in resp.data
    assert count_users(app) == 1
    failures = activity(app, "invite.claim_failed")
    assert [f.reason for f in failures] == [case]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("email", "not-an-email", b"Enter a valid email address."),
        ("password", "short", b"Use at least 10 characters."),
        ("name", "x" * 101, b"Field cannot be longer than 100 characters."),
        ("email", "a" * 250 + "@example.org", b"Field cannot be longer than 254 characters."),
        ("name", "", b"This field is required."),
    ],
)
def test_bad_registration_input_is_422_with_the_fields_message(app, client, field, value, message):
    data = {"email": "first@example.org", "name": "First", "password": PASSWORD, field: value}

    resp = client.post("/auth/register", data=data)

    assert resp.status_code == 422
    assert message in resp.data
    assert count_users(app) == 0


def test_registration_form_is_a_fragment_for_htmx(client):
    resp = register(client, password="short", **{"HX-Request": "true"})

    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert "<html" not in body and "<form" in body
    assert "Use at least 10 characters." in body
    assert "HX-Request" in resp.headers["Vary"]


def test_login_creates_a_hashed_server_side_session(app, actors: Actors):
    client = app.test_client()

    resp = client.post("/auth/login", data={"email": "BOB@example.org", "password": actors.PASSWORD})

    assert resp.status_code == 303
    cookie = client.get_cookie("collectz_session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert cookie.expires is None  # not "remember me": gone with the browser
    with app.app_context():
        row = db.session.scalar(select(UserSession))
        assert row.user_id == actors.ids["bob"]
        assert row.token_hash == hash_token(cookie.value) and row.token_hash != cookie.value
        assert db.session.get(User, actors.ids["bob"]).last_login_at is not None
    assert client.get("/library/").status_code == 200
    assert activity(app, "auth.login")[0].actor_id == actors.ids["bob"]


def test_a_signed_in_request_reads_its_session_and_member_in_one_statement(app, actors: Actors):
    from tests.conftest import statements

    bob = actors.client("bob")
    bob.get("/auth/profile")  # the session's first use may touch last_seen_at
    with statements(app) as seen:
        assert bob.get("/auth/profile").status_code == 200
    sessions = [s for s in seen if "FROM user_sessions" in s]
    assert len(sessions) == 1 and "JOIN users" in sessions[0]
    assert not any("FROM users" in s and "user_sessions" not in s for s in seen)


def test_every_signed_in_request_runs_one_session_statement_built_once(app, actors: Actors):
    from sqlalchemy import event
    from sqlalchemy.sql.util import find_tables

    with app.app_context():
        engine = db.engine
    ran: list[object] = []

    def record(_conn, clauseelement, *_args) -> None:
        if UserSession.__table__ in find_tables(clauseelement):
            ran.append(clauseelement)

    bob, carol = actors.client("bob"), actors.client("carol")
    bob.get("/auth/profile")  # the sessions' first use may touch last_seen_at
    carol.get("/auth/profile")
    event.listen(engine, "before_execute", record)
    try:
        for client in (bob, carol, bob):
            assert client.get("/auth/profile").status_code == 200
    finally:
        event.remove(engine, "before_execute", record)
    assert len(ran) == 3 and ran[0] is ran[1] is ran[2]


def test_remember_me_is_opt_in_and_capped(app, actors: Actors):
    client = app.test_client()
    client.post("/auth/login", data={"email": "bob@example.org", "password": actors.PASSWORD, "remember": "y"})

    cookie = client.get_cookie("collectz_session")
    assert cookie.expires is not None
    days = app.config["COLLECTZ"].SESSION_REMEMBER_DAYS
    lifetime = cookie.expires - utcnow()
    assert timedelta(days=days - 1) < lifetime <= timedelta(days=days)


def test_login_failure_is_generic_and_audited(app, actors: Actors):
    client = app.test_client()
    wrong_password = client.post("/auth/login", data={"email": "bob@example.org", "password": "wrong password!"})
    unknown_user = client.post("/auth/login", data={"email": "nobody@example.org", "password": "wrong password!"})

    for resp in (wrong_password, unknown_user):
        assert resp.status_code == 422
        assert b"Email or password is incorrect." in resp.data
    assert client.get_cookie("collectz_session") is None
    failures = activity(app, "auth.login_failed")
    assert [f.details["email"] for f in failures] == ["bob@example.org", "nobody@example.org"]
    assert all(f.details["path"] == "/auth/login" and f.details["method"] == "POST" for f in failures)
    assert all("wrong password" not in str(f.details) for f in failures)


def test_logout_revokes_the_session_server_side(app, actors: Actors):
    client = actors.login("bob")
    old_cookie = client.get_cookie("collectz_session").value

    resp = client.post("/auth/logout")

    assert resp.status_code == 303 and resp.headers["Location"].endswith("/auth/login")
    with app.app_context():
        assert db.session.scalar(select(func.count(UserSession.id))) == 0
    replay = app.test_client()
    replay.set_cookie("collectz_session", old_cookie)
    page = replay.get("/library/")
    assert sent_to_login(page)
    assert activity(app, "auth.logout")[0].actor_id == actors.ids["bob"]


def test_login_page_without_users_sends_to_registration(client):
    resp = client.get("/auth/login")
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/auth/register")


def test_unauthenticated_htmx_request_gets_hx_redirect(app, actors):
    resp = app.test_client().get("/library/", headers={"HX-Request": "true"})
    assert resp.status_code == 204
    assert resp.headers["HX-Redirect"].startswith("/auth/login")


def test_login_next_only_accepts_local_paths(app, actors: Actors):
    client = app.test_client()
    data = {"email": "bob@example.org", "password": actors.PASSWORD}
    evil = client.post("/auth/login?next=https://evil.example/", data=data)
    assert evil.headers["Location"] == "/library/"
    good = app.test_client().post("/auth/login?next=/library/books", data=data)
    assert good.headers["Location"] == "/library/books"


def test_idle_and_absolute_expiry(app, actors: Actors):
    client = actors.client("bob")
    assert client.get("/library/").status_code == 200
    with app.app_context():
        row = db.session.scalar(select(UserSession))
        row.last_seen_at = utcnow() - timedelta(minutes=app.config["COLLECTZ"].SESSION_IDLE_MINUTES + 1)
        db.session.commit()
    assert sent_to_login(client.get("/library/"))

    remembered = actors.client("carol", remember=True)
    with app.app_context():
        row = db.session.scalar(select(UserSession).where(UserSession.user_id == actors.ids["carol"]))
        row.last_seen_at = utcnow() - timedelta(days=3)  # idle, but remember-me has no idle limit
        db.session.commit()
    assert remembered.get("/library/").status_code == 200
    with app.app_context():
        row = db.session.scalar(select(UserSession).where(UserSession.user_id == actors.ids["carol"]))
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert sent_to_login(remembered.get("/library/"))


def test_sessions_per_user_are_capped_oldest_first(make_app):
    app = make_app(SESSION_MAX_PER_USER=3)
    actors = Actors(app)
    clients = [actors.client("bob") for _ in range(4)]

    assert sent_to_login(clients[0].get("/library/"))  # the oldest was pruned
    assert all(c.get("/library/").status_code == 200 for c in clients[1:])
    with app.app_context():
        assert db.session.scalar(select(func.count(UserSession.id))) == 3


def test_password_is_rehashed_on_login_when_parameters_change(app, actors: Actors):
    with app.app_context():
        before = db.session.get(User, actors.ids["bob"]).password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    original = passwords._hasher
    passwords.set_hasher(stronger)
    try:
        actors.login("bob")
    finally:
        passwords.set_hasher(original)
    with app.app_context():
        after = db.session.get(User, actors.ids["bob"]).password_hash
    assert after != before and "t=2" in after and "m=2048" in after


class CountingHasher(PasswordHasher):
    calls = 0

    def verify(self, hash, password):  # noqa: A002 - argon2's own signature
        CountingHasher.calls += 1
        return super().verify(hash, password)


def test_login_is_rate_limited_per_account_before_hashing(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT="3 per minute", LOGIN_LIMIT_PER_IP="100 per minute")
    actors = Actors(app)
    original = passwords._hasher
    passwords.set_hasher(CountingHasher(time_cost=1, memory_cost=1024, parallelism=1))
    CountingHasher.calls = 0
    try:
        client = app.test_client()
        codes = [client.post("/auth/login", data={"email": "bob@example.org", "password": "wrong guess 123"},
                             environ_base={"REMOTE_ADDR": f"10.0.0.{i}"}).status_code for i in range(5)]
    finally:
        passwords.set_hasher(original)

    assert codes == [422, 422, 422, 429, 429]
    assert CountingHasher.calls == 3  # the limited attempts never reached the hash
    limited = client.post("/auth/login", data={"email": "bob@example.org", "password": actors.PASSWORD})
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert b"Too many attempts" in limited.data
    assert activity(app, "security.rate_limited")
    # another account from the same addresses is not affected
    other = client.post("/auth/login", data={"email": "carol@example.org", "password": actors.PASSWORD})
    assert other.status_code == 303


def test_login_is_rate_limited_per_ip(make_app):
    app = make_app(LOGIN_LIMIT_PER_ACCOUNT="100 per minute", LOGIN_LIMIT_PER_IP="2 per minute")
    Actors(app)
    client = app.test_client()
    codes = [client.post("/auth/login", data={"email": f"user{i}@example.org", "password": "wrong guess 123"})
             .status_code for i in range(3)]
    assert codes == [422, 422, 429]
    elsewhere = app.test_client().post("/auth/login", data={"email": "user9@example.org", "password": "x" * 12},
                                       environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 422


def test_profile_update(app, actors: Actors):
    client = actors.client("bob")

    resp = client.post("/auth/profile", data={"name": "Robert", "email": "robert@example.org"})

    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(User, actors.ids["bob"]).email == "robert@example.org"
    event = activity(app, "user.profile_updated")[0]
    assert event.details["changed"]["email"] == {"from": "bob@example.org", "to": "robert@example.org"}
    assert event.details["password_changed"] is False

    taken = client.post("/auth/profile", data={"name": "Robert", "email": "carol@example.org"})
    assert taken.status_code == 422 and b"already exists" in taken.data


def test_sign_in_still_works_while_redis_is_down(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    actors = Actors(app)

    resp = app.test_client().post("/auth/login", data={"email": "bob@example.org", "password": actors.PASSWORD})

    assert resp.status_code == 303  # rate limits fall back to per-process memory instead of a 500
