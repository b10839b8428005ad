"""Background work: one sync_jobs row per run, one import_rows row per source row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from collectz.models.base import Base, index_of_set, utcnow

JOB_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")


class SyncJob(Base):
    __tablename__ = "sync_jobs"
    __table_args__ = (
        CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="status"
        ),
        Index("ix_sync_jobs_status", "status", "created_at"),
        Index("ix_sync_jobs_owner", "created_by", "created_at"),
        Index("ix_sync_jobs_source", "kind", "source_hash"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    source_name: Mapped[str | None] = mapped_column(String(255))
    source_hash: Mapped[str | None] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    created: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    # Set once every source row is in import_rows; before that the job is still reading its file.
    staged_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_terminal else 0
        return max(0, min(100, int(self.processed * 100 / self.total)))


class ImportRow(Base):
    __tablename__ = "import_rows"
    __table_args__ = (
        UniqueConstraint("job_id", "row_number"),
        Index("ix_import_rows_outcome", "job_id", "outcome", "row_number"),
        # An item's import rows (a merge re-points them at the survivor); a row gets its item only once it is
        # imported (migration 0010).
        index_of_set("ix_import_rows_media_id", "media_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("sync_jobs.id", ondelete="CASCADE"))
    row_number: Mapped[int]
    chunk: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    match_mode: Mapped[str | None] = mapped_column(String(40))
    matched_by: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The item the row made or matched. History, not a reference the catalog keeps up: no foreign key (migration
    # 0011), so deleting the item later leaves the row saying which item it was (the job page marks it deleted).
    media_id: Mapped[int | None]
    enrichment: Mapped[str | None] = mapped_column(String(300))  # what enrichment did for the row's item
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
