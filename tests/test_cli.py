"""Break-glass commands: `flask users …`, `flask sessions revoke`, and the older invites/maintenance ones."""

from __future__ import annotations

import re

from sqlalchemy import delete, func, select

from collectz.extensions import db
from collectz.models import Library, PasswordReset, User, UserSession
from collectz.security.passwords import verify_password
from collectz.security.tokens import hash_token
from tests.conftest import Actors, activity

PASSWORD = "a sturdy admin passphrase"


def flask(app, *args: str, input: str | None = None):  # noqa: A002 - click's own name
    return app.test_cli_runner().invoke(args=list(args), input=input)


def account(app, email: str) -> User | None:
    with app.app_context():
        row = db.session.scalar(select(User).where(User.email == email))
        if row is not None:
            db.session.expunge(row)
        return row


def sessions_of(app, user_id: int) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(UserSession.id)).where(UserSession.user_id == user_id))


def test_users_list(app):
    empty = flask(app, "users", "list")
    assert empty.exit_code == 0 and "No accounts yet" in empty.output

    actors = Actors(app)
    actors.login("bob")
    result = flask(app, "users", "list")

    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["EMAIL", "NAME", "ROLE", "LAST", "LOGIN"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["alice@example.org"] == ["Alice", "admin", "never"]
    assert rows["vera@example.org"] == ["Vera", "viewer", "never"]
    assert rows["bob@example.org"][:2] == ["Bob", "user"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", rows["bob@example.org"][2])


def test_create_admin_from_stdin_on_an_empty_database(app):
    with app.app_context():
        db.session.execute(delete(Library))
        db.session.commit()

    result = flask(app, "users", "create-admin", "Root@Example.org", "--password-stdin", input=PASSWORD + "\n")

    assert result.exit_code == 0, result.output
    assert "Created admin root@example.org." in result.output
    assert PASSWORD not in result.output
    created = account(app, "root@example.org")
    assert created.role == "admin" and created.name == "Root" and verify_password(created.password_hash, PASSWORD)
    with app.app_context():
        assert db.session.scalar(select(func.count(Library.id)).where(Library.is_default.is_(True))) == 1
    [event] = activity(app, "user.created")
    assert event.actor_id is None and event.details["via"] == "cli" and event.details["first_user"] is True
    # the new admin can sign in and reaches the admin area
    client = app.test_client()
    assert client.post("/auth/login", data={"email": "root@example.org", "password": PASSWORD}).status_code == 303
    assert client.get("/admin/members").status_code == 200


def test_create_admin_prompts_twice_and_insists_on_a_match(app):
    result = flask(app, "users", "create-admin", "root@example.org", "--name", "The Root",
                   input=f"{PASSWORD}\ndifferent thing\n{PASSWORD}\n{PASSWORD}\n")

    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    created = account(app, "root@example.org")
    assert created.name == "The Root" and verify_password(created.password_hash, PASSWORD)


def test_create_admin_enforces_the_minimum_length(app):
    result = flask(app, "users", "create-admin", "root@example.org", "--password-stdin", input="short\n")

    assert result.exit_code == 1
    assert "Use at least 10 characters." in result.output
    assert account(app, "root@example.org") is None
    assert activity(app, "user.created") == []


def test_create_admin_refuses_a_bad_email(app):
    result = flask(app, "users", "create-admin", "not-an-email", "--password-stdin", input=PASSWORD + "\n")

    assert result.exit_code == 1 and "not a valid email address" in result.output


def test_create_admin_refuses_an_existing_email_and_says_what_to_do(app):
    actors = Actors(app)

    result = flask(app, "users", "create-admin", "BOB@example.org", "--password-stdin", input=PASSWORD + "\n")

    assert result.exit_code == 1
    assert "already exists (role: user)" in result.output
    assert "flask users set-role bob@example.org admin" in result.output
    assert "flask users reset-password bob@example.org" in result.output
    bob = account(app, "bob@example.org")
    assert bob.role == "user" and verify_password(bob.password_hash, actors.PASSWORD)


def test_set_role_and_the_last_admin_guard(app):
    Actors(app)

    last = flask(app, "users", "set-role", "alice@example.org", "user")
    assert last.exit_code == 1 and "last admin" in last.output
    assert account(app, "alice@example.org").role == "admin"

    promoted = flask(app, "users", "set-role", "bob@example.org", "admin")
    demoted = flask(app, "users", "set-role", "alice@example.org", "viewer")
    same = flask(app, "users", "set-role", "alice@example.org", "viewer")

    assert promoted.exit_code == demoted.exit_code == same.exit_code == 0
    assert "bob@example.org is now admin." in promoted.output
    assert "already viewer" in same.output
    assert account(app, "alice@example.org").role == "viewer" and account(app, "bob@example.org").role == "admin"
    events = activity(app, "member.role_changed")
    assert [(e.details["email"], e.details["from"], e.details["to"]) for e in events] == [
        ("bob@example.org", "user", "admin"), ("alice@example.org", "admin", "viewer")]
    assert all(e.actor_id is None and e.details["via"] == "cli" for e in events)


def test_set_role_refuses_unknown_accounts_and_roles(app):
    Actors(app)

    unknown = flask(app, "users", "set-role", "nobody@example.org", "admin")
    bad_role = flask(app, "users", "set-role", "bob@example.org", "owner")

    assert unknown.exit_code == 1 and "No account with the email nobody@example.org" in unknown.output
    assert bad_role.exit_code == 2 and "owner" in bad_role.output


def test_reset_password_prints_a_one_time_link(make_app):
    app = make_app(PUBLIC_URL="https://collectz.example.org")
    actors = Actors(app)
    bob = actors.client("bob")

    result = flask(app, "users", "reset-password", "bob@example.org")

    assert result.exit_code == 0, result.output
    link = re.search(r"^https://collectz\.example\.org/auth/reset\?token=(\S+)$", result.output, re.M)
    assert link, result.output
    token = link.group(1)
    with app.app_context():
        [row] = db.session.scalars(select(PasswordReset)).all()
        assert row.token_hash == hash_token(token) and row.created_by is None
    [event] = activity(app, "password_reset.started")
    assert event.actor_id is None and event.details["via"] == "cli" and token not in str(event.details)

    used = app.test_client().post("/auth/reset", data={"token": token, "new_password": PASSWORD,
                                                       "confirm_password": PASSWORD})
    assert used.status_code == 303
    assert bob.get("/auth/profile").status_code == 303  # signed out everywhere
    assert verify_password(account(app, "bob@example.org").password_hash, PASSWORD)


def test_reset_password_without_public_url_warns(app):
    Actors(app)

    result = flask(app, "users", "reset-password", "bob@example.org")

    assert result.exit_code == 0
    assert "PUBLIC_URL is not set" in result.output
    assert re.search(r"^/auth/reset\?token=\S+$", result.output, re.M)


def test_sessions_revoke_signs_an_account_out_everywhere(app):
    actors = Actors(app)
    bob_one, bob_two, carol = actors.client("bob"), actors.client("bob"), actors.client("carol")

    result = flask(app, "sessions", "revoke", "bob@example.org")

    assert result.exit_code == 0 and "Revoked 2 sessions of bob@example.org." in result.output
    assert sessions_of(app, actors.ids["bob"]) == 0
    assert bob_one.get("/auth/profile").status_code == 303 and bob_two.get("/auth/profile").status_code == 303
    assert carol.get("/auth/profile").status_code == 200
    [event] = activity(app, "session.revoked_all")
    assert event.actor_id is None and event.details == {"email": "bob@example.org", "count": 2, "via": "cli"}
    assert flask(app, "sessions", "revoke", "nobody@example.org").exit_code == 1


def test_invites_create_and_cleanup_sessions_still_work(app):
    Actors(app)

    invite = flask(app, "invites", "create", "new@example.org", "--role", "viewer")
    member = flask(app, "invites", "create", "bob@example.org")
    cleanup = flask(app, "maintenance", "cleanup-sessions")

    assert invite.exit_code == 0 and re.search(r"/auth/register\?invite=\S+", invite.output)
    assert member.exit_code == 1 and "already belongs to a member" in member.output
    assert cleanup.exit_code == 0 and "expired sessions" in cleanup.output


def test_invites_create_without_an_admin_points_at_create_admin(app):
    result = flask(app, "invites", "create", "new@example.org")

    assert result.exit_code == 1 and "flask users create-admin" in result.output
