"""Roles: viewers read only, users write their own items, admins everything; denials are audited."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Media
from collectz.security.permissions import can_edit_media
from tests.conftest import Actors, activity

# Routes any signed-in account may post to: its own sign-in state and its own profile.
OWN_ACCOUNT_ROUTES = {"auth.login", "auth.register", "auth.logout", "auth.profile", "auth.password",
                      "auth.session_revoke", "auth.sessions_revoke_others", "auth.reset", "auth.token_create"}


def add_item(client, title="Alien", media_type="movie", **extra):
    data = {"title": title, "media_type": media_type, "copies": "1", **extra}
    return client.post("/library/media/new", data=data)


def item_id(app, title) -> int:
    with app.app_context():
        return db.session.scalar(select(Media.id).where(Media.title == title))


def media_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Media.id)))


def write_routes(app):
    """Every URL rule that accepts a write method, with its placeholders filled."""
    for rule in app.url_map.iter_rules():
        methods = rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        # Routes with other placeholders (member, session, flag ids) are covered by tests/test_rbac.py.
        other_placeholders = set(rule.arguments) - {"media_id"}
        if methods and rule.endpoint not in OWN_ACCOUNT_ROUTES and not other_placeholders:
            yield rule, methods


def test_viewer_gets_403_on_every_write_route(app, actors: Actors):
    bob = actors.client("bob")
    add_item(bob, "Bob's film")
    media_id = item_id(app, "Bob's film")
    viewer = actors.client("vera")
    routes = list(write_routes(app))
    assert {r.endpoint for r, _ in routes} >= {"library.media_new", "library.media_edit", "library.media_delete"}

    for rule, methods in routes:
        url = re.sub(r"<(?:[^:>]+:)?media_id>", str(media_id), rule.rule)
        assert "<" not in url, f"fill the placeholder of {rule.rule} in this test"
        for method in methods:
            resp = viewer.open(url, method=method, data={"title": "changed", "media_type": "movie"})
            assert resp.status_code == 403, f"{method} {url} answered {resp.status_code} to a viewer"

    with app.app_context():
        assert db.session.get(Media, media_id).title == "Bob's film"
    assert media_count(app) == 1
    denials = activity(app, "permission.denied")
    assert len(denials) >= len(routes)
    assert all(d.actor_id == actors.ids["vera"] and d.http_status == 403 for d in denials)


def test_viewer_can_browse_but_sees_no_write_controls(app, actors: Actors):
    add_item(actors.client("bob"), "Bob's film")
    viewer = actors.client("vera")

    listing = viewer.get("/library/")
    media_id = item_id(app, "Bob's film")
    detail = viewer.get(f"/library/media/{media_id}")

    assert listing.status_code == 200 and b"Bob&#39;s film" in listing.data
    assert b"Add item" not in listing.data
    assert detail.status_code == 200 and b"Edit</a>" not in detail.data
    assert viewer.get("/library/media/new").status_code == 403


def test_user_cannot_change_another_users_item(app, actors: Actors):
    add_item(actors.client("carol"), "Carol's book", media_type="book")
    media_id = item_id(app, "Carol's book")
    bob = actors.client("bob")

    edit = bob.post(f"/library/media/{media_id}/edit", data={"title": "Mine now", "media_type": "book", "copies": 1})
    delete = bob.post(f"/library/media/{media_id}/delete")
    edit_form = bob.get(f"/library/media/{media_id}/edit")

    assert (edit.status_code, delete.status_code, edit_form.status_code) == (403, 403, 403)
    with app.app_context():
        assert db.session.get(Media, media_id).title == "Carol's book"
    denials = activity(app, "permission.denied")
    assert len(denials) == 3 and {d.actor_id for d in denials} == {actors.ids["bob"]}
    assert denials[0].details["path"] == f"/library/media/{media_id}/edit"


def test_user_edits_and_deletes_own_item_and_admin_anything(app, actors: Actors):
    bob = actors.client("bob")
    add_item(bob, "Bob's film")
    media_id = item_id(app, "Bob's film")

    own = bob.post(f"/library/media/{media_id}/edit", data={"title": "Bob's cut", "media_type": "movie", "copies": 2})
    assert own.status_code == 303
    admin = actors.client("alice")
    by_admin = admin.post(f"/library/media/{media_id}/edit",
                          data={"title": "Admin's cut", "media_type": "movie", "copies": 2})
    assert by_admin.status_code == 303
    assert admin.post(f"/library/media/{media_id}/delete").status_code == 303
    assert media_count(app) == 0
    actions = [(e.action, e.actor_id) for e in activity(app) if e.action.startswith("media.")]
    assert actions == [("media.created", actors.ids["bob"]), ("media.updated", actors.ids["bob"]),
                       ("media.updated", actors.ids["alice"]), ("media.deleted", actors.ids["alice"])]
    updated = [e for e in activity(app, "media.updated")][0]
    assert updated.details["changed"]["title"] == {"from": "Bob's film", "to": "Bob's cut"}


def test_missing_item_is_404_not_403(actors: Actors):
    bob = actors.client("bob")
    assert bob.get("/library/media/999999").status_code == 404
    assert bob.post("/library/media/999999/edit", data={"title": "x"}).status_code == 404


def test_admin_area_is_for_admins_only(app, actors: Actors):
    assert actors.client("bob").get("/admin/members").status_code == 403
    assert actors.client("vera").get("/admin/members").status_code == 403
    assert actors.client("alice").get("/admin/members").status_code == 200
    assert actors.client("alice").get("/admin/").status_code == 302
    assert [d.details["path"] for d in activity(app, "permission.denied")] == ["/admin/members", "/admin/members"]


@pytest.mark.parametrize(
    "role, added_by_self, expected",
    [("admin", False, True), ("user", True, True), ("user", False, False), ("viewer", True, False)],
)
def test_can_edit_media_rule(role, added_by_self, expected):
    class Actor:
        id = 7

    actor = Actor()
    actor.role = role
    item = Media(title="x", media_type="other", added_by=7 if added_by_self else 8)
    assert can_edit_media(actor, item) is expected


def test_invalid_item_input_is_422_and_writes_nothing(app, actors: Actors):
    bob = actors.client("bob")

    resp = add_item(bob, title="", year="1500")

    assert resp.status_code == 422
    assert b"A title is needed." in resp.data and b"between 1800 and 2100" in resp.data
    assert media_count(app) == 0
