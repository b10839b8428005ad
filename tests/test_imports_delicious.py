"""The shared 268-entry Delicious Library export, end to end through the import job: every entry accounted for,
one book entered twice becomes one item with 2 copies, and importing it again changes nothing."""

from __future__ import annotations

import plistlib
from pathlib import Path

from flask import Flask
from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import ImportRow, Media, MediaGenre, MediaMetadata, MediaPerson, MediaSource, SyncJob, User
from collectz.services import imports
from tests.conftest import Actors, needs_shared


def _import(path: Path, email: str = "bob@example.org") -> SyncJob:
    owner = db.session.scalar(select(User).where(User.email == email))
    upload = imports.save_upload_from_path(owner, "delicious", path)
    job, created = imports.start_import(owner, upload)
    assert created
    return imports.run_inline(job.id)


def _snapshot() -> list[tuple]:
    return [tuple(r) for r in db.session.execute(select(
        Media.id, Media.title, Media.media_type, Media.copies, Media.isbn13, Media.ean13, Media.asin, Media.location,
        Media.formats_key, Media.search_text, Media.updated_at).order_by(Media.id))]


def test_every_entry_of_the_shared_export_is_accounted_for(ctx: Flask, actors: Actors) -> None:
    path = needs_shared("fixtures", "delicious", "library-plist.xml")
    entries = plistlib.loads(path.read_bytes())
    assert len(entries) == 268

    job = _import(path)
    assert (job.status, job.total, job.processed, job.failed) == ("succeeded", 268, 268, 0)
    assert (job.created, job.updated, job.skipped) == (267, 1, 0)
    assert db.session.scalar(select(func.count(Media.id))) == 267
    # Every entry maps to an item through its uuid.
    sources = dict(db.session.execute(select(MediaSource.source_id, MediaSource.media_id)
                                      .where(MediaSource.source == "delicious")).all())
    assert set(sources) == {e["uuidString"] for e in entries}

    twice = [e for e in entries if e.get("isbn") == "0802133630"]
    assert len(twice) == 2
    item = db.session.get(Media, sources[twice[0]["uuidString"]])
    assert sources[twice[1]["uuidString"]] == item.id and item.copies == 2
    assert db.session.scalar(select(func.count(Media.id)).where(Media.copies > 1)) == 1
    copy_row = db.session.scalar(select(ImportRow).where(ImportRow.job_id == job.id, ImportRow.outcome == "updated"))
    assert copy_row.match_mode == "matched_by_identifier" and copy_row.matched_by == "isbn13"
    assert copy_row.message.startswith(f"another copy of item {item.id} (now 2 copies)")

    # Identifiers, people, genres, formats and locations arrived for every entry that has them.
    by_uuid = {e["uuidString"]: e for e in entries}
    items = {m.id: m for m in db.session.scalars(select(Media))}
    for uuid, media_id in sources.items():
        entry, media = by_uuid[uuid], items[media_id]
        assert media.title == entry["title"].strip()
        if entry.get("isbn"):
            assert media.isbn13 is not None
        if entry.get("asin"):
            assert media.asin == entry["asin"].strip().upper()
        if entry.get("locationSingularString", "").strip():
            assert media.location == entry["locationSingularString"].strip()
        if entry.get("formatSingularString", "").strip():
            assert entry["formatSingularString"].strip() in media.formats
    with_people = {e["uuidString"] for e in entries if e.get("creatorsCompositeString", "").strip()}
    people_items = set(db.session.scalars(select(MediaPerson.media_id).distinct()))
    assert {sources[u] for u in with_people} <= people_items
    with_genres = {e["uuidString"] for e in entries if e.get("genresCompositeString", "").strip()}
    assert {sources[u] for u in with_genres} <= set(db.session.scalars(select(MediaGenre.media_id).distinct()))
    types = dict(db.session.execute(select(Media.media_type, func.count()).group_by(Media.media_type)).all())
    assert types == {"book": 259, "movie": 5, "other": 3}
    prices = db.session.scalar(select(func.count(MediaMetadata.id)).where(MediaMetadata.key == "purchase_price"))
    assert prices > 200

    before = _snapshot()
    again = _import(path)
    assert (again.status, again.total, again.created, again.updated, again.skipped) == ("succeeded", 268, 0, 0, 268)
    db.session.expire_all()
    assert _snapshot() == before
