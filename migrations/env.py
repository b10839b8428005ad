"""Alembic environment: one revision per transaction, so a failing one rolls back alone.

SQLite's Python driver does not open transactions around DDL by itself; we begin them
explicitly so that a failed migration leaves no half-made tables behind on SQLite either.
"""

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app
from sqlalchemy import event

config = context.config
if config.config_file_name is not None and not logging.getLogger("collectz").handlers:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

db = current_app.extensions["migrate"].db
target_metadata = db.metadata


def render_item(type_, obj, autogen_context):
    """Render our UTCDateTime as a plain timezone-aware DateTime in revision files."""
    if type_ == "type" and type(obj).__name__ == "UTCDateTime":
        return "sa.DateTime(timezone=True)"
    return False


def include_name(name, type_, parent_names):
    """Leave out of autogenerate the search objects migrations make by hand (FTS5 tables, trigram indexes)."""
    from collectz.services.indexing import include_name as search_objects_filter

    return search_objects_filter(name, type_, parent_names)


def _engine():
    return db.engine


def run_migrations_offline():
    context.configure(url=str(_engine().url), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True, compare_type=True, include_name=include_name)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    engine = _engine()
    is_sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        if is_sqlite:
            # Take transaction control from the sqlite3 module: our own BEGIN wraps DDL too.
            raw = connection.connection.dbapi_connection
            saved_isolation = raw.isolation_level
            connection.commit()
            raw.isolation_level = None
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")  # a no-op inside a transaction
            # End SQLAlchemy's implicit transaction, or Alembic would see one already open and run
            # every revision inside it without BEGIN (autocommit): nothing could be rolled back.
            connection.commit()

            def _begin(conn):
                conn.exec_driver_sql("BEGIN")

            event.listen(connection, "begin", _begin)
        conf_args = dict(current_app.extensions["migrate"].configure_args)
        conf_args.setdefault("render_as_batch", True)
        conf_args.setdefault("compare_type", True)
        conf_args.setdefault("render_item", render_item)
        conf_args.setdefault("include_name", include_name)
        context.configure(connection=connection, target_metadata=target_metadata,
                          transaction_per_migration=True, **conf_args)
        try:
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if is_sqlite:
                # Hand the pooled connection back as we found it, after a failure too.
                event.remove(connection, "begin", _begin)
                if connection.in_transaction():
                    connection.rollback()
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
                raw.isolation_level = saved_isolation


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
