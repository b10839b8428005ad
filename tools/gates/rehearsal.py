"""Gate: the migration rehearsal, on SQLite and on PostgreSQL.

For every revision in migrations/versions (every schema someone may run, released or not), oldest first: build a
database at that revision, seed rows into every table, upgrade to head, check integrity, downgrade back to the
revision, check again, upgrade to head again, check again, then downgrade to base (nothing may be left). The checks:
every seeded row still there with the values it was given, row counts unchanged, no orphaned foreign keys (and
SQLite's integrity_check / PostgreSQL's constraint and index validity). Release notes (docs/releases/vX.Y.Z.md)
that name a `Schema revision: `NNNN`` must name a revision of the chain.

PostgreSQL comes from --postgres, REHEARSAL_DATABASE_URL or TEST_DATABASE_URL (a scratch database is created
there and dropped); with CI=true it is required."""

from __future__ import annotations

import os
import re
import secrets
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.gates.common import ROOT, GateError, fail, parser, passed, say
from tools.gates.rehearsal_seed import SEED, allowed_values, generic_value, needs_value

NAME = "rehearsal"
# What a migration changes on purpose, with the reason: "table" (rows added or removed, the table dropped) or
# "table.column" (values rewritten, the column dropped). None yet.
INTENDED_CHANGES: dict[str, str] = {}


class RehearsalFailed(Exception):
    """A step of the rehearsal went wrong; the message names the backend, revision and step."""


def chain(directory: Path) -> list[str]:
    from collectz.schema import script_directory

    script = script_directory(directory)
    heads = script.get_heads()
    if len(heads) != 1:
        raise GateError(f"the migrations have {len(heads)} heads ({', '.join(heads)}): merge them first")
    return [rev.revision for rev in reversed(list(script.walk_revisions("base", "heads")))]


def released_revisions(root: Path) -> dict[str, str]:
    found = {}
    for path in sorted((root / "docs" / "releases").glob("v*.md")):
        match = re.search(r"^Schema revision:\s*`([^`]+)`", path.read_text(), re.MULTILINE)
        if match:
            found[path.name] = match.group(1)
    return found


@contextmanager
def databases(postgres: str | None) -> Iterator[list[tuple[str, str]]]:
    """(backend, URL) pairs: a temporary SQLite file, and a scratch PostgreSQL database when a server is given."""
    from sqlalchemy import create_engine, text

    from collectz.config import normalise_database_url

    with tempfile.TemporaryDirectory(prefix="collectz-rehearsal-") as tmp:
        urls = [("sqlite", f"sqlite:///{Path(tmp) / 'rehearsal.db'}")]
        admin = None
        name = f"collectz_rehearsal_{os.getpid()}_{secrets.token_hex(3)}"
        if postgres:
            admin = create_engine(normalise_database_url(postgres), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            urls.append(("postgresql", admin.url.set(database=name).render_as_string(hide_password=False)))
        try:
            yield urls
        finally:
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


def make_app(url: str, instance: Path) -> Any:
    from collectz import create_app
    from collectz.config import Settings

    settings = Settings.from_env({"COLLECTZ_ENV": "testing"})
    settings.TESTING = True
    settings.INSTANCE_PATH = str(instance)
    settings.DATABASE_URL = url
    settings.REDIS_URL = ""
    settings.LOG_LEVEL = "WARNING"
    settings.AUTO_BACKUP_BEFORE_MIGRATE = False  # if this version has it: the rehearsal tests schema, not backups
    return create_app(settings=settings)


class Rehearsal:
    """One backend's run over the whole chain."""

    def __init__(self, backend: str, app: Any, directory: Path) -> None:
        self.backend, self.app, self.directory = backend, app, directory
        self.problems: list[str] = []

    # -- migrating -------------------------------------------------------------------------------------------
    def migrate(self, revision: str, step: str) -> None:
        from alembic import command

        from collectz.extensions import db
        from collectz.schema import upgrade

        try:
            if step == "upgrade":
                upgrade(self.app, self.directory, revision)
            else:
                with self.app.app_context():
                    command.downgrade(self.app.extensions["migrate"].migrate.get_config(str(self.directory)),
                                      revision)
        except Exception as exc:  # a failing migration is the finding
            raise RehearsalFailed(f"{self.backend}: {step} to {revision} failed: {exc}") from exc
        finally:
            with self.app.app_context():
                db.session.remove()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        from collectz.extensions import db

        with self.app.app_context(), db.engine.begin() as conn:
            yield conn

    # -- reading the schema ----------------------------------------------------------------------------------
    @staticmethod
    def tables(conn: Any) -> Any:
        from sqlalchemy import MetaData

        from collectz.services.indexing import include_name

        metadata = MetaData()
        metadata.reflect(bind=conn, only=lambda name, _md: name != "alembic_version" and
                         include_name(name, "table", {}))
        return metadata

    # -- seeding ---------------------------------------------------------------------------------------------
    def seed(self) -> dict[str, dict[tuple[Any, ...], dict[str, Any]]]:
        """Insert SEED (and a generic row for any table it does not cover); return what was written, read back."""
        from sqlalchemy import inspect, select

        written: dict[str, list[tuple[Any, ...]]] = {}
        columns_of: dict[str, list[str]] = {}
        with self.connection() as conn:
            metadata = self.tables(conn)
            inspector = inspect(conn)
            for table in metadata.sorted_tables:
                allowed = allowed_values(inspector.get_check_constraints(table.name))
                rows = SEED.get(table.name) or [{}]
                for index, given in enumerate(rows):
                    row = {k: v for k, v in given.items() if k in table.c}
                    try:
                        for column in table.columns:
                            if column.name not in row and needs_value(column):
                                row[column.name] = generic_value(conn, table, column, index, allowed)
                        result = conn.execute(table.insert().values(**row))
                    except Exception as exc:
                        raise RehearsalFailed(f"{self.backend}: cannot seed {table.name} ({exc}): give it rows "
                                              "in SEED in tools/gates/rehearsal_seed.py") from exc
                    written.setdefault(table.name, []).append(tuple(result.inserted_primary_key))
                    columns_of[table.name] = sorted(set(columns_of.get(table.name, [])) | set(row))
            if conn.dialect.name == "postgresql":
                for table in metadata.sorted_tables:
                    pk = list(table.primary_key.columns)
                    if len(pk) == 1 and pk[0].type.python_type is int:
                        conn.exec_driver_sql(
                            f"SELECT setval(s, (SELECT max({pk[0].name}) FROM {table.name})) FROM "
                            f"pg_get_serial_sequence('{table.name}', '{pk[0].name}') AS s WHERE s IS NOT NULL")
            snapshot: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {}
            for name, keys in written.items():
                table = metadata.tables[name]
                pk = [c.name for c in table.primary_key.columns]
                wanted = list(dict.fromkeys([*pk, *columns_of[name]]))
                result = conn.execute(select(*(table.c[c] for c in wanted))).mappings()
                by_key = {tuple(r[c] for c in pk): {c: r[c] for c in columns_of[name]} for r in result}
                snapshot[name] = {k: by_key[k] for k in keys if k in by_key}
        return snapshot

    # -- checking --------------------------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        from sqlalchemy import func, select

        with self.connection() as conn:
            metadata = self.tables(conn)
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in metadata.sorted_tables}

    def check(self, where: str, snapshot: dict[str, dict[tuple[Any, ...], dict[str, Any]]],
              counts: dict[str, int]) -> None:
        from sqlalchemy import select

        problems = []
        with self.connection() as conn:
            metadata = self.tables(conn)
            problems += integrity(conn, metadata)
            for name, rows in snapshot.items():
                if name not in metadata.tables:
                    if name not in INTENDED_CHANGES:
                        problems.append(f"table {name} (with seeded rows) is gone")
                    continue
                table = metadata.tables[name]
                pk = [c.name for c in table.primary_key.columns]
                present = [c for c in next(iter(rows.values()), {}) if c in table.c]
                gone = sorted(c for c in set(next(iter(rows.values()), {})) - set(present)
                              if f"{name}.{c}" not in INTENDED_CHANGES)
                if gone and name not in INTENDED_CHANGES:
                    problems.append(f"{name}: seeded column(s) {', '.join(gone)} are gone")
                wanted = list(dict.fromkeys([*pk, *present]))
                now = {tuple(r[c] for c in pk): dict(r)
                       for r in conn.execute(select(*(table.c[c] for c in wanted))).mappings()}
                for key, before in rows.items():
                    after = now.get(key)
                    if after is None:
                        problems.append(f"{name} row {key} is gone")
                        continue
                    changed = [f"{c}: {before[c]!r} → {after[c]!r}" for c in present
                               if before[c] != after[c] and f"{name}.{c}" not in INTENDED_CHANGES]
                    if changed:
                        problems.append(f"{name} row {key} changed: {'; '.join(changed)}")
        now_counts = self.counts()
        for name, count in counts.items():
            if name in now_counts and now_counts[name] != count and name not in INTENDED_CHANGES:
                problems.append(f"{name} has {now_counts[name]} rows, had {count}")
        self.problems += [f"{self.backend}: {where}: {p}" for p in problems]

    def leftovers(self) -> list[str]:
        from sqlalchemy import inspect

        with self.connection() as conn:
            return sorted(set(inspect(conn).get_table_names()) - {"alembic_version"})

    # -- the run ---------------------------------------------------------------------------------------------
    def run(self, revisions: Sequence[str]) -> None:
        for revision in revisions:
            self.migrate(revision, "upgrade")
            snapshot = self.seed()
            counts = self.counts()
            self.check(f"at {revision} after seeding", snapshot, counts)
            self.migrate("head", "upgrade")
            self.check(f"{revision} → head", snapshot, counts)
            self.migrate(revision, "downgrade")
            self.check(f"head → {revision}", snapshot, counts)
            self.migrate("head", "upgrade")
            self.check(f"{revision} → head again", snapshot, counts)
            self.migrate("base", "downgrade")
            if left := self.leftovers():
                self.problems.append(f"{self.backend}: {revision}: tables left after downgrade to base: {left}")
            if self.problems:
                return  # later revisions would only repeat the same finding
            say(NAME, f"{self.backend}: {revision} → head → {revision} → head → base: ok")


def integrity(conn: Any, metadata: Any) -> list[str]:
    """Orphaned foreign keys on either database, plus each database's own consistency checks."""
    from sqlalchemy import and_, exists, func, select

    problems = []
    for table in metadata.sorted_tables:
        for fk in table.foreign_key_constraints:
            parent = fk.referred_table
            pairs = [(element.parent, element.column) for element in fk.elements]
            orphans = conn.execute(select(func.count()).select_from(table).where(
                and_(*(child.isnot(None) for child, _ in pairs)),
                ~exists().where(and_(*(col == child for child, col in pairs))))).scalar_one()
            if orphans:
                problems.append(f"{orphans} row(s) of {table.name} point at missing {parent.name} rows")
    if conn.dialect.name == "sqlite":
        if violations := conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall():
            problems.append(f"PRAGMA foreign_key_check: {violations[:5]}")
        result = conn.exec_driver_sql("PRAGMA integrity_check").scalar()
        if result != "ok":
            problems.append(f"PRAGMA integrity_check: {result}")
    else:
        invalid = conn.exec_driver_sql("SELECT conname FROM pg_constraint c JOIN pg_namespace n ON "
                                       "n.oid = c.connamespace WHERE n.nspname = current_schema() "
                                       "AND NOT c.convalidated").scalars().all()
        if invalid:
            problems.append(f"constraints not validated: {invalid}")
        broken = conn.exec_driver_sql("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid "
                                      "OR NOT indisready").scalars().all()
        if broken:
            problems.append(f"invalid indexes: {broken}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("--migrations", type=Path, default=ROOT / "migrations", help="the migrations folder")
    ap.add_argument("--postgres", default=os.environ.get("REHEARSAL_DATABASE_URL")
                    or os.environ.get("TEST_DATABASE_URL") or None,
                    help="a PostgreSQL server URL to create a scratch database on "
                         "(default: $REHEARSAL_DATABASE_URL or $TEST_DATABASE_URL)")
    ap.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    ap.add_argument("--from", dest="start", help="rehearse only from this revision on (a quick local run)")
    args = ap.parse_args(argv)
    postgres = None if args.sqlite_only else args.postgres
    if postgres is None and not args.sqlite_only and os.environ.get("CI", "").lower() == "true":
        return fail(NAME, "CI=true but no PostgreSQL: set TEST_DATABASE_URL or REHEARSAL_DATABASE_URL")
    try:
        revisions = chain(args.migrations)
        unknown = {name: rev for name, rev in released_revisions(ROOT).items() if rev not in revisions}
        if unknown:
            raise GateError("release notes name schema revisions the migrations do not have (a released "
                            f"migration was renamed or removed): {unknown}")
        if args.start:
            if args.start not in revisions:
                raise GateError(f"--from {args.start}: no such revision ({', '.join(revisions)})")
            revisions = revisions[revisions.index(args.start):]
    except GateError as exc:
        return fail(NAME, str(exc))
    problems = []
    with tempfile.TemporaryDirectory(prefix="collectz-rehearsal-instance-") as instance, databases(postgres) as urls:
        for backend, url in urls:
            app = make_app(url, Path(instance) / backend)
            rehearsal = Rehearsal(backend, app, args.migrations)
            try:
                rehearsal.run(revisions)
            except RehearsalFailed as exc:
                rehearsal.problems.append(str(exc))
            except Exception as exc:  # a crash of the rehearsal itself still fails the gate, with its traceback
                traceback.print_exc()
                rehearsal.problems.append(f"{backend}: the rehearsal crashed: {exc!r}")
            finally:
                from collectz.extensions import db

                with app.app_context():
                    db.session.remove()
                    db.engine.dispose()
            problems += rehearsal.problems
    if problems:
        return fail(NAME, "the migration rehearsal found problems", problems)
    backends = " and ".join(b for b, _ in urls)
    if not postgres:
        say(NAME, "note: SQLite only (no PostgreSQL server given)")
    return passed(NAME, f"{len(revisions)} revision(s) {revisions[0]}…{revisions[-1]} rehearsed on {backends}")


if __name__ == "__main__":
    sys.exit(main())
