"""Records as the API answers them (the shapes `schemas.py` describes). No token material ever goes out."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from collectz.models import ApiToken, ImportRow, Invite, MediaUserState, SyncJob, User, UserSession
from collectz.services.activity import ActivityEntry, ActivityPage
from collectz.services.flags import FlagState
from collectz.services.invites import InviteRow
from collectz.services.media import MediaDetail
from collectz.services.members import MemberDetail, MemberRow
from collectz.services.pagination import Page
from collectz.services.queries import BrowsePage


def when(value: datetime | None) -> str | None:
    """A UTC timestamp as ISO 8601 with a Z."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def day(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def numbered(page: Page[Any], items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": items, "total": page.total, "page": page.page, "pages": page.pages,
            "next_page": page.page + 1 if page.has_next else None}


def state(row: MediaUserState | None) -> dict[str, Any]:
    if row is None:
        return {"rating": None, "status": None, "watchlist": False}
    return {"rating": row.rating, "status": row.status, "watchlist": bool(row.watchlist)}


def media(detail: MediaDetail) -> dict[str, Any]:
    m = detail.media
    return {
        "id": m.id, "title": m.title, "media_type": m.media_type, "original_title": m.original_title,
        "year": m.year, "release_date": day(m.release_date), "formats": list(m.formats or []),
        "overview": m.overview, "runtime": m.runtime, "rating": m.rating, "location": m.location, "notes": m.notes,
        "copies": m.copies, "type_details": dict(m.type_details or {}),
        "people": [{"role": p.role, "name": p.name, "character": p.character} for p in detail.people],
        "genres": list(detail.genres),
        "seasons": [{"number": s.season_number, "available_episodes": s.available_episodes,
                     "expected_episodes": s.expected_episodes, "complete": bool(s.complete)} for s in detail.seasons],
        "isbn": m.isbn13, "ean": m.ean13, "asin": m.asin, "tmdb_id": m.tmdb_id, "tmdb_media_type": m.tmdb_media_type,
        "signed_by": m.signed_by, "signed_role": m.signed_role, "signed_on": day(m.signed_on),
        "signed_at": m.signed_at, "import_source": m.import_source, "added_by": m.added_by,
        "created_at": when(m.created_at), "updated_at": when(m.updated_at), "can_edit": detail.can_edit,
        "my_state": state(detail.state) if detail.can_keep_state else None,
    }


def media_page(page: BrowsePage) -> dict[str, Any]:
    items = [{
        "id": row.id, "title": row.title, "media_type": row.media_type, "year": row.year,
        "formats": list(row.formats or []), "rating": None if row.rating is None else float(row.rating),
        "my_rating": row.my_rating, "byline": row.byline, "location": row.location, "signed": bool(row.signed_by),
        "added_by": row.added_by, "created_at": when(row.created_at), "can_edit": row.id in page.editable,
    } for row in page.rows]
    return {"items": items, "next": page.next_cursor, "total": page.total}


def job(j: SyncJob) -> dict[str, Any]:
    return {
        "id": j.id, "kind": j.kind, "status": j.status, "source_name": j.source_name, "total": j.total,
        "processed": j.processed, "created": j.created, "updated": j.updated, "skipped": j.skipped,
        "failed": j.failed, "percent": j.percent, "error": j.error, "cancel_requested": bool(j.cancel_requested),
        "created_by": j.created_by, "created_at": when(j.created_at), "started_at": when(j.started_at),
        "finished_at": when(j.finished_at),
    }


def import_row(r: ImportRow) -> dict[str, Any]:
    raw = r.raw or {}
    line = raw.get("line")
    title = raw.get("title")
    return {
        "id": r.id, "row_number": r.row_number, "line": line if isinstance(line, int) else None,
        "title": str(title) if title not in (None, "") else None, "outcome": r.outcome,
        "match_mode": r.match_mode, "matched_by": r.matched_by, "message": r.message, "media_id": r.media_id,
        "enrichment": r.enrichment,
    }


def member(row: MemberRow) -> dict[str, Any]:
    u = row.user
    return {"id": u.id, "email": u.email, "name": u.name, "role": u.role, "created_at": when(u.created_at),
            "last_login_at": when(u.last_login_at), "items_added": row.items_added}


def session(s: UserSession) -> dict[str, Any]:
    return {"id": s.id, "created_at": when(s.created_at), "last_seen_at": when(s.last_seen_at),
            "expires_at": when(s.expires_at), "ip": s.ip, "user_agent": s.user_agent, "remember": bool(s.remember)}


def member_detail(d: MemberDetail) -> dict[str, Any]:
    return {**member(MemberRow(d.user, d.items_added)), "items_rated": d.items_rated, "score": d.score,
            "last_edit": when(d.last_edit), "delete_blocked": d.delete_blocked,
            "sessions": [session(s) for s in d.sessions]}


def invitation(row: InviteRow) -> dict[str, Any]:
    return {"id": row.id, "email": row.email, "role": row.role, "status": row.status,
            "created_at": when(row.created_at), "expires_at": when(row.expires_at), "used_at": when(row.used_at),
            "revoked_at": when(row.revoked_at), "created_by_name": row.created_by_name,
            "used_by_name": row.used_by_name}


def invite_row(invite: Invite, status: str, created_by: User | None) -> InviteRow:
    """An invite just created or revoked, as the list shows it."""
    return InviteRow(invite.id, invite.email, invite.role, invite.created_at, invite.expires_at, invite.used_at,
                     invite.revoked_at, created_by.name if created_by else None, None, status)


def activity_entry(e: ActivityEntry) -> dict[str, Any]:
    r = e.row
    return {"id": r.id, "created_at": when(r.created_at), "action": r.action, "status": r.status,
            "http_status": r.http_status, "actor_id": r.actor_id, "actor_email": r.actor_email, "who": e.who,
            "entity_type": r.entity_type, "entity_id": r.entity_id, "reason": r.reason, "method": e.method,
            "path": e.path, "ip": r.ip, "request_id": r.request_id, "details": e.details}


def activity_page(page: ActivityPage) -> dict[str, Any]:
    return {"items": [activity_entry(e) for e in page.entries], "next": page.next_cursor}


def flag(state: FlagState) -> dict[str, Any]:
    return {"key": state.key, "label": state.spec.label, "description": state.spec.description,
            "enabled": state.enabled, "default": state.spec.default, "source": state.source, "locked": state.locked,
            "env_name": state.env_name, "env_error": state.env_error, "updated_by": state.updated_by,
            "updated_at": when(state.updated_at)}


def me(user: User, via: str, scopes: tuple[str, ...], token: ApiToken | None) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role, "auth": via,
            "scopes": list(scopes),
            "token": None if token is None else {"id": token.id, "name": token.name,
                                                 "expires_at": when(token.expires_at),
                                                 "scopes": list(token.scopes or [])}}
