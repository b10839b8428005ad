"""Shared fixtures.

Every test that takes `app` (or anything built on it) runs once per backend: always on
SQLite with the embedded queue, and, when TEST_DATABASE_URL / TEST_REDIS_URL are set, again
on PostgreSQL with real Redis. In CI (CI=true) those services must answer or the run fails.
Each xdist worker gets its own PostgreSQL database and its own Redis database number.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, event, text
from werkzeug.routing import Rule

from collectz import create_app
from collectz.config import Settings
from collectz.extensions import db
from collectz.security import passwords
from collectz.startup import freeze_start_up_objects

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() == "true"
PG_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "")

# Cheap argon2 parameters keep the suite fast; the parameters themselves are tested separately.
passwords.set_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def _share_url_builders() -> None:
    """Nearly every test builds an app of its own, and werkzeug compiles each of an app's URL rules into two URL
    builder functions (Python source made and compiled per rule: most of the time building an app takes). A builder
    depends only on the rule's parsed parts, its defaults and its text, so the suite's apps share them (the apps'
    rules are the same each time). Test set-up only: the app and its URLs are as built without it."""
    compile_builder = getattr(Rule, "_compile_builder", None)
    if compile_builder is None:  # another werkzeug: build every app from scratch
        return
    built: dict[Any, Any] = {}

    def shared(self: Rule, append_unknown: bool = True) -> Any:
        defaults = tuple(sorted((str(k), repr(v)) for k, v in (self.defaults or {}).items()))
        key = (self.rule, tuple(self._trace), defaults, append_unknown)
        if key not in built:
            built[key] = compile_builder(self, append_unknown)
        return built[key]

    Rule._compile_builder = shared  # type: ignore[method-assign]


_share_url_builders()


def worker_index(config: pytest.Config | None = None) -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    match = re.search(r"(\d+)$", name)
    return int(match.group(1)) if match else 0


def _check_services() -> None:
    """CI must have both services; a developer without them gets SQLite only, said out loud."""
    if IN_CI and not (PG_URL and REDIS_URL):
        pytest.exit("CI=true but TEST_DATABASE_URL / TEST_REDIS_URL are not set: .ci/run must set both", 2)
    problems = []
    if PG_URL:
        try:
            with create_engine(_pg_admin_url()).connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # pragma: no cover - exercised only when the service is down
            problems.append(f"PostgreSQL at TEST_DATABASE_URL is unreachable: {exc}")
    if REDIS_URL:
        try:
            from redis import Redis

            Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
        except Exception as exc:  # pragma: no cover
            problems.append(f"Redis at TEST_REDIS_URL is unreachable: {exc}")
    if problems:
        pytest.exit("; ".join(problems), 2)


def _pg_admin_url() -> str:
    from collectz.config import normalise_database_url

    return normalise_database_url(PG_URL)


# One id per test run (shared by its xdist workers), so two runs on one server never share a database.
RUN_ID = (os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex)[:8]
_created_databases: list[str] = []


def pg_database_url(suffix: str) -> str:
    """A fresh PostgreSQL database for this run and worker (dropped at the end of the session)."""
    name = f"collectz_test_{RUN_ID}_{worker_index()}_{suffix}"
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    if name not in _created_databases:
        _created_databases.append(name)
    return _pg_admin_url().rsplit("/", 1)[0] + "/" + name


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _created_databases:
        return
    try:
        admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in _created_databases:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    except Exception:  # leftover test databases are untidy, not a failure
        pass


def redis_url_for_worker() -> str:
    base = REDIS_URL.rstrip("/")
    base = re.sub(r"/\d+$", "", base)
    return f"{base}/{1 + worker_index() % 15}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: browser tests (Playwright + Chromium)")
    config.addinivalue_line("markers", "slow: starts processes")


def pytest_sessionstart(session: pytest.Session) -> None:
    _check_services()


def pytest_collection_finish(session: pytest.Session) -> None:
    """The test modules and everything they imported live as long as the run: left out of garbage collection, as
    the app's own processes leave their start-up objects."""
    freeze_start_up_objects()


BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def needs_shared(*parts: str) -> Path:
    """A file under ../shared; skipped with a reason when absent, except in CI where absence fails."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if IN_CI:
            pytest.fail(f"{path} is missing: CI must have ../shared beside the project")
        pytest.skip(f"{path} not present (the shared reference data lives beside the project)")
    return path


class Backend:
    def __init__(self, name: str, database_url: str, redis_url: str, instance: Path):
        self.name = name
        self.database_url = database_url
        self.redis_url = redis_url
        self.instance = instance

    def settings(self, **overrides: Any) -> Settings:
        s = Settings.from_env({"COLLECTZ_ENV": "testing"})
        s.TESTING = True
        s.INSTANCE_PATH = str(self.instance)
        s.DATABASE_URL = self.database_url
        s.REDIS_URL = self.redis_url
        s.LOG_LEVEL = "WARNING"
        for key, value in overrides.items():
            setattr(s, key, value)
        return s


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """A migrated database (and queue) per backend, shared by the tests of this worker."""
    instance = tmp_path_factory.mktemp(f"instance-{request.param}")
    if request.param == "sqlite":
        be = Backend("sqlite", "sqlite:///" + str(instance / "collectz.db"), "", instance)
    else:
        be = Backend("postgresql", pg_database_url("main"), redis_url_for_worker() if REDIS_URL else "", instance)
    app = create_app(settings=be.settings())
    from collectz.schema import upgrade

    upgrade(app)
    with app.app_context():
        db.engine.dispose()
    yield be


def _clean(app: Flask) -> None:
    with app.app_context():
        tables = [t for t in reversed(db.metadata.sorted_tables)]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Only the tables that have rows (a test fills a few): DELETE when they are small, TRUNCATE when one
                # is large (a DELETE cascades row by row); then every sequence back to its start. TRUNCATE of every
                # table made new files for each table and index, several times slower than the usual DELETE.
                probe = " UNION ALL ".join(
                    f'(SELECT {i}, count(*) FROM (SELECT 1 FROM "{t.name}" LIMIT 1001) s HAVING count(*) > 0)'
                    for i, t in enumerate(tables))
                filled = dict(conn.execute(text(probe)).all())
                if max(filled.values(), default=0) > 1000:
                    names = ", ".join(f'"{t.name}"' for i, t in enumerate(tables) if i in filled)
                    conn.execute(text(f"TRUNCATE {names} CASCADE"))
                else:
                    for i, t in enumerate(tables):
                        if i in filled:
                            conn.execute(t.delete())
                conn.execute(text("SELECT setval(s.seqrelid, s.seqstart, false) FROM pg_sequence s"))
            else:
                for t in tables:
                    conn.execute(t.delete())
        from collectz.services.users import ensure_default_library

        ensure_default_library()
        db.session.commit()
        from collectz import queue

        conn = queue.connection(app)
        conn.flushdb()


class CsrfClient(FlaskClient):
    """A test client that sends the page's CSRF token on unsafe methods unless csrf=False."""

    def open(self, *args: Any, csrf: bool = True, **kwargs: Any):  # type: ignore[override]
        method = (kwargs.get("method") or "GET").upper()
        if csrf and method in ("POST", "PUT", "PATCH", "DELETE"):
            token = super().open("/auth/csrf").get_json()["token"]
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", token)
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


_CLEANERS: dict[str, Flask] = {}


@pytest.fixture
def make_app(backend: Backend) -> Iterator[Any]:
    """Build an app on this backend with setting overrides; tables are emptied afterwards."""
    built: list[Flask] = []

    def factory(**overrides: Any) -> Flask:
        app = create_app(settings=backend.settings(**overrides))
        app.test_client_class = CsrfClient
        built.append(app)
        return app

    yield factory
    if built:
        cleaner = _CLEANERS.get(backend.database_url)
        if cleaner is None:  # one per backend: building an app costs more than emptying the tables
            cleaner = _CLEANERS[backend.database_url] = create_app(settings=backend.settings())
        _clean(cleaner)
        built.append(cleaner)
    for app in built:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app: Any) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> CsrfClient:
    return app.test_client()


@pytest.fixture
def ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app
        db.session.remove()


class Actors:
    """alice (admin), bob (user), carol (another user), vera (viewer)."""

    PASSWORD = "correct horse battery"

    def __init__(self, app: Flask):
        from collectz.models import User

        self.app = app
        with app.app_context():
            for name, role in (("alice", "admin"), ("bob", "user"), ("carol", "user"), ("vera", "viewer")):
                db.session.add(User(email=f"{name}@example.org", name=name.title(), role=role,
                                    password_hash=passwords.hash_password(self.PASSWORD)))
            db.session.commit()
            self.ids = {u.name.lower(): u.id for u in db.session.scalars(db.select(User))}

    def client(self, name: str, remember: bool = False) -> CsrfClient:
        """A client already signed in as `name` (through a real server-side session row)."""
        from collectz.models import User
        from collectz.services.sessions import create_session

        client = self.app.test_client()
        with self.app.test_request_context():
            user = db.session.get(User, self.ids[name])
            token, _row = create_session(user, remember=remember, ip="127.0.0.1", user_agent="pytest")
            db.session.commit()
        client.set_cookie(self.app.config["COLLECTZ"].SESSION_COOKIE_NAME, token)
        return client

    def login(self, name: str, client: CsrfClient | None = None) -> CsrfClient:
        """Sign in through the login form."""
        client = client or self.app.test_client()
        resp = client.post("/auth/login", data={"email": f"{name}@example.org", "password": self.PASSWORD})
        assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:500]
        return client


@pytest.fixture
def actors(app: Flask) -> Actors:
    return Actors(app)


def statement_plan(connection: Any, sql: str, params: Any = None) -> str:
    """The plan the database chooses for a statement (as the driver takes it, with its parameters): PostgreSQL's
    EXPLAIN, SQLite's EXPLAIN QUERY PLAN."""
    explain = "EXPLAIN QUERY PLAN " if connection.dialect.name == "sqlite" else "EXPLAIN "
    return "\n".join(str(row[-1]) for row in connection.exec_driver_sql(explain + sql, params))


def query_plan(query: Any) -> str:
    """statement_plan of a Core query, in the session's transaction (SQLite: with its values written in)."""
    connection = db.session.connection()
    if db.engine.dialect.name == "postgresql":
        statement = query.compile(db.engine)
        return statement_plan(connection, str(statement), statement.params)
    return statement_plan(connection, str(query.compile(db.engine, compile_kwargs={"literal_binds": True})))


def activity(app: Flask, action: str | None = None) -> list[Any]:
    """Activity events, oldest first (optionally only one action)."""
    from collectz.models import ActivityLog

    with app.app_context():
        query = db.select(ActivityLog).order_by(ActivityLog.id)
        if action:
            query = query.where(ActivityLog.action == action)
        rows = db.session.scalars(query).all()
        db.session.expunge_all()
        return list(rows)


@pytest.fixture
def job_app() -> Iterator[None]:
    """Jobs find their app through collectz.jobs.set_app: put back whatever was there afterwards, and the signal
    handlers an rq worker installs in the main thread."""
    import signal

    from collectz import jobs

    previous = jobs._app
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    jobs.set_app(previous)  # type: ignore[arg-type]
    for sig, handler in handlers.items():
        signal.signal(sig, handler)


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """Every SQL statement the app sends while the block runs."""
    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
