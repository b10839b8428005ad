"""What a serving process does before it answers requests."""

from __future__ import annotations

import fcntl
import gc
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask
from sqlalchemy import text

from collectz.config import ConfigError
from collectz.schema import MIGRATIONS_DIR, SchemaError, upgrade

log = logging.getLogger("collectz.startup")
# Any fixed number: every collectZ process asks PostgreSQL for the same advisory lock.
_PG_LOCK_KEY = 0x636F6C6C


def refuse(exc: Exception) -> SystemExit:
    if logging.getLogger("collectz").handlers:  # structured logs are set up: keep a record there too
        log.error("refusing to start: %s", exc)
    print(f"collectZ refuses to start: {exc}", file=sys.stderr)
    return SystemExit(3)


def build_app() -> Flask:
    """create_app() for a serving process: a bad setting or a too-new schema exits with its reason."""
    from collectz import create_app

    try:
        return create_app()
    except (ConfigError, SchemaError) as exc:
        raise refuse(exc) from exc


def freeze_start_up_objects() -> None:
    """Leave the objects made while starting (modules, the app and its routes, SQLAlchemy's metadata, templates) out
    of the garbage collector's full collections. They live as long as the process, yet each full collection walked
    every one of them again: a 100,000-row CSV import starts about 60 of them, and they took about a quarter of the
    import's time. Called once a process has started, just before it serves or works; the cycles left over from
    starting are collected first. Objects freed later by reference counting are freed as before."""
    gc.collect()
    gc.freeze()


@contextmanager
def migration_lock(app: Flask) -> Iterator[None]:
    """One process migrates at a time (several gunicorn workers may start together)."""
    from collectz.extensions import db

    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _PG_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                    conn.commit()
            return
    lock_path = Path(app.instance_path) / ".migrate.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prepare(app: Flask, *, migrate: bool | None = None, directory: Path | str = MIGRATIONS_DIR) -> None:
    """Apply migrations if asked (one process at a time), after an automatic backup when the database holds data
    (AUTO_BACKUP_BEFORE_MIGRATE); on failure print the reason and exit 3."""
    settings = app.config["COLLECTZ"]
    if not (migrate if migrate is not None else settings.RUN_MIGRATIONS_ON_START):
        return
    try:
        with migration_lock(app):
            if settings.AUTO_BACKUP_BEFORE_MIGRATE:
                from collectz.services.backup import before_migrate

                before_migrate(app, directory)  # raises SchemaError when the backup cannot be written
            upgrade(app, directory=directory)
    except SchemaError as exc:
        raise refuse(exc) from exc
    except Exception as exc:  # the database is down or refuses us: say so, without a traceback
        raise refuse(SchemaError(f"could not apply migrations: {type(exc).__name__}: {exc}")) from exc
