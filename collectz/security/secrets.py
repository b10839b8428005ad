"""Integration secrets at rest: AES-256-GCM under a key ring (INTEGRATION_ENCRYPTION_KEY).

The setting is a comma-separated list of random strings: the first encrypts, all of them decrypt, so keys can be
rotated without downtime (add a new key first, run `flask keys rotate`, then drop the old one). Each token names the
key it was made with, and binds the field it belongs to (`context`, e.g. "tmdb:api_key") as associated data: a
value copied into another field, or edited, does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from collectz.config import MIN_SECRET_LENGTH, ConfigError, Settings

log = logging.getLogger("collectz.security.secrets")

TOKEN_VERSION = "v1"
DEV_KEY_FILE = "integration.key"
_HKDF_SALT = b"collectZ integration secrets"
_HKDF_INFO = b"collectZ AES-256-GCM key v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16


class CannotDecrypt(Exception):
    """A stored secret cannot be read back; the message never contains the token or the plaintext."""


def _derive(entry: str) -> bytes:
    """A 256-bit AES key from one ring entry (HKDF-SHA256: entries are random strings, not raw key bytes)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return hkdf.derive(entry.encode("utf-8"))


def _key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


@dataclass(frozen=True)
class KeyRing:
    """The current key (encrypts) and older keys (only decrypt), by key id."""

    primary_id: str
    _keys: dict[str, AESGCM] = field(repr=False)

    @classmethod
    def from_setting(cls, value: str) -> KeyRing:
        """Parse INTEGRATION_ENCRYPTION_KEY: comma-separated entries, first is current; blank entries are ignored."""
        entries = [entry.strip() for entry in (value or "").split(",")]
        entries = [entry for entry in entries if entry]
        if not entries:
            raise ConfigError("INTEGRATION_ENCRYPTION_KEY is missing: set at least one key "
                              "(make one with `flask keys generate`)")
        keys: dict[str, AESGCM] = {}
        primary_id = ""
        for position, entry in enumerate(entries, start=1):
            if len(entry) < MIN_SECRET_LENGTH:
                raise ConfigError(f"INTEGRATION_ENCRYPTION_KEY is too weak: key {position} of {len(entries)} has "
                                  f"{len(entry)} characters, at least {MIN_SECRET_LENGTH} are needed "
                                  "(make one with `flask keys generate`)")
            derived = _derive(entry)
            key_id = _key_id(derived)
            keys.setdefault(key_id, AESGCM(derived))  # the same entry twice is harmless
            primary_id = primary_id or key_id
        return cls(primary_id=primary_id, _keys=keys)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id in the ring (the primary first)."""
        return (self.primary_id, *[k for k in self._keys if k != self.primary_id])

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """Encrypt under the primary key: "v1.<key id>.<urlsafe base64 of nonce + ciphertext>"."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._keys[self.primary_id].encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{TOKEN_VERSION}.{self.primary_id}.{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        """The plaintext of a token made for `context`; CannotDecrypt for anything else."""
        key_id, blob = _split(token)
        key = self._keys.get(key_id)
        if key is None:
            raise CannotDecrypt(f"encrypted with key {key_id}, which is not in INTEGRATION_ENCRYPTION_KEY")
        try:
            plaintext = key.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context.encode("utf-8"))
        except InvalidTag:
            plaintext = None
        if plaintext is None:  # raised outside the except block: nothing of the token travels along as context
            raise CannotDecrypt(f"the value stored for {context} was altered or belongs to another field")
        try:
            return plaintext.decode("utf-8")
        except UnicodeDecodeError:
            raise CannotDecrypt(f"the value stored for {context} is not text") from None

    def is_current(self, token: str) -> bool:
        """Whether a token was made with the primary key (else `flask keys rotate` should re-encrypt it)."""
        try:
            key_id, _blob = _split(token)
        except CannotDecrypt:
            return False
        return key_id == self.primary_id


def _split(token: str) -> tuple[str, bytes]:
    """(key id, nonce + ciphertext) of a well-formed token; CannotDecrypt otherwise."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != TOKEN_VERSION or len(parts[1]) != 8:
        raise CannotDecrypt("not an encrypted value in a format this version understands")
    try:
        blob = base64.urlsafe_b64decode(parts[2] + "=" * (-len(parts[2]) % 4))
    except (binascii.Error, ValueError):
        blob = b""
    if len(blob) < _NONCE_BYTES + _TAG_BYTES:
        raise CannotDecrypt("the encrypted value is damaged (truncated or not base64)")
    return parts[1], blob


def generate_key() -> str:
    """A new random key ring entry (64 URL-safe characters)."""
    return secrets.token_urlsafe(48)


def keyring() -> KeyRing:
    """The running app's key ring (parsed once per app and setting value)."""
    from flask import current_app

    settings: Settings = current_app.config["COLLECTZ"]
    value = settings.INTEGRATION_ENCRYPTION_KEY or _development_key(settings)
    cached = current_app.extensions.get("collectz_keyring")
    if cached is None or cached[0] != value:
        cached = (value, KeyRing.from_setting(value))
        current_app.extensions["collectz_keyring"] = cached
    return cached[1]


def _development_key(settings: Settings) -> str:
    """Outside production, a key kept in the instance folder, made on first use (production refuses to start
    without INTEGRATION_ENCRYPTION_KEY, so this never runs there)."""
    if settings.production:
        raise ConfigError("INTEGRATION_ENCRYPTION_KEY is missing: production needs it to encrypt integration secrets")
    path = Path(settings.INSTANCE_PATH) / DEV_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it a moment ago: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(generate_key() + "\n")
            log.info("generated a development INTEGRATION_ENCRYPTION_KEY in %s; set INTEGRATION_ENCRYPTION_KEY "
                     "(and keep this key in it) before going to production", path)
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    # A process that lost the creation race may look before the winner has written: wait a moment.
    for _attempt in range(10):
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"the development key {path} cannot be read: {exc.strerror}") from None
        if value:
            return value
        time.sleep(0.05)
    raise ConfigError(f"the development key {path} is empty: delete it to make a new one "
                      "(secrets saved under the old key will have to be entered again)")
