"""Each member's own rating (0-10), status and watchlist flag: kept per member, saved in place, audited;
viewers keep none (read-only everywhere)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import MediaUserState, User
from collectz.services import user_state
from collectz.services.errors import Forbidden, InvalidInput, NotFound
from tests.conftest import Actors, activity

HX = {"HX-Request": "true"}


def add_item(client, title: str = "Alien") -> int:
    resp = client.post("/library/media/new", data={"title": title, "media_type": "movie"})
    assert resp.status_code == 303
    return int(resp.headers["Location"].rsplit("/", 1)[1])


def states(app) -> dict[str, tuple]:
    with app.app_context():
        rows = db.session.execute(select(User.name, MediaUserState.rating, MediaUserState.status,
                                         MediaUserState.watchlist).join(User, User.id == MediaUserState.user_id))
        result = {name.lower(): (rating, status, watchlist) for name, rating, status, watchlist in rows}
        db.session.remove()
        return result


def test_each_member_keeps_their_own_rating_status_and_watchlist(app, actors: Actors):
    bob, carol = actors.client("bob"), actors.client("carol")
    media_id = add_item(bob)

    first = bob.post(f"/library/media/{media_id}/state", data={"rating": "8", "status": "finished"})
    carol.post(f"/library/media/{media_id}/state", data={"rating": "3", "status": "dropped", "watchlist": "y"})

    assert first.status_code == 303 and first.headers["Location"] == f"/library/media/{media_id}"
    assert states(app) == {"bob": (8, "finished", False), "carol": (3, "dropped", True)}
    page = bob.get(f"/library/media/{media_id}").get_data(as_text=True)
    assert '<option selected value="8">' in page and '<option selected value="finished">' in page
    assert '<option selected value="3">' not in page  # carol's rating is hers


def test_state_is_changed_and_cleared(app, actors: Actors):
    bob = actors.client("bob")
    media_id = add_item(bob)
    bob.post(f"/library/media/{media_id}/state", data={"rating": "0", "status": "want", "watchlist": "y"})
    assert states(app) == {"bob": (0, "want", True)}  # zero is a rating, not "no rating"

    bob.post(f"/library/media/{media_id}/state", data={"rating": "10", "status": "in_progress"})
    assert states(app) == {"bob": (10, "in_progress", False)}

    bob.post(f"/library/media/{media_id}/state", data={"rating": "", "status": ""})
    assert states(app) == {}  # nothing left to keep: no row


def test_htmx_saves_in_place_and_tells_lists(app, actors: Actors):
    bob = actors.client("bob")
    media_id = add_item(bob)
    resp = bob.post(f"/library/media/{media_id}/state", headers=HX, data={"rating": "7", "status": "owned"})

    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body and "HX-Request" in resp.headers["Vary"]
    assert body.strip().startswith('<form class="item-state"') and 'hx-target="this"' in body
    assert '<option selected value="7">' in body and "Saved." in body
    assert resp.headers["HX-Trigger"] == "media-state-changed"


@pytest.mark.parametrize("data, field", [({"rating": "11"}, "rating"), ({"rating": "-1"}, "rating"),
                                         ({"rating": "five"}, "rating"), ({"status": "lost"}, "status")])
def test_bad_state_is_422_in_place_and_writes_nothing(app, actors: Actors, data, field):
    bob = actors.client("bob")
    media_id = add_item(bob)
    page = bob.post(f"/library/media/{media_id}/state", data=data)
    fragment = bob.post(f"/library/media/{media_id}/state", headers=HX, data=data)

    assert page.status_code == fragment.status_code == 422
    assert "<html" in page.get_data(as_text=True) and "<html" not in fragment.get_data(as_text=True)
    assert f'id="state-{field}-error"' in fragment.get_data(as_text=True)
    assert states(app) == {} and activity(app, "media.state_updated") == []


def test_viewer_keeps_no_state_and_the_denial_is_audited(app, actors: Actors):
    media_id = add_item(actors.client("bob"))
    vera = actors.client("vera")

    resp = vera.post(f"/library/media/{media_id}/state", data={"rating": "9"})
    page = vera.get(f"/library/media/{media_id}").get_data(as_text=True)

    assert resp.status_code == 403 and states(app) == {}
    assert 'data-testid="item-state"' not in page
    denial, = activity(app, "permission.denied")
    assert denial.actor_id == actors.ids["vera"] and denial.details["path"].endswith("/state")


def test_state_changes_are_in_the_activity_log(app, actors: Actors):
    bob = actors.client("bob")
    media_id = add_item(bob)
    bob.post(f"/library/media/{media_id}/state", data={"rating": "6", "watchlist": "y"})
    bob.post(f"/library/media/{media_id}/state", data={"rating": "9", "watchlist": "y", "status": "finished"})

    first, second = activity(app, "media.state_updated")
    assert first.actor_id == actors.ids["bob"] and first.entity_id == str(media_id)
    assert first.details["changed"] == {"rating": {"from": None, "to": 6}, "watchlist": {"from": False, "to": True}}
    assert second.details["changed"] == {"rating": {"from": 6, "to": 9}, "status": {"from": None, "to": "finished"}}


def test_service_rules(app, actors: Actors):
    media_id = add_item(actors.client("bob"))
    with app.test_request_context():
        users = {u.name.lower(): u for u in db.session.scalars(select(User))}
        with pytest.raises(Forbidden):
            user_state.set_state(users["vera"], media_id, user_state.StateInput(rating=5))
        with pytest.raises(NotFound):
            user_state.set_state(users["bob"], 999999, user_state.StateInput(rating=5))
        with pytest.raises(InvalidInput) as err:
            user_state.set_state(users["bob"], media_id, user_state.StateInput(rating=12, status="lost"))
        assert set(err.value.fields) == {"rating", "status"}
        assert user_state.can_keep_state(users["carol"]) and not user_state.can_keep_state(users["vera"])

        saved = user_state.set_state(users["alice"], media_id, user_state.StateInput(rating=4))
        again = user_state.set_state(users["alice"], media_id, user_state.StateInput(rating=5))
        assert saved.id == again.id and again.rating == 5
        db.session.remove()
