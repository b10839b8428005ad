"""Schema state at start-up: apply migrations, refuse a database newer than the code."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy.engine import Engine

from collectz.config import PROJECT_ROOT

log = logging.getLogger("collectz.schema")
MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


class SchemaError(RuntimeError):
    """The database schema and the code disagree in a way the app must not run with."""


def script_directory(directory: Path | str = MIGRATIONS_DIR) -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option("script_location", str(directory))
    return ScriptDirectory.from_config(cfg)


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def _versions_stamp(directory: Path) -> tuple[tuple[str, int], ...]:
    versions = directory / "versions"
    return tuple(sorted((p.name, p.stat().st_mtime_ns) for p in versions.glob("*.py"))) if versions.is_dir() else ()


@lru_cache(maxsize=16)
def _known_revisions(directory: str, _stamp: tuple[tuple[str, int], ...]) -> tuple[frozenset[str], str | None]:
    script = script_directory(directory)
    return frozenset(rev.revision for rev in script.walk_revisions()), script.get_current_head()


def check_not_newer(engine: Engine, directory: Path | str = MIGRATIONS_DIR) -> None:
    """Raise SchemaError when the database carries a revision this code does not know. (The migration scripts are
    read once per process and directory, and again only when a file of it changes: every app built reads them.)"""
    path = Path(directory).resolve()
    known, head = _known_revisions(str(path), _versions_stamp(path))
    for rev in current_revisions(engine):
        if rev not in known:
            raise SchemaError(
                f"The database schema is at revision {rev}, which is newer than this version of collectZ "
                f"(head {head}). Run the newer release, or restore a backup made for this one."
            )


def upgrade(app: Flask, directory: Path | str = MIGRATIONS_DIR, revision: str = "head") -> None:
    """Apply migrations; a failing one is rolled back and reported by its revision."""
    from alembic import command

    with app.app_context():
        from collectz.extensions import db

        check_not_newer(db.engine, directory)
        script = script_directory(directory)
        before = current_revisions(db.engine)
        # Alembic's command directly: flask_migrate.upgrade turns RuntimeError/CommandError into
        # sys.exit(1), which would escape this handler without naming the failing revision.
        config = app.extensions["migrate"].migrate.get_config(str(directory))
        try:
            command.upgrade(config, revision)
        except Exception as exc:
            after = current_revisions(db.engine)
            failing = _next_revision(script, after)
            raise SchemaError(
                f"Migration {failing or '?'} failed and was rolled back (database stays at "
                f"{', '.join(after) or 'an empty schema'}): {exc}"
            ) from exc
        after = current_revisions(db.engine)
        if before != after:
            log.info("schema upgraded", extra={"fields": {"from": list(before), "to": list(after)}})


def _next_revision(script: ScriptDirectory, current: tuple[str, ...]) -> str | None:
    """The revision that would have run next after `current`."""
    base = current[0] if current else None
    for rev in script.walk_revisions(base="base", head="heads"):
        if rev.down_revision == base or (isinstance(rev.down_revision, tuple) and base in rev.down_revision):
            return rev.revision
    return None
