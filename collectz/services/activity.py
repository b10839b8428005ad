"""Reading the activity log: the filtered, keyset-paginated list and its CSV export.

Filters (each optional, all combined with AND):
- `q`: free text, case-insensitive substring over action, entity type and id, actor email, reason, ip,
  request id and the JSON details (searched as text: CAST(details AS TEXT) LIKE …; a full scan, which is
  fine at a household's scale);
- `action`, `entity` (entity type): exact; `user`: the actor's email, exact but case-insensitive;
- `status`: an HTTP status class. Events that carry an http_status are classed by it; events without one
  (most domain events) count as 2xx when their status is "ok" and as 4xx otherwise (a refused or failed
  action), so "4xx" lists every failure a person caused;
- `from` / `to`: calendar dates in UTC, both inclusive.

Pages are keyset-paginated on (created_at, id), newest first: the `after` cursor is
"<microseconds since the epoch>-<id>" of the last row shown, so rows written meanwhile never shift a page.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, bindparam, cast, func, or_, select, tuple_

from collectz.extensions import db
from collectz.models import ActivityLog, User
from collectz.security.permissions import Actor, require_admin
from collectz.services import audit
from collectz.services.audit import redact
from collectz.services.errors import InvalidInput

PER_PAGE = 50
EXPORT_BATCH = 500
MAX_TERM = 200
STATUS_CLASSES = {"2xx": "2xx success", "3xx": "3xx redirect", "4xx": "4xx refused or failed", "5xx": "5xx error"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR = re.compile(r"^(\d{1,20})-(\d{1,18})$")
# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ActivityFilters:
    """The filters of one view of the log; `as_args()` is their URL form."""

    q: str = ""
    action: str = ""
    entity: str = ""
    user: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_args(self) -> dict[str, str]:
        """The non-empty filters as URL query arguments (what the form submits)."""
        args = {"q": self.q, "action": self.action, "entity": self.entity, "user": self.user,
                "status": self.status, "from": self.date_from.isoformat() if self.date_from else "",
                "to": self.date_to.isoformat() if self.date_to else ""}
        return {k: v for k, v in args.items() if v}

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass
class ActivityPage:
    entries: list[ActivityEntry]
    next_cursor: str | None
    first: bool


@dataclass
class ActivityEntry:
    """One event as the page and the export show it: who, what, which entity, why, where."""

    row: Any  # an ActivityLog, or a Row of its columns in the export

    @cached_property
    def details(self) -> dict[str, Any]:
        value = self.row.details
        return redact(value) if isinstance(value, dict) else {}

    @property
    def who(self) -> str:
        """The signed-in actor, else the account a failed sign-in or claim named, else "anonymous"."""
        if self.row.actor_email:
            return self.row.actor_email
        attempted = self.details.get("email")
        return f"anonymous (as {attempted})" if attempted else "anonymous"

    @property
    def entity(self) -> str:
        if not self.row.entity_type:
            return ""
        return f"{self.row.entity_type} {self.row.entity_id}" if self.row.entity_id else self.row.entity_type

    @property
    def method(self) -> str:
        return str(self.details.get("method") or "")

    @property
    def path(self) -> str:
        return str(self.details.get("path") or "")

    @property
    def status_label(self) -> str:
        return str(self.row.http_status) if self.row.http_status else self.row.status

    @property
    def failed(self) -> bool:
        return self.row.status != "ok" or (self.row.http_status or 0) >= 400

    @property
    def details_json(self) -> str:
        return json.dumps(self.details, indent=2, sort_keys=True, ensure_ascii=False, default=str)

    @property
    def anchor(self) -> str:
        return f"event-{self.row.id}"


def parse_filters(args: Mapping[str, str]) -> ActivityFilters:
    """Filters from query arguments; a bad value is InvalidInput naming its field."""
    errors: dict[str, str] = {}

    def text(name: str, limit: int = 254) -> str:
        return " ".join((args.get(name) or "").split())[:limit]

    status = text("status")
    if status and status not in STATUS_CLASSES:
        errors["status"] = f"Choose a status class: {', '.join(STATUS_CLASSES)}."
    date_from, date_to = _date(args, "from", errors), _date(args, "to", errors)
    if date_from and date_to and date_to < date_from:
        errors["to"] = "The end date is before the start date."
    if errors:
        raise InvalidInput("Check the filters.", fields=errors)
    return ActivityFilters(q=text("q", MAX_TERM), action=text("action", 64), entity=text("entity", 32),
                           user=text("user"), status=status, date_from=date_from, date_to=date_to)


def _date(args: Mapping[str, str], name: str, errors: dict[str, str]) -> date | None:
    raw = (args.get(name) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = "Use a date like 2025-01-31."
        return None


def encode_cursor(created_at: datetime, row_id: int) -> str:
    micros = (created_at.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)
    return f"{micros}-{row_id}"


def decode_cursor(raw: str | None) -> tuple[datetime, int] | None:
    if not raw:
        return None
    match = _CURSOR.match(raw.strip())
    if not match:
        message = "This page link is broken: start again from the newest events."
        raise InvalidInput(message, fields={"after": message})
    return _EPOCH + timedelta(microseconds=int(match.group(1))), int(match.group(2))


def _conditions(f: ActivityFilters) -> list[ColumnElement[bool]]:
    log = ActivityLog
    conds: list[ColumnElement[bool]] = []
    if f.q:
        term = f.q
        details = cast(log.details, Text)
        matches = [log.action.icontains(term, autoescape=True), log.entity_type.icontains(term, autoescape=True),
                   log.entity_id.icontains(term, autoescape=True), log.actor_email.icontains(term, autoescape=True),
                   log.reason.icontains(term, autoescape=True), log.ip.icontains(term, autoescape=True),
                   log.request_id.icontains(term, autoescape=True), details.icontains(term, autoescape=True)]
        # Details are stored as JSON text, where a quote is written \" (and "é" "\u00e9" in events recorded before
        # JSON columns were written by orjson, which keeps "é" as it is): search those forms too. They are lower-cased
        # here, since SQLite's lower() folds only ASCII letters ("É" stays "É").
        lowered = term.lower()
        forms = {json.dumps(lowered)[1:-1], json.dumps(lowered, ensure_ascii=False)[1:-1]}
        if lowered.isascii():
            forms.discard(lowered)  # the term as it is (above)
        matches += [func.lower(details).contains(form, autoescape=True) for form in sorted(forms)]
        conds.append(or_(*matches))
    if f.action:
        conds.append(log.action == f.action)
    if f.entity:
        conds.append(log.entity_type == f.entity)
    if f.user:
        conds.append(func.lower(log.actor_email) == f.user.lower())
    if f.status:
        low = int(f.status[0]) * 100
        in_range = log.http_status.between(low, low + 99)
        if f.status == "2xx":
            in_range = or_(in_range, and_(log.http_status.is_(None), log.status == "ok"))
        elif f.status == "4xx":
            in_range = or_(in_range, and_(log.http_status.is_(None), log.status != "ok"))
        conds.append(in_range)
    if f.date_from:
        conds.append(log.created_at >= datetime.combine(f.date_from, time.min, UTC))
    if f.date_to:
        conds.append(log.created_at < datetime.combine(f.date_to + timedelta(days=1), time.min, UTC))
    return conds


def _after(cursor: tuple[datetime, int]) -> ColumnElement[bool]:
    created_at, row_id = cursor
    return tuple_(ActivityLog.created_at, ActivityLog.id) < tuple_(
        bindparam("after_created", created_at, type_=ActivityLog.created_at.type),
        bindparam("after_id", row_id, type_=ActivityLog.id.type),
    )


def _ordered(stmt: Select[Any], f: ActivityFilters, cursor: tuple[datetime, int] | None) -> Select[Any]:
    conds = _conditions(f) + ([_after(cursor)] if cursor else [])
    return stmt.where(*conds).order_by(ActivityLog.created_at.desc(), ActivityLog.id.desc())


def activity_page(actor: Actor, f: ActivityFilters, after: str | None = None,
                  per_page: int = PER_PAGE) -> ActivityPage:
    """One page of matching events, newest first, and the cursor of the next page if there is one."""
    require_admin(actor, "read the activity log")
    cursor = decode_cursor(after)
    rows = list(db.session.scalars(_ordered(select(ActivityLog), f, cursor).limit(per_page + 1)))
    more = len(rows) > per_page
    rows = rows[:per_page]
    next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return ActivityPage([ActivityEntry(r) for r in rows], next_cursor, cursor is None)


def filter_choices() -> dict[str, list[str]]:
    """Values for the action, entity type and user pickers (distinct values read from the log's indexes)."""
    actions = db.session.scalars(select(ActivityLog.action).distinct().order_by(ActivityLog.action)).all()
    entities = db.session.scalars(select(ActivityLog.entity_type).where(ActivityLog.entity_type.is_not(None))
                                  .distinct().order_by(ActivityLog.entity_type)).all()
    users = db.session.scalars(select(User.email).order_by(User.email)).all()
    return {"actions": list(actions), "entities": list(entities), "users": list(users)}


def iter_entries(f: ActivityFilters, batch: int = EXPORT_BATCH) -> Iterator[ActivityEntry]:
    """Every matching event, newest first, read in keyset batches (plain rows: nothing piles up in the session)."""
    columns = select(*ActivityLog.__table__.columns)
    cursor: tuple[datetime, int] | None = None
    while True:
        rows = db.session.execute(_ordered(columns, f, cursor).limit(batch)).all()
        for row in rows:
            yield ActivityEntry(row)
        if len(rows) < batch:
            return
        cursor = (rows[-1].created_at, rows[-1].id)


CSV_COLUMNS = ("created_at", "action", "status", "http_status", "actor_email", "entity_type", "entity_id", "reason",
               "method", "path", "ip", "request_id", "details")


def safe_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading quote."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv_row(e: ActivityEntry) -> list[Any]:
    r = e.row
    created = r.created_at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    details = json.dumps(e.details, sort_keys=True, ensure_ascii=False, default=str)
    return [created, r.action, r.status, r.http_status, r.actor_email, r.entity_type, r.entity_id, r.reason,
            e.method, e.path, r.ip, r.request_id, details]


def start_export(actor: Actor, f: ActivityFilters) -> Iterator[str]:
    """Record the export (activity.exported, with its filters) and return its CSV chunks."""
    require_admin(actor, "export the activity log")
    audit.record("activity.exported", actor=actor, details={"filters": f.as_args()})
    db.session.commit()
    return export_csv(f)


def export_csv(f: ActivityFilters, chunk_rows: int = 200) -> Iterator[str]:
    """The filtered log as CSV text chunks (header first), every cell made spreadsheet-safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    pending = 1
    for entry in iter_entries(f):
        writer.writerow([safe_cell(v) for v in _csv_row(entry)])
        pending += 1
        if pending >= chunk_rows:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    yield buffer.getvalue()
