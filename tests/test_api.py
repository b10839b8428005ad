"""The JSON API's behaviour: the issue's acceptance lines, the one error shape, CSRF, rate limits, items, imports
and admin through the API (the same services, so the same rules and activity events as the pages)."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from collectz.blueprints.api.spec import OPERATIONS
from collectz.extensions import db
from collectz.models import ApiToken, Media, SyncJob, User
from collectz.models.base import utcnow
from collectz.services import flags
from tests.conftest import Actors, activity
from tests.test_api_contract import API, REQUESTS, Contract, TokenClient, World, count, find_operation


@pytest.fixture
def world(app: Flask, actors: Actors) -> World:
    doc = app.test_client().get(f"{API}/openapi.json").get_json()
    return World(app, actors, Contract(doc))


def error_of(resp: Any) -> dict[str, Any]:
    body = resp.get_json()
    assert resp.mimetype == "application/json" and set(body) == {"error"}, resp.data[:300]
    assert set(body["error"]) == {"code", "message", "fields"} and body["error"]["message"]
    return body["error"]


def title_of(app: Flask, media_id: int) -> str | None:
    with app.app_context():
        media = db.session.get(Media, media_id)
        return media.title if media else None


# --- acceptance ----------------------------------------------------------------------------------------------------

def test_a_media_read_token_lists_and_gets_but_cannot_create(world: World) -> None:
    item = world.new_item("bob", "Alien")
    reader = world.bearer("bob", ["media:read"])

    listed = reader.get(f"{API}/media")
    got = reader.get(f"{API}/media/{item}")
    created = reader.post(f"{API}/media", json={"title": "Dune", "media_type": "book"})

    assert listed.status_code == 200 and [i["title"] for i in listed.get_json()["items"]] == ["Alien"]
    assert got.status_code == 200 and got.get_json()["title"] == "Alien"
    assert created.status_code == 403 and "media:write" in error_of(created)["message"]
    assert count(world.app, Media) == 1
    denied = activity(world.app, "permission.denied")[-1]
    assert denied.actor_id == world.actors.ids["bob"] and denied.details["path"] == f"{API}/media"


def test_revoked_and_expired_tokens_get_401(world: World) -> None:
    revoked_raw, expired_raw = world.token("bob"), world.token("bob")
    with world.app.app_context():
        rows = {r.hint: r for r in db.session.scalars(select(ApiToken))}
        rows[revoked_raw[-4:]].revoked_at = utcnow()
        rows[expired_raw[-4:]].expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()

    revoked = TokenClient(world.app, revoked_raw).get(f"{API}/me")
    expired = TokenClient(world.app, expired_raw).get(f"{API}/me")
    unknown = TokenClient(world.app, "czp_" + "x" * 43).get(f"{API}/me")

    assert (revoked.status_code, expired.status_code, unknown.status_code) == (401, 401, 401)
    assert error_of(revoked)["code"] == "token_revoked" and error_of(expired)["code"] == "token_expired"
    assert error_of(unknown)["code"] == "token_unknown"
    rejected = activity(world.app, "api_token.rejected")
    assert [e.reason for e in rejected] == ["revoked", "expired", "unknown"]
    assert all(e.http_status == 401 and e.status == "failed" for e in rejected)


def test_a_users_token_cannot_edit_another_members_item(world: World) -> None:
    carols = world.new_item("carol", "Carol's book")
    bob = world.bearer("bob")

    edit = bob.patch(f"{API}/media/{carols}", json={"title": "Mine now"})
    delete = bob.delete(f"{API}/media/{carols}")
    bulk = bob.post(f"{API}/media/bulk-delete", json={"ids": [carols]})

    assert (edit.status_code, delete.status_code) == (403, 403)
    assert bulk.status_code == 200 and bulk.get_json() | {"message": ""} == {
        "requested": 1, "deleted": 0, "skipped": 1, "message": ""}
    assert title_of(world.app, carols) == "Carol's book"
    got = bob.get(f"{API}/media/{carols}").get_json()
    assert got["can_edit"] is False
    denials = [e for e in activity(world.app, "permission.denied") if e.actor_id == world.actors.ids["bob"]]
    assert len(denials) == 3


def test_a_viewers_token_cannot_write_anything(world: World) -> None:
    bobs = world.new_item("bob", "Bob's film")
    viewer = world.bearer("vera")  # every scope a viewer may hold: media:read
    requests = [(op, *REQUESTS[f"api.{op.endpoint}"](world)) for op in OPERATIONS if op.method != "GET"]
    before = count(world.app, Media)

    answers = {op.endpoint: viewer.open(url, method=op.method, **kwargs).status_code for op, url, kwargs in requests}

    assert set(answers.values()) == {403}, answers
    assert count(world.app, Media) == before and title_of(world.app, bobs) == "Bob's film"


def test_a_viewer_cannot_hold_a_writing_scope_and_a_demoted_members_token_loses_it(world: World) -> None:
    with world.app.app_context():
        from collectz.services import tokens
        from collectz.services.errors import InvalidInput

        vera = db.session.get(User, world.actors.ids["vera"])
        with pytest.raises(InvalidInput) as refused:
            tokens.create_token(vera, "sneaky", ["media:read", "media:write"], 30)
    assert "media:write" in refused.value.fields["scopes"]

    bob = world.bearer("bob")  # media:read, media:write, import:run
    with world.app.app_context():
        db.session.get(User, world.actors.ids["bob"]).role = "viewer"
        db.session.commit()

    me = bob.get(f"{API}/me").get_json()
    created = bob.post(f"{API}/media", json={"title": "Dune"})

    assert me["role"] == "viewer" and me["scopes"] == ["media:read"]
    assert me["token"]["scopes"] == ["media:read", "media:write", "import:run"]
    assert created.status_code == 403 and count(world.app, Media) == 0


# --- who is calling ------------------------------------------------------------------------------------------------

def test_me_says_who_and_how(world: World) -> None:
    token = world.bearer("bob", ["media:read"]).get(f"{API}/me").get_json()
    session = world.session("vera").get(f"{API}/me").get_json()

    assert token["email"] == "bob@example.org" and token["auth"] == "token"
    assert token["scopes"] == ["media:read"] and token["token"]["name"].startswith("test")
    assert session["auth"] == "session" and session["role"] == "viewer" and session["token"] is None


def test_a_token_beats_the_cookie_and_a_bad_token_is_refused_even_with_one(world: World) -> None:
    client = world.session("vera")
    as_bob = client.get(f"{API}/me", headers={"Authorization": f"Bearer {world.token('bob')}"})
    bad = client.get(f"{API}/me", headers={"Authorization": "Bearer czp_nope"})
    basic = client.get(f"{API}/me", headers={"Authorization": "Basic Ym9iOnB3"})

    assert as_bob.get_json()["email"] == "bob@example.org"
    assert bad.status_code == 401 and error_of(bad)["code"] == "token_malformed"
    assert basic.status_code == 401


def test_a_locked_account_cannot_use_the_api(world: World) -> None:
    raw = world.token("bob")
    session = world.session("bob")
    with world.app.app_context():
        db.session.get(User, world.actors.ids["bob"]).must_reset = True
        db.session.commit()

    by_token = TokenClient(world.app, raw).get(f"{API}/media")
    by_session = session.get(f"{API}/media")

    assert by_token.status_code == 401 and error_of(by_token)["code"] == "token_account_locked"
    assert by_session.status_code == 403 and "new password" in error_of(by_session)["message"]


def test_a_deleted_members_tokens_go_with_them(world: World) -> None:
    raw = world.token("carol")
    admin = world.bearer("alice")

    assert admin.delete(f"{API}/admin/members/{world.actors.ids['carol']}").status_code == 200
    assert TokenClient(world.app, raw).get(f"{API}/me").status_code == 401
    assert count(world.app, ApiToken) == 1  # alice's


# --- the one error shape -------------------------------------------------------------------------------------------

def test_unknown_paths_and_methods_answer_json(world: World) -> None:
    client = world.bearer("bob")
    missing = client.get(f"{API}/nothing-here")
    wrong_method = client.put(f"{API}/me")
    huge_id = client.get(f"{API}/media/99999999999")
    no_item = client.get(f"{API}/media/424242")

    assert missing.status_code == 404 and error_of(missing)["code"] == "not_found"
    assert wrong_method.status_code == 405 and error_of(wrong_method)["code"] == "method_not_allowed"
    assert "GET" in wrong_method.headers["Allow"]
    assert huge_id.status_code == 404 and error_of(huge_id)["code"] == "not_found"
    assert no_item.status_code == 404 and error_of(no_item)["message"] == "No such item."


def test_a_server_error_is_json_and_rolled_back(make_app: Any) -> None:
    app = make_app()

    def boom() -> None:
        raise RuntimeError("kaput")

    app.add_url_rule(f"{API}/boom-for-the-test", "boom", boom)
    resp = app.test_client().get(f"{API}/boom-for-the-test")

    assert resp.status_code == 500 and error_of(resp)["code"] == "server_error"
    assert "kaput" not in resp.get_data(as_text=True)


def test_bodies_that_cannot_be_read_are_400_and_bad_values_422_with_fields(world: World) -> None:
    bob = world.bearer("bob")
    not_json = bob.post(f"{API}/media", data="title=Dune", content_type="application/x-www-form-urlencoded")
    broken = bob.post(f"{API}/media", data="{", content_type="application/json")
    array = bob.post(f"{API}/media", json=["Dune"])
    types = bob.post(f"{API}/media", json={"title": "Dune", "year": "1965", "colour": "red", "formats": "DVD"})
    rules = bob.post(f"{API}/media", json={"title": " ", "year": 1500, "isbn": "0-441-01359-8"})
    nul = bob.get(f"{API}/media", query_string={"q": "du\x00ne"})

    assert [r.status_code for r in (not_json, broken, array)] == [400, 400, 400]
    assert error_of(broken)["code"] == "bad_request"
    assert types.status_code == 422 and set(error_of(types)["fields"]) == {"year", "colour", "formats"}
    assert rules.status_code == 422 and set(error_of(rules)["fields"]) == {"title", "year", "isbn"}
    assert "check digit" in error_of(rules)["fields"]["isbn"]
    assert nul.status_code == 422 and error_of(nul)["fields"] == {"q": "Contains a NUL character."}
    assert count(world.app, Media) == 0


def test_a_session_write_needs_the_csrf_token_and_a_token_write_does_not(world: World) -> None:
    session = world.session("bob")
    without = session.post(f"{API}/media", json={"title": "Dune"}, csrf=False)
    with_csrf = session.post(f"{API}/media", json={"title": "Dune"})
    by_token = world.bearer("bob").post(f"{API}/media", json={"title": "Alien"})

    assert without.status_code == 403 and error_of(without)["code"] == "csrf_missing"
    assert with_csrf.status_code == 201 and by_token.status_code == 201
    assert [e.details["path"] for e in activity(world.app, "security.csrf_failed")] == [f"{API}/media"]


def test_guessing_tokens_is_rate_limited_like_signing_in(make_app: Any) -> None:
    app = make_app(LOGIN_LIMIT_PER_IP="3 per minute")
    client = app.test_client()
    guesses = [client.get(f"{API}/me", headers={"Authorization": f"Bearer czp_{'a' * 42}{i}"}) for i in range(4)]

    assert [g.status_code for g in guesses] == [401, 401, 401, 429]
    assert error_of(guesses[-1])["code"] == "rate_limited" and guesses[-1].headers.get("Retry-After")


def test_a_tokens_calls_count_against_its_owners_budget(make_app: Any) -> None:
    app = make_app(RATELIMIT_DEFAULT="3 per minute")
    world = World(app, Actors(app), Contract({}))
    first, second, carol = world.bearer("bob"), world.bearer("bob"), world.bearer("carol")

    answers = [c.get(f"{API}/me").status_code for c in (first, second, first, second)]

    assert answers == [200, 200, 200, 429]  # one member, one budget, whichever token (or address)
    assert carol.get(f"{API}/me").status_code == 200


def test_a_conflict_is_409(world: World) -> None:
    admin = world.bearer("alice")
    invite = world.new_invite()
    first = admin.post(f"{API}/admin/invitations/{invite}/revoke")
    again = admin.post(f"{API}/admin/invitations/{invite}/revoke")

    assert first.status_code == 200 and first.get_json()["status"] == "revoked"
    assert again.status_code == 409 and error_of(again)["code"] == "conflict"


# --- items ---------------------------------------------------------------------------------------------------------

def test_create_get_update_and_delete_an_item_with_its_events(world: World) -> None:
    bob = world.bearer("bob")
    created = bob.post(f"{API}/media", json={
        "title": "Dune", "media_type": "book", "year": 1965, "isbn": "0-441-01359-7", "formats": ["Paperback"],
        "people": [{"role": "author", "name": "Frank Herbert"}], "genres": ["Science fiction"],
        "type_details": {"publisher": "Ace", "pages": 412}})
    assert created.status_code == 201, created.data
    item = created.get_json()
    assert created.headers["Location"].endswith(f"{API}/media/{item['id']}")
    assert item["isbn"] == "9780441013593" and item["people"] == [
        {"role": "author", "name": "Frank Herbert", "character": None}]
    assert item["added_by"] == world.actors.ids["bob"] and item["can_edit"] is True

    changed = bob.patch(f"{API}/media/{item['id']}", json={"notes": "Signed", "genres": []})
    assert changed.status_code == 200
    after = changed.get_json()
    assert after["notes"] == "Signed" and after["genres"] == [] and after["isbn"] == "9780441013593"
    assert after["people"] == item["people"] and after["type_details"] == {"publisher": "Ace", "pages": 412}

    retyped = bob.patch(f"{API}/media/{item['id']}", json={"media_type": "movie"}).get_json()
    assert retyped["media_type"] == "movie" and retyped["type_details"] == {}

    assert bob.delete(f"{API}/media/{item['id']}").status_code == 204
    assert bob.get(f"{API}/media/{item['id']}").status_code == 404
    actions = [(e.action, e.actor_id) for e in activity(world.app) if e.action.startswith("media.")]
    bob_id = world.actors.ids["bob"]
    assert actions == [("media.created", bob_id), ("media.updated", bob_id), ("media.updated", bob_id),
                       ("media.deleted", bob_id)]
    assert activity(world.app, "media.updated")[0].details["changed"]["notes"] == {"from": None, "to": "Signed"}


def test_the_list_says_which_items_each_member_may_edit(world: World) -> None:
    bobs, carols = world.new_item("bob", "Bob's book"), world.new_item("carol", "Carol's book")

    def editable(name: str) -> dict[int, bool]:
        return {i["id"]: i["can_edit"] for i in world.bearer(name).get(f"{API}/media").get_json()["items"]}

    assert editable("bob") == {bobs: True, carols: False}
    assert editable("alice") == {bobs: True, carols: True}  # an admin edits anything
    assert editable("vera") == {bobs: False, carols: False}  # a viewer edits nothing


def test_the_list_searches_filters_sorts_and_pages_by_cursor(world: World) -> None:
    for year, title in enumerate(["Alien", "Aliens", "Blade Runner", "Brazil", "Dune"], start=1979):
        world.new_item("bob", title, year=year)
    client = world.bearer("vera")
    contract = world.contract
    op = find_operation("media_list")

    seen, cursor, pages = [], None, 0
    while True:
        resp = client.get(f"{API}/media", query_string={"limit": 2, "sort": "year", "dir": "asc",
                                                        **({"cursor": cursor} if cursor else {})})
        contract.check(op, resp)
        page = resp.get_json()
        seen += [i["title"] for i in page["items"]]
        pages += 1
        cursor = page["next"]
        if not cursor:
            break
    search = client.get(f"{API}/media", query_string={"q": "alien", "year_from": 1980}).get_json()
    wrong_cursor = client.get(f"{API}/media", query_string={"sort": "title", "cursor": "not-a-cursor"})
    too_many = client.get(f"{API}/media", query_string={"limit": 201})
    bad_sort = client.get(f"{API}/media", query_string={"sort": "colour", "signed": "maybe"})

    assert seen == ["Alien", "Aliens", "Blade Runner", "Brazil", "Dune"] and pages == 3
    assert [i["title"] for i in search["items"]] == ["Aliens"] and search["total"] == 1
    assert wrong_cursor.status_code == 422 and "cursor" in error_of(wrong_cursor)["fields"]
    assert too_many.status_code == 422 and "limit" in error_of(too_many)["fields"]
    assert bad_sort.status_code == 422 and set(error_of(bad_sort)["fields"]) == {"sort", "signed"}


def test_my_rating_and_status(world: World) -> None:
    item = world.new_item("carol", "Alien")
    bob = world.bearer("bob")

    empty = bob.get(f"{API}/media/{item}/state").get_json()
    saved = bob.put(f"{API}/media/{item}/state", json={"rating": 9, "status": "finished", "watchlist": True})
    bad = bob.put(f"{API}/media/{item}/state", json={"rating": 11, "status": "lost"})
    listed = bob.get(f"{API}/media", query_string={"my_rating_min": 9}).get_json()
    carol_sees = world.bearer("carol").get(f"{API}/media/{item}").get_json()["my_state"]

    assert empty == {"rating": None, "status": None, "watchlist": False}
    assert saved.get_json() == {"rating": 9, "status": "finished", "watchlist": True}
    assert bad.status_code == 422 and set(error_of(bad)["fields"]) == {"rating", "status"}
    assert [i["my_rating"] for i in listed["items"]] == [9]
    assert carol_sees == {"rating": None, "status": None, "watchlist": False}
    assert [e.action for e in activity(world.app, "media.state_updated")] == ["media.state_updated"]


def test_bulk_delete_deletes_what_the_caller_may_and_counts_the_rest(world: World) -> None:
    mine, carols = world.new_item("bob", "Mine"), world.new_item("carol", "Carol's")
    resp = world.bearer("bob").post(f"{API}/media/bulk-delete", json={"ids": [mine, carols, 999999]})
    empty = world.bearer("bob").post(f"{API}/media/bulk-delete", json={"ids": []})

    assert resp.get_json()["deleted"] == 1 and resp.get_json()["skipped"] == 2
    assert title_of(world.app, mine) is None and title_of(world.app, carols) == "Carol's"
    assert empty.status_code == 422 and "ids" in error_of(empty)["fields"]


# --- imports -------------------------------------------------------------------------------------------------------

def _upload(client: Any, path: str, content: bytes, name: str, **form: str) -> Any:
    return client.post(path, data={"file": (io.BytesIO(content), name), **form}, content_type="multipart/form-data")


def _run_worker(world: World) -> None:
    """Run the queued jobs in a worker until none is left (burst), as worker.py would."""
    from collectz import jobs
    from collectz.jobs.runner import build_worker

    previous = jobs._app
    try:
        jobs.set_app(world.app)
        build_worker(world.app).work(burst=True)
    finally:
        jobs.set_app(previous)  # type: ignore[arg-type]


def test_a_csv_import_through_the_api_runs_and_reports_its_rows(world: World) -> None:
    bob = world.bearer("bob", ["import:run"])
    content = b"Name,Year,Kind\nDune,1965,Book\n,2001,Movie\n"
    started = _upload(bob, f"{API}/imports/csv", content, "items.csv",
                      mapping='{"title": "Name", "year": "Year", "media_type": "Kind"}')
    again = _upload(bob, f"{API}/imports/csv", content, "items.csv",
                    mapping='{"title": "Name", "year": "Year", "media_type": "Kind"}')
    assert started.status_code == 202 and started.get_json()["started"] is True
    assert again.status_code == 200 and again.get_json()["job"]["id"] == started.get_json()["job"]["id"]
    job_id = started.get_json()["job"]["id"]

    _run_worker(world)

    job = bob.get(f"{API}/imports/{job_id}").get_json()
    rows = bob.get(f"{API}/imports/{job_id}/rows").get_json()
    failed = bob.get(f"{API}/imports/{job_id}/rows", query_string={"outcome": "failed"}).get_json()
    assert job["status"] == "succeeded" and (job["created"], job["failed"]) == (1, 1)
    assert [r["outcome"] for r in rows["items"]] == ["created", "failed"] and rows["total"] == 2
    assert [r["line"] for r in failed["items"]] == [3]
    assert world.bearer("carol").get(f"{API}/imports/{job_id}").status_code == 404
    assert world.bearer("alice").get(f"{API}/imports/{job_id}").status_code == 200
    assert [e.actor_id for e in activity(world.app, "import.started")] == [world.actors.ids["bob"]]


def test_an_import_row_keeps_its_item_id_after_the_item_is_deleted(world: World) -> None:
    bob = world.bearer("bob", ["import:run", "media:read", "media:write"])
    started = _upload(bob, f"{API}/imports/csv", b"Name,Kind\nSolaris,Book\n", "one.csv",
                      mapping='{"title": "Name", "media_type": "Kind"}')
    job_id = started.get_json()["job"]["id"]
    _run_worker(world)
    [row] = bob.get(f"{API}/imports/{job_id}/rows").get_json()["items"]
    assert row["outcome"] == "created" and row["media_id"] is not None

    assert bob.delete(f"{API}/media/{row['media_id']}").status_code == 204
    assert bob.get(f"{API}/media/{row['media_id']}").status_code == 404
    [after] = bob.get(f"{API}/imports/{job_id}/rows").get_json()["items"]
    assert after["media_id"] == row["media_id"]  # the row says which item it made, deleted since


def test_import_uploads_are_checked_before_anything_starts(world: World) -> None:
    bob = world.bearer("bob")
    uploads = Path(world.app.config["UPLOAD_PATH"]) / "imports"
    before = set(uploads.glob("*"))  # other tests' uploads waiting for their (unrun) jobs are not this test's
    no_file = bob.post(f"{API}/imports/csv", data={}, content_type="multipart/form-data")
    binary = _upload(bob, f"{API}/imports/csv", b"\x89PNG\r\n\x1a\n" + bytes(200), "x.csv")
    no_title = _upload(bob, f"{API}/imports/csv", b"Year\n1965\n", "y.csv")
    bad_mapping = _upload(bob, f"{API}/imports/csv", b"Title\nDune\n", "z.csv", mapping="[1]")
    wrong_column = _upload(bob, f"{API}/imports/csv", b"Title\nDune\n", "w.csv", mapping='{"title": "Name"}')
    not_delicious = _upload(bob, f"{API}/imports/delicious", b"hello", "d.xml")

    answers = (no_file, binary, no_title, bad_mapping, wrong_column, not_delicious)
    assert [r.status_code for r in answers] == [422] * 6
    assert set(error_of(no_file)["fields"]) == {"file"} and "title" in error_of(no_title)["fields"]["file"].lower()
    assert set(error_of(bad_mapping)["fields"]) == {"mapping"}
    assert error_of(wrong_column)["fields"] == {"mapping": 'The file has no column "Name".'}
    assert [p.name for p in set(uploads.glob("*")) - before] == []
    assert count(world.app, SyncJob) == 0


def test_a_turned_off_import_kind_is_404_feature_off(world: World) -> None:
    with world.app.app_context():
        flags.set_enabled(db.session.get(User, world.actors.ids["alice"]), "import_csv", False)
    resp = _upload(world.bearer("bob"), f"{API}/imports/csv", b"Title\nDune\n", "a.csv")

    assert resp.status_code == 404 and error_of(resp)["code"] == "feature_off"
    assert resp.headers["X-Feature-Off"] == "import_csv"


# --- admin ---------------------------------------------------------------------------------------------------------

def test_admin_changes_roles_but_not_the_last_admins(world: World) -> None:
    admin = world.bearer("alice")
    bob_id, alice_id = world.actors.ids["bob"], world.actors.ids["alice"]

    demoted = admin.patch(f"{API}/admin/members/{bob_id}", json={"role": "viewer"})
    last = admin.patch(f"{API}/admin/members/{alice_id}", json={"role": "user"})
    missing = admin.patch(f"{API}/admin/members/{bob_id}", json={})

    assert demoted.status_code == 200 and demoted.get_json()["role"] == "viewer"
    assert last.status_code == 422 and "last admin" in error_of(last)["fields"]["role"]
    assert missing.status_code == 422 and "role" in error_of(missing)["fields"]
    assert [e.details.get("to") or e.details for e in activity(world.app, "member.role_changed")]


def test_an_invitation_link_is_shown_once(world: World) -> None:
    admin = world.bearer("alice")
    created = admin.post(f"{API}/admin/invitations", json={"email": "New@Example.org", "role": "viewer"})
    bad = admin.post(f"{API}/admin/invitations", json={"email": "not an email"})
    member = admin.post(f"{API}/admin/invitations", json={"email": "bob@example.org"})
    listed = admin.get(f"{API}/admin/invitations").get_data(as_text=True)

    body = created.get_json()
    assert created.status_code == 201 and "/auth/register?invite=" in body["link"]
    assert body["invitation"]["email"] == "new@example.org" and body["invitation"]["status"] == "open"
    assert created.headers["Cache-Control"] == "no-store"
    assert body["link"].split("invite=")[1] not in listed
    assert bad.status_code == 422 and member.status_code == 422 and "email" in error_of(member)["fields"]


def test_the_activity_log_filters_and_pages(world: World) -> None:
    admin = world.bearer("alice")
    for title in ("A", "B", "C"):
        admin.post(f"{API}/media", json={"title": title})

    first = admin.get(f"{API}/admin/activity", query_string={"action": "media.created", "limit": 2}).get_json()
    rest = admin.get(f"{API}/admin/activity", query_string={"action": "media.created", "limit": 2,
                                                            "cursor": first["next"]}).get_json()
    bad_dates = admin.get(f"{API}/admin/activity", query_string={"from": "2025-02-01", "to": "2025-01-01"})
    bad_cursor = admin.get(f"{API}/admin/activity", query_string={"cursor": "yesterday"})

    assert [e["details"]["title"] for e in first["items"] + rest["items"]] == ["C", "B", "A"]
    assert rest["next"] is None and first["items"][0]["who"] == "alice@example.org"
    assert bad_dates.status_code == 422 and "to" in error_of(bad_dates)["fields"]
    assert bad_cursor.status_code == 422 and "cursor" in error_of(bad_cursor)["fields"]


def test_flags_are_listed_and_set_unless_the_environment_holds_them(world: World,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    admin = world.bearer("alice")
    listed = admin.get(f"{API}/admin/flags").get_json()
    changed = admin.put(f"{API}/admin/flags/import_calibre", json={"enabled": True}).get_json()
    same = admin.put(f"{API}/admin/flags/import_calibre", json={"enabled": True}).get_json()
    unknown = admin.put(f"{API}/admin/flags/no_such_flag", json={"enabled": True})
    monkeypatch.setenv("FEATURE_FLAG_IMPORT_PLEX", "false")
    locked = admin.put(f"{API}/admin/flags/import_plex", json={"enabled": True})

    assert {f["key"] for f in listed["items"]} >= {"imports", "import_csv"} and listed["read_only"] is False
    assert changed["changed"] is True and changed["flag"]["enabled"] is True and changed["flag"]["source"] == "db"
    assert same["changed"] is False
    assert unknown.status_code == 404
    assert locked.status_code == 409 and "environment" in error_of(locked)["message"]
    assert [e.details["key"] for e in activity(world.app, "flag.changed")] == ["import_calibre"]
