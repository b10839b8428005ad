"""Helpers for import tests: jobs made from records directly (the parsers have their own tests)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from collectz.extensions import db
from collectz.models import ImportRow, Media, MediaSource, SyncJob, User
from collectz.models.base import utcnow
from collectz.services import imports


def staged_job(user_email: str, records: list[dict[str, Any]], kind: str = "csv", chunk_size: int = 1000,
               **options: Any) -> int:
    """A job whose rows are already staged (as the stage step leaves them); returns its id."""
    user = db.session.scalar(select(User).where(User.email == user_email))
    job = SyncJob(kind=kind, status="running", source_name="test", source_hash="x" * 64,
                  options={"chunk_size": chunk_size, **options}, created_by=user.id, total=len(records),
                  staged_at=utcnow(), started_at=utcnow(), heartbeat_at=utcnow())
    db.session.add(job)
    db.session.flush()
    for number, record in enumerate(records, start=1):
        db.session.add(ImportRow(job_id=job.id, row_number=number, chunk=(number - 1) // chunk_size,
                                 outcome="pending", raw=record))
    db.session.commit()
    return job.id


def run_records(user_email: str, records: list[dict[str, Any]], kind: str = "csv", chunk_size: int = 1000,
                **options: Any) -> SyncJob:
    job_id = staged_job(user_email, records, kind, chunk_size, **options)
    return imports.run_inline(job_id)


def rows(job_id: int) -> list[ImportRow]:
    return list(db.session.scalars(select(ImportRow).where(ImportRow.job_id == job_id)
                                   .order_by(ImportRow.row_number)))


def media_count() -> int:
    return len(db.session.scalars(select(Media.id)).all())


def sources() -> list[tuple[str, str, int]]:
    return [tuple(r) for r in db.session.execute(select(MediaSource.source, MediaSource.source_id,
                                                        MediaSource.media_id).order_by(MediaSource.id))]
