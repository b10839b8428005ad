"""Admin → Integrations: the provider catalogue, saved settings, encrypted secrets, and the Test button.

Rules live here; the blueprint parses forms and renders. Secrets are stored only encrypted
(`AppIntegration.secrets_encrypted[field]`, context "<provider>:<field>", see collectz.security.secrets) and leave
this module in two shapes only: a hint for the page ("set, ends in …1234") and a decrypted `ProviderConfig` for a
provider client. A secret that no longer decrypts (the key ring changed) is a warning naming the provider and the
field, a "cannot decrypt — re-enter the key" hint on its card, and a `SecretUnreadable` for whoever needs it; it
never breaks the page or another provider.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from collectz.config import current_settings
from collectz.extensions import db
from collectz.models import AppIntegration
from collectz.models.base import utcnow
from collectz.providers.config import ProviderConfig
from collectz.providers.http import ProviderError, check_base_url
from collectz.security.permissions import Actor, require_admin
from collectz.security.secrets import CannotDecrypt, keyring
from collectz.services import audit, flags
from collectz.services.errors import DomainError, InvalidInput, NotFound

if TYPE_CHECKING:
    from collectz.providers.plex import PlexSection

log = logging.getLogger("collectz.integrations")

GROUPS = ("Movies & TV", "Media server", "Barcodes", "Covers", "Books", "Music", "Games", "Comics")
SETTING_KINDS = ("text", "url", "select", "bool", "multi")
TEXT_MAX = 200
URL_MAX = 500
SECRET_MAX = 4096
TAIL_MIN_LENGTH = 12  # a shorter secret shows only "set": four characters of eight would be half of it
CANNOT_DECRYPT_HINT = "cannot decrypt — re-enter the key"
UNSUPPORTED_MESSAGE = "Testing this provider is not available in this version"
STATUS_LABELS = {
    "ok": "ok", "bad_credentials": "bad credentials", "unreachable": "unreachable", "rate_limited": "rate-limited",
    "cannot_decrypt": "cannot decrypt", "unavailable": "unavailable", "not_found": "not found",
    "bad_response": "bad response", "bad_url": "bad address", "not_configured": "not configured",
    "unsupported": "not available", "error": "error",
}


# --- the catalogue ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SettingField:
    """A plain (not secret) setting. `required`/`required_if` apply when the card is turned on."""

    name: str
    label: str
    kind: str = "text"  # text | url | select | bool | multi
    choices: tuple[tuple[str, str], ...] = ()
    default: Any = ""
    help: str = ""
    required: bool = False
    required_if: tuple[str, str] | None = None  # (other setting, value) that makes this one required
    pattern: str | None = None
    pattern_message: str = ""
    editable: bool = True  # False: set by its own action, not by the card's form (Plex sections)


@dataclass(frozen=True)
class SecretField:
    """A secret (API key, token, password): stored encrypted, never shown, never pre-filled."""

    name: str
    label: str
    help: str = ""
    required: bool = False
    required_if: tuple[str, str] | None = None
    strip: bool = True  # passwords keep their spaces; keys and tokens lose pasted whitespace


@dataclass(frozen=True)
class ProviderSpec:
    """One card of Admin → Integrations."""

    key: str
    label: str
    group: str
    description: str
    settings: tuple[SettingField, ...] = ()
    secrets: tuple[SecretField, ...] = ()
    self_hosted: bool = False  # may live on the LAN: private addresses allowed for its base URL
    default_base_url: str | None = None  # set when the base URL is editable and has a public default
    enabled_by_default: bool = False
    flag: str | None = None  # a feature flag that hides the card while it is off
    key_url: str | None = None  # where an admin gets a key
    key_url_label: str = "Where to get a key"

    def setting(self, name: str) -> SettingField | None:
        return next((f for f in self.settings if f.name == name), None)

    def secret(self, name: str) -> SecretField | None:
        return next((f for f in self.secrets if f.name == name), None)

    @property
    def editable_settings(self) -> tuple[SettingField, ...]:
        return tuple(f for f in self.settings if f.editable)


PROVIDERS: tuple[ProviderSpec, ...] = (
    ProviderSpec(
        "tmdb", "TMDB", "Movies & TV", "Titles, posters, cast and crew of movies and TV series from The Movie "
        "Database.",
        settings=(SettingField("language", "Language", default="en-US", pattern=r"[a-z]{2}(-[A-Z]{2})?",
                               pattern_message="Use a language code such as en-US, de-DE or fr.",
                               help="The language of titles and overviews, e.g. en-US or de-DE."),),
        secrets=(SecretField("api_key", "API key", required=True,
                             help="Your TMDB API key (v3) or API read access token."),),
        key_url="https://www.themoviedb.org/settings/api"),
    ProviderSpec(
        "plex", "Plex", "Media server", "Import movies and series from your Plex Media Server.",
        settings=(SettingField("base_url", "Server address", kind="url", required=True,
                               help="e.g. http://192.168.1.20:32400 — an address on your home network is fine."),
                  SettingField("sections", "Libraries to import", kind="multi", default=(), editable=False)),
        secrets=(SecretField("token", "Plex token", required=True,
                             help="Your X-Plex-Token (Plex support: “Finding an authentication token”)."),),
        self_hosted=True, key_url_label="How to find the token",
        key_url="https://support.plex.tv/articles/204059436-finding-an-authentication-token-x-plex-token/"),
    ProviderSpec(
        "barcode", "Barcode lookup", "Barcodes", "Find the product behind a UPC or EAN barcode.",
        settings=(SettingField("preset", "Service", kind="select", default="upcitemdb",
                               choices=(("upcitemdb", "UPCitemdb"), ("barcodelookup", "Barcode Lookup")),
                               help="UPCitemdb answers without a key on its free plan (about 100 lookups a day); "
                                    "Barcode Lookup needs a key."),),
        secrets=(SecretField("api_key", "API key", required_if=("preset", "barcodelookup"),
                             help="Optional for UPCitemdb (a paid plan's key), required for Barcode Lookup."),)),
    ProviderSpec(
        "covers", "Cover recognition", "Covers",
        "Recognise an item from a photo of its cover, with an OpenAI-compatible vision API.",
        settings=(SettingField("base_url", "API address", kind="url", default="https://api.openai.com/v1",
                               help="The address of an OpenAI-compatible API (public addresses only)."),
                  SettingField("model", "Model", default="gpt-4o-mini", help="A model that reads images.")),
        secrets=(SecretField("api_key", "API key", required=True),),
        default_base_url="https://api.openai.com/v1"),
    ProviderSpec(
        "books", "Books", "Books", "Book details and covers by ISBN or title.",
        settings=(SettingField("provider", "Service", kind="select", default="openlibrary",
                               choices=(("openlibrary", "Open Library (no key needed)"),
                                        ("googlebooks", "Google Books"))),),
        secrets=(SecretField("google_api_key", "Google Books API key",
                             help="Optional: Google Books answers without a key, with a smaller daily quota."),),
        enabled_by_default=True),
    ProviderSpec(
        "music", "Music", "Music", "Album details by barcode or title.",
        settings=(SettingField("provider", "Service", kind="select", default="musicbrainz",
                               choices=(("musicbrainz", "MusicBrainz (no key needed)"), ("discogs", "Discogs"))),
                  SettingField("contact", "Contact for MusicBrainz",
                               help="MusicBrainz asks each application for a contact (an email address or a URL); "
                                    "optional.")),
        secrets=(SecretField("discogs_token", "Discogs personal access token", required_if=("provider", "discogs"),
                             help="Discogs → Settings → Developers → Generate new token."),),
        enabled_by_default=True),
    ProviderSpec(
        "igdb", "IGDB", "Games", "Game details from IGDB, through a Twitch developer application.",
        settings=(SettingField("client_id", "Twitch client ID", required=True),),
        secrets=(SecretField("client_secret", "Twitch client secret", required=True),),
        key_url="https://api-docs.igdb.com/#account-creation"),
    ProviderSpec(
        "comics", "Comics", "Comics", "Comic details: Metron first, the Grand Comics Database when Metron has no "
        "match.",
        settings=(SettingField("primary", "Look up in", kind="select", default="metron",
                               choices=(("metron", "Metron"), ("gcd", "Grand Comics Database"))),
                  SettingField("fallback", "When nothing is found", kind="select", default="gcd",
                               choices=(("gcd", "Try the Grand Comics Database"), ("none", "Stop there"))),
                  SettingField("metron_username", "Metron user name", required_if=("primary", "metron"))),
        secrets=(SecretField("metron_password", "Metron password", required_if=("primary", "metron"), strip=False),),
        key_url="https://metron.cloud/accounts/signup/"),
    ProviderSpec(
        "comicvine", "ComicVine", "Comics", "Comic details from ComicVine.",
        secrets=(SecretField("api_key", "API key", required=True),),
        flag="integration_comicvine", key_url="https://comicvine.gamespot.com/api/"),
)
PROVIDERS_BY_KEY = {spec.key: spec for spec in PROVIDERS}


# --- errors -----------------------------------------------------------------------------------------------------

class IntegrationProblem(DomainError):
    """A provider cannot be used right now; `badge` is the card's status key."""

    status = 409
    badge = "error"

    def __init__(self, message: str, *, badge: str | None = None) -> None:
        super().__init__(message)
        if badge:
            self.badge = badge


class SecretUnreadable(IntegrationProblem):
    """A saved secret does not decrypt with the current key ring: the admin must enter it again."""

    badge = "cannot_decrypt"

    def __init__(self, spec: ProviderSpec, secret: SecretField) -> None:
        super().__init__(f"The saved {secret.label} of {spec.label} cannot be decrypted with this server's "
                         f"INTEGRATION_ENCRYPTION_KEY ({CANNOT_DECRYPT_HINT} under Admin → Integrations).")
        self.provider = spec.key
        self.field = secret.name


class NotConfigured(IntegrationProblem):
    badge = "not_configured"


# --- what a card shows ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SecretState:
    """A secret as the page may see it: whether it is set and, for a long one, its last four characters."""

    field: SecretField
    state: str  # "set" | "unset" | "unreadable"
    tail: str = ""

    @property
    def name(self) -> str:
        return self.field.name

    @property
    def hint(self) -> str:
        if self.state == "unreadable":
            return CANNOT_DECRYPT_HINT
        if self.state == "unset":
            return "not set"
        return f"set, ends in …{self.tail}" if self.tail else "set"


@dataclass(frozen=True)
class IntegrationView:
    """Everything one card shows; never a secret."""

    spec: ProviderSpec
    enabled: bool
    values: Mapping[str, Any]
    secrets: tuple[SecretState, ...]
    status: str | None = None
    last_checked_at: datetime | None = None
    last_error: str | None = None
    saved: bool = False

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def status_key(self) -> str:
        return self.status or "untested"

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status) if self.status else "not tested"

    @property
    def unreadable(self) -> list[SecretField]:
        return [s.field for s in self.secrets if s.state == "unreadable"]

    def secret(self, name: str) -> SecretState | None:
        return next((s for s in self.secrets if s.name == name), None)

    @property
    def sections(self) -> list[dict[str, str]]:
        return list(self.values.get("sections") or [])


def provider_spec(key: str) -> ProviderSpec:
    """The catalogue entry of a visible provider; NotFound for an unknown key or one hidden by its flag."""
    spec = PROVIDERS_BY_KEY.get(key)
    if spec is None or not _visible(spec):
        raise NotFound(f"There is no integration called {key!r}.")
    return spec


def _visible(spec: ProviderSpec) -> bool:
    """A flagged card hides only while its flag exists and is off (the flag may not be registered yet)."""
    return spec.flag is None or spec.flag not in flags.REGISTRY or flags.is_enabled(spec.flag)


def get(provider: str) -> IntegrationView:
    spec = provider_spec(provider)
    return _view(spec, _row(spec.key))


def cards() -> list[IntegrationView]:
    """Every visible card, in catalogue order (one query)."""
    rows = {row.provider: row for row in db.session.scalars(select(AppIntegration))}
    return [_view(spec, rows.get(spec.key)) for spec in PROVIDERS if _visible(spec)]


def grouped(views: Iterable[IntegrationView]) -> list[tuple[str, list[IntegrationView]]]:
    """Cards by group, groups in GROUPS order, empty groups left out."""
    by_group: dict[str, list[IntegrationView]] = {group: [] for group in GROUPS}
    for view in views:
        by_group.setdefault(view.spec.group, []).append(view)
    return [(group, items) for group, items in by_group.items() if items]


def is_enabled(provider: str) -> bool:
    """Whether a provider is switched on (for the features that use it)."""
    spec = PROVIDERS_BY_KEY.get(provider)
    if spec is None or not _visible(spec):
        return False
    row = _row(provider)
    return spec.enabled_by_default if row is None else bool(row.enabled)


def _row(provider: str) -> AppIntegration | None:
    return db.session.scalar(select(AppIntegration).where(AppIntegration.provider == provider))


def _values(spec: ProviderSpec, row: AppIntegration | None) -> dict[str, Any]:
    """Every setting of the spec: the saved value, else its default."""
    saved = (row.settings if row is not None else None) or {}
    values: dict[str, Any] = {}
    for f in spec.settings:
        default = list(f.default) if f.kind == "multi" else f.default
        values[f.name] = saved.get(f.name, default)
    return values


def _context(provider: str, name: str) -> str:
    return f"{provider}:{name}"


def _decrypt(spec: ProviderSpec, secret: SecretField, token: str) -> str:
    """The plaintext, or SecretUnreadable after a warning that names the provider and field (never the value)."""
    try:
        return keyring().decrypt(token, context=_context(spec.key, secret.name))
    except CannotDecrypt:
        log.warning("integration %s: the saved %s cannot be decrypted with the current INTEGRATION_ENCRYPTION_KEY; "
                    "re-enter it under Admin → Integrations", spec.key, secret.name)
        raise SecretUnreadable(spec, secret) from None


def _secret_state(spec: ProviderSpec, secret: SecretField, token: str | None) -> SecretState:
    if not token:
        return SecretState(secret, "unset")
    try:
        plain = _decrypt(spec, secret, token)
    except SecretUnreadable:
        return SecretState(secret, "unreadable")
    return SecretState(secret, "set", plain[-4:] if len(plain) >= TAIL_MIN_LENGTH else "")


def _view(spec: ProviderSpec, row: AppIntegration | None) -> IntegrationView:
    tokens = (row.secrets_encrypted if row is not None else None) or {}
    return IntegrationView(
        spec=spec,
        enabled=spec.enabled_by_default if row is None else bool(row.enabled),
        values=_values(spec, row),
        secrets=tuple(_secret_state(spec, s, tokens.get(s.name)) for s in spec.secrets),
        status=row.status if row is not None else None,
        last_checked_at=row.last_checked_at if row is not None else None,
        last_error=row.last_error if row is not None else None,
        saved=row is not None,
    )


# --- saving -----------------------------------------------------------------------------------------------------

class _FieldError(ValueError):
    pass


def save(actor: Actor, provider: str, data: Mapping[str, Any]) -> IntegrationView:
    """Validate and store a card's form: settings, `enabled`, secrets (blank keeps, `clear_<name>` removes).

    Nothing is written unless every field is valid (InvalidInput names each bad field). A save that changes
    nothing records nothing; otherwise one `integration.updated` event lists the changed field names, never a value.
    """
    require_admin(actor, "change integrations")
    spec = provider_spec(provider)
    row = _row(spec.key)
    before, errors = _values(spec, row), {}
    values = dict(before)
    for f in spec.editable_settings:
        try:
            values[f.name] = _clean_setting(spec, f, data.get(f.name))
        except _FieldError as exc:
            errors[f.name] = str(exc)
    new_secrets, clear = _clean_secrets(spec, data, errors)
    stored = dict((row.secrets_encrypted if row is not None else None) or {})
    enabled = _truthy(data.get("enabled"))
    if enabled:
        kept = (set(stored) - clear) | set(new_secrets)
        errors.update(_missing(spec, values, kept, errors))
    if errors:
        audit.record_failure("integration.update_failed", actor=actor, entity_type="integration",
                             entity_id=spec.key, reason="invalid input", http_status=422,
                             details={"provider": spec.key, "fields": sorted(errors)})
        raise InvalidInput(f"{spec.label} was not saved: check the fields marked below.", fields=errors)
    return _write(actor, spec, row, enabled, before, values, stored, new_secrets, clear)


def _write(actor: Actor, spec: ProviderSpec, row: AppIntegration | None, enabled: bool, before: dict[str, Any],
           values: dict[str, Any], stored: dict[str, str], new_secrets: dict[str, str],
           clear: set[str]) -> IntegrationView:
    was_enabled = spec.enabled_by_default if row is None else bool(row.enabled)
    changed = [f.name for f in spec.editable_settings if values[f.name] != before[f.name]]
    tokens = dict(stored)
    cleared = sorted(name for name in clear if name in tokens and name not in new_secrets)
    for name in cleared:
        del tokens[name]
    for name, plain in new_secrets.items():
        if _same_secret(spec, name, tokens.get(name), plain):
            continue
        tokens[name] = keyring().encrypt(plain, context=_context(spec.key, name))
        changed.append(name)
    connection_changed = bool(changed or cleared)
    if enabled != was_enabled:
        changed.insert(0, "enabled")
    if not changed and not cleared:
        return _view(spec, row)
    row = row or AppIntegration(provider=spec.key)
    row.enabled, row.settings, row.secrets_encrypted = enabled, values, tokens
    row.updated_by, row.updated_at = actor.id, utcnow()
    if connection_changed:  # an old "ok" would vouch for settings it never tested
        row.status, row.last_checked_at, row.last_error = None, None, None
    db.session.add(row)
    audit.record("integration.updated", actor=actor, entity_type="integration", entity_id=spec.key,
                 details={"provider": spec.key, "changed": sorted(set(changed) | set(cleared)),
                          "cleared": cleared, "enabled": enabled})
    db.session.commit()
    return _view(spec, row)


def _same_secret(spec: ProviderSpec, name: str, token: str | None, plain: str) -> bool:
    """Re-entering the stored value is no change (an unreadable stored value always is one)."""
    secret = spec.secret(name)
    if not token or secret is None:
        return False
    try:
        return _decrypt(spec, secret, token) == plain
    except SecretUnreadable:
        return False


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("1", "true", "on", "yes", "y")


def _clean_setting(spec: ProviderSpec, f: SettingField, raw: Any) -> Any:
    if f.kind == "bool":
        return _truthy(raw)
    text = str(raw if raw is not None else "").strip()
    if f.kind == "select":
        allowed = [value for value, _label in f.choices]
        if not text:
            return f.default
        if text not in allowed:
            raise _FieldError(f"Choose one of: {', '.join(label for _v, label in f.choices)}.")
        return text
    if f.kind == "url":
        return _clean_url(spec, f, text)
    if len(text) > TEXT_MAX:
        raise _FieldError(f"{f.label} is too long (at most {TEXT_MAX} characters).")
    if text and f.pattern and not re.fullmatch(f.pattern, text):
        raise _FieldError(f.pattern_message or f"{f.label} is not in the expected format.")
    return text or f.default


def _clean_url(spec: ProviderSpec, f: SettingField, text: str) -> str:
    """The outbound-URL policy on an admin-entered address; private addresses only for self-hosted providers."""
    if not text:
        return f.default or ""
    if f.default and text.rstrip("/") == f.default.rstrip("/"):
        return f.default  # the provider's own public address needs no check (and no DNS lookup)
    if len(text) > URL_MAX:
        raise _FieldError(f"The address is too long (at most {URL_MAX} characters).")
    try:
        return check_base_url(text, provider=spec.key, allow_private=spec.self_hosted)
    except ProviderError as exc:  # UrlRejected, or Unreachable when the host name does not resolve
        raise _FieldError(_sentence(exc.message)) from None


def _sentence(message: str) -> str:
    message = message.strip()
    message = message[:1].upper() + message[1:]
    return message if message.endswith((".", "!", "?")) else message + "."


def _clean_secrets(spec: ProviderSpec, data: Mapping[str, Any],
                   errors: dict[str, str]) -> tuple[dict[str, str], set[str]]:
    """(new plaintexts by field, fields to clear). A blank field keeps what is stored; a new value beats clear."""
    new: dict[str, str] = {}
    clear: set[str] = set()
    for secret in spec.secrets:
        if _truthy(data.get(f"clear_{secret.name}")):
            clear.add(secret.name)
        raw = data.get(secret.name)
        value = str(raw) if isinstance(raw, str) else ""
        if secret.strip or not value.strip():
            value = value.strip()
        if not value:
            continue
        if len(value) > SECRET_MAX:
            errors[secret.name] = f"{secret.label} is too long (at most {SECRET_MAX} characters)."
        elif any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            errors[secret.name] = f"{secret.label} must not contain line breaks or control characters."
        else:
            new[secret.name] = value
    return new, clear


def _required(f: SettingField | SecretField, values: Mapping[str, Any]) -> bool:
    if f.required:
        return True
    return f.required_if is not None and values.get(f.required_if[0]) == f.required_if[1]


def _missing(spec: ProviderSpec, values: Mapping[str, Any], secrets: set[str],
             errors: Mapping[str, str]) -> dict[str, str]:
    """What must be filled in before the card can be turned on (fields already in error are left alone)."""
    missing: dict[str, str] = {}
    for f in spec.editable_settings:
        if f.name not in errors and _required(f, values) and not values.get(f.name):
            missing[f.name] = f"Enter the {f.label.lower()} to turn {spec.label} on."
    for s in spec.secrets:
        if s.name not in errors and _required(s, values) and s.name not in secrets:
            missing[s.name] = f"Enter the {s.label} to turn {spec.label} on."
    return missing


# --- using a provider -------------------------------------------------------------------------------------------

def config_for(provider: str) -> ProviderConfig:
    """The saved configuration with its secrets decrypted, for a provider client; SecretUnreadable if one fails."""
    spec = provider_spec(provider)
    row = _row(spec.key)
    values = _values(spec, row)
    tokens = (row.secrets_encrypted if row is not None else None) or {}
    secrets = {s.name: _decrypt(spec, s, tokens[s.name]) for s in spec.secrets if tokens.get(s.name)}
    base_url, allow_private = _base_url(spec, values)
    return ProviderConfig(provider=spec.key, settings=values, secrets=secrets, base_url=base_url,
                          allow_private=allow_private, timeout=float(current_settings().OUTBOUND_TIMEOUT_SECONDS))


def _base_url(spec: ProviderSpec, values: Mapping[str, Any]) -> tuple[str | None, bool]:
    """(address, private allowed). TMDB's comes from the server's settings: trusted, never from the form."""
    if spec.key == "tmdb":
        return current_settings().TMDB_BASE_URL, True
    if spec.setting("base_url") is not None:
        return (values.get("base_url") or spec.default_base_url or None), spec.self_hosted
    return None, False


def _tmdb_client(config: ProviderConfig) -> Any:
    from collectz.providers.throttle import throttle_for
    from collectz.providers.tmdb import TmdbClient

    settings = current_settings()
    return TmdbClient.from_config(config, base_url=settings.TMDB_BASE_URL,
                                  image_base_url=settings.TMDB_IMAGE_BASE_URL, throttle=throttle_for("tmdb"))


def _plex_client(config: ProviderConfig) -> Any:
    from collectz.providers.plex import PlexClient

    return PlexClient.from_config(config)


def _chosen(card: str, setting: str, default: str) -> Callable[[ProviderConfig], Any]:
    """A card whose service is a choice (Books: Open Library or Google Books...): the chosen provider's client,
    at the server's override address if one is set."""

    def build(config: ProviderConfig) -> Any:
        from collectz.providers import registry

        key = str(config.settings.get(setting) or default)
        if key not in registry.PROVIDERS:  # e.g. comics' fallback "none"
            key = default
        module = importlib.import_module(registry.PROVIDERS[key][0])
        return module.build(registry.with_override(key, config))

    return build


class _VisionCheck:
    """Cover recognition's Test: an OpenAI-compatible API lists its models for a valid key (GET /models)."""

    def __init__(self, config: ProviderConfig) -> None:
        from collectz.services.lookup import vision_http

        self.http = vision_http(config)

    def check(self) -> None:
        self.http.get_json("/models")


# Each card's client for Test; a provider module this version does not ship answers "unsupported".
CLIENTS: dict[str, Callable[[ProviderConfig], Any]] = {
    "tmdb": _tmdb_client, "plex": _plex_client,
    "books": _chosen("books", "provider", "openlibrary"), "music": _chosen("music", "provider", "musicbrainz"),
    "barcode": _chosen("barcode", "preset", "upcitemdb"), "igdb": _chosen("igdb", "provider", "igdb"),
    "comics": _chosen("comics", "primary", "metron"), "comicvine": _chosen("comicvine", "provider", "comicvine"),
    "covers": _VisionCheck,
}


@dataclass(frozen=True)
class CheckResult:
    status: str
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def test(actor: Actor, provider: str) -> IntegrationView:
    """Call the provider with the saved settings; store and audit the badge (`integration.tested`)."""
    require_admin(actor, "test integrations")
    spec = provider_spec(provider)
    result = check(spec)
    row = _row(spec.key) or AppIntegration(provider=spec.key, enabled=spec.enabled_by_default, settings={},
                                           secrets_encrypted={})
    row.status, row.last_checked_at, row.last_error = result.status, utcnow(), result.message
    db.session.add(row)
    audit.record("integration.tested", actor=actor, entity_type="integration", entity_id=spec.key,
                 status="ok" if result.ok else "failed", reason=None if result.ok else result.status,
                 details={"provider": spec.key, "result": result.status})
    db.session.commit()
    return _view(spec, row)


def check(spec: ProviderSpec) -> CheckResult:
    """The badge for one provider: its client's check(), or why it could not run. Never raises for a provider."""
    builder = CLIENTS.get(spec.key)
    if builder is None:
        return CheckResult("unsupported", UNSUPPORTED_MESSAGE)
    try:
        config = _usable_config(spec)
    except IntegrationProblem as exc:
        return CheckResult(exc.badge, exc.message)
    try:
        builder(config).check()  # building the client applies the URL policy too
    except ModuleNotFoundError as exc:  # a client this build does not ship yet (only our own provider modules)
        if not (exc.name or "").startswith("collectz.providers."):
            raise
        return CheckResult("unsupported", UNSUPPORTED_MESSAGE)
    except ProviderError as exc:
        return CheckResult(exc.status if exc.status in STATUS_LABELS else "error",
                           _scrub(_sentence(exc.message), config))
    return CheckResult("ok")


def _usable_config(spec: ProviderSpec) -> ProviderConfig:
    """config_for, plus NotConfigured when something the provider needs has not been entered."""
    config = config_for(spec.key)
    needs = [f.label.lower() for f in spec.editable_settings if _required(f, config.settings)
             and not config.settings.get(f.name)]
    needs += [s.label for s in spec.secrets if _required(s, config.settings) and not config.secret(s.name)]
    if needs:
        raise NotConfigured(f"Enter the {' and the '.join(needs)} of {spec.label} and save before testing.")
    return config


def _scrub(message: str, config: ProviderConfig) -> str:
    """Belt and braces: a provider message never carries a secret, but if it did it is cut out here."""
    for value in config.secrets.values():
        if value and len(value) >= 4:
            message = message.replace(value, "[redacted]")
    return message[:500]


# --- Plex sections ----------------------------------------------------------------------------------------------

def plex_sections(actor: Actor) -> list[PlexSection]:
    """The libraries the saved Plex server reports; an IntegrationProblem (audited) when it cannot say."""
    require_admin(actor, "list Plex libraries")
    spec = provider_spec("plex")
    try:
        config = _usable_config(spec)
    except IntegrationProblem as exc:
        _sections_failed(actor, exc.badge, exc.message)
        raise
    try:
        return list(_plex_client(config).sections())
    except ProviderError as exc:
        message = _scrub(_sentence(exc.message), config)
        _sections_failed(actor, exc.status, message)
        raise IntegrationProblem(message, badge=exc.status) from None


def _sections_failed(actor: Actor, badge: str, message: str) -> None:
    audit.record_failure("integration.sections_failed", actor=actor, entity_type="integration", entity_id="plex",
                         reason=badge, details={"provider": "plex", "result": badge, "message": message})


def select_plex_sections(actor: Actor, keys: Iterable[str]) -> IntegrationView:
    """Store the chosen libraries as `settings["sections"] = [{key, title, type}]`, only keys the server reported.

    An empty choice needs no server; any other asks the server again, so a stale or forged key is refused.
    """
    require_admin(actor, "choose Plex libraries")
    spec = provider_spec("plex")
    wanted = list(dict.fromkeys(str(k).strip() for k in keys if str(k).strip()))
    chosen: list[dict[str, str]] = []
    if wanted:
        available = {str(s.key): s for s in plex_sections(actor)}
        unknown = [k for k in wanted if k not in available]
        if unknown:
            audit.record_failure("integration.update_failed", actor=actor, entity_type="integration",
                                 entity_id="plex", reason="unknown section", http_status=422,
                                 details={"provider": "plex", "fields": ["sections"], "unknown": unknown})
            raise InvalidInput("The Plex server has no library with the key " + ", ".join(unknown) + ".",
                               fields={"sections": "Load the sections again and choose among them."})
        chosen = [{"key": str(available[k].key), "title": str(available[k].title), "type": str(available[k].type)}
                  for k in wanted]
    row = _row(spec.key)
    values = _values(spec, row)
    if values["sections"] == chosen:
        return _view(spec, row)
    row = row or AppIntegration(provider=spec.key, enabled=spec.enabled_by_default, secrets_encrypted={})
    row.settings = {**values, "sections": chosen}
    row.updated_by, row.updated_at = actor.id, utcnow()
    db.session.add(row)
    audit.record("integration.updated", actor=actor, entity_type="integration", entity_id=spec.key,
                 details={"provider": spec.key, "changed": ["sections"], "sections": [c["key"] for c in chosen]})
    db.session.commit()
    return _view(spec, row)
