"""Enrichment reviews: provider matches that were not applied, waiting for a member's decision.

A review is opened when the enrichment service finds candidates for an item but cannot apply one safely (its score
is below ENRICH_CONFIDENCE_THRESHOLD, or the two best are too close to tell apart). `candidates` keeps the scored
candidates as plain JSON (`services.enrichment.candidate_to_dict`), so a decision needs no second provider call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from collectz.models.base import Base, utcnow

REVIEW_STATUSES = ("pending", "accepted", "kept_manual", "superseded")


class EnrichmentReview(Base):
    __tablename__ = "enrichment_reviews"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'accepted', 'kept_manual', 'superseded')", name="status"),
        # The Review list (pending, oldest first) and its count badge.
        Index("ix_enrichment_reviews_status", "status", "created_at", "id"),
        Index("ix_enrichment_reviews_media", "media_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    job_id: Mapped[int | None] = mapped_column(ForeignKey("sync_jobs.id", ondelete="SET NULL"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # [{"score": 0.82, "candidate": {...Candidate as JSON...}}, ...], best first
    candidates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    chosen_index: Mapped[int | None]
    match_mode: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
