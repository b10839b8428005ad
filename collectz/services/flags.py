"""Feature flags: a registry of known flags, read at call time from env → database → default.

Order of precedence for `is_enabled(key)`:
1. the environment, `FEATURE_FLAG_<KEY>=true|false` (read from os.environ on every call; wins over the
   database and locks the flag in Admin → Flags; an unreadable value fails closed: the flag is off);
2. the `feature_flags` row an admin saved;
3. the registry default below.

Nothing is cached beyond the single SQL read of each call, so a change takes effect on the next request
in every process, without a restart. `FEATURE_FLAGS_READ_ONLY=true` refuses every change (409).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from collectz.config import ConfigError, parse_bool
from collectz.extensions import db
from collectz.models import FeatureFlag, User
from collectz.models.base import utcnow
from collectz.security.permissions import Actor, require_admin
from collectz.services import audit
from collectz.services.errors import Conflict, NotFound

log = logging.getLogger("collectz.flags")

ENV_PREFIX = "FEATURE_FLAG_"
READ_ONLY_ENV = "FEATURE_FLAGS_READ_ONLY"


@dataclass(frozen=True)
class FlagSpec:
    key: str
    label: str
    description: str
    default: bool = False


_SPECS = (
    FlagSpec("imports", "Imports", "Importing into the library (the Import area and its jobs).", True),
    FlagSpec("imports_ui", "Import menu", "Show the Import area in the main menu.", True),
    FlagSpec("import_csv", "CSV import", "Import items from a generic CSV file.", True),
    FlagSpec("import_delicious", "Delicious Library import",
             "Import Delicious Library exports (XML property list and CSV).", True),
    FlagSpec("import_plex", "Plex import", "Import movies and series from a Plex server.", True),
    FlagSpec("import_calibre", "Calibre import",
             "Import books from a Calibre library or OPDS catalog (arrives with the integrations).", False),
    FlagSpec("barcode_lookup", "Barcode lookup", "Look up UPC/EAN/ISBN barcodes with the barcode provider.", True),
    FlagSpec("enrich_tmdb", "TMDB enrichment", "Fill in movie and TV details from TMDB.", True),
    FlagSpec("enrich_books", "Book enrichment", "Fill in book details from the book providers.", True),
    FlagSpec("enrich_music", "Music enrichment", "Fill in album details from the music provider.", True),
    FlagSpec("enrich_games", "Game enrichment", "Fill in game details from the game provider.", True),
    FlagSpec("enrich_comics", "Comic enrichment", "Fill in comic details from the comic provider.", True),
    FlagSpec("integration_comicvine", "ComicVine",
             "Show the ComicVine card under Admin → Integrations and use ComicVine for comic details.", False),
)
REGISTRY: dict[str, FlagSpec] = {spec.key: spec for spec in _SPECS}


@dataclass(frozen=True)
class FlagState:
    """What Admin → Flags shows for one flag."""

    spec: FlagSpec
    enabled: bool
    source: str  # "env" | "db" | "default"
    env_name: str
    env_error: str | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def locked(self) -> bool:
        """Set (or made unreadable) in the environment: the page cannot change it."""
        return self.source == "env"


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _spec(key: str) -> FlagSpec:
    try:
        return REGISTRY[key]
    except KeyError:
        raise NotFound(f"There is no feature flag called {key!r}.") from None


def env_override(key: str, environ: Mapping[str, str] | None = None) -> tuple[bool | None, str | None]:
    """(value, error) from FEATURE_FLAG_<KEY>; (None, None) when unset. A bad value reads as off, with an error."""
    raw = (os.environ if environ is None else environ).get(env_name(key))
    if raw is None or not raw.strip():
        return None, None
    try:
        return parse_bool(env_name(key), raw), None
    except ConfigError as exc:
        return False, str(exc)


def read_only(environ: Mapping[str, str] | None = None) -> bool:
    """FEATURE_FLAGS_READ_ONLY=true: flags are managed by the environment only. A bad value also locks."""
    raw = (os.environ if environ is None else environ).get(READ_ONLY_ENV)
    if raw is None or not raw.strip():
        return False
    try:
        return parse_bool(READ_ONLY_ENV, raw)
    except ConfigError:
        return True


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Start-up check: every FEATURE_FLAG_* names a known flag and holds a strict boolean, or ConfigError."""
    env = os.environ if environ is None else environ
    for name, raw in env.items():
        if name == READ_ONLY_ENV:
            if raw.strip():  # empty means unset, as for every other setting
                parse_bool(name, raw)
        elif name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX):].lower()
            if key not in REGISTRY:
                raise ConfigError(f"{name} names no known feature flag (known: {', '.join(sorted(REGISTRY))})")
            if raw.strip():
                parse_bool(name, raw)


def is_enabled(key: str) -> bool:
    """Whether a feature is on now (env → database → default). An unknown key is a programming error."""
    if key not in REGISTRY:
        raise LookupError(f"unknown feature flag {key!r}: add it to collectz.services.flags.REGISTRY")
    value, error = env_override(key)
    if error:
        log.warning("%s; the feature stays off until it is fixed", error)
    if value is not None:
        return value
    stored = db.session.scalar(select(FeatureFlag.enabled).where(FeatureFlag.key == key))
    return REGISTRY[key].default if stored is None else bool(stored)


def list_flags() -> list[FlagState]:
    """Every known flag with its current value and where that value comes from (two queries in all)."""
    rows = {row.key: row for row in db.session.scalars(select(FeatureFlag))}
    editors = {row.updated_by for row in rows.values() if row.updated_by is not None}
    emails = dict(db.session.execute(select(User.id, User.email).where(User.id.in_(editors))).all()) \
        if editors else {}
    return [_state(spec, rows.get(spec.key), emails) for spec in _SPECS]


def get_flag(key: str) -> FlagState:
    spec = _spec(key)
    row = db.session.get(FeatureFlag, key)
    editor = db.session.get(User, row.updated_by) if row is not None and row.updated_by is not None else None
    return _state(spec, row, {editor.id: editor.email} if editor else {})


def _state(spec: FlagSpec, row: FeatureFlag | None, emails: dict[int, str]) -> FlagState:
    value, error = env_override(spec.key)
    updated_by = emails.get(row.updated_by) if row is not None and row.updated_by is not None else None
    updated_at = row.updated_at if row is not None else None
    if value is not None:
        return FlagState(spec, value, "env", env_name(spec.key), error, updated_by, updated_at)
    if row is not None:
        return FlagState(spec, bool(row.enabled), "db", env_name(spec.key), None, updated_by, updated_at)
    return FlagState(spec, spec.default, "default", env_name(spec.key))


def set_enabled(actor: Actor, key: str, enabled: bool) -> tuple[FlagState, bool]:
    """Turn a flag on or off for everyone (admins only); returns (new state, whether it changed).

    Setting the value it already has changes nothing and records nothing, so a double submit cannot flip
    a flag back. Each real change is one `flag.changed` event (key, from, to; who and when are the event's).
    """
    require_admin(actor, "change feature flags")
    spec = _spec(key)
    before = get_flag(key)
    if read_only():
        _refuse(actor, key, "read_only", f"Feature flags are read-only on this server ({READ_ONLY_ENV}=true): "
                                         "they can only be changed in the server environment.")
    if before.locked:
        _refuse(actor, key, "set_in_environment", f"{spec.label} is set by {before.env_name} in the server "
                                                  "environment; change it there.")
    if before.enabled == enabled:
        return before, False
    row = db.session.get(FeatureFlag, key) or FeatureFlag(key=key)
    row.enabled = enabled
    row.description = spec.description[:255]
    row.updated_by = actor.id
    row.updated_at = utcnow()
    db.session.add(row)
    audit.record("flag.changed", actor=actor, entity_type="flag", entity_id=key,
                 details={"key": key, "from": before.enabled, "to": enabled, "previous_source": before.source})
    db.session.commit()
    return get_flag(key), True


def _refuse(actor: Actor, key: str, why: str, message: str) -> None:
    audit.record_failure("flag.change_failed", actor=actor, entity_type="flag", entity_id=key, reason=why,
                         http_status=409, details={"key": key})
    raise Conflict(message)
