"""`flask keys generate` and `flask keys rotate` (collectz.services.keys.rotate), on both databases."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import select, text

from collectz.extensions import db
from collectz.models.settings import AppIntegration
from collectz.security.secrets import KeyRing, keyring
from tests.conftest import activity

OLD = "old-key-1d2c3b4a59687f0e-cccccccccccccccc"
NEW = "new-key-a0b1c2d3e4f5a6b7-dddddddddddddddd"
STRAY = "stray-key-never-configured-eeeeeeeeeeeeeeee"
SECRETS = {("tmdb", "api_key"): "tmdb-plaintext-key-5150", ("plex", "token"): "plex-plaintext-token-8086",
           ("discogs", "token"): "discogs-plaintext-token-6502"}


def flask(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def store(app: Flask, values: dict[tuple[str, str], str], ring_value: str) -> None:
    """Save secrets as the integrations service does: encrypted with context "provider:field"."""
    ring = KeyRing.from_setting(ring_value)
    with app.app_context():
        for (provider, field_name), value in values.items():
            row = db.session.scalar(select(AppIntegration).where(AppIntegration.provider == provider))
            if row is None:
                row = AppIntegration(provider=provider, settings={}, secrets_encrypted={})
                db.session.add(row)
            token = ring.encrypt(value, context=f"{provider}:{field_name}")
            row.secrets_encrypted = {**(row.secrets_encrypted or {}), field_name: token}
        db.session.commit()


def tokens(app: Flask) -> dict[tuple[str, str], str]:
    with app.app_context():
        rows = db.session.scalars(select(AppIntegration)).all()
        return {(row.provider, name): token for row in rows for name, token in (row.secrets_encrypted or {}).items()}


def raw_column(app: Flask) -> str:
    """What the database itself holds, read without the ORM."""
    with app.app_context():
        return " ".join(str(v) for v in db.session.execute(text("SELECT secrets_encrypted FROM app_integrations"))
                        .scalars())


def test_generate_prints_a_new_key_entry(app: Flask) -> None:
    first, second = flask(app, "keys", "generate"), flask(app, "keys", "generate")
    assert first.exit_code == 0 and second.exit_code == 0
    entry = first.output.strip()
    assert len(first.output.splitlines()) == 1 and len(entry) >= 32 and entry != second.output.strip()
    assert KeyRing.from_setting(entry).primary_id


def test_rotation_moves_every_secret_to_the_new_key(make_app: Any) -> None:
    old_app = make_app(INTEGRATION_ENCRYPTION_KEY=OLD)
    store(old_app, SECRETS, OLD)
    before = raw_column(old_app)
    assert all(value not in before for value in SECRETS.values())

    both = make_app(INTEGRATION_ENCRYPTION_KEY=f"{NEW},{OLD}")
    result = flask(both, "keys", "rotate")

    assert result.exit_code == 0, result.output
    assert "Re-encrypted 3 secrets; 0 already under the current key." in result.output
    new_id = KeyRing.from_setting(NEW).primary_id
    after = tokens(both)
    assert set(after) == set(SECRETS)
    assert all(token.split(".")[1] == new_id for token in after.values())
    stored = raw_column(both)
    assert all(value not in stored for value in SECRETS.values())

    new_only = make_app(INTEGRATION_ENCRYPTION_KEY=NEW)  # the old key can now be dropped
    with new_only.app_context():
        for (provider, field_name), value in SECRETS.items():
            assert keyring().decrypt(after[(provider, field_name)], context=f"{provider}:{field_name}") == value

    again = flask(both, "keys", "rotate")
    assert again.exit_code == 0 and "Re-encrypted 0 secrets; 3 already under the current key." in again.output
    assert tokens(both) == after  # nothing rewritten

    events = activity(both, "keys.rotated")
    assert [(e.status, e.details["rotated"], e.details["already_current"], e.details["failed"]) for e in events] == \
        [("ok", 3, 0, []), ("ok", 0, 3, [])]
    assert events[0].details["key_id"] == new_id


def test_a_secret_under_an_unknown_key_is_named_and_left_alone(make_app: Any) -> None:
    app = make_app(INTEGRATION_ENCRYPTION_KEY=f"{NEW},{OLD}")
    store(app, {("tmdb", "api_key"): SECRETS[("tmdb", "api_key")]}, OLD)
    store(app, {("discogs", "token"): SECRETS[("discogs", "token")]}, STRAY)
    stray_token = tokens(app)[("discogs", "token")]

    result = flask(app, "keys", "rotate")

    assert result.exit_code == 1
    assert "Re-encrypted 1 secret; 0 already under the current key." in result.output
    assert "discogs:token" in result.output and "left unchanged" in result.output
    assert stray_token not in result.output and SECRETS[("discogs", "token")] not in result.output
    after = tokens(app)
    assert after[("discogs", "token")] == stray_token
    assert KeyRing.from_setting(NEW).is_current(after[("tmdb", "api_key")])

    [event] = activity(app, "keys.rotated")
    assert event.status == "failed" and event.details["failed"] == ["discogs:token"]
    assert event.details["rotated"] == 1 and "1 secret" in (event.reason or "")
    assert all(value not in repr(event.details) for value in SECRETS.values())
    assert stray_token not in repr(event.details)


def test_rotating_with_nothing_stored(app: Flask) -> None:
    result = flask(app, "keys", "rotate")
    assert result.exit_code == 0 and "Re-encrypted 0 secrets" in result.output
