"""Settings from the environment (and `.env`); production refuses unsafe values.

Every setting is documented in docs/configuration.md. Booleans are strict: anything but
true/false (or 1/0, yes/no, on/off) fails at start-up. A secret can be given as NAME or as
NAME_FILE (a path whose content is the value), which suits Docker secrets.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

PROJECT_ROOT = Path(__file__).resolve().parent.parent

AUDIT_LOG_MODES = ("off", "failures", "mutations", "all")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Whole-number settings where 0 would break sign-in or sessions.
INT_MINIMUMS = {"SESSION_IDLE_MINUTES": 1, "SESSION_ABSOLUTE_HOURS": 1, "SESSION_REMEMBER_DAYS": 1,
                "SESSION_MAX_PER_USER": 1, "SESSION_CLEANUP_MINUTES": 1, "PASSWORD_MIN_LENGTH": 8,
                "IMPORT_MAX_MB": 1, "IMPORT_STALE_SECONDS": 1,
                "OUTBOUND_TIMEOUT_SECONDS": 1, "MAX_IMAGE_BYTES": 1024, "MAX_IMAGE_PIXELS": 1}
SECRET_SETTINGS = ("SECRET_KEY", "INTEGRATION_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN",
                   "S3_SECRET_ACCESS_KEY")
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
S3_REGION_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MIN_SECRET_LENGTH = 32
MIN_METRICS_TOKEN_LENGTH = 16
RATE_LIMIT_OFF = "off"
RATE_LIMIT_SETTINGS = ("RATELIMIT_AUTH", "RATELIMIT_WRITES", "RATELIMIT_IMPORTS", "RATELIMIT_LOOKUPS",
                       "RATELIMIT_DEFAULT", "LOGIN_LIMIT_PER_IP", "LOGIN_LIMIT_PER_ACCOUNT")


class ConfigError(RuntimeError):
    """A setting is missing or has a value the app refuses to run with."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    """Parse a strict boolean; anything unexpected is a start-up error naming the setting."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def parse_fraction(name: str, raw: str) -> float:
    """A number between 0 and 1 inclusive (a score threshold); anything else is a start-up error."""
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number between 0 and 1, not {raw!r}") from None
    if not 0.0 <= value <= 1.0:  # also refuses nan and inf
        raise ConfigError(f"{name} must be between 0 and 1, not {raw.strip()}")
    return value


def parse_limit(name: str, raw: str) -> str:
    """A rate limit ("30 per minute", "5/second;100/hour") or "off"; anything else fails at start-up."""
    from limits import parse_many

    value = (raw or "").strip()
    if value.lower() == RATE_LIMIT_OFF:
        return RATE_LIMIT_OFF
    try:
        if value and parse_many(value):
            return value
    except ValueError:
        pass
    raise ConfigError(f"{name} must be a rate such as \"30 per minute\" (or off), not {raw!r}")


def parse_int(name: str, raw: str, minimum: int | None = None) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


@dataclass
class Settings:
    """Typed settings; built by `Settings.from_env()`."""

    ENV: str = "development"
    SECRET_KEY: str = DEV_SECRET_KEY
    INTEGRATION_ENCRYPTION_KEY: str = ""
    INSTANCE_PATH: str = str(PROJECT_ROOT / "instance")
    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    STORAGE_PROVIDER: str = "local"
    UPLOAD_PATH: str = ""
    # S3-compatible object storage (AWS S3, MinIO, Backblaze B2), used when STORAGE_PROVIDER=s3.
    S3_BUCKET: str = ""
    S3_REGION: str = "us-east-1"
    S3_ENDPOINT_URL: str = ""
    S3_ACCESS_KEY_ID: str = ""
    S3_SECRET_ACCESS_KEY: str = ""
    S3_FORCE_PATH_STYLE: bool = False
    RUN_MIGRATIONS_ON_START: bool = False
    # Before migrating a database that holds data, write a backup into INSTANCE_PATH/backups (the last 5 are kept).
    AUTO_BACKUP_BEFORE_MIGRATE: bool = True
    SESSION_COOKIE_NAME: str = "collectz_session"
    SESSION_COOKIE_SECURE: bool = False
    SESSION_COOKIE_SAMESITE: str = "Strict"
    ALLOW_INSECURE_COOKIES: bool = False
    SESSION_IDLE_MINUTES: int = 120
    SESSION_ABSOLUTE_HOURS: int = 24
    SESSION_REMEMBER_DAYS: int = 30
    SESSION_MAX_PER_USER: int = 10
    SESSION_CLEANUP_MINUTES: int = 60
    CSRF_TIME_LIMIT_SECONDS: int = 3600
    PASSWORD_MIN_LENGTH: int = 10
    INVITE_TTL_HOURS: int = 72
    LOGIN_LIMIT_PER_IP: str = "20 per minute"
    LOGIN_LIMIT_PER_ACCOUNT: str = "5 per minute"
    RATELIMIT_ENABLED: bool = True
    # Rate limits per endpoint class, per signed-in member (per client address before sign-in); "off" for none.
    # See docs/security.md (rate-limit topology) for which endpoints are in which class.
    RATELIMIT_AUTH: str = "30 per minute"
    RATELIMIT_WRITES: str = "120 per minute"
    RATELIMIT_IMPORTS: str = "30 per minute"
    RATELIMIT_LOOKUPS: str = "30 per minute"
    RATELIMIT_DEFAULT: str = "600 per minute"
    AUDIT_LOG_MODE: str = "failures"
    LOG_LEVEL: str = "INFO"
    TRUST_PROXY_HOPS: int = 0
    METRICS_TOKEN: str = ""
    # Optional log export besides stdout (docs/observability.md): "gelf", "syslog" or both ("gelf,syslog").
    LOG_EXPORT: str = ""
    LOG_EXPORT_GELF_URL: str = ""  # udp://graylog:12201 or tcp://graylog:12201
    LOG_EXPORT_SYSLOG_URL: str = ""  # udp://host:514 or tcp://host:514
    LOG_EXPORT_LEVEL: str = "INFO"
    IMPORT_MAX_MB: int = 150
    IMPORT_CHUNK_SIZE: int = 0  # rows per chunk; 0: chosen per import (services.imports._sized_chunk)
    IMPORT_STALE_SECONDS: int = 120
    PUBLIC_URL: str = ""
    TMDB_BASE_URL: str = "https://api.themoviedb.org"
    TMDB_IMAGE_BASE_URL: str = "https://image.tmdb.org/t/p"
    OUTBOUND_TIMEOUT_SECONDS: int = 10
    # "provider=url,provider=url": the server's own addresses for providers (a mirror; local fakes in tests).
    PROVIDER_URL_OVERRIDES: str = ""
    # A provider match scoring at least this (0..1) is applied by itself; below it the item goes to Review.
    ENRICH_CONFIDENCE_THRESHOLD: float = 0.85
    # Covers and signed-copy proof photos: the largest upload, and the most pixels an image may declare (checked
    # from its header before any pixel is decoded: a small file can claim a huge picture).
    MAX_IMAGE_BYTES: int = 10 * 1024 * 1024
    MAX_IMAGE_PIXELS: int = 50_000_000
    # "http://host:port,...": servers on the local network that cover downloads may reach (e.g. a Calibre-Web
    # server); any other private address is refused.
    COVER_TRUSTED_ORIGINS: str = ""
    TESTING: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.ENV == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from the environment; raise ConfigError on a bad value."""
        env = dict(os.environ if environ is None else environ)
        s = cls()

        def raw(name: str) -> str | None:
            file_path = env.get(f"{name}_FILE")
            if file_path:
                try:
                    return Path(file_path).read_text().strip()
                except OSError as exc:
                    raise ConfigError(
                        f"{name}_FILE points at {file_path!r}, which cannot be read: {exc.strerror}"
                    ) from None
            value = env.get(name)
            # An empty value means "not set" (a commented-out line and `NAME=` behave alike).
            return value if value is None or value.strip() else None

        s.ENV = (raw("COLLECTZ_ENV") or "development").strip().lower()
        if s.ENV not in ("development", "production", "testing"):
            raise ConfigError(f"COLLECTZ_ENV must be development, production or testing, not {s.ENV!r}")
        for f in fields_of(cls):
            if f in ("ENV", "extra", "TESTING"):
                continue
            value = raw(f)
            if value is None:
                continue
            current = getattr(s, f)
            if isinstance(current, bool):
                setattr(s, f, parse_bool(f, value))
            elif isinstance(current, int):
                setattr(s, f, parse_int(f, value, minimum=INT_MINIMUMS.get(f, 0)))
            elif isinstance(current, float):
                setattr(s, f, parse_fraction(f, value))
            else:
                setattr(s, f, value.strip())
        if raw("SESSION_COOKIE_SECURE") is None and s.production:
            s.SESSION_COOKIE_SECURE = True
        s.validate()
        return s

    def validate(self) -> None:
        """Refuse values the app must not run with."""
        if self.AUDIT_LOG_MODE not in AUDIT_LOG_MODES:
            raise ConfigError(
                f"AUDIT_LOG_MODE must be one of {', '.join(AUDIT_LOG_MODES)}, not {self.AUDIT_LOG_MODE!r}"
            )
        if self.LOG_LEVEL.upper() not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.LOG_LEVEL!r}")
        for name in ("PUBLIC_URL", "TMDB_BASE_URL", "TMDB_IMAGE_BASE_URL"):
            value = getattr(self, name)
            if value and not value.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must start with http:// or https://, not {value!r}")
        provider_urls(self.PROVIDER_URL_OVERRIDES)  # refuses a malformed list
        trusted_origins(self.COVER_TRUSTED_ORIGINS)
        parse_fraction("ENRICH_CONFIDENCE_THRESHOLD", str(self.ENRICH_CONFIDENCE_THRESHOLD))
        self._validate_operations()
        if self.INTEGRATION_ENCRYPTION_KEY:  # a key ring that is set must parse, in every environment
            from collectz.security.secrets import KeyRing

            KeyRing.from_setting(self.INTEGRATION_ENCRYPTION_KEY)
        if self.SESSION_COOKIE_SAMESITE not in ("Strict", "Lax"):
            raise ConfigError("SESSION_COOKIE_SAMESITE must be Strict or Lax")
        if self.PASSWORD_MIN_LENGTH < 8:
            raise ConfigError("PASSWORD_MIN_LENGTH must be at least 8")
        if self.STORAGE_PROVIDER not in ("local", "s3"):
            raise ConfigError(f"STORAGE_PROVIDER must be local or s3, not {self.STORAGE_PROVIDER!r}")
        self._validate_s3()
        if not self.production:
            return
        if not self.SECRET_KEY or self.SECRET_KEY == DEV_SECRET_KEY:
            raise ConfigError("SECRET_KEY is missing: production needs a random value of at least 32 characters")
        if len(self.SECRET_KEY) < MIN_SECRET_LENGTH or len(set(self.SECRET_KEY)) < 8:
            raise ConfigError(f"SECRET_KEY is too weak: use a random value of at least {MIN_SECRET_LENGTH} characters")
        if not self.INTEGRATION_ENCRYPTION_KEY:
            raise ConfigError(
                "INTEGRATION_ENCRYPTION_KEY is missing: production needs it to encrypt integration secrets"
            )
        if not self.SESSION_COOKIE_SECURE and not self.ALLOW_INSECURE_COOKIES:
            raise ConfigError(
                "SESSION_COOKIE_SECURE=false in production: serve over HTTPS, or set ALLOW_INSECURE_COOKIES=true "
                "for a plain-HTTP home network"
            )
        if not self.REDIS_URL:
            raise ConfigError("REDIS_URL is missing: production runs background jobs and rate limits on Redis "
                              "(the in-process stand-in is only for `make run`)")

    def _validate_operations(self) -> None:
        """Rate limits, log export and the metrics token: refused at start-up rather than ignored at run time."""
        for name in RATE_LIMIT_SETTINGS:
            parse_limit(name, getattr(self, name))
        from collectz.web.logexport import parse_exports

        parse_exports(self)
        if self.production and self.METRICS_TOKEN and len(self.METRICS_TOKEN) < MIN_METRICS_TOKEN_LENGTH:
            raise ConfigError(f"METRICS_TOKEN is too short: use a random value of at least {MIN_METRICS_TOKEN_LENGTH} "
                              "characters (or leave it empty to turn /metrics off)")

    def _validate_s3(self) -> None:
        """S3 settings that are set must be usable; STORAGE_PROVIDER=s3 needs at least a bucket."""
        if self.S3_ENDPOINT_URL and not self.S3_ENDPOINT_URL.startswith(("http://", "https://")):
            # Only the scheme is named: an endpoint written with credentials in it must not be echoed.
            raise ConfigError("S3_ENDPOINT_URL must start with http:// or https://")
        if self.STORAGE_PROVIDER != "s3":
            return
        if not self.S3_BUCKET:
            raise ConfigError("STORAGE_PROVIDER=s3 needs S3_BUCKET (the name of an existing bucket)")
        if not S3_BUCKET_NAME.fullmatch(self.S3_BUCKET) or ".." in self.S3_BUCKET:
            raise ConfigError("S3_BUCKET must be a bucket name: 3-63 characters, lower-case letters, digits, "
                              f"dots and hyphens, not {self.S3_BUCKET!r}")
        if not S3_REGION_NAME.fullmatch(self.S3_REGION):
            raise ConfigError(f"S3_REGION must be a region name such as us-east-1, not {self.S3_REGION!r}")
        if bool(self.S3_ACCESS_KEY_ID) != bool(self.S3_SECRET_ACCESS_KEY):
            missing = "S3_SECRET_ACCESS_KEY" if self.S3_ACCESS_KEY_ID else "S3_ACCESS_KEY_ID"
            raise ConfigError(f"{missing} is missing: set S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY together "
                              "(or neither, to use the machine's AWS credentials)")

    def database_url(self) -> str:
        if self.DATABASE_URL:
            return normalise_database_url(self.DATABASE_URL)
        return "sqlite:///" + str(Path(self.INSTANCE_PATH) / "collectz.db")

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced, for logs and diagnostics."""
        out = asdict(self)
        for name in SECRET_SETTINGS:
            if out.get(name):
                out[name] = "***"
        return out

    def flask_config(self) -> dict[str, Any]:
        """The Flask/extension config keys these settings imply."""
        upload = self.UPLOAD_PATH or str(Path(self.INSTANCE_PATH) / "uploads")
        return {
            "COLLECTZ": self,
            "SECRET_KEY": self.SECRET_KEY,
            "TESTING": self.TESTING,
            "SQLALCHEMY_DATABASE_URI": self.database_url(),
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(self.database_url()),
            "UPLOAD_PATH": upload,
            # Flask's own signed cookie carries only the CSRF secret; the login session is our own row.
            "SESSION_COOKIE_NAME": "collectz_csrf",
            "SESSION_COOKIE_HTTPONLY": True,
            "SESSION_COOKIE_SECURE": self.SESSION_COOKIE_SECURE,
            "SESSION_COOKIE_SAMESITE": self.SESSION_COOKIE_SAMESITE,
            "WTF_CSRF_TIME_LIMIT": self.CSRF_TIME_LIMIT_SECONDS or None,
            "WTF_CSRF_SSL_STRICT": True,
            "RATELIMIT_ENABLED": self.RATELIMIT_ENABLED,
            "RATELIMIT_STORAGE_URI": self.REDIS_URL or "memory://",
            "RATELIMIT_HEADERS_ENABLED": True,
            "RATELIMIT_KEY_PREFIX": "collectz-limits",  # the Redis that also holds the queues
            # If Redis is briefly down, limits fall back to per-process memory instead of failing sign-in.
            "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
            # An import upload may be IMPORT_MAX_MB; the form around it adds a little.
            "MAX_CONTENT_LENGTH": (self.IMPORT_MAX_MB + 1) * 1024 * 1024,
        }


def provider_urls(raw: str) -> dict[str, str]:
    """PROVIDER_URL_OVERRIDES ("openlibrary=http://mirror:8080,musicbrainz=https://mb.example") as a dict."""
    urls: dict[str, str] = {}
    for entry in (raw or "").split(","):
        if not entry.strip():
            continue
        key, sep, url = entry.partition("=")
        key, url = key.strip(), url.strip()
        if not sep or not re.fullmatch(r"[a-z0-9_]+", key) or not url.startswith(("http://", "https://")):
            raise ConfigError("PROVIDER_URL_OVERRIDES is a comma-separated list of provider=http(s)://address, "
                              f"not {entry.strip()!r}")
        urls[key] = url.rstrip("/")
    return urls


def trusted_origins(raw: str) -> set[tuple[str, str, int]]:
    """COVER_TRUSTED_ORIGINS ("http://calibre.lan:8083,https://10.0.0.5") as (scheme, host, port) triples."""
    origins: set[tuple[str, str, int]] = set()
    for entry in (raw or "").split(","):
        entry = entry.strip().rstrip("/")
        if not entry:
            continue
        parts = urlsplit(entry)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or parts.path \
                or parts.query or parts.fragment or parts.username is not None or parts.password is not None:
            raise ConfigError("COVER_TRUSTED_ORIGINS is a comma-separated list of http(s)://host[:port] addresses "
                              f"(no path), not {entry!r}")
        origins.add((parts.scheme, parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)))
    return origins


def fields_of(cls: type) -> list[str]:
    return [name for name in cls.__dataclass_fields__]  # type: ignore[attr-defined]


def normalise_database_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL whatever scheme the operator wrote."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# JSON columns (import rows' records, type details, options) are written and read by orjson: an import encodes and
# decodes a record per row, and with the standard library's json that was about 8 % of a 100,000-row import's CPU time.
# OPT_NON_STR_KEYS: keys that are not strings become strings, as json.dumps makes them.
_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def engine_options(url: str) -> dict[str, Any]:
    # hide_parameters: a database error's message (logged with its traceback) never carries the row's values.
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}, "hide_parameters": True, **_JSON}
    # No server-side prepared statements: a generic plan for every value hurt the filtered list queries.
    return {"pool_pre_ping": True, "connect_args": {"prepare_threshold": None}, "hide_parameters": True, **_JSON}


def current_settings() -> Settings:
    """The running app's settings (services read policy values through this)."""
    from flask import current_app

    return current_app.config["COLLECTZ"]
