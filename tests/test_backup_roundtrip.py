"""A household of 1,000 items backed up on one database and restored on the other: SQLite → PostgreSQL and
PostgreSQL → SQLite, and through an S3 file store (moto's server). After each restore, every table's content hash
is computed again from the restored database and must equal the source's (and the manifest's), and every stored
object's checksum too.

The PostgreSQL side needs TEST_DATABASE_URL: without it these tests are skipped, except in CI (CI=true), where
they fail. Its databases sort text with an English ICU collation (as a server set up with en_US.UTF-8 would), so
that the hashes prove the backup orders text keys the same way on both databases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from bench.seed import seed
from collectz.config import normalise_database_url
from collectz.extensions import db
from collectz.models import ActivityLog, Media, MediaMetadata, MediaPerson, User
from collectz.security import passwords
from collectz.services import backup
from tests import s3_server as moto
from tests.conftest import IN_CI, PG_URL, Backend, pg_database_url
from tests.test_backup import TRICKY_TITLE, Instance, manifest_of, seed_household

s3_server = moto.s3_server  # the session fixture: one moto server per test process (xdist worker)

ITEMS = 1000
COVERS = 100


def english_database(label: str) -> str:
    """A fresh PostgreSQL database whose default collation is English (ICU), not byte order."""
    url = pg_database_url(f"rt{label}")
    name = url.rsplit("/", 1)[1]
    admin = create_engine(normalise_database_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                          "LOCALE 'C.UTF-8'"))
    admin.dispose()
    return url


def require_postgresql() -> None:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but TEST_DATABASE_URL is not set: the cross-database round trip must run in CI")
        pytest.skip("TEST_DATABASE_URL is not set: the PostgreSQL side of the round trip is skipped")


class Household:
    """A seeded instance, its backup, and what the restore must give back."""

    def __init__(self, kind: str, folder: Path) -> None:
        self.inst = Instance(Backend(kind, "", "", folder), kind, folder,
                             url=english_database if kind == "postgresql" else None).migrate()
        app = self.inst.app
        with app.app_context():
            owner = User(email="owner@example.org", name="Owner", role="admin",
                         password_hash=passwords.hash_password("a household password"))
            db.session.add(owner)
            db.session.commit()
            with db.engine.begin() as conn:
                seed(conn, ITEMS, users={owner.email: owner.id})
            db.session.remove()
        seed_household(app, list(range(1, ITEMS + 1)), covers=COVERS)
        self.digests, self.objects = self.inst.digests(), self.inst.objects()
        self.archive = folder / f"household-{kind}.tar"
        result = self.inst.cli("backup", "create", str(self.archive))
        assert result.exit_code == 0, result.output


def _household(kind: str, factory: pytest.TempPathFactory) -> Iterator[Household]:
    household = Household(kind, factory.mktemp(f"household-{kind}"))
    yield household
    household.inst.close()


@pytest.fixture(scope="module")
def from_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Household]:
    yield from _household("sqlite", tmp_path_factory)


@pytest.fixture(scope="module")
def from_postgresql(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Household]:
    require_postgresql()
    yield from _household("postgresql", tmp_path_factory)


@pytest.fixture
def restored_into(tmp_path: Path) -> Iterator[list[Instance]]:
    made: list[Instance] = []
    yield made
    for inst in made:
        inst.close()


def _new(kind: str, tmp_path: Path, made: list[Instance], **overrides: str | bool) -> Instance:
    made.append(Instance(Backend(kind, "", "", tmp_path), kind, tmp_path,
                         url=english_database if kind == "postgresql" else None, **overrides))
    return made[-1]


def assert_same_household(source: Household, target: Instance) -> None:
    manifest = manifest_of(source.archive)
    assert manifest["source_dialect"] == source.inst.kind
    assert target.objects() == source.objects and len(source.objects) == COVERS + 1
    restored = target.without_restore_event()  # hashed again from the restored rows
    assert restored == source.digests
    assert {t["name"]: backup.TableDigest(t["rows"], t["sha256"]) for t in manifest["tables"]} == restored
    assert restored["media"].rows == ITEMS and restored["people"].rows > ITEMS
    assert restored["media_people"].rows > ITEMS and restored["media_genres"].rows >= ITEMS
    assert restored["media_metadata"].rows == 2 * ITEMS and restored["activity_log"].rows >= 12
    assert restored["users"].rows == 4 and restored["feature_flags"].rows == 5
    # and the app reads the same values back through its models on both databases
    values = []
    for inst in (source.inst, target):
        with inst.app.app_context():
            first = db.session.get(Media, 1)
            values.append((first.title, first.rating, first.release_date, first.created_at, first.type_details,
                           first.cover_key, first.signed_proof_key,
                           db.session.scalar(select(func.count()).select_from(MediaPerson)),
                           db.session.scalar(select(MediaMetadata.value).where(MediaMetadata.media_id == 2,
                                                                               MediaMetadata.key == "tmdb_id")),
                           db.session.scalars(select(ActivityLog.details).order_by(ActivityLog.id)).first()))
            db.session.remove()
    assert values[0] == values[1] and values[0][0] == TRICKY_TITLE and values[0][3].tzinfo is not None


def test_sqlite_to_postgresql(from_sqlite: Household, tmp_path: Path, restored_into: list[Instance]):
    require_postgresql()
    target = _new("postgresql", tmp_path, restored_into)
    result = target.cli("backup", "restore", str(from_sqlite.archive))
    assert result.exit_code == 0, result.output
    assert_same_household(from_sqlite, target)


def test_postgresql_to_sqlite(from_postgresql: Household, tmp_path: Path, restored_into: list[Instance]):
    target = _new("sqlite", tmp_path, restored_into)
    result = target.cli("backup", "restore", str(from_postgresql.archive))
    assert result.exit_code == 0, result.output
    assert_same_household(from_postgresql, target)
    with target.app.app_context():  # the search index (SQLite FTS) was rebuilt from the restored rows
        word = db.session.scalar(select(Media.title).where(Media.id == 7)).split()[-1].casefold()
        hits = db.session.execute(text("SELECT count(*) FROM media_fts WHERE media_fts MATCH :w"),
                                  {"w": f'"{word}"'}).scalar()
        assert hits and hits >= 1
        db.session.remove()


def test_an_s3_file_store_as_target_and_as_source(from_sqlite: Household, tmp_path: Path,
                                                   restored_into: list[Instance], s3_server: moto.MotoServer):
    bucket = s3_server.create_bucket()
    target = _new("sqlite", tmp_path, restored_into, STORAGE_PROVIDER="s3", S3_BUCKET=bucket,
                  S3_ENDPOINT_URL=s3_server.url, S3_ACCESS_KEY_ID=moto.ACCESS_KEY_ID,
                  S3_SECRET_ACCESS_KEY=moto.SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE=True)
    result = target.cli("backup", "restore", str(from_sqlite.archive))
    assert result.exit_code == 0, result.output
    listed = s3_server.client().list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"]
    assert len(listed) == COVERS + 1
    assert_same_household(from_sqlite, target)

    # backed up again from the bucket: the same objects, byte for byte
    again = tmp_path / "from-s3.tar"
    assert target.cli("backup", "create", str(again)).exit_code == 0
    objects = {o["key"]: o["sha256"] for o in manifest_of(again)["objects"]}
    assert objects == from_sqlite.objects
    with backup.Archive(again) as archive:
        archive.verify()
        cover = next(o for o in archive.manifest.objects if o.key.startswith("covers/"))
        with archive.open(cover.file) as data:
            assert hashlib.sha256(data.read()).hexdigest() == cover.sha256
