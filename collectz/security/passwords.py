"""argon2id password hashing with rehash-on-login when parameters change."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# A valid hash of a random password, verified against when the account does not exist,
# so a login for an unknown email costs the same time as one for a known email.
_DUMMY_HASH = _hasher.hash("collectz-timing-equaliser")


def set_hasher(hasher: PasswordHasher) -> None:
    """Swap the parameters (tests use cheap ones; production keeps the defaults)."""
    global _hasher, _DUMMY_HASH
    _hasher = hasher
    _DUMMY_HASH = hasher.hash("collectz-timing-equaliser")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when the password matches; spends the same work when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
