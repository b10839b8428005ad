"""Feature flags: env → database → default, Admin → Flags, read-only mode, and require_feature guards."""

from __future__ import annotations

import re

import pytest
from flask import Blueprint, Flask, render_template_string

from collectz.config import ConfigError
from collectz.extensions import db
from collectz.models import FeatureFlag, User
from collectz.services import flags
from collectz.web import features
from collectz.web.features import feature_guard, require_feature
from tests.conftest import Actors, activity

REQUIRED = {"imports", "imports_ui", "import_calibre", "import_csv", "import_delicious", "import_plex",
            "barcode_lookup", "enrich_tmdb", "enrich_books", "enrich_music", "enrich_games", "enrich_comics"}


@pytest.fixture(autouse=True)
def _clean_flag_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no FEATURE_FLAG_* in the environment, whatever the shell had."""
    import os

    for name in list(os.environ):
        if name.startswith(flags.ENV_PREFIX) or name == flags.READ_ONLY_ENV:
            monkeypatch.delenv(name)


def guarded_app(make_app) -> Flask:
    """An app with two test-only routes behind import_calibre: one decorated view and one guarded blueprint."""
    app = make_app()
    app.add_url_rule("/_test/imports", "test_imports", require_feature("import_calibre")(lambda: "the import page"))
    bp = Blueprint("test_guarded", __name__, url_prefix="/_test/guarded")
    bp.before_request(feature_guard("import_calibre"))
    bp.add_url_rule("/", "index", lambda: "guarded index")
    app.register_blueprint(bp)
    return app


def row_of(html: str, key: str) -> str:
    start = html.index(f'id="flag-{key}"')
    return html[start:html.index("</tr>", start)]


def set_flag(client, key: str, enabled: bool, **kwargs):
    return client.post(f"/admin/flags/{key}", data={"enabled": "true" if enabled else "false"}, **kwargs)


def test_registry_names_every_known_flag_with_a_description():
    assert REQUIRED <= set(flags.REGISTRY)
    assert all(spec.description and spec.label for spec in flags.REGISTRY.values())
    assert flags.REGISTRY["import_calibre"].default is False  # not there until the integrations


def test_value_comes_from_env_then_database_then_default(ctx, actors: Actors, monkeypatch):
    alice = db.session.get(User, actors.ids["alice"])
    assert flags.is_enabled("import_calibre") is False
    assert flags.get_flag("import_calibre").source == "default"

    flags.set_enabled(alice, "import_calibre", True)
    assert flags.is_enabled("import_calibre") is True
    assert flags.get_flag("import_calibre").source == "db"

    monkeypatch.setenv("FEATURE_FLAG_IMPORT_CALIBRE", "false")
    state = flags.get_flag("import_calibre")
    assert flags.is_enabled("import_calibre") is False and state.locked and state.source == "env"
    monkeypatch.setenv("FEATURE_FLAG_IMPORT_CALIBRE", " TRUE ")
    assert flags.is_enabled("import_calibre") is True
    monkeypatch.delenv("FEATURE_FLAG_IMPORT_CALIBRE")
    assert flags.is_enabled("import_calibre") is True  # back to the database value


def test_an_unreadable_env_value_locks_the_flag_off_and_says_why(ctx, monkeypatch):
    with monkeypatch.context() as env:  # undone before the app fixtures' teardown builds an app again
        env.setenv("FEATURE_FLAG_IMPORT_CSV", "maybe")

        state = flags.get_flag("import_csv")

        assert flags.is_enabled("import_csv") is False
        assert state.locked and state.env_error and "FEATURE_FLAG_IMPORT_CSV" in state.env_error
        with pytest.raises(ConfigError, match="FEATURE_FLAG_IMPORT_CSV must be true or false"):
            flags.check_environment()


def test_check_environment_rejects_unknown_flags_and_bad_values():
    flags.check_environment({"FEATURE_FLAG_IMPORT_CSV": "false", "FEATURE_FLAGS_READ_ONLY": "true", "PATH": "/x"})
    with pytest.raises(ConfigError, match="FEATURE_FLAG_IMPORT_CVS names no known feature flag"):
        flags.check_environment({"FEATURE_FLAG_IMPORT_CVS": "true"})
    with pytest.raises(ConfigError, match="FEATURE_FLAGS_READ_ONLY must be true or false"):
        flags.check_environment({"FEATURE_FLAGS_READ_ONLY": "sometimes"})


def test_unknown_keys_fail_loudly(ctx):
    with pytest.raises(LookupError):
        flags.is_enabled("imports_iu")
    with pytest.raises(LookupError):
        require_feature("imports_iu")
    with pytest.raises(LookupError):
        feature_guard("imports_iu")


def test_flags_page_lists_every_flag_with_its_state_and_source(app, actors: Actors):
    alice = actors.client("alice")
    set_flag(alice, "enrich_books", False)

    page = alice.get("/admin/flags")
    html = page.get_data(as_text=True)

    assert page.status_code == 200 and "<html" in html
    assert 'id="admin-tab"' in html and re.search(r'aria-current="page"[^>]*>\s*Flags\s*</a>', html)
    for key in REQUIRED:
        assert f'data-flag="{key}"' in html
    books = row_of(html, "enrich_books")
    assert 'data-enabled="false"' in books and 'data-source="db"' in books and "alice@example.org" in books
    assert 'name="enabled" value="true"' in books and ">Turn on</button>" in books
    import_calibre = row_of(html, "import_calibre")
    assert 'data-enabled="false"' in import_calibre and "Default" in import_calibre


def test_flags_tab_is_a_fragment_for_htmx(app, actors: Actors):
    resp = actors.client("alice").get("/admin/flags", headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)

    assert resp.status_code == 200
    assert "HX-Request" in resp.headers["Vary"]
    assert "<html" not in html and 'id="admin-tab"' not in html
    assert 'id="flags-heading"' in html and 'data-flag="import_csv"' in html


def test_toggle_is_audited_and_reversible(app, actors: Actors):
    alice = actors.client("alice")

    on = set_flag(alice, "import_calibre", True)
    assert on.status_code == 303 and on.headers["Location"] == "/admin/flags"
    page = alice.get("/admin/flags").get_data(as_text=True)
    assert "Calibre import is now on." in page
    assert 'data-enabled="true"' in row_of(page, "import_calibre")

    off = set_flag(alice, "import_calibre", False)
    assert off.status_code == 303

    events = activity(app, "flag.changed")
    assert [(e.entity_type, e.entity_id, e.details["from"], e.details["to"]) for e in events] == [
        ("flag", "import_calibre", False, True), ("flag", "import_calibre", True, False)]
    assert all(e.actor_id == actors.ids["alice"] and e.actor_email == "alice@example.org" for e in events)
    assert all(e.details["key"] == "import_calibre" and e.created_at for e in events)
    with app.app_context():
        row = db.session.get(FeatureFlag, "import_calibre")
        assert row.enabled is False and row.updated_by == actors.ids["alice"] and row.description
        assert flags.is_enabled("import_calibre") is False


def test_setting_the_value_a_flag_already_has_changes_nothing(app, actors: Actors):
    alice = actors.client("alice")

    resp = set_flag(alice, "import_csv", True)  # on by default

    assert resp.status_code == 303
    assert "CSV import was already on." in alice.get("/admin/flags").get_data(as_text=True)
    assert activity(app, "flag.changed") == []


def test_htmx_toggle_answers_the_tab_with_a_toast(app, actors: Actors):
    resp = set_flag(actors.client("alice"), "enrich_comics", False, headers={"HX-Request": "true"})
    html = resp.get_data(as_text=True)

    assert resp.status_code == 200 and "<html" not in html
    assert 'data-enabled="false"' in row_of(html, "enrich_comics")
    assert 'hx-swap-oob="beforeend"' in html and "Comic enrichment is now off." in html


def test_a_bad_value_is_422_and_changes_nothing(app, actors: Actors):
    resp = actors.client("alice").post("/admin/flags/import_csv", data={"enabled": "yes please"})

    assert resp.status_code == 422
    assert "Choose on (true) or off (false)." in resp.get_data(as_text=True)
    assert activity(app, "flag.changed") == []
    assert actors.client("alice").post("/admin/flags/no_such_flag", data={"enabled": "true"}).status_code == 404


def test_env_override_is_locked_in_the_page_and_wins_over_a_post(app, actors: Actors, monkeypatch):
    monkeypatch.setenv("FEATURE_FLAG_IMPORT_PLEX", "false")
    alice = actors.client("alice")

    html = alice.get("/admin/flags").get_data(as_text=True)
    plex = row_of(html, "import_plex")
    assert "Locked by <code>FEATURE_FLAG_IMPORT_PLEX</code>" in plex and " disabled " in plex
    assert 'data-enabled="false"' in plex and "hx-post" not in plex

    refused = set_flag(alice, "import_plex", True)

    assert refused.status_code == 409
    assert "set by FEATURE_FLAG_IMPORT_PLEX in the server environment" in refused.get_data(as_text=True)
    assert "data-error-message" in refused.get_data(as_text=True)
    assert activity(app, "flag.changed") == []
    [failed] = activity(app, "flag.change_failed")
    assert (failed.entity_id, failed.reason, failed.actor_id) == ("import_plex", "set_in_environment",
                                                                   actors.ids["alice"])
    with app.app_context():
        assert flags.is_enabled("import_plex") is False and db.session.get(FeatureFlag, "import_plex") is None


def test_read_only_mode_shows_the_page_and_refuses_changes(app, actors: Actors, monkeypatch):
    monkeypatch.setenv("FEATURE_FLAGS_READ_ONLY", "true")
    alice = actors.client("alice")

    html = alice.get("/admin/flags").get_data(as_text=True)
    assert 'data-testid="flags-read-only"' in html and "FEATURE_FLAGS_READ_ONLY=true" in html
    assert html.count(" disabled ") == len(flags.REGISTRY) and "hx-post" not in html

    refused = set_flag(alice, "import_calibre", True)
    assert refused.status_code == 409
    assert "Feature flags are read-only on this server" in refused.get_data(as_text=True)
    assert activity(app, "flag.changed") == []
    assert [e.reason for e in activity(app, "flag.change_failed")] == ["read_only"]

    monkeypatch.setenv("FEATURE_FLAGS_READ_ONLY", "false")
    assert set_flag(alice, "import_calibre", True).status_code == 303


def test_members_cannot_change_flags(app, actors: Actors):
    for name in ("bob", "vera"):
        assert set_flag(actors.client(name), "import_calibre", True).status_code == 403
    assert activity(app, "flag.changed") == []
    with app.app_context():
        assert flags.is_enabled("import_calibre") is False


def test_a_change_applies_to_guarded_routes_on_the_next_request(make_app):
    app = guarded_app(make_app)
    actors = Actors(app)
    bob, alice = actors.client("bob"), actors.client("alice")

    off = bob.get("/_test/imports")
    assert off.status_code == 404 and off.headers["X-Feature-Off"] == "import_calibre"
    assert "Calibre import is turned off on this server" in off.get_data(as_text=True)
    assert "data-error-message" in off.get_data(as_text=True)
    assert bob.get("/_test/guarded/").status_code == 404
    fragment = bob.get("/_test/imports", headers={"HX-Request": "true"})
    assert fragment.status_code == 404 and "<html" not in fragment.get_data(as_text=True)

    set_flag(alice, "import_calibre", True)
    assert bob.get("/_test/imports").get_data(as_text=True) == "the import page"
    assert bob.get("/_test/guarded/").get_data(as_text=True) == "guarded index"

    set_flag(alice, "import_calibre", False)
    assert bob.get("/_test/imports").status_code == 404
    # A turned-off feature is not a refusal of a person: nothing lands in the log as permission.denied.
    assert activity(app, "permission.denied") == []


def test_another_process_sees_a_change_without_restart(make_app):
    first = guarded_app(make_app)
    second = guarded_app(make_app)  # another web process on the same database
    actors = Actors(first)
    bob_elsewhere = second.test_client()
    bob_elsewhere.set_cookie(second.config["COLLECTZ"].SESSION_COOKIE_NAME,
                             actors.client("bob").get_cookie(first.config["COLLECTZ"].SESSION_COOKIE_NAME).value)
    assert bob_elsewhere.get("/_test/imports").status_code == 404

    set_flag(actors.client("alice"), "import_calibre", True)

    assert bob_elsewhere.get("/_test/imports").status_code == 200
    monkeypatch_env = pytest.MonkeyPatch()
    try:
        monkeypatch_env.setenv("FEATURE_FLAG_IMPORT_CALIBRE", "false")
        assert bob_elsewhere.get("/_test/imports").status_code == 404  # the environment wins at once, too
    finally:
        monkeypatch_env.undo()


def test_templates_can_ask_whether_a_feature_is_on(app, actors: Actors):
    features.init_app(app)
    with app.test_request_context():
        template = '{% if feature_enabled("import_calibre") %}on{% else %}off{% endif %}'
        assert render_template_string(template) == "off"
        flags.set_enabled(db.session.get(User, actors.ids["alice"]), "import_calibre", True)
        assert render_template_string(template) == "on"
