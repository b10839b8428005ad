"""Backup and restore: one archive with every table (database-neutral JSON Lines) and every stored object.

The archive is a plain tar file (any tar tool lists it):

    tables/<table>.jsonl.gz   one JSON array per row: the table's columns in name order, typed by the manifest
    objects/<key>             every object of the file store, byte for byte
    manifest.json             last (it holds every checksum): format version, app version, schema revision,
                              created at, source dialect; per table its columns, row count and sha256; per object
                              its size and sha256

Tables are not listed by hand: they are read from the database itself at its revision (reflection), minus
Alembic's own table and the search objects migrations make (SQLite's FTS tables; their triggers fill them again
as rows go in). Values are written in one canonical form whatever the database: datetimes as UTC ISO strings,
decimals as plain decimal strings, bytes as base64, JSON values with sorted keys, rows in primary-key order
(byte order for text). So a table's sha256 is also a content hash: `table_digests` computes the same hash from a
live database, and a restore on the other database gives back the hash of the source.

Restore verifies the whole archive before writing anything, refuses a database that is not empty or a backup
from a schema this code does not know, brings an empty database to the backup's revision, puts the objects,
inserts every row in foreign-key order in one transaction (PostgreSQL: a COPY stream per table; elsewhere batched
inserts), resets PostgreSQL's sequences, commits, then upgrades to head. A failure rolls the rows back and deletes
the objects this restore wrote. Rows are streamed both ways; only the manifest (one small entry per table and per
stored object) is held in memory.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import mimetypes
import os
import re
import sqlite3
import tarfile
import tempfile
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any, BinaryIO

from flask import Flask, current_app
from sqlalchemy import Connection, Engine, MetaData, Table, func, inspect, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql import sqltypes

from collectz.schema import MIGRATIONS_DIR, SchemaError, current_revisions, script_directory, upgrade
from collectz.services.storage import InvalidKey, Storage, StorageError, atomic_file, check_key
from collectz.version import __version__, git_sha

log = logging.getLogger("collectz.backup")

FORMAT = "collectz-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH = 2000  # rows per insert and per fetch
GZIP_LEVEL = 6
CHUNK = 1024 * 1024
BACKUP_DIR = "backups"  # under the instance folder: automatic backups and the temporary files of downloads
AUTOMATIC_PREFIX = "pre-migrate-"
KEEP_AUTOMATIC = 5
KINDS = ("bool", "int", "float", "decimal", "datetime", "date", "time", "json", "bytes", "uuid", "str")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class BackupError(Exception):
    """A backup or restore could not be done; the message says why and what to do (safe to show)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class TableEntry:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, kind), sorted by name
    rows: int
    sha256: str

    @property
    def file(self) -> str:
        return f"tables/{self.name}.jsonl.gz"


@dataclass(frozen=True)
class ObjectEntry:
    key: str
    size: int
    sha256: str
    content_type: str

    @property
    def file(self) -> str:
        return f"objects/{self.key}"


@dataclass(frozen=True)
class Manifest:
    format_version: int
    app_version: str
    schema_revision: str
    created_at: str
    source_dialect: str
    objects_included: bool
    tables: tuple[TableEntry, ...]
    objects: tuple[ObjectEntry, ...]

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def object_bytes(self) -> int:
        return sum(o.size for o in self.objects)


@dataclass(frozen=True)
class BackupSummary:
    manifest: Manifest
    size: int  # bytes of the archive
    seconds: float


@dataclass(frozen=True)
class RestoreSummary:
    manifest: Manifest
    upgraded_to: str | None  # the head the restored schema was upgraded to, None if it was already there
    seconds: float


@dataclass(frozen=True)
class TableDigest:
    rows: int
    sha256: str


# --- values: one canonical, database-neutral form ------------------------------------------------------------

def column_kind(type_: Any) -> str:
    """The archive's name for a column type; a type it cannot carry faithfully is refused, never guessed."""
    checks: tuple[tuple[Any, str], ...] = (
        (sqltypes.Boolean, "bool"), (sqltypes.Integer, "int"), (sqltypes.Float, "float"),
        (sqltypes.Numeric, "decimal"), (sqltypes.DateTime, "datetime"), (sqltypes.Date, "date"),
        (sqltypes.Time, "time"), (sqltypes.JSON, "json"),
        ((sqltypes.LargeBinary, sqltypes.BINARY, sqltypes.VARBINARY), "bytes"), (sqltypes.Uuid, "uuid"),
        (sqltypes.String, "str"),
    )
    for classes, kind in checks:
        if isinstance(type_, classes):
            return kind
    raise BackupError(f"a column of type {type_!r} cannot be backed up: the backup format has no kind for it")


def _utc_naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo is not None else value


def _encode_decimal(value: Any) -> str:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return str(number)
    plain = format(number.normalize(), "f")
    return "0" if plain == "-0" else plain


_ENCODE: dict[str, Callable[[Any], Any] | None] = {
    "bool": bool,
    "int": None,
    "float": float,
    "decimal": _encode_decimal,
    "datetime": lambda v: _utc_naive(v).isoformat(timespec="microseconds"),
    "date": lambda v: v.isoformat(),
    "time": lambda v: v.isoformat(),
    "json": None,
    "bytes": lambda v: base64.b64encode(bytes(v)).decode("ascii"),
    "uuid": str,
    "str": None,
}


def _line_encoder(kinds: list[str]) -> Callable[[Any], bytes]:
    """A row (in column order) → one canonical JSON line."""
    encoders = [_ENCODE[k] for k in kinds]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode

    def encode(row: Any) -> bytes:
        values = [v if v is None or enc is None else enc(v) for enc, v in zip(encoders, row, strict=True)]
        return (dumps(values) + "\n").encode("utf-8")

    return encode


class _BadValue(ValueError):
    pass


def _expect(value: Any, types: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, types) or (isinstance(value, bool) and types is int):
        raise _BadValue(f"expected {what}, found {json.dumps(value)[:40]}")
    return value


def _decoder(kind: str, target_type: Any) -> Callable[[Any], Any]:
    """Archive value → the Python value to insert into a column of target_type."""
    if kind == "datetime":
        aware = bool(getattr(target_type, "timezone", False))

        def as_datetime(v: Any) -> datetime:
            try:
                moment = datetime.fromisoformat(_expect(v, str, "a datetime"))
            except ValueError as exc:
                raise _BadValue(str(exc)) from None
            if moment.tzinfo is not None:
                moment = moment.astimezone(UTC).replace(tzinfo=None)
            return moment.replace(tzinfo=UTC) if aware else moment
        return as_datetime
    simple: dict[str, Callable[[Any], Any]] = {
        "bool": lambda v: _expect(v, bool, "true or false"),
        "int": lambda v: _expect(v, int, "a whole number"),
        "float": lambda v: float(_expect(v, (int, float), "a number")),
        "decimal": lambda v: Decimal(_expect(v, str, "a decimal string")),
        "date": lambda v: date.fromisoformat(_expect(v, str, "a date")),
        "time": lambda v: dtime.fromisoformat(_expect(v, str, "a time")),
        "json": lambda v: v,
        "bytes": lambda v: base64.b64decode(_expect(v, str, "base64 text"), validate=True),
        "uuid": lambda v: uuid.UUID(_expect(v, str, "a UUID")),
        "str": lambda v: _expect(v, str, "text"),
    }
    return simple[kind]


# --- the database side ---------------------------------------------------------------------------------------

def _skipped_tables(conn: Connection, names: list[str]) -> set[str]:
    """Alembic's table and the derived search objects (rebuilt from the rows by triggers or indexes)."""
    from collectz.services.indexing import include_name

    skipped = {"alembic_version"} | {n for n in names if not include_name(n, "table", {})}
    if conn.dialect.name == "sqlite":
        virtual = conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'").scalars()
        for name in virtual:
            skipped |= {n for n in names if n == name or n.startswith(name + "_")}  # and its shadow tables
    return skipped


def data_tables(conn: Connection) -> list[Table]:
    """Every table holding data at the database's current revision, in foreign-key order."""
    names = inspect(conn).get_table_names()
    skipped = _skipped_tables(conn, names)
    metadata = MetaData()
    metadata.reflect(bind=conn, only=[n for n in names if n not in skipped])
    return list(metadata.sorted_tables)


def _columns(table: Table) -> list[tuple[str, str]]:
    try:
        return sorted((c.name, column_kind(c.type)) for c in table.columns)
    except BackupError as exc:
        raise BackupError(f"Table {table.name}: {exc.message}") from None


def _ordered_rows(conn: Connection, table: Table, names: list[str]) -> Iterator[Any]:
    """The rows in primary-key order; text compares by bytes on every database (PostgreSQL's "C" collation)."""
    keys = list(table.primary_key.columns) or [table.c[n] for n in names if column_kind(table.c[n].type) != "json"]
    postgres = conn.dialect.name == "postgresql"
    order = [c.collate("C") if postgres and isinstance(c.type, sqltypes.String) else c for c in keys]
    statement = select(*(table.c[n] for n in names)).order_by(*order).execution_options(yield_per=BATCH)
    yield from conn.execute(statement)


def _table_lines(conn: Connection, table: Table) -> tuple[list[tuple[str, str]], Iterator[bytes]]:
    """The table's columns and its rows as canonical lines, in order: what a backup stores and its hash covers."""
    columns = _columns(table)
    encode = _line_encoder([k for _n, k in columns])
    return columns, (encode(row) for row in _ordered_rows(conn, table, [n for n, _k in columns]))


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """One connection that sees a single consistent state of the whole database, read only."""
    if engine.dialect.name == "postgresql":
        options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
        with engine.connect().execution_options(**options) as conn, conn.begin():
            yield conn
        return
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN")  # the sqlite3 module opens no transaction for reads by itself
        try:
            yield conn
        finally:
            conn.rollback()


def table_digests(engine: Engine | None = None) -> dict[str, TableDigest]:
    """Row count and content hash of every data table, computed from the database (same hash as a backup's)."""
    from collectz.extensions import db

    with _snapshot(engine or db.engine) as conn:
        digests = {}
        for table in data_tables(conn):
            _columns, lines = _table_lines(conn, table)
            digest, rows = hashlib.sha256(), 0
            for line in lines:
                digest.update(line)
                rows += 1
            digests[table.name] = TableDigest(rows, digest.hexdigest())
        return digests


def _tables_with_rows(conn: Connection, tables: list[Table]) -> list[str]:
    """Tables holding data. The one row a fresh install has (the default library, seeded by the first migration
    and made again at sign-up) does not count: it is not the household's data."""
    from collectz.models import Library

    found = []
    for table in tables:
        count = conn.scalar(select(func.count()).select_from(select(text("1")).select_from(table).limit(2)
                                                             .subquery()))
        if not count:
            continue
        if table.name == Library.__tablename__ and count == 1 and "is_default" in table.c \
                and conn.scalar(select(table.c.is_default)):
            continue
        found.append(table.name)
    return found


def is_empty(engine: Engine) -> bool:
    """True when the database has no collectZ data (no tables at all, or only what a fresh install has)."""
    with engine.connect() as conn:
        return not _tables_with_rows(conn, data_tables(conn))


# --- writing an archive --------------------------------------------------------------------------------------

def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(time.time())
    return info


def _dump_table(conn: Connection, table: Table, tar: tarfile.TarFile, workdir: Path) -> TableEntry:
    columns, lines = _table_lines(conn, table)
    digest, rows = hashlib.sha256(), 0
    with tempfile.TemporaryFile(dir=workdir) as spool:
        with gzip.GzipFile(fileobj=spool, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as out:
            for line in lines:
                digest.update(line)
                out.write(line)
                rows += 1
        entry = TableEntry(table.name, tuple(columns), rows, digest.hexdigest())
        size = spool.tell()
        spool.seek(0)
        tar.addfile(_tarinfo(entry.file, size), spool)
    return entry


def _dump_object(store: Storage, key: str, tar: tarfile.TarFile, workdir: Path) -> ObjectEntry | None:
    """Copy one object into the archive (spooled: a tar member's size comes before its bytes)."""
    from collectz.services.storage import ObjectMissing

    digest, size = hashlib.sha256(), 0
    with tempfile.SpooledTemporaryFile(max_size=8 * CHUNK, dir=workdir) as spool:
        try:
            with store.open(key) as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    spool.write(chunk)
                    size += len(chunk)
        except ObjectMissing:  # deleted since it was listed: nothing refers to it any more
            return None
        entry = ObjectEntry(key, size, digest.hexdigest(), mimetypes.guess_type(key)[0] or "application/octet-stream")
        spool.seek(0)
        tar.addfile(_tarinfo(entry.file, size), spool)
    return entry


def _manifest_json(manifest: Manifest) -> bytes:
    document = {
        "format": FORMAT, "format_version": manifest.format_version, "app_version": manifest.app_version,
        "git_sha": git_sha(), "schema_revision": manifest.schema_revision, "created_at": manifest.created_at,
        "source_dialect": manifest.source_dialect, "objects_included": manifest.objects_included,
        "totals": {"tables": len(manifest.tables), "rows": manifest.rows, "objects": len(manifest.objects),
                   "object_bytes": manifest.object_bytes},
        "tables": [{"name": t.name, "file": t.file, "rows": t.rows, "sha256": t.sha256,
                    "columns": [list(c) for c in t.columns]} for t in manifest.tables],
        "objects": [{"key": o.key, "file": o.file, "size": o.size, "sha256": o.sha256,
                     "content_type": o.content_type} for o in manifest.objects],
    }
    return json.dumps(document, indent=1).encode("utf-8")


def _write_archive(out: BinaryIO, engine: Engine, store: Storage | None, workdir: Path) -> Manifest:
    with _snapshot(engine) as conn:
        revisions = current_revisions_of(conn)
        if not revisions:
            raise BackupError("The database has no schema revision (it was never migrated): there is nothing to "
                              "back up yet")
        if len(revisions) > 1:
            raise BackupError(f"The database is at several schema revisions ({', '.join(revisions)}): run "
                              "`flask db upgrade` first")
        created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tables = tuple(_dump_table(conn, table, tar, workdir) for table in data_tables(conn))
            dialect = conn.dialect.name
            # Objects after the rows' snapshot: every object a row refers to was stored before that row.
            objects = []
            if store is not None:
                for key in store.keys():
                    entry = _dump_object(store, key, tar, workdir)
                    if entry is not None:
                        objects.append(entry)
            manifest = Manifest(FORMAT_VERSION, __version__, revisions[0], created_at, dialect, store is not None,
                                tables, tuple(objects))
            body = _manifest_json(manifest)
            tar.addfile(_tarinfo(MANIFEST, len(body)), _BytesReader(body))
    return manifest


def current_revisions_of(conn: Connection) -> tuple[str, ...]:
    from alembic.runtime.migration import MigrationContext

    return tuple(MigrationContext.configure(conn).get_current_heads())


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._at = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        chunk, self._at = self._data[self._at:end], min(end, len(self._data))
        return chunk


def create_backup(dest: Path | BinaryIO, *, include_objects: bool = True, engine: Engine | None = None,
                  store: Storage | None = None, workdir: Path | None = None) -> BackupSummary:
    """Write one archive of the whole instance to a path (atomically: all or nothing) or an open binary file."""
    from collectz.extensions import db
    from collectz.services.storage import storage

    started = time.perf_counter()
    engine = engine or db.engine
    if include_objects and store is None:
        store = storage()
    store = store if include_objects else None
    try:
        if not isinstance(dest, Path):
            folder = workdir or Path(tempfile.gettempdir())
            manifest = _write_archive(dest, engine, store, folder)
            return BackupSummary(manifest, dest.tell(), time.perf_counter() - started)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(dest, prefix=f".{dest.name}.partial-") as out:
            manifest = _write_archive(out, engine, store, workdir or dest.parent)
        return BackupSummary(manifest, dest.stat().st_size, time.perf_counter() - started)
    except BackupError:
        raise
    except StorageError as exc:
        raise BackupError(f"The backup could not read the file store: {exc.message}") from exc
    except SQLAlchemyError as exc:
        raise BackupError(f"The backup could not read the database: {type(exc).__name__}: "
                          f"{str(getattr(exc, 'orig', exc)).strip()[:200]}") from exc
    except OSError as exc:
        raise BackupError(f"The backup could not be written: {exc.strerror or exc}") from exc


# --- reading and verifying an archive ------------------------------------------------------------------------

def _check(condition: Any, problem: str) -> None:
    if not condition:
        raise BackupError(f"The backup's manifest is not valid: {problem}")


def _parse_manifest(raw: bytes) -> Manifest:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BackupError("The backup's manifest is not valid JSON: the archive is damaged") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BackupError("This is not a collectZ backup (its manifest names another format)")
    version = doc.get("format_version")
    _check(isinstance(version, int) and not isinstance(version, bool), "format_version is missing")
    if version > FORMAT_VERSION:
        raise BackupError(f"This backup was made by a newer collectZ (backup format {version}; this release reads "
                          f"format {FORMAT_VERSION}): restore it with that release or a newer one")
    for name in ("app_version", "schema_revision", "created_at", "source_dialect"):
        _check(isinstance(doc.get(name), str) and doc[name], f"{name} is missing")
    _check(isinstance(doc.get("objects_included"), bool), "objects_included is missing")
    _check(isinstance(doc.get("tables"), list) and isinstance(doc.get("objects"), list), "tables/objects missing")
    tables = []
    for t in doc["tables"]:
        _check(isinstance(t, dict) and isinstance(t.get("name"), str) and _TABLE_NAME.fullmatch(t["name"]),
               "a table has no valid name")
        columns = t.get("columns")
        _check(isinstance(columns, list) and columns and all(
            isinstance(c, list) and len(c) == 2 and isinstance(c[0], str) and c[1] in KINDS for c in columns),
            f"table {t['name']} has invalid columns")
        _check(isinstance(t.get("rows"), int) and t["rows"] >= 0, f"table {t['name']} has no row count")
        _check(isinstance(t.get("sha256"), str) and _SHA256.fullmatch(t["sha256"]), f"table {t['name']}: sha256")
        entry = TableEntry(t["name"], tuple((c[0], c[1]) for c in columns), t["rows"], t["sha256"])
        _check(t.get("file") == entry.file, f"table {t['name']} names an unexpected file")
        tables.append(entry)
    _check(len({t.name for t in tables}) == len(tables), "a table is listed twice")
    objects = []
    for o in doc["objects"]:
        _check(isinstance(o, dict) and isinstance(o.get("key"), str), "an object has no key")
        try:
            check_key(o["key"])
        except InvalidKey:
            raise BackupError(f"The backup's manifest names an object key that is refused: {o['key'][:80]!r}") from None
        _check(isinstance(o.get("size"), int) and o["size"] >= 0, f"object {o['key']}: size")
        _check(isinstance(o.get("sha256"), str) and _SHA256.fullmatch(o["sha256"]), f"object {o['key']}: sha256")
        _check(isinstance(o.get("content_type"), str), f"object {o['key']}: content_type")
        entry_o = ObjectEntry(o["key"], o["size"], o["sha256"], o["content_type"])
        _check(o.get("file") == entry_o.file, f"object {o['key']} names an unexpected file")
        objects.append(entry_o)
    _check(len({o.key for o in objects}) == len(objects), "an object is listed twice")
    return Manifest(version, doc["app_version"], doc["schema_revision"], doc["created_at"], doc["source_dialect"],
                    doc["objects_included"], tuple(tables), tuple(objects))


class Archive:
    """A backup opened for reading: its members and its parsed manifest (call verify() before trusting it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name
        try:
            self._tar = tarfile.open(path, mode="r:")
        except FileNotFoundError:
            raise BackupError(f"{self.name}: no such file") from None
        except IsADirectoryError:
            raise BackupError(f"{self.name} is a folder, not a backup file") from None
        except (tarfile.TarError, OSError, EOFError):
            raise BackupError(f"{self.name} is not a collectZ backup (not a tar archive, or cut short)") from None
        try:
            try:
                self.members = {m.name: m for m in self._tar.getmembers() if m.isfile()}
            except (tarfile.TarError, OSError, EOFError):
                raise BackupError(f"{self.name} is damaged or was cut short: its list of files cannot be read"
                                  ) from None
            if MANIFEST not in self.members:
                raise BackupError(f"{self.name} has no manifest: it is not a collectZ backup, or it was cut short "
                                  "(the manifest is written last)")
            self.manifest = _parse_manifest(self._read(MANIFEST))
        except BaseException:
            self._tar.close()
            raise

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        member = self.members.get(name)
        if member is None:
            raise BackupError(f"{self.name} is incomplete: {name} is missing (the file was cut short or altered)")
        handle = self._tar.extractfile(member)
        if handle is None:  # pragma: no cover - members are regular files
            raise BackupError(f"{self.name}: {name} cannot be read")
        try:
            yield handle
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise BackupError(f"{self.name} is damaged: {name} cannot be read ({exc})") from None
        finally:
            handle.close()

    def _read(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    @contextmanager
    def rows(self, entry: TableEntry) -> Iterator[Iterator[bytes]]:
        """The raw lines of a table's file."""
        with self.open(entry.file) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as lines:
            yield iter(lines)

    def verify(self) -> None:
        """Check every member against the manifest (presence, size, sha256, row count); raise on the first fault."""
        expected = {MANIFEST} | {t.file for t in self.manifest.tables} | {o.file for o in self.manifest.objects}
        unexpected = sorted(set(self.members) - expected)
        if unexpected:
            raise BackupError(f"{self.name} holds files its manifest does not list (e.g. {unexpected[0]}): "
                              "it was altered")
        for entry in self.manifest.tables:
            digest, rows = hashlib.sha256(), 0
            with self.open(entry.file) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as data:
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
                    rows += chunk.count(b"\n")
            if digest.hexdigest() != entry.sha256 or rows != entry.rows:
                raise BackupError(f"{self.name} is damaged: the rows of table {entry.name} do not match their "
                                  f"checksum ({rows} rows read, {entry.rows} expected)")
        for obj in self.manifest.objects:
            digest = hashlib.sha256()
            with self.open(obj.file) as data:  # refuses a missing member
                while chunk := data.read(CHUNK):
                    digest.update(chunk)
            if self.members[obj.file].size != obj.size or digest.hexdigest() != obj.sha256:
                raise BackupError(f"{self.name} is damaged: stored file {obj.key} does not match its checksum")


def verify_backup(path: Path) -> Manifest:
    """Open and fully verify an archive without touching the instance."""
    with Archive(path) as archive:
        archive.verify()
        _check_revision(archive.manifest)
        return archive.manifest


def _check_revision(manifest: Manifest) -> None:
    script = script_directory(_migrations_dir())
    known = {rev.revision for rev in script.walk_revisions()}
    if manifest.schema_revision not in known:
        raise BackupError(
            f"The backup's schema is at revision {manifest.schema_revision}, which is newer than this version of "
            f"collectZ (head {script.get_current_head()}, made by collectZ {manifest.app_version}). Restore it with "
            "that release or a newer one.")


def _migrations_dir() -> str:
    try:
        return str(current_app.extensions["migrate"].directory)
    except (RuntimeError, KeyError):
        return str(MIGRATIONS_DIR)


# --- restoring -----------------------------------------------------------------------------------------------

def _bring_schema_to(app: Flask, revision: str) -> None:
    """Migrate an empty database up (or down) to the backup's revision."""
    from alembic import command

    from collectz.extensions import db

    directory = _migrations_dir()
    current = current_revisions(db.engine)
    if current == (revision,):
        return
    script = script_directory(directory)
    older = bool(current) and revision in {r.revision for r in script.iterate_revisions(current[0], "base")}
    try:
        if older:
            command.downgrade(app.extensions["migrate"].migrate.get_config(directory), revision)
        else:
            upgrade(app, directory=directory, revision=revision)
    except Exception as exc:
        raise BackupError(f"The empty database could not be brought to the backup's schema revision {revision}: "
                          f"{exc}") from exc


def _check_target(conn: Connection, manifest: Manifest, store: Storage | None) -> None:
    """Refuse a target that holds data (database rows, or objects the backup would overwrite)."""
    tables = data_tables(conn)
    if tables:
        from collectz.schema import check_not_newer

        try:
            check_not_newer(conn.engine, _migrations_dir())
        except SchemaError as exc:
            raise BackupError(str(exc)) from None
        occupied = _tables_with_rows(conn, tables)
        if occupied:
            raise BackupError("The database is not empty (rows in " + ", ".join(occupied) + "): restore needs a new, "
                              "empty database. Create one, point DATABASE_URL at it and run the restore again.")
    if store is not None and manifest.objects:
        wanted = {o.key for o in manifest.objects}
        clashes = sorted(k for k in store.keys() if k in wanted)
        if clashes:
            raise BackupError(f"The file store already holds {len(clashes)} of the backup's files (e.g. {clashes[0]}):"
                              " restore needs an empty file store, so that nothing is overwritten.")


def _match_tables(conn: Connection, manifest: Manifest) -> list[tuple[Table, TableEntry]]:
    """The target's tables (in foreign-key order) paired with the backup's; refuse any column that has no home."""
    by_name = {t.name: t for t in data_tables(conn)}
    missing = [t.name for t in manifest.tables if t.name not in by_name]
    if missing:
        raise BackupError(f"The backup has tables this database lacks at revision {manifest.schema_revision}: "
                          + ", ".join(missing))
    pairs = []
    wanted = {t.name: t for t in manifest.tables}
    for table in by_name.values():
        entry = wanted.get(table.name)
        if entry is None:
            continue
        here = dict(_columns(table))
        for name, kind in entry.columns:
            if here.get(name) != kind:
                found = f"is {here[name]}" if name in here else "does not exist"
                raise BackupError(f"Column {table.name}.{name} is {kind} in the backup but {found} in this "
                                  f"database at revision {manifest.schema_revision}")
        for column in table.columns:
            if isinstance(column.type, sqltypes.JSON):
                # A JSON null goes back as SQL NULL where the column allows it, as JSON null where it must not.
                column.type = type(column.type)(none_as_null=bool(column.nullable))
        pairs.append((table, entry))
    order = {t.name: i for i, t in enumerate(by_name.values())}
    return sorted(pairs, key=lambda pair: order[pair[0].name])


@contextmanager
def _row_writer(conn: Connection, table: Table, entry: TableEntry) -> Iterator[Callable[[list[list[Any]]], None]]:
    """Batches of decoded rows into the table: PostgreSQL's COPY (one stream per table; executemany would send a
    statement per row), batched executemany elsewhere. Both run inside the restore's transaction."""
    names = [n for n, _k in entry.columns]
    if conn.dialect.name != "postgresql":
        statement = table.insert()
        yield lambda rows: conn.execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
        return
    import psycopg

    preparer = conn.dialect.identifier_preparer
    sql = f"COPY {preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)}) FROM STDIN"
    # COPY takes JSON as text; a JSON null goes in as SQL NULL where the column allows it, as JSON null otherwise.
    json_at = [(i, bool(table.c[n].nullable)) for i, (n, kind) in enumerate(entry.columns) if kind == "json"]
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    def write(rows: list[list[Any]]) -> None:
        for row in rows:
            for i, nullable in json_at:
                row[i] = None if row[i] is None and nullable else dumps(row[i])
            copy.write_row(row)

    try:
        with conn.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore
            yield write
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise BackupError(f"The database refused the backup's rows ({type(exc).__name__}: {reason})") from exc


_PLAIN = {"str": str, "int": int, "bool": bool}  # kinds whose JSON value is the value: only its type is checked


def _insert_rows(conn: Connection, archive: Archive, table: Table, entry: TableEntry) -> None:
    width = len(entry.columns)
    plain = [_PLAIN.get(kind) for _n, kind in entry.columns]
    decoders = [_decoder(kind, table.c[name].type) for name, kind in entry.columns]
    digest, batch, number = hashlib.sha256(), [], 0
    with archive.rows(entry) as lines, _row_writer(conn, table, entry) as write:
        for number, line in enumerate(lines, 1):
            digest.update(line)
            try:
                values = json.loads(line.decode("utf-8"))
                if not isinstance(values, list) or len(values) != width:
                    raise _BadValue(f"expected {width} values")
                for i in range(width):
                    value = values[i]
                    if value is None or type(value) is plain[i]:
                        continue
                    try:
                        values[i] = decoders[i](value)
                    except (_BadValue, ValueError, InvalidOperation, TypeError) as exc:
                        raise _BadValue(f"column {entry.columns[i][0]}: {exc}") from None
            except (_BadValue, ValueError) as exc:
                raise BackupError(f"Table {entry.name}, row {number}: {exc}") from None
            batch.append(values)
            if len(batch) >= BATCH:
                write(batch)
                batch = []
        if batch:
            write(batch)
    if digest.hexdigest() != entry.sha256 or number != entry.rows:
        raise BackupError(f"The rows of table {entry.name} changed while they were being restored")


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """PostgreSQL: each id sequence continues after the highest restored id."""
    if conn.dialect.name != "postgresql":
        return
    preparer = conn.dialect.identifier_preparer
    for table in tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, sqltypes.Integer):
                continue
            sequence = conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                                   {"t": preparer.format_table(table), "c": column.name})
            if sequence:
                highest = conn.scalar(select(func.max(column)))
                conn.execute(text("SELECT setval(CAST(:s AS regclass), CAST(:v AS bigint), :called)"),
                             {"s": sequence, "v": highest or 1, "called": highest is not None})


def _put_objects(archive: Archive, store: Storage, written: list[str]) -> None:
    for obj in archive.manifest.objects:
        with archive.open(obj.file) as data:
            written.append(obj.key)
            stored = store.put(obj.key, data, content_type=obj.content_type)
        if stored.sha256 != obj.sha256 or stored.size != obj.size:
            raise BackupError(f"Stored file {obj.key} did not arrive intact in the file store (checksum mismatch)")


def _remove(store: Storage, keys: list[str]) -> list[str]:
    left = []
    for key in keys:
        try:
            store.delete(key)
        except StorageError:
            left.append(key)
    return left


def _restore_data(archive: Archive, store: Storage | None) -> None:
    """Objects first, then every row in one transaction; a failure undoes both."""
    from collectz.extensions import db

    written: list[str] = []
    try:
        with db.engine.connect() as conn:
            with conn.begin():
                pairs = _match_tables(conn, archive.manifest)
                tables = [t for t, _e in pairs]
                present = data_tables(conn)
                occupied = _tables_with_rows(conn, present)  # again, inside the transaction that writes
                if occupied:
                    raise BackupError("The database is no longer empty (rows in " + ", ".join(occupied) + ")")
                for table in reversed(present):  # only a fresh install's default library can be here
                    conn.execute(table.delete())
                if store is not None:
                    _put_objects(archive, store, written)
                for table, entry in pairs:
                    _insert_rows(conn, archive, table, entry)
                _reset_sequences(conn, tables)
    except BaseException as exc:
        left = _remove(store, written) if store is not None else []
        note = f" ({len(left)} stored files could not be removed again, e.g. {left[0]})" if left else ""
        if isinstance(exc, BackupError):
            raise BackupError(exc.message + "; nothing was restored" + note) from exc
        if isinstance(exc, StorageError):
            raise BackupError(f"The file store failed during the restore: {exc.message}; nothing was restored{note}"
                              ) from exc
        if isinstance(exc, SQLAlchemyError):
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:300]
            raise BackupError(f"The database refused the backup's rows ({type(exc).__name__}: {reason}); nothing was "
                              f"restored{note}") from exc
        raise


def restore_backup(path: Path, *, via: str = "cli") -> RestoreSummary:
    """Restore an archive into this (empty) instance, then upgrade its schema to head. See the module docstring."""
    from collectz.extensions import db
    from collectz.services import audit
    from collectz.services.storage import storage

    started = time.perf_counter()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with Archive(path) as archive:
        manifest = archive.manifest
        _check_revision(manifest)
        archive.verify()
        store = storage() if manifest.objects_included else None
        try:
            with db.engine.connect() as conn:
                _check_target(conn, manifest, store)
        except StorageError as exc:
            raise BackupError(f"The file store cannot be read: {exc.message}") from exc
        db.session.remove()
        _bring_schema_to(app, manifest.schema_revision)
        _restore_data(archive, store)
    head = script_directory(_migrations_dir()).get_current_head()
    upgraded_to = None
    if manifest.schema_revision != head:
        try:
            upgrade(app, directory=_migrations_dir())
        except SchemaError as exc:
            raise BackupError(f"The backup was restored at schema revision {manifest.schema_revision}, but upgrading "
                              f"it failed: {exc}. The restored data is intact at that revision; fix the cause and run "
                              "`flask db upgrade`.") from exc
        upgraded_to = head
    audit.record("backup.restored", entity_type="backup", details={
        "via": via, "file": archive.name, "created_at": manifest.created_at, "app_version": manifest.app_version,
        "source_dialect": manifest.source_dialect, "schema_revision": manifest.schema_revision,
        "upgraded_to": upgraded_to, "rows": manifest.rows, "objects": len(manifest.objects)}, commit=True)
    log.info("backup restored", extra={"fields": {"file": archive.name, "rows": manifest.rows,
                                                  "objects": len(manifest.objects)}})
    return RestoreSummary(manifest, upgraded_to, time.perf_counter() - started)


# --- the admin's download and the automatic backup before migrating ------------------------------------------

def backup_folder(app: Flask | None = None) -> Path:
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return Path(app.instance_path) / BACKUP_DIR


def download_name(created_at: str) -> str:
    return "collectz-backup-" + created_at.replace("-", "").replace(":", "").replace("T", "-").rstrip("Z") + ".tar"


def build_download(actor: Any) -> tuple[BinaryIO, str, BackupSummary]:
    """Build a full backup into an anonymous temporary file (gone when closed), audited as backup.downloaded."""
    from collectz.services import audit

    folder = backup_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle = tempfile.TemporaryFile(dir=folder)
    except OSError as exc:
        message = f"The backup could not be written: {exc.strerror or exc}"
        audit.record_failure("backup.download_failed", actor=actor, reason=message)
        raise BackupError(message) from exc
    try:
        summary = create_backup(handle, workdir=folder)  # type: ignore[arg-type]
    except BackupError as exc:
        handle.close()
        audit.record_failure("backup.download_failed", actor=actor, reason=exc.message)
        raise
    handle.seek(0)
    manifest = summary.manifest
    name = download_name(manifest.created_at)
    audit.record("backup.downloaded", actor=actor, entity_type="backup", details={
        "file": name, "bytes": summary.size, "schema_revision": manifest.schema_revision, "rows": manifest.rows,
        "tables": len(manifest.tables), "objects": len(manifest.objects)}, commit=True)
    return handle, name, summary  # type: ignore[return-value]


@dataclass(frozen=True)
class SavedBackup:
    name: str
    size: int
    modified: datetime


def automatic_backups(app: Flask | None = None) -> list[SavedBackup]:
    """The automatic pre-migration backups kept in the instance folder, newest first."""
    folder = backup_folder(app)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(AUTOMATIC_PREFIX + "*"):
        if path.is_file() and not path.name.endswith(".partial"):
            stat = path.stat()
            found.append(SavedBackup(path.name, stat.st_size, datetime.fromtimestamp(stat.st_mtime, UTC)))
    return sorted(found, key=lambda b: b.name, reverse=True)


def sqlite_copy(engine: Engine, dest: Path) -> None:
    """A consistent copy of a SQLite database file through SQLite's online backup API (WAL-safe)."""
    fd, partial = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    raw = engine.raw_connection()
    try:
        target = sqlite3.connect(partial)
        try:
            raw.driver_connection.backup(target)  # type: ignore[union-attr]
        finally:
            target.close()
        os.replace(partial, dest)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise
    finally:
        raw.close()


def before_migrate(app: Flask, directory: Path | str = MIGRATIONS_DIR) -> Path | None:
    """With migrations pending on a database that holds data, write a backup into instance/backups/ first (SQLite:
    a copy of the file; PostgreSQL: a database archive) and keep the last few. Raises SchemaError if it fails."""
    from collectz.extensions import db

    with app.app_context():
        engine = db.engine
        current = current_revisions(engine)
        script = script_directory(directory)
        known = {rev.revision for rev in script.walk_revisions()}
        if not current or set(current) == set(script.get_heads()) or not set(current) <= known:
            return None  # a new database, nothing pending, or newer than the code (the upgrade refuses that)
        if is_empty(engine):
            return None
        folder = backup_folder(app)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        sqlite = engine.dialect.name == "sqlite"
        path = folder / f"{AUTOMATIC_PREFIX}{stamp}-{'-'.join(current)}.{'sqlite3' if sqlite else 'tar'}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if sqlite:
                sqlite_copy(engine, path)
            else:
                # The database only: migrations never touch the file store, which stays where it is.
                create_backup(path, include_objects=False, engine=engine)
            _prune(folder)
        except (BackupError, OSError, sqlite3.Error, SQLAlchemyError) as exc:
            reason = exc.message if isinstance(exc, BackupError) else f"{type(exc).__name__}: {exc}"
            raise SchemaError(
                f"the automatic backup before migrating failed, so no migration was applied ({reason}). Free some "
                f"space or fix the permissions of {folder}, or set AUTO_BACKUP_BEFORE_MIGRATE=false to migrate "
                "without a backup.") from exc
        log.info("automatic backup before migrating", extra={"fields": {"file": path.name,
                                                                         "from": list(current)}})
        return path


def _prune(folder: Path) -> None:
    kept = sorted((p for p in folder.glob(AUTOMATIC_PREFIX + "*") if not p.name.endswith(".partial")),
                  key=lambda p: p.name, reverse=True)
    for old in kept[KEEP_AUTOMATIC:]:
        old.unlink(missing_ok=True)
