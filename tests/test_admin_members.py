"""Admin → Members: the list, the member drawer, role changes, sessions and deletion."""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, select

from collectz.extensions import db
from collectz.models import ActivityLog, Media, MediaUserState, User, UserSession
from collectz.models.base import utcnow
from collectz.services import members
from collectz.services.errors import Forbidden
from collectz.services.users import ensure_default_library
from tests.conftest import Actors, activity

HX = {"HX-Request": "true"}


def add_item(app: Flask, title: str, owner: int | None) -> int:
    with app.app_context():
        media = Media(library_id=ensure_default_library().id, media_type="movie", title=title, added_by=owner)
        db.session.add(media)
        db.session.commit()
        return media.id


def rate(app: Flask, media_id: int, user_id: int, rating: int | None) -> None:
    with app.app_context():
        db.session.add(MediaUserState(media_id=media_id, user_id=user_id, rating=rating))
        db.session.commit()


def role_of(app: Flask, user_id: int) -> str | None:
    with app.app_context():
        user = db.session.get(User, user_id)
        return user.role if user else None


def add_users(app: Flask, count: int, start: int = 0) -> list[int]:
    with app.app_context():
        users = [User(email=f"member{n:03}@example.org", name=f"Member {n:03}", role="user", password_hash="x")
                 for n in range(start, start + count)]
        db.session.add_all(users)
        db.session.commit()
        return [u.id for u in users]


def session_ids(app: Flask, user_id: int) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(UserSession.id).where(UserSession.user_id == user_id)
                                       .order_by(UserSession.id)))


def row(body: str, name: str) -> str:
    """The members-list row of the member called `name`."""
    match = re.search(r'<tr id="member-row-\d+"[^>]*>(?:(?!</tr>).)*>' + re.escape(name) + r"<.*?</tr>", body, re.S)
    assert match, f"no row for {name}"
    return match.group(0)


@contextmanager
def count_queries(app: Flask):
    statements: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


# --- The list ----------------------------------------------------------------------------------------

def test_members_tab_is_a_page_and_its_list_a_fragment(actors: Actors):
    admin = actors.client("alice")

    page = admin.get("/admin/members")
    fragment = admin.get("/admin/members", headers=HX)

    assert page.status_code == fragment.status_code == 200
    html = page.get_data(as_text=True)
    assert "<html" in html and 'id="admin-tab"' in html and 'id="member-drawer"' in html
    assert 'href="/admin/members" aria-current="page"' in html
    part = fragment.get_data(as_text=True)
    assert "<html" not in part and 'id="admin-tab"' not in part  # swapped into #admin-tab
    assert 'id="member-drawer"' in part and 'id="member-row-' in part
    # only the Members tab: nothing of the Invitations tab leaks in
    assert "Create invitation" not in part and "Create invitation" not in html
    for resp in (page, fragment):
        assert "HX-Request" in resp.headers["Vary"]


def test_list_shows_name_email_role_last_login_and_items_added(app, actors: Actors):
    for title in ("Alien", "Heat"):
        add_item(app, title, actors.ids["bob"])
    add_item(app, "Ran", actors.ids["carol"])
    add_item(app, "Orphan", None)
    actors.login("carol")  # sets last_login_at

    html = actors.client("alice").get("/admin/members").get_data(as_text=True)

    bob, carol, vera = row(html, "Bob"), row(html, "Carol"), row(html, "Vera")
    assert "bob@example.org" in bob and ">user<" in bob and "never" in bob
    assert re.search(r'class="num">2<', bob)
    assert re.search(r'class="num">1<', carol) and "never" not in carol
    assert re.search(r'class="num">0<', vera) and ">viewer<" in vera
    assert ">admin<" in row(html, "Alice")
    assert 'data-testid="member-link"' in bob and f'hx-get="/admin/members/{actors.ids["bob"]}"' in bob


def test_the_list_runs_the_same_number_of_queries_for_more_members_and_items(app, actors: Actors):
    admin = actors.client("alice")
    admin.get("/admin/members")  # warm-up: session touch, first-request work
    with count_queries(app) as few:
        assert admin.get("/admin/members").status_code == 200

    for n, user_id in enumerate(add_users(app, 12)):
        for k in range(3):
            add_item(app, f"Item {n}-{k}", user_id)
    with count_queries(app) as many:
        resp = admin.get("/admin/members")

    assert resp.get_data(as_text=True).count('id="member-row-') == 16
    assert len(many) == len(few), many


def test_the_list_is_paginated_with_real_links(app, actors: Actors):
    add_users(app, 30)
    admin = actors.client("alice")

    first = admin.get("/admin/members").get_data(as_text=True)
    second = admin.get("/admin/members?page=2", headers=HX).get_data(as_text=True)

    assert first.count('id="member-row-') == 25 and "Page 1 of 2" in first
    assert 'href="/admin/members?page=2"' in first
    assert second.count('id="member-row-') == 34 - 25 and 'href="/admin/members?page=1"' in second


# --- Permissions --------------------------------------------------------------------------------------

def member_routes(actors: Actors, app: Flask) -> list[tuple[str, str, dict[str, str]]]:
    bob = actors.ids["bob"]
    session_id = session_ids(app, bob)[0]
    return [
        ("GET", "/admin/members", {}),
        ("GET", f"/admin/members/{bob}", {}),
        ("GET", f"/admin/members/{bob}/delete", {}),
        ("POST", f"/admin/members/{bob}/role", {"role": "admin"}),
        ("POST", f"/admin/members/{bob}/delete", {}),
        ("POST", f"/admin/members/{bob}/sessions/{session_id}/revoke", {}),
    ]


@pytest.mark.parametrize("who", ["bob", "vera"])
def test_members_and_viewers_are_refused_and_the_refusal_is_audited(app, actors: Actors, who):
    actors.client("bob")  # a session of bob's to try to revoke
    client = actors.client(who)
    routes = member_routes(actors, app)
    bobs_sessions = session_ids(app, actors.ids["bob"])

    for method, url, data in routes:
        assert client.open(url, method=method, data=data).status_code == 403, url

    assert role_of(app, actors.ids["bob"]) == "user"
    assert session_ids(app, actors.ids["bob"]) == bobs_sessions
    denied = activity(app, "permission.denied")
    assert [(d.actor_id, d.details["path"]) for d in denied] == [(actors.ids[who], url) for _m, url, _d in routes]
    assert activity(app, "member.role_changed") == activity(app, "member.deleted") == []


def test_signed_out_visitors_are_sent_to_log_in(app, client, actors: Actors):
    actors.client("bob")
    for method, url, data in member_routes(actors, app):
        resp = client.open(url, method=method, data=data)
        assert resp.status_code == 303 and "/auth/login" in resp.headers["Location"], url
    assert role_of(app, actors.ids["bob"]) == "user"


def test_services_refuse_non_admins(ctx, actors: Actors):
    bob = db.session.get(User, actors.ids["bob"])
    with pytest.raises(Forbidden):
        members.change_role(bob, bob.id, "admin")
    with pytest.raises(Forbidden):
        members.delete_member(bob, actors.ids["carol"])
    with pytest.raises(Forbidden):
        members.member_detail(bob, bob.id)


def test_an_unknown_member_is_404(actors: Actors):
    admin = actors.client("alice")
    assert admin.get("/admin/members/999999").status_code == 404
    assert admin.post("/admin/members/999999/role", data={"role": "user"}).status_code == 404


# --- The drawer ----------------------------------------------------------------------------------------

def test_drawer_is_a_fragment_for_htmx_and_a_full_page_at_its_url(actors: Actors):
    admin = actors.client("alice")
    url = f"/admin/members/{actors.ids['bob']}"

    page = admin.get(url)
    fragment = admin.get(url, headers=HX)

    html, part = page.get_data(as_text=True), fragment.get_data(as_text=True)
    assert page.status_code == fragment.status_code == 200
    # the full page is the members page with the drawer already open
    assert "<html" in html and 'id="member-row-' in html and 'id="member-drawer"' in html
    assert "bob@example.org" in html and "Save role" in html
    # the fragment is what goes inside the drawer
    assert "<html" not in part and 'id="member-drawer"' not in part and 'id="member-row-' not in part
    assert "Bob" in part and "Save role" in part and "Active sessions" in part
    for resp in (page, fragment):
        assert "HX-Request" in resp.headers["Vary"]


def test_drawer_shows_contribution_counters_and_the_score_formula(app, actors: Actors):
    bob = actors.ids["bob"]
    alien, heat = add_item(app, "Alien", bob), add_item(app, "Heat", bob)
    ran = add_item(app, "Ran", actors.ids["carol"])
    rate(app, ran, bob, 8)
    rate(app, heat, bob, None)  # a state without a rating is not a rating
    with app.app_context():
        db.session.add(ActivityLog(actor_id=bob, action="media.updated", entity_type="media", entity_id=str(alien),
                                   created_at=utcnow().replace(year=2035)))
        db.session.commit()

    part = actors.client("alice").get(f"/admin/members/{bob}", headers=HX).get_data(as_text=True)

    assert 'data-testid="items-added">2<' in part
    assert 'data-testid="items-rated">1<' in part
    assert 'data-testid="last-edit">2035-' in part
    assert 'data-testid="score">3<' in part
    assert "Score = items added + items rated" in part


def test_last_edit_falls_back_to_the_latest_change_of_their_items(app, actors: Actors):
    carol = actors.ids["carol"]
    quiet = actors.client("alice").get(f"/admin/members/{carol}", headers=HX).get_data(as_text=True)
    assert 'data-testid="last-edit">none yet<' in quiet

    add_item(app, "Ran", carol)
    part = actors.client("alice").get(f"/admin/members/{carol}", headers=HX).get_data(as_text=True)
    assert f'data-testid="last-edit">{utcnow().year}-' in part


def test_drawer_includes_the_credentials_partial_with_the_member(app, actors: Actors):
    bob = actors.ids["bob"]
    part = actors.client("alice").get(f"/admin/members/{bob}", headers=HX).get_data(as_text=True)
    assert 'aria-label="Credentials"' in part and 'id="member-credentials"' in part
    # its plain (no-JS) posts come back to this drawer
    assert f'name="next" value="/admin/members/{bob}"' in part


# --- Role changes ---------------------------------------------------------------------------------------

def test_the_role_select_saves_only_with_its_save_button(app, actors: Actors):
    bob = actors.ids["bob"]
    part = actors.client("alice").get(f"/admin/members/{bob}", headers=HX).get_data(as_text=True)

    form = re.search(r'<form[^>]*/role"[^>]*>.*?</form>', part, re.S).group(0)
    select_tag = re.search(r"<select[^>]*>", form).group(0)
    assert "hx-" not in select_tag  # no request fires when the select changes
    assert "hx-trigger" not in form  # the form posts on submit only
    assert re.search(r'<button type="submit"[^>]*>Save role</button>', form)
    assert role_of(app, bob) == "user"


def test_admin_changes_a_role_and_it_is_audited(app, actors: Actors):
    bob = actors.ids["bob"]

    resp = actors.client("alice").post(f"/admin/members/{bob}/role", data={"role": "viewer"})

    assert resp.status_code == 303 and resp.headers["Location"] == f"/admin/members/{bob}"
    assert role_of(app, bob) == "viewer"
    [event_] = activity(app, "member.role_changed")
    assert event_.actor_id == actors.ids["alice"] and event_.entity_id == str(bob)
    assert event_.details["from"] == "user" and event_.details["to"] == "viewer"


def test_htmx_role_change_rerenders_the_drawer_and_the_row(app, actors: Actors):
    bob = actors.ids["bob"]

    resp = actors.client("alice").post(f"/admin/members/{bob}/role", data={"role": "admin"}, headers=HX)

    part = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in part
    assert 'data-testid="saved-role">admin<' in part
    oob = re.search(rf'<template>\s*<tr id="member-row-{bob}" hx-swap-oob="true">.*?</tr>', part, re.S)
    assert oob and ">admin<" in oob.group(0)
    assert "Bob is now admin." in part  # the toast, out of band
    assert role_of(app, bob) == "admin"


def test_an_unknown_role_is_422_with_the_fields_message(app, actors: Actors):
    bob = actors.ids["bob"]

    resp = actors.client("alice").post(f"/admin/members/{bob}/role", data={"role": "owner"}, headers=HX)

    assert resp.status_code == 422
    assert "Not a valid choice" in resp.get_data(as_text=True)
    assert role_of(app, bob) == "user"


def test_setting_the_same_role_changes_nothing_and_logs_nothing(app, actors: Actors):
    resp = actors.client("alice").post(f"/admin/members/{actors.ids['bob']}/role", data={"role": "user"})
    assert resp.status_code == 303
    assert activity(app, "member.role_changed") == []


def test_the_last_admin_cannot_be_demoted(app, actors: Actors):
    alice = actors.ids["alice"]

    resp = actors.client("alice").post(f"/admin/members/{alice}/role", data={"role": "user"})

    assert resp.status_code == 422
    assert "This is the last admin" in resp.get_data(as_text=True)
    assert role_of(app, alice) == "admin"
    assert activity(app, "member.role_changed") == []


def test_an_admin_may_step_down_when_another_admin_remains(app, actors: Actors):
    alice, carol = actors.ids["alice"], actors.ids["carol"]
    admin = actors.client("alice")
    admin.post(f"/admin/members/{carol}/role", data={"role": "admin"})

    resp = admin.post(f"/admin/members/{alice}/role", data={"role": "user"})

    assert resp.status_code == 303 and resp.headers["Location"] == "/library/"  # no admin area any more
    assert role_of(app, alice) == "user" and role_of(app, carol) == "admin"
    assert admin.get("/admin/members").status_code == 403
    # now carol is the last admin
    last = actors.client("carol").post(f"/admin/members/{carol}/role", data={"role": "viewer"})
    assert last.status_code == 422 and role_of(app, carol) == "admin"


# --- Sessions -----------------------------------------------------------------------------------------

def test_admin_revokes_one_of_a_members_sessions(app, actors: Actors):
    bob = actors.ids["bob"]
    phone, laptop = actors.client("bob"), actors.client("bob")
    first, second = session_ids(app, bob)
    admin = actors.client("alice")
    part = admin.get(f"/admin/members/{bob}", headers=HX).get_data(as_text=True)
    assert part.count('data-testid="member-session"') == 2
    assert f'action="/admin/members/{bob}/sessions/{first}/revoke"' in part

    resp = admin.post(f"/admin/members/{bob}/sessions/{first}/revoke")

    assert resp.status_code == 303 and resp.headers["Location"] == f"/admin/members/{bob}"
    assert session_ids(app, bob) == [second]
    signed_out = phone.get("/auth/profile")
    assert signed_out.status_code == 303 and "/auth/login" in signed_out.headers["Location"]
    assert laptop.get("/auth/profile").status_code == 200
    [event_] = activity(app, "session.revoked")
    assert event_.actor_id == actors.ids["alice"] and event_.entity_id == str(bob)
    assert event_.details["session_id"] == first


def test_htmx_session_revoke_rerenders_the_drawer(app, actors: Actors):
    bob = actors.ids["bob"]
    actors.client("bob")
    [only] = session_ids(app, bob)

    resp = actors.client("alice").post(f"/admin/members/{bob}/sessions/{only}/revoke", headers=HX)

    part = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in part
    assert "Not signed in anywhere." in part and "That session was signed out." in part
    assert session_ids(app, bob) == []


def test_a_session_is_revoked_only_under_its_own_member(app, actors: Actors):
    actors.client("carol")
    [carols] = session_ids(app, actors.ids["carol"])

    resp = actors.client("alice").post(f"/admin/members/{actors.ids['bob']}/sessions/{carols}/revoke")

    assert resp.status_code == 404
    assert session_ids(app, actors.ids["carol"]) == [carols]


# --- Deletion ---------------------------------------------------------------------------------------

def test_delete_asks_for_confirmation_first(app, actors: Actors):
    bob = actors.ids["bob"]
    add_item(app, "Alien", bob)
    admin = actors.client("alice")

    drawer = admin.get(f"/admin/members/{bob}", headers=HX).get_data(as_text=True)
    confirm = admin.get(f"/admin/members/{bob}/delete", headers=HX)
    page = admin.get(f"/admin/members/{bob}/delete")

    assert f'href="/admin/members/{bob}/delete"' in drawer  # a link to the confirmation, not a delete
    text = confirm.get_data(as_text=True)
    assert confirm.status_code == 200 and "<html" not in text
    assert "Delete Bob?" in text and "former member" in text and f'action="/admin/members/{bob}/delete"' in text
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert role_of(app, bob) == "user"


def test_deleting_a_member_keeps_their_items_as_a_former_members(app, actors: Actors):
    bob = actors.ids["bob"]
    alien = add_item(app, "Alien", bob)
    rate(app, alien, bob, 9)
    bobs_client = actors.client("bob")

    resp = actors.client("alice").post(f"/admin/members/{bob}/delete")

    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/members"
    assert role_of(app, bob) is None
    with app.app_context():
        item = db.session.get(Media, alien)
        assert item is not None and item.added_by is None
        assert db.session.scalar(select(MediaUserState.id).where(MediaUserState.user_id == bob)) is None
    assert session_ids(app, bob) == []
    assert bobs_client.get("/auth/profile").status_code == 303  # signed out everywhere
    [event_] = activity(app, "member.deleted")
    assert event_.actor_id == actors.ids["alice"] and event_.entity_id == str(bob)
    assert event_.details["email"] == "bob@example.org" and event_.details["items_kept"] == 1
    # the item stays, credited to a former member
    item_page = actors.client("carol").get(f"/library/media/{alien}")
    assert item_page.status_code == 200 and "former member" in item_page.get_data(as_text=True)
    listing = actors.client("alice").get("/admin/members").get_data(as_text=True)
    assert "bob@example.org" not in listing


def test_htmx_delete_goes_back_to_the_list_with_a_message(app, actors: Actors):
    admin = actors.client("alice")

    resp = admin.post(f"/admin/members/{actors.ids['vera']}/delete", headers=HX)

    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/admin/members"
    assert "Vera was deleted." in admin.get("/admin/members").get_data(as_text=True)


def test_an_admin_cannot_delete_themselves(app, actors: Actors):
    alice = actors.ids["alice"]
    admin = actors.client("alice")
    drawer = admin.get(f"/admin/members/{alice}", headers=HX).get_data(as_text=True)
    assert f'href="/admin/members/{alice}/delete"' not in drawer
    assert "You cannot delete your own account" in drawer

    resp = admin.post(f"/admin/members/{alice}/delete")

    assert resp.status_code == 409
    assert "You cannot delete your own account" in resp.get_data(as_text=True)
    assert role_of(app, alice) == "admin"
    assert activity(app, "member.deleted") == []


def test_another_admin_can_be_deleted_while_one_remains(app, actors: Actors):
    carol = actors.ids["carol"]
    admin = actors.client("alice")
    admin.post(f"/admin/members/{carol}/role", data={"role": "admin"})

    assert admin.post(f"/admin/members/{carol}/delete").status_code == 303
    assert role_of(app, carol) is None
    # alice is the last admin again: she can be neither demoted nor deleted
    assert admin.post(f"/admin/members/{actors.ids['alice']}/role", data={"role": "viewer"}).status_code == 422
