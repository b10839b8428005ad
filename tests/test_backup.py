"""Backup and restore on each database: the commands end to end, the manifest, bad archives refused with nothing
written, a non-empty target refused, a failed restore undone, an older schema restored and then upgraded, and the
automatic backup before migrations.

Every test restores into instances of its own (a fresh SQLite file, or a fresh PostgreSQL database per test when
TEST_DATABASE_URL is set). The helpers here (instances, seeding, archive surgery) serve test_backup_roundtrip.py and
test_backup_web.py too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import re
import sqlite3
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import Boolean, bindparam, delete, inspect, select, text

from collectz import create_app
from collectz.extensions import db
from collectz.models import (
    ActivityLog,
    AppIntegration,
    FeatureFlag,
    Genre,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSource,
    MediaUserState,
    Person,
    User,
)
from collectz.models.base import UTCDateTime
from collectz.schema import current_revisions, script_directory, upgrade
from collectz.security import passwords
from collectz.services import audit, backup
from collectz.services.storage import key_for, storage
from collectz.startup import prepare
from tests.conftest import Backend, activity, pg_database_url

HEAD = script_directory().get_current_head()
OLD = "0004"  # a revision before head: its tables lack later columns and tables
_labels = itertools.count(1)


# --- instances ---------------------------------------------------------------------------------------------------

def database_url(kind: str, folder: Path, label: str) -> str:
    """A new, empty database (no tables) of this kind."""
    if kind == "sqlite":
        return "sqlite:///" + str(folder / f"{label}.db")
    return pg_database_url(f"bk{label}")


class Instance:
    """One collectZ instance: its own database, instance folder and file store."""

    def __init__(self, backend: Backend, kind: str, folder: Path, *, url: Callable[[str], str] | None = None,
                 **overrides: Any) -> None:
        label = f"{kind[:2]}{next(_labels)}"
        self.kind = kind
        self.folder = folder / label
        self.folder.mkdir(parents=True)
        self.url = url(label) if url else database_url(kind, folder, label)
        settings = backend.settings(DATABASE_URL=self.url, INSTANCE_PATH=str(self.folder), REDIS_URL="",
                                    **overrides)
        self.app = create_app(settings=settings)

    def cli(self, *args: str) -> Result:
        return self.app.test_cli_runner().invoke(args=list(args))

    def migrate(self, revision: str = "head") -> Instance:
        upgrade(self.app, revision=revision)
        return self

    def digests(self) -> dict[str, backup.TableDigest]:
        with self.app.app_context():
            return backup.table_digests()

    def objects(self) -> dict[str, str]:
        """key → sha256 of every object in the file store."""
        with self.app.app_context():
            store = storage()
            return {key: hashlib.sha256(store.read(key)).hexdigest() for key in store.keys()}

    def tables(self) -> set[str]:
        with self.app.app_context():
            return set(inspect(db.engine).get_table_names())

    def revision(self) -> tuple[str, ...]:
        with self.app.app_context():
            return current_revisions(db.engine)

    def is_empty(self) -> bool:
        with self.app.app_context():
            return backup.is_empty(db.engine)

    def without_restore_event(self) -> dict[str, backup.TableDigest]:
        """The digests after setting aside the one activity event the restore itself adds."""
        with self.app.app_context():
            events = db.session.scalars(select(ActivityLog).where(ActivityLog.action == "backup.restored")).all()
            assert len(events) == 1, [e.action for e in events]
            db.session.execute(delete(ActivityLog).where(ActivityLog.action == "backup.restored"))
            db.session.commit()
        return self.digests()

    def close(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def instances(backend: Backend, tmp_path: Path) -> Iterator[Callable[..., Instance]]:
    """Make instances on this backend (or another kind); their engines are disposed afterwards."""
    made: list[Instance] = []

    def factory(kind: str | None = None, **overrides: Any) -> Instance:
        made.append(Instance(backend, kind or backend.name, tmp_path, **overrides))
        return made[-1]

    yield factory
    for inst in made:
        inst.close()


# --- data -------------------------------------------------------------------------------------------------------

def png(index: int) -> bytes:
    """A real, small, distinct PNG image."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (12, 18), ((index * 37) % 256, (index * 91) % 256, (index * 13) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


TRICKY_TITLE = 'Ünïcödé "quoted" \\ back-slash\nnew line, tab\t and an emoji 🎬'


def seed_household(app: Flask, media_ids: list[int], covers: int = 0) -> None:
    """Around the items already there: members, metadata, sources, people and genres for items without, per-user
    state, flags (text keys whose order differs by collation), an integration, activity with nested JSON, covers and
    a signed-copy proof, and values that stress the format (unicode, dates, decimals, booleans, JSON null)."""
    with app.app_context():
        hashed = passwords.hash_password("a household password")
        members = [User(email=f"{name}@example.org", name=name.title(), role=role, password_hash=hashed,
                        last_login_at=datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC) if role == "admin" else None)
                   for name, role in (("ann", "admin"), ("ben", "user"), ("vic", "viewer"))]
        db.session.add_all(members)
        db.session.flush()
        ann = members[0]
        people = [Person(name=n, name_key=n.casefold()) for n in ("Zoë Ångström", "ada lovelace", "Ada Byron")]
        genres = [Genre(name=n, name_key=n.casefold()) for n in ("Space opera", "éclair", "Kammerspiel")]
        db.session.add_all(people + genres)
        db.session.flush()
        for position, media_id in enumerate(media_ids):
            db.session.add_all([
                MediaMetadata(media_id=media_id, key="tmdb_id", value=str(1000 + media_id)),
                MediaMetadata(media_id=media_id, key="import_note", value=None if position % 3 else "from a shelf"),
                MediaSource(media_id=media_id, source="csv", source_id=f"row-{media_id}"),
            ])
            if position < 10:
                db.session.add_all([
                    MediaPerson(media_id=media_id, person_id=people[position % 3].id, role="author", position=0),
                    MediaGenre(media_id=media_id, genre_id=genres[position % 3].id),
                    MediaUserState(media_id=media_id, user_id=ann.id, rating=position % 11, status="owned",
                                   watchlist=position % 2 == 0,
                                   last_watched_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=position)),
                ])
        first = db.session.get(Media, media_ids[0])
        first.title = TRICKY_TITLE
        first.rating = 7.25
        first.release_date = date(1999, 12, 31)
        first.signed_on = date(2001, 2, 3)
        first.notes = "line one\r\nline two — «quoted»"
        for key, enabled in (("Zeta", True), ("alpha", False), ("Beta", True), ("_under", False), ("beta_2", True)):
            db.session.add(FeatureFlag(key=key, enabled=enabled, description=None if enabled else "off for now",
                                       updated_by=ann.id))
        db.session.add(AppIntegration(provider="tmdb", enabled=True,
                                      settings={"language": "de-DE", "nested": {"z": [1, 2.5, None], "a": "ü"}},
                                      secrets_encrypted={"api_key": "v1:not-a-real-ciphertext"},
                                      last_checked_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)))
        db.session.commit()
        for n in range(12):
            audit.record(f"test.event_{n % 4}", actor=ann if n % 2 else None, entity_type="media",
                         entity_id=media_ids[n % len(media_ids)], status="ok" if n % 5 else "failed",
                         details={"n": n, "list": [n, "two", {"k": None}], "text": "grüße ✓"})
        db.session.commit()
        store = storage()
        for media_id in media_ids[:covers]:
            data = png(media_id)
            key = key_for("covers", media_id, hashlib.sha256(data).hexdigest(), "png")
            store.put(key, data, content_type="image/png")
            db.session.get(Media, media_id).cover_key = key
        if covers:
            proof = png(10_000 + media_ids[0])
            key = key_for("proofs", media_ids[0], hashlib.sha256(proof).hexdigest(), "png")
            store.put(key, proof, content_type="image/png")
            first.signed_by, first.signed_role, first.signed_proof_key = "Zoë Ångström", "author", key
        db.session.commit()
        db.session.remove()


def add_items(app: Flask, count: int) -> list[int]:
    """A few items made through the model (so derived columns are as the app writes them)."""
    from collectz.services.users import ensure_default_library

    with app.app_context():
        library = ensure_default_library()
        items = [Media(library_id=library.id, media_type=("book", "movie", "audio")[n % 3], title=f"Item {n}",
                       year=1950 + n, formats=["Paperback"] if n % 3 == 0 else [], type_details={},
                       copies=1 + n % 2) for n in range(count)]
        db.session.add_all(items)
        db.session.commit()
        ids = [m.id for m in items]
        db.session.remove()
        return ids


# --- archive surgery ---------------------------------------------------------------------------------------------

def members(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]


def write_tar(path: Path, parts: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in parts:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def rewrite(source: Path, dest: Path, *, change: Callable[[str, bytes], bytes | None] | None = None,
            manifest: Callable[[dict[str, Any]], None] | None = None) -> Path:
    """A copy of an archive with members changed (None drops one) and/or its manifest edited."""
    parts = []
    for name, data in members(source):
        if name == backup.MANIFEST and manifest is not None:
            doc = json.loads(data)
            manifest(doc)
            data = json.dumps(doc).encode()
        new = change(name, data) if change else data
        if new is not None:
            parts.append((name, new))
    return write_tar(dest, parts)


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads(dict(members(path))[backup.MANIFEST])


def table_lines(data: bytes) -> list[bytes]:
    return gzip.decompress(data).splitlines(keepends=True)


# --- a source instance with data and its backup, once per module and backend ------------------------------------

class Source:
    def __init__(self, inst: Instance, archive: Path, digests: dict[str, backup.TableDigest],
                 objects: dict[str, str]) -> None:
        self.inst, self.archive, self.digests, self.objects = inst, archive, digests, objects


@pytest.fixture(scope="module")
def source(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    folder = tmp_path_factory.mktemp(f"backup-source-{backend.name}")
    inst = Instance(backend, backend.name, folder).migrate()
    seed_household(inst.app, add_items(inst.app, 12), covers=4)
    digests, objects = inst.digests(), inst.objects()
    with inst.app.app_context():
        backup.create_backup(folder / "source.tar")
    yield Source(inst, folder / "source.tar", digests, objects)
    inst.close()


# --- the commands end to end ---------------------------------------------------------------------------------------

def test_create_verify_and_restore_into_a_new_database(instances: Callable[..., Instance], tmp_path: Path):
    src = instances().migrate()
    seed_household(src.app, add_items(src.app, 6), covers=3)
    before, objects = src.digests(), src.objects()
    path = tmp_path / "household.tar"

    made = src.cli("backup", "create", str(path))
    assert made.exit_code == 0, made.output
    assert f"Wrote {path}" in made.output
    assert (path.stat().st_mode & 0o777) == 0o600  # accounts and secrets inside: readable by the owner only
    again = src.cli("backup", "create", str(path))
    assert again.exit_code == 1 and "already exists" in again.output
    into_folder = src.cli("backup", "create", str(tmp_path / "nightly") + "/")  # a folder, made if missing
    assert into_folder.exit_code == 0, into_folder.output
    [named] = (tmp_path / "nightly").iterdir()
    assert re.fullmatch(r"collectz-backup-\d{8}-\d{6}\.tar", named.name)
    assert [e.details["file"] for e in activity(src.app, "backup.created")] == ["household.tar", named.name]

    checked = src.cli("backup", "verify", str(path))
    assert checked.exit_code == 0 and "is intact" in checked.output, checked.output

    doc = manifest_of(path)
    assert doc["format"] == "collectz-backup" and doc["format_version"] == backup.FORMAT_VERSION
    assert doc["schema_revision"] == HEAD and doc["source_dialect"] == src.kind and doc["app_version"]
    assert datetime.strptime(doc["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    tables = {t["name"]: t for t in doc["tables"]}
    assert {n: backup.TableDigest(t["rows"], t["sha256"]) for n, t in tables.items()} == before
    assert "alembic_version" not in tables and not any(n.startswith("media_fts") for n in tables)
    assert {o["key"]: o["sha256"] for o in doc["objects"]} == objects
    assert all(o["size"] > 60 and o["content_type"] == "image/png" for o in doc["objects"])
    # the rows are canonical JSON: typed values, columns in name order
    media = table_lines(dict(members(path))["tables/media.jsonl.gz"])
    columns = [c[0] for c in tables["media"]["columns"]]
    assert columns == sorted(columns)
    first = dict(zip(columns, json.loads(media[0]), strict=True))
    assert first["title"] == TRICKY_TITLE and first["rating"] == "7.25" and first["release_date"] == "1999-12-31"
    assert first["type_details"] == {} and first["formats"] == ["Paperback"]
    assert datetime.fromisoformat(first["created_at"]).tzinfo is None  # UTC, said once in the format

    target = instances()
    restored = target.cli("backup", "restore", str(path))
    assert restored.exit_code == 0, restored.output
    assert "Restored" in restored.output and str(sum(t["rows"] for t in doc["tables"])) in restored.output
    assert target.revision() == (HEAD,)
    assert target.objects() == objects
    [event] = activity(target.app, "backup.restored")
    assert event.details["file"] == "household.tar" and event.details["via"] == "cli"
    assert target.without_restore_event() == before


def test_restored_ids_continue_where_the_backup_left_off(source: Source, instances: Callable[..., Instance]):
    target = instances()
    assert target.cli("backup", "restore", str(source.archive)).exit_code == 0
    with target.app.app_context():
        highest = db.session.scalar(select(Media.id).order_by(Media.id.desc()).limit(1))
        added = Media(library_id=1, media_type="book", title="After the restore", type_details={}, formats=[])
        db.session.add(added)
        db.session.add(FeatureFlag(key="new_flag", enabled=True))
        db.session.commit()
        assert added.id == highest + 1  # PostgreSQL's sequences were reset
        assert db.session.scalar(select(Media.title).where(Media.id == 1)) == TRICKY_TITLE
        db.session.remove()


def test_restore_into_an_instance_that_was_already_migrated(source: Source, instances: Callable[..., Instance]):
    """A new install that started once (migrated, its default library made) counts as empty."""
    target = instances().migrate()
    assert target.is_empty()
    result = target.cli("backup", "restore", str(source.archive))
    assert result.exit_code == 0, result.output
    assert target.without_restore_event() == source.digests
    assert target.objects() == source.objects


def test_a_target_with_data_is_refused_and_left_alone(source: Source, instances: Callable[..., Instance]):
    target = instances().migrate()
    add_items(target.app, 1)
    before = target.digests()
    result = target.cli("backup", "restore", str(source.archive))
    assert result.exit_code == 1
    assert "The database is not empty (rows in media)" in result.output and "new, empty database" in result.output
    assert target.digests() == before and target.objects() == {}

    # a file store already holding one of the backup's objects is refused too: nothing may be overwritten
    clean = instances()
    key = next(iter(source.objects))
    with clean.app.app_context():
        storage().put(key, b"someone else's bytes", content_type="image/png")
    result = clean.cli("backup", "restore", str(source.archive))
    assert result.exit_code == 1 and f"already holds 1 of the backup's files (e.g. {key})" in result.output
    assert clean.tables() == set()
    with clean.app.app_context():
        assert storage().read(key) == b"someone else's bytes" and list(storage().keys()) == [key]


# --- bad archives: a clear message, and nothing stored or overwritten ---------------------------------------------

def _truncated(src: Path, dest: Path) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def _tampered_row(src: Path, dest: Path) -> Path:
    def change(name: str, data: bytes) -> bytes:
        if name != "tables/users.jsonl.gz":
            return data
        return gzip.compress(gzip.decompress(data).replace(b"ann@example.org", b"eve@example.org"))
    return rewrite(src, dest, change=change)


def _tampered_object(src: Path, dest: Path) -> Path:
    def change(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name.startswith("objects/covers/") else data
    return rewrite(src, dest, change=change)


def _no_manifest(src: Path, dest: Path) -> Path:
    return rewrite(src, dest, change=lambda name, data: None if name == backup.MANIFEST else data)


def _not_an_archive(src: Path, dest: Path) -> Path:
    dest.write_text("title,year\nThe Zephyr,1999\n" * 100)
    return dest


def _newer_schema(src: Path, dest: Path) -> Path:
    return rewrite(src, dest, manifest=lambda doc: doc.update(schema_revision="ffff9999"))


def _newer_format(src: Path, dest: Path) -> Path:
    return rewrite(src, dest, manifest=lambda doc: doc.update(format_version=backup.FORMAT_VERSION + 1))


def _extra_member(src: Path, dest: Path) -> Path:
    parts = members(src)
    return write_tar(dest, [*parts[:-1], ("objects/covers/9/evil.png", b"not listed"), parts[-1]])


BAD = {
    "truncated": (_truncated, "cut short"),
    "tampered_row_file": (_tampered_row, "the rows of table users do not match their checksum"),
    "tampered_object": (_tampered_object, "does not match its checksum"),
    "missing_manifest": (_no_manifest, "has no manifest"),
    "not_an_archive": (_not_an_archive, "is not a collectZ backup (not a tar archive"),
    "newer_schema": (_newer_schema, "revision ffff9999, which is newer than this version of collectZ"),
    "newer_format": (_newer_format, "made by a newer collectZ"),
    "unlisted_file": (_extra_member, "holds files its manifest does not list"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_archive_is_refused_before_anything_is_written(case: str, source: Source, tmp_path: Path,
                                                              instances: Callable[..., Instance]):
    make, message = BAD[case]
    bad = make(source.archive, tmp_path / f"{case}.tar")
    target = instances()

    result = target.cli("backup", "restore", str(bad))
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output
    assert target.tables() == set() and target.objects() == {}  # not even the schema was made
    checked = target.cli("backup", "verify", str(bad))
    assert checked.exit_code == 1 and message in checked.output


def test_the_truncated_archive_still_refused_when_the_manifest_survives(source: Source, tmp_path: Path,
                                                                         instances: Callable[..., Instance]):
    """Cut inside an object, with the manifest moved first: the missing bytes are found, not trusted."""
    parts = members(source.archive)
    reordered = write_tar(tmp_path / "manifest-first.tar", [parts[-1], *parts[:-1]])
    data = reordered.read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: len(data) - 12_000])
    target = instances()
    result = target.cli("backup", "restore", str(cut))
    assert result.exit_code == 1 and ("is incomplete" in result.output or "is damaged" in result.output), result.output
    assert target.tables() == set() and target.objects() == {}


def test_a_failed_restore_rolls_the_rows_back_and_removes_its_objects(source: Source, tmp_path: Path,
                                                                      instances: Callable[..., Instance]):
    """An archive whose checksums agree but whose rows the database refuses (a duplicated genre): the objects were
    already stored and some tables inserted when it fails."""
    def duplicate_genre(doc: dict[str, Any]) -> None:
        entry = next(t for t in doc["tables"] if t["name"] == "genres")
        lines = table_lines(dict(members(source.archive))["tables/genres.jsonl.gz"])
        entry["rows"], entry["sha256"] = len(lines) + 1, hashlib.sha256(b"".join(lines + lines[:1])).hexdigest()

    def change(name: str, data: bytes) -> bytes:
        if name != "tables/genres.jsonl.gz":
            return data
        lines = table_lines(data)
        return gzip.compress(b"".join(lines + lines[:1]))

    bad = rewrite(source.archive, tmp_path / "dup.tar", change=change, manifest=duplicate_genre)
    target = instances()
    assert target.cli("backup", "verify", str(bad)).exit_code == 0  # consistent: only the database can tell

    result = target.cli("backup", "restore", str(bad))
    assert result.exit_code == 1, result.output
    assert "The database refused the backup's rows" in result.output and "nothing was restored" in result.output
    assert target.is_empty() and target.objects() == {}
    assert all(d.rows == 0 for name, d in target.digests().items() if name != "libraries")
    # and the instance is still usable for a good archive
    assert target.cli("backup", "restore", str(source.archive)).exit_code == 0
    assert target.without_restore_event() == source.digests


# --- an older schema ------------------------------------------------------------------------------------------------

def _old_source(instances: Callable[..., Instance], tmp_path: Path) -> tuple[Instance, Path]:
    """A database at revision OLD with a member and an item, written with SQL (the models are at head)."""
    src = instances().migrate(OLD)
    typed = (bindparam("t", datetime(2026, 1, 1, tzinfo=UTC), type_=UTCDateTime()),
             bindparam("no", False, type_=Boolean()))
    with src.app.app_context(), db.engine.begin() as conn:
        conn.execute(text("INSERT INTO users (email, name, role, password_hash, must_reset, created_at, updated_at) "
                          "VALUES ('old@example.org', 'Old', 'admin', 'x', :no, :t, :t)").bindparams(*typed))
        conn.execute(text("INSERT INTO media (library_id, media_type, title, sort_title, formats, type_details, "
                          "copies, search_text, created_at, updated_at) VALUES (1, 'book', 'An Old Book', "
                          "'old book', '[]', '{}', 1, 'an old book', :t, :t)").bindparams(typed[0]))
    path = tmp_path / "old.tar"
    with src.app.app_context():
        backup.create_backup(path)
    return src, path


def test_a_backup_of_an_older_schema_is_restored_at_its_revision_then_upgraded(
        instances: Callable[..., Instance], tmp_path: Path):
    src, path = _old_source(instances, tmp_path)
    doc = manifest_of(path)
    assert doc["schema_revision"] == OLD
    assert "enrichment_reviews" not in {t["name"] for t in doc["tables"]}  # made by a later revision

    for target in (instances(), instances().migrate()):  # a blank database, and one already at head
        result = target.cli("backup", "restore", str(path))
        assert result.exit_code == 0, result.output
        assert f"schema upgraded to {HEAD}" in result.output
        assert target.revision() == (HEAD,)
        with target.app.app_context():
            book = db.session.scalar(select(Media).where(Media.title == "An Old Book"))
            assert book is not None and book.sort_title == "old book"
            assert db.session.scalar(select(User.email)) == "old@example.org"
            db.session.remove()


# --- the automatic backup before migrations ----------------------------------------------------------------------

def test_pending_migrations_on_a_database_with_data_are_backed_up_first(instances: Callable[..., Instance],
                                                                        tmp_path: Path):
    src, _path = _old_source(instances, tmp_path)
    prepare(src.app, migrate=True)
    assert src.revision() == (HEAD,)
    [saved] = sorted((src.folder / "backups").iterdir())
    assert saved.name.startswith("pre-migrate-") and OLD in saved.name
    if src.kind == "sqlite":
        assert saved.suffix == ".sqlite3"
        copy = sqlite3.connect(saved)
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(OLD,)]
        assert copy.execute("SELECT email FROM users").fetchall() == [("old@example.org",)]
        copy.close()
    else:
        assert saved.suffix == ".tar"
        manifest = backup.verify_backup(saved)
        assert manifest.schema_revision == OLD and manifest.objects_included is False
        rolled_back = instances()
        assert rolled_back.cli("backup", "restore", str(saved)).exit_code == 0
        with rolled_back.app.app_context():
            assert db.session.scalar(select(User.email)) == "old@example.org"
            db.session.remove()

    # nothing pending now: no new backup
    prepare(src.app, migrate=True)
    assert len(list((src.folder / "backups").iterdir())) == 1


def test_no_automatic_backup_for_an_empty_database_or_when_disabled(instances: Callable[..., Instance],
                                                                    tmp_path: Path):
    blank = instances()
    prepare(blank.app, migrate=True)  # a new install: nothing to keep
    fresh = instances().migrate(OLD)
    prepare(fresh.app, migrate=True)  # migrated once, never used
    off, _path = _old_source(lambda: instances(AUTO_BACKUP_BEFORE_MIGRATE=False), tmp_path)
    prepare(off.app, migrate=True)
    for inst in (blank, fresh, off):
        assert inst.revision() == (HEAD,)
        assert not (inst.folder / "backups").exists() or not any((inst.folder / "backups").iterdir())


def test_a_failed_automatic_backup_refuses_to_migrate(instances: Callable[..., Instance], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]):
    src, _path = _old_source(instances, tmp_path)
    (src.folder / "backups").write_text("a file where the folder should be")
    with pytest.raises(SystemExit) as excinfo:
        prepare(src.app, migrate=True)
    assert excinfo.value.code == 3
    err = capsys.readouterr().err
    assert "collectZ refuses to start: the automatic backup before migrating failed" in err
    assert "AUTO_BACKUP_BEFORE_MIGRATE=false" in err and "Traceback" not in err
    assert src.revision() == (OLD,)


def test_only_the_last_automatic_backups_are_kept(instances: Callable[..., Instance], tmp_path: Path):
    src, _path = _old_source(instances, tmp_path)
    folder = src.folder / "backups"
    folder.mkdir()
    for day in range(1, 8):
        (folder / f"pre-migrate-202001{day:02d}-000000-0001.sqlite3").write_text("old")
    (folder / "my-own-copy.tar").write_text("not ours to delete")
    prepare(src.app, migrate=True)
    kept = sorted(p.name for p in folder.iterdir())
    assert len(kept) == backup.KEEP_AUTOMATIC + 1 and "my-own-copy.tar" in kept
    assert kept[0] == "my-own-copy.tar" and kept[1] == "pre-migrate-20200104-000000-0001.sqlite3"
    assert any(name.startswith("pre-migrate-20") and OLD in name for name in kept)
