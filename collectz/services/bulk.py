"""Bulk actions on selected items. Delete: each item by the ownership rule (can_edit_media); viewers not at all.

An item the actor may not delete is skipped, not an error (a member may select a page holding others' items);
the skips are recorded as one permission.denied event. Every deleted item gets its own media.deleted event, and
the action one media.bulk_deleted event with the counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, select

from collectz.extensions import db
from collectz.models import Media
from collectz.security.permissions import Actor, can_edit_media, require_writer
from collectz.services import audit, covers
from collectz.services.errors import InvalidInput

MAX_ITEMS = 500  # one request; a page holds at most 200


@dataclass(frozen=True)
class Selected:
    id: int
    title: str
    media_type: str
    added_by: int | None


@dataclass
class DeletePlan:
    """What a bulk delete would do: the items it deletes, the ones it skips and why."""

    requested: int
    deletable: list[Selected] = field(default_factory=list)
    not_allowed: list[Selected] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [item.id for item in self.deletable] + [item.id for item in self.not_allowed] + self.missing

    @property
    def skipped(self) -> int:
        return len(self.not_allowed) + len(self.missing)


@dataclass(frozen=True)
class BulkResult:
    requested: int
    deleted: int
    skipped: int

    @property
    def message(self) -> str:
        text = f"Deleted {self.deleted} of {self.requested} selected item{'' if self.requested == 1 else 's'}."
        if self.skipped:
            text += f" Skipped {self.skipped}: you can only delete items you added (or that no longer exist)."
        return text


def parse_ids(raw: Iterable[str | int]) -> list[int]:
    """Distinct positive ids in the order given; anything else is ignored."""
    ids: list[int] = []
    for value in raw:
        try:
            number = int(str(value).strip())
        except ValueError:
            continue
        if number > 0 and number not in ids:
            ids.append(number)
    return ids


def plan_delete(actor: Actor, raw_ids: Iterable[str | int]) -> DeletePlan:
    """Check a selection before deleting: who may delete what (one query)."""
    require_writer(actor, "delete items")
    ids = parse_ids(raw_ids)
    if not ids:
        raise InvalidInput("Select at least one item to delete.", fields={"ids": "Select at least one item."})
    if len(ids) > MAX_ITEMS:
        raise InvalidInput(f"Select at most {MAX_ITEMS} items at a time.", fields={"ids": "Too many items."})
    rows = db.session.execute(select(Media.id, Media.title, Media.media_type, Media.added_by)
                              .where(Media.id.in_(ids))).all()
    found = {row.id: Selected(row.id, row.title, row.media_type, row.added_by) for row in rows}
    plan = DeletePlan(requested=len(ids))
    for media_id in ids:
        item = found.get(media_id)
        if item is None:
            plan.missing.append(media_id)
        elif can_edit_media(actor, item):
            plan.deletable.append(item)
        else:
            plan.not_allowed.append(item)
    return plan


def delete_media(actor: Actor, raw_ids: Iterable[str | int]) -> BulkResult:
    """Delete the selected items the actor may delete, in one transaction; returns the counts."""
    plan = plan_delete(actor, raw_ids)
    for item in plan.deletable:
        audit.record("media.deleted", actor=actor, entity_type="media", entity_id=item.id,
                     details={"title": item.title, "media_type": item.media_type, "bulk": True})
    if plan.not_allowed:
        audit.record("permission.denied", actor=actor, status="failed", http_status=403,
                     reason="You can only delete items you added.",
                     details={"action": "media.bulk_delete", "media_ids": [i.id for i in plan.not_allowed]})
    keys = covers.keys_of(i.id for i in plan.deletable)  # the images go once the rows are gone
    if plan.deletable:
        db.session.execute(delete(Media).where(Media.id.in_([i.id for i in plan.deletable])),
                           execution_options={"synchronize_session": False})
    result = BulkResult(requested=plan.requested, deleted=len(plan.deletable), skipped=plan.skipped)
    audit.record("media.bulk_deleted", actor=actor, entity_type="media",
                 details={"requested": result.requested, "deleted": result.deleted, "skipped": result.skipped,
                          "deleted_ids": [i.id for i in plan.deletable],
                          "skipped_ids": [i.id for i in plan.not_allowed] + plan.missing})
    db.session.commit()
    covers.delete_unused(*keys)
    return result
