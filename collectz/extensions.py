"""Extensions live at module level and are bound to the app in create_app()."""

import sqlite3

from flask import request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine

from collectz.models.base import Base


def client_ip() -> str:
    """The client address as ProxyFix left it (only trusted proxies may change it)."""
    return request.remote_addr or "unknown"


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    """SQLite: enforce foreign keys (ON DELETE rules) and let readers and the writer overlap (WAL)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_ip, default_limits=[], headers_enabled=True)

__all__ = ["db", "migrate", "login_manager", "csrf", "limiter", "MetaData"]
