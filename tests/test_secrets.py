"""Integration secrets at rest (collectz.security.secrets): the key ring setting, AES-GCM tokens bound to their field,
rotation-friendly decryption, and the development key kept in the instance folder."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from collectz import create_app
from collectz.config import ConfigError, Settings
from collectz.security.secrets import CannotDecrypt, KeyRing, generate_key, keyring

OLD = "old-key-4f1c9a7e2b8d6053-aaaaaaaaaaaaaaaa"
NEW = "new-key-93e0b5d7c1a2f486-bbbbbbbbbbbbbbbb"
PLAINTEXT = "tmdb-api-key-0123456789abcdef"
TOKEN_SHAPE = re.compile(r"^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$")


def test_a_secret_round_trips_in_the_documented_format() -> None:
    ring = KeyRing.from_setting(NEW)
    token = ring.encrypt(PLAINTEXT, context="tmdb:api_key")
    assert TOKEN_SHAPE.match(token)
    assert token.split(".")[1] == ring.primary_id
    assert PLAINTEXT not in token
    assert ring.decrypt(token, context="tmdb:api_key") == PLAINTEXT
    assert ring.encrypt(PLAINTEXT, context="tmdb:api_key") != token  # a fresh nonce every time
    assert ring.decrypt(ring.encrypt("", context="x:y"), context="x:y") == ""
    assert ring.decrypt(ring.encrypt("ünïcødé ✓", context="x:y"), context="x:y") == "ünïcødé ✓"


def test_the_key_is_derived_with_hkdf_and_identified_by_its_hash() -> None:
    """Pinned so a token made today still names the same key id after an upgrade."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"collectZ integration secrets",
                   info=b"collectZ AES-256-GCM key v1").derive(NEW.encode())
    ring = KeyRing.from_setting(NEW)
    assert ring.primary_id == hashlib.sha256(derived).hexdigest()[:8]
    assert KeyRing.from_setting(f" {NEW} ").primary_id == ring.primary_id
    assert KeyRing.from_setting(OLD).primary_id != ring.primary_id
    assert NEW not in repr(ring)


def test_a_value_moved_to_another_field_does_not_decrypt() -> None:
    ring = KeyRing.from_setting(NEW)
    token = ring.encrypt(PLAINTEXT, context="tmdb:api_key")
    with pytest.raises(CannotDecrypt) as excinfo:
        ring.decrypt(token, context="discogs:token")
    assert token not in str(excinfo.value) and PLAINTEXT not in str(excinfo.value)
    assert excinfo.value.__context__ is None


def test_tampering_anywhere_is_detected() -> None:
    ring = KeyRing.from_setting(NEW)
    token = ring.encrypt(PLAINTEXT, context="tmdb:api_key")
    version, key_id, body = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    for position in (0, 12, len(raw) - 1):  # nonce, ciphertext, tag
        changed = bytearray(raw)
        changed[position] ^= 0x01
        forged = f"{version}.{key_id}." + base64.urlsafe_b64encode(bytes(changed)).decode().rstrip("=")
        with pytest.raises(CannotDecrypt) as excinfo:
            ring.decrypt(forged, context="tmdb:api_key")
        assert forged not in str(excinfo.value) and PLAINTEXT not in str(excinfo.value)


@pytest.mark.parametrize("garbage", [
    "", "v1", "v1..", "v2.abcdef12.AAAA", "v1.abcdef12", "v1.abcdef12.!!!not-base64!!!", "v1.abcdef12.AAAA",
    "plain text api key", "v1.abcdef12.AAAA.extra",
])
def test_garbage_is_cannot_decrypt(garbage: str) -> None:
    ring = KeyRing.from_setting(NEW)
    with pytest.raises(CannotDecrypt) as excinfo:
        ring.decrypt(garbage, context="tmdb:api_key")
    if garbage:
        assert garbage not in str(excinfo.value)
    assert not ring.is_current(garbage)


def test_older_keys_decrypt_and_only_the_first_encrypts() -> None:
    old_ring = KeyRing.from_setting(OLD)
    old_token = old_ring.encrypt(PLAINTEXT, context="plex:token")
    ring = KeyRing.from_setting(f"{NEW}, {OLD}")
    assert ring.primary_id == KeyRing.from_setting(NEW).primary_id
    assert ring.key_ids == (ring.primary_id, old_ring.primary_id)
    assert ring.decrypt(old_token, context="plex:token") == PLAINTEXT
    assert not ring.is_current(old_token)
    new_token = ring.encrypt(PLAINTEXT, context="plex:token")
    assert ring.is_current(new_token)

    with pytest.raises(CannotDecrypt) as excinfo:  # the old key removed: its tokens no longer open
        KeyRing.from_setting(NEW).decrypt(old_token, context="plex:token")
    assert old_ring.primary_id in str(excinfo.value) and "INTEGRATION_ENCRYPTION_KEY" in str(excinfo.value)


@pytest.mark.parametrize("value,reason", [
    ("", "missing"), (" , ,", "missing"), ("short", "too weak"),
    (f"{NEW},tooshort-but-31-characters-long", "key 2 of 2"),
])
def test_a_bad_ring_is_a_config_error(value: str, reason: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        KeyRing.from_setting(value)
    message = str(excinfo.value)
    assert message.startswith("INTEGRATION_ENCRYPTION_KEY ") and reason in message
    for entry in value.split(","):
        if entry.strip():
            assert entry.strip() not in message


def test_generated_keys_are_long_random_ring_entries() -> None:
    first, second = generate_key(), generate_key()
    assert first != second and len(first) >= 64 and "," not in first
    assert KeyRing.from_setting(f"{first},{second}").primary_id


# -- the setting -------------------------------------------------------------------------------------------------

PRODUCTION = {"COLLECTZ_ENV": "production", "SECRET_KEY": "k3Y-9fQz_Lr2Vx8Wm5Tn1Bc7Hd4Js6Pa0Ge",
              "REDIS_URL": "redis://127.0.0.1:6379/0"}


def test_production_accepts_a_ring_and_refuses_a_short_entry_in_it() -> None:
    assert Settings.from_env({**PRODUCTION, "INTEGRATION_ENCRYPTION_KEY": f"{NEW},{OLD}"}).production
    with pytest.raises(ConfigError, match="INTEGRATION_ENCRYPTION_KEY is too weak: key 2 of 2"):
        Settings.from_env({**PRODUCTION, "INTEGRATION_ENCRYPTION_KEY": f"{NEW},short-old-key"})
    with pytest.raises(ConfigError, match="INTEGRATION_ENCRYPTION_KEY is missing"):
        Settings.from_env({**PRODUCTION, "INTEGRATION_ENCRYPTION_KEY": " , "})


def test_a_ring_that_is_set_must_parse_in_development_too() -> None:
    """An unusable key fails at start-up rather than at the first saved secret."""
    with pytest.raises(ConfigError, match="INTEGRATION_ENCRYPTION_KEY is too weak"):
        Settings.from_env({"INTEGRATION_ENCRYPTION_KEY": "short"})
    assert Settings.from_env({}).INTEGRATION_ENCRYPTION_KEY == ""


def app_settings(instance: Path, **overrides: str) -> Settings:
    settings = Settings.from_env({"COLLECTZ_ENV": "testing"})
    settings.INSTANCE_PATH = str(instance)
    settings.LOG_LEVEL = "WARNING"
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


def test_the_app_uses_the_configured_ring(tmp_path: Path) -> None:
    app = create_app(settings=app_settings(tmp_path, INTEGRATION_ENCRYPTION_KEY=f"{NEW},{OLD}"))
    with app.app_context():
        assert keyring() is keyring()
        assert keyring().primary_id == KeyRing.from_setting(NEW).primary_id
    assert not (tmp_path / "integration.key").exists()


def test_development_without_a_key_makes_one_in_the_instance_folder(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    # at_level(logger=...) also hands that logger the capture handler: collectZ's loggers do not propagate.
    with caplog.at_level(logging.INFO, logger="collectz.security.secrets"):
        first = create_app(settings=app_settings(tmp_path))
        with first.app_context():
            token = keyring().encrypt(PLAINTEXT, context="tmdb:api_key")
            keyring()
        second = create_app(settings=app_settings(tmp_path))  # a restart, or another process
        with second.app_context():
            assert keyring().decrypt(token, context="tmdb:api_key") == PLAINTEXT
    key_file = tmp_path / "integration.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_text().strip()) >= 32
    notices = [r for r in caplog.records if "development INTEGRATION_ENCRYPTION_KEY" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.INFO and str(key_file) in notices[0].getMessage()
    assert key_file.read_text().strip() not in caplog.text


def test_an_empty_development_key_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "integration.key").write_text("")
    app = create_app(settings=app_settings(tmp_path))
    with app.app_context(), pytest.raises(ConfigError, match="integration.key is empty"):
        keyring()
