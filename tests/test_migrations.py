"""Migrations: up/down/up on an empty database, models == migrations, a broken revision stops
start-up (rolled back, naming the revision), and a database newer than the code is refused.

Each test gets its own empty database: a temp SQLite file, or a fresh per-worker PostgreSQL
database (pg_database_url("mig")) when TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from flask_migrate import downgrade as fm_downgrade
from sqlalchemy import inspect, text

from collectz import create_app
from collectz.extensions import db
from collectz.schema import MIGRATIONS_DIR, SchemaError, current_revisions, script_directory, upgrade
from collectz.services.indexing import include_name
from collectz.startup import prepare
from tests.conftest import Backend, pg_database_url

BROKEN_TABLE = "broken_half_made"
HEAD = script_directory().get_current_head()
BROKEN = "9999broken"


@pytest.fixture
def fresh_url(backend: Backend, tmp_path: Path) -> str:
    """The URL of an empty database on this backend."""
    if backend.name == "sqlite":
        return "sqlite:///" + str(tmp_path / "migrations.db")
    return pg_database_url("mig")


@pytest.fixture
def build(backend: Backend, fresh_url: str) -> Iterator[Callable[..., Flask]]:
    """Build apps on the fresh database; their engines are disposed afterwards."""
    built: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(settings=backend.settings(DATABASE_URL=fresh_url, **overrides))
        built.append(app)
        return app

    yield factory
    for app in built:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def table_names(app: Flask) -> set[str]:
    with app.app_context():
        return set(inspect(db.engine).get_table_names())


def revisions(app: Flask) -> tuple[str, ...]:
    with app.app_context():
        return current_revisions(db.engine)


def assert_sqlite_connection_restored(app: Flask) -> None:
    """After migrating, SQLite's pooled connection must enforce foreign keys and transactions again."""
    with app.app_context(), db.engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            return
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.connection.dbapi_connection.isolation_level is not None


def app_tables() -> set[str]:
    return {t.name for t in db.metadata.sorted_tables}


def test_upgrade_downgrade_upgrade(build: Callable[..., Flask]) -> None:
    app = build()
    assert table_names(app) == set(), "the database must start empty"

    upgrade(app)
    assert revisions(app) == (HEAD,)
    assert_sqlite_connection_restored(app)
    tables = table_names(app)
    missing = app_tables() - tables
    assert not missing, f"tables missing after upgrade: {sorted(missing)}"
    with app.app_context():
        # 0001 seeds the default library.
        assert db.session.execute(text("SELECT count(*) FROM libraries WHERE is_default")).scalar() == 1
        db.session.remove()

    with app.app_context():
        fm_downgrade(directory=str(MIGRATIONS_DIR), revision="base")
    left = table_names(app) - {"alembic_version"}
    assert left == set(), f"tables left after downgrade to base: {sorted(left)}"
    assert revisions(app) == ()

    upgrade(app)
    assert revisions(app) == (HEAD,)
    assert app_tables() <= table_names(app)


def test_models_match_migrations(build: Callable[..., Flask]) -> None:
    app = build()
    upgrade(app)
    with app.app_context(), db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name})
        diffs = compare_metadata(ctx, db.metadata)
    assert diffs == [], "models and migrations disagree; write a migration:\n" + "\n".join(map(repr, diffs))


def test_every_column_that_refers_to_an_item_is_indexed(build: Callable[..., Flask]) -> None:
    # Deleting an item visits every row that refers to it (CASCADE or SET NULL): without an index on the column,
    # each deleted item reads the whole table (import_rows grows by a row per imported line).
    app = build()
    upgrade(app)
    with app.app_context():
        inspector = inspect(db.engine)
        unindexed = []
        for table in inspector.get_table_names():
            leading = {tuple(ix["column_names"][:1]) for ix in inspector.get_indexes(table)}
            leading |= {tuple(uq["column_names"][:1]) for uq in inspector.get_unique_constraints(table)}
            leading.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
            for fk in inspector.get_foreign_keys(table):
                if fk["referred_table"] == "media" and tuple(fk["constrained_columns"][:1]) not in leading:
                    unindexed.append(f"{table}.{fk['constrained_columns'][0]}")
    assert unindexed == []


BROKEN_REVISION = f'''\
"""a revision that fails half-way

Revision ID: {BROKEN}
Revises: {HEAD}
"""

from alembic import op
import sqlalchemy as sa

revision = "{BROKEN}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("{BROKEN_TABLE}", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO {BROKEN_TABLE} (id) VALUES (1)")
    raise RuntimeError("deliberately broken migration")


def downgrade():
    op.drop_table("{BROKEN_TABLE}")
'''


@pytest.fixture
def broken_migrations(tmp_path: Path) -> Path:
    """A copy of migrations/ with a failing revision on top of the head."""
    target = tmp_path / "migrations-broken"
    shutil.copytree(MIGRATIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    (target / "versions" / f"{BROKEN}_broken.py").write_text(textwrap.dedent(BROKEN_REVISION))
    return target


def test_broken_migration_is_rolled_back_and_named(build: Callable[..., Flask], broken_migrations: Path) -> None:
    app = build()
    with pytest.raises(SchemaError) as excinfo:
        upgrade(app, directory=broken_migrations)
    message = str(excinfo.value)
    assert BROKEN in message
    assert "deliberately broken migration" in message
    # the earlier revisions ran in their own transactions and stay; the broken one's table went with its rollback.
    assert revisions(app) == (HEAD,)
    tables = table_names(app)
    assert BROKEN_TABLE not in tables
    assert app_tables() <= tables
    assert_sqlite_connection_restored(app)

    # Running again fails the same way and still leaves no trace of it.
    with pytest.raises(SchemaError, match=BROKEN):
        upgrade(app, directory=broken_migrations)
    assert revisions(app) == (HEAD,)
    assert BROKEN_TABLE not in table_names(app)


def test_broken_migration_stops_startup(build: Callable[..., Flask], broken_migrations: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    app = build(RUN_MIGRATIONS_ON_START=True)
    with pytest.raises(SystemExit) as excinfo:
        prepare(app, directory=broken_migrations)
    assert excinfo.value.code == 3
    assert BROKEN in capsys.readouterr().err
    assert revisions(app) == (HEAD,)
    assert BROKEN_TABLE not in table_names(app)


def test_prepare_migrates_a_good_database(build: Callable[..., Flask]) -> None:
    app = build()
    prepare(app, migrate=False)
    assert revisions(app) == ()
    prepare(app, migrate=True)
    assert revisions(app) == (HEAD,)


def test_database_newer_than_code_is_refused(build: Callable[..., Flask]) -> None:
    app = build()
    upgrade(app)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('ffffffff')"))
        db.engine.dispose()

    with pytest.raises(SchemaError, match="ffffffff"):
        build()
    # upgrade() refuses as well rather than touching the newer schema.
    with pytest.raises(SchemaError, match="ffffffff"):
        upgrade(app)
