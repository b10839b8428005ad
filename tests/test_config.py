"""Settings.from_env: strict parsing, secrets from files, production refusals, redaction."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from collectz.config import DEV_SECRET_KEY, ConfigError, Settings, normalise_database_url
from tests.conftest import PROJECT_ROOT

GOOD_SECRET = "k3Y-9fQz_Lr2Vx8Wm5Tn1Bc7Hd4Js6Pa0Ge"  # 36 characters, many distinct
GOOD_ENC_KEY = "Zx1Cv2Bn3Mm4Lk5Jh6Gf7Ds8Aq9Wp0Oe-_=+"


def production(**env: str) -> dict[str, str]:
    base = {"COLLECTZ_ENV": "production", "SECRET_KEY": GOOD_SECRET, "INTEGRATION_ENCRYPTION_KEY": GOOD_ENC_KEY,
            "REDIS_URL": "redis://127.0.0.1:6379/0"}
    base.update(env)
    return {k: v for k, v in base.items() if v is not None}


def test_defaults_for_development() -> None:
    s = Settings.from_env({})
    assert s.ENV == "development"
    assert not s.production
    assert s.SECRET_KEY == DEV_SECRET_KEY
    assert s.SESSION_COOKIE_SECURE is False
    assert s.database_url().startswith("sqlite:///") and s.database_url().endswith("collectz.db")


@pytest.mark.parametrize("raw,expected", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True), (" True ", True),
    ("false", False), ("0", False), ("no", False), ("Off", False),
])
def test_booleans_accept_the_usual_spellings(raw: str, expected: bool) -> None:
    assert Settings.from_env({"SESSION_COOKIE_SECURE": raw}).SESSION_COOKIE_SECURE is expected


@pytest.mark.parametrize("raw", ["maybe", "2", "y", "enabled"])
def test_booleans_are_strict(raw: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"SESSION_COOKIE_SECURE": raw})
    assert "SESSION_COOKIE_SECURE" in str(excinfo.value)
    assert repr(raw) in str(excinfo.value)


def test_every_boolean_setting_is_strict() -> None:
    with pytest.raises(ConfigError, match="RATELIMIT_ENABLED"):
        Settings.from_env({"RATELIMIT_ENABLED": "sometimes"})
    with pytest.raises(ConfigError, match="RUN_MIGRATIONS_ON_START"):
        Settings.from_env({"RUN_MIGRATIONS_ON_START": "please"})


def test_integers_are_parsed() -> None:
    s = Settings.from_env({"SESSION_IDLE_MINUTES": " 15 ", "SESSION_MAX_PER_USER": "3", "TRUST_PROXY_HOPS": "1"})
    assert (s.SESSION_IDLE_MINUTES, s.SESSION_MAX_PER_USER, s.TRUST_PROXY_HOPS) == (15, 3, 1)


@pytest.mark.parametrize("raw", ["abc", "1.5", "ten"])
def test_integers_must_be_whole_numbers(raw: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"SESSION_IDLE_MINUTES": raw})
    assert "SESSION_IDLE_MINUTES" in str(excinfo.value)


def test_integers_must_not_be_negative() -> None:
    with pytest.raises(ConfigError, match="SESSION_REMEMBER_DAYS"):
        Settings.from_env({"SESSION_REMEMBER_DAYS": "-1"})
    with pytest.raises(ConfigError, match="IMPORT_CHUNK_SIZE"):
        Settings.from_env({"IMPORT_CHUNK_SIZE": "-5"})


def test_the_import_chunk_size_is_chosen_per_import_unless_set() -> None:
    assert Settings.from_env({}).IMPORT_CHUNK_SIZE == 0
    assert Settings.from_env({"IMPORT_CHUNK_SIZE": "0"}).IMPORT_CHUNK_SIZE == 0
    assert Settings.from_env({"IMPORT_CHUNK_SIZE": "250"}).IMPORT_CHUNK_SIZE == 250


def test_other_values_are_validated() -> None:
    with pytest.raises(ConfigError, match="AUDIT_LOG_MODE"):
        Settings.from_env({"AUDIT_LOG_MODE": "verbose"})
    with pytest.raises(ConfigError, match="COLLECTZ_ENV"):
        Settings.from_env({"COLLECTZ_ENV": "staging"})
    with pytest.raises(ConfigError, match="PASSWORD_MIN_LENGTH"):
        Settings.from_env({"PASSWORD_MIN_LENGTH": "4"})
    assert Settings.from_env({"AUDIT_LOG_MODE": "all"}).AUDIT_LOG_MODE == "all"


def test_secret_key_file_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret_key"
    secret.write_text(GOOD_SECRET + "\n")
    s = Settings.from_env(production(SECRET_KEY=None, SECRET_KEY_FILE=str(secret)))
    assert s.SECRET_KEY == GOOD_SECRET
    # The file wins over the plain variable.
    s = Settings.from_env(production(SECRET_KEY="ignored-" + GOOD_SECRET, SECRET_KEY_FILE=str(secret)))
    assert s.SECRET_KEY == GOOD_SECRET


def test_unreadable_secret_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env({"SECRET_KEY_FILE": str(tmp_path / "missing")})
    assert "SECRET_KEY_FILE" in str(excinfo.value)


def test_production_with_good_secrets_starts() -> None:
    s = Settings.from_env(production())
    assert s.production
    assert s.SECRET_KEY == GOOD_SECRET
    assert s.SESSION_COOKIE_SECURE is True  # HTTPS cookies by default in production


@pytest.mark.parametrize("env,setting,reason", [
    (production(SECRET_KEY=None), "SECRET_KEY", "missing"),
    (production(SECRET_KEY=""), "SECRET_KEY", "missing"),
    (production(SECRET_KEY=DEV_SECRET_KEY), "SECRET_KEY", "missing"),
    (production(SECRET_KEY="short-but-random-1"), "SECRET_KEY", "weak"),
    (production(SECRET_KEY="a" * 64), "SECRET_KEY", "weak"),
    (production(INTEGRATION_ENCRYPTION_KEY=None), "INTEGRATION_ENCRYPTION_KEY", "missing"),
    (production(INTEGRATION_ENCRYPTION_KEY="tiny"), "INTEGRATION_ENCRYPTION_KEY", "weak"),
], ids=["no-secret", "empty-secret", "dev-secret", "short-secret", "one-char-secret", "no-enc-key", "short-enc-key"])
def test_production_refuses_unsafe_secrets(env: dict[str, str], setting: str, reason: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(env)
    message = str(excinfo.value)
    assert message.startswith(setting + " ")
    assert reason in message


def test_development_tolerates_what_production_refuses() -> None:
    s = Settings.from_env({"SECRET_KEY": "short"})
    assert s.SECRET_KEY == "short"


def test_production_refuses_plain_http_cookies_unless_allowed() -> None:
    with pytest.raises(ConfigError) as excinfo:
        Settings.from_env(production(SESSION_COOKIE_SECURE="false"))
    assert "SESSION_COOKIE_SECURE" in str(excinfo.value)
    assert "ALLOW_INSECURE_COOKIES" in str(excinfo.value)

    s = Settings.from_env(production(SESSION_COOKIE_SECURE="false", ALLOW_INSECURE_COOKIES="true"))
    assert s.SESSION_COOKIE_SECURE is False
    assert s.ALLOW_INSECURE_COOKIES is True


def test_redacted_hides_secrets() -> None:
    env = production(
        DATABASE_URL="postgresql://collectz:db-pass-1234@db:5432/collectz",
        REDIS_URL="redis://:redis-pass-5678@redis:6379/0",
        METRICS_TOKEN="metrics-token-9999",
    )
    s = Settings.from_env(env)
    out = s.redacted()
    for name in ("SECRET_KEY", "INTEGRATION_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL", "METRICS_TOKEN"):
        assert out[name] == "***", name
    flat = repr(out)
    for secret in (GOOD_SECRET, GOOD_ENC_KEY, "db-pass-1234", "redis-pass-5678", "metrics-token-9999"):
        assert secret not in flat
    assert out["ENV"] == "production"
    assert out["SESSION_IDLE_MINUTES"] == s.SESSION_IDLE_MINUTES
    # Redaction is a copy: the settings themselves keep their values.
    assert s.SECRET_KEY == GOOD_SECRET


@pytest.mark.parametrize("url,expected", [
    ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
    ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_database_url_is_normalised(url: str, expected: str) -> None:
    assert normalise_database_url(url) == expected
    s = Settings.from_env({"DATABASE_URL": url})
    assert s.database_url() == expected
    assert s.flask_config()["SQLALCHEMY_DATABASE_URI"] == expected


def test_production_refusal_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SECRET_KEY", "INTEGRATION_ENCRYPTION_KEY", "DATABASE_URL", "REDIS_URL"))}
    env.update(COLLECTZ_ENV="production", INSTANCE_PATH=str(tmp_path / "instance"))
    proc = subprocess.run([sys.executable, "-c", "from collectz import create_app; create_app()"],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr
    assert "ConfigError" in proc.stderr
    assert not (tmp_path / "instance").exists(), "nothing should be created before the settings are accepted"


def test_an_empty_value_means_not_set() -> None:
    s = Settings.from_env({"SECRET_KEY": "", "SESSION_COOKIE_SECURE": " ", "SESSION_IDLE_MINUTES": ""})
    assert s.SECRET_KEY == Settings().SECRET_KEY and s.SESSION_COOKIE_SECURE is False
    assert s.SESSION_IDLE_MINUTES == Settings().SESSION_IDLE_MINUTES


@pytest.mark.parametrize("name", ["SESSION_IDLE_MINUTES", "SESSION_ABSOLUTE_HOURS", "SESSION_MAX_PER_USER"])
def test_zero_is_refused_where_it_would_break_sessions(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: "0"})


def test_log_level_and_public_url_are_checked() -> None:
    with pytest.raises(ConfigError, match="LOG_LEVEL"):
        Settings.from_env({"LOG_LEVEL": "loud"})
    with pytest.raises(ConfigError, match="PUBLIC_URL"):
        Settings.from_env({"PUBLIC_URL": "collectz.example.org"})


def test_production_needs_redis() -> None:
    env = production()
    del env["REDIS_URL"]
    with pytest.raises(ConfigError, match="REDIS_URL"):
        Settings.from_env(env)


def test_provider_url_overrides_are_a_list_of_provider_addresses() -> None:
    from collectz.config import provider_urls

    s = Settings.from_env({"PROVIDER_URL_OVERRIDES": "openlibrary=http://127.0.0.1:8080/, tmdb=https://tmdb.mirror"})
    assert provider_urls(s.PROVIDER_URL_OVERRIDES) == {"openlibrary": "http://127.0.0.1:8080",
                                                       "tmdb": "https://tmdb.mirror"}
    for bad in ("openlibrary", "openlibrary=ftp://x", "Open Library=http://x"):
        with pytest.raises(ConfigError, match="PROVIDER_URL_OVERRIDES"):
            Settings.from_env({"PROVIDER_URL_OVERRIDES": bad})
