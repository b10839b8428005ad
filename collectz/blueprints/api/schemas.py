"""JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of the API's bodies and answers.

Enumerations come from the modules that own them (media types, roles, sorts, statuses), so a new value shows up
here by itself. `outputs.py` builds the answers these schemas describe; the contract tests validate every answer
they receive against them.
"""

from __future__ import annotations

from typing import Any

from collectz.blueprints.api.inputs import INT_MAX
from collectz.importers import csv_generic
from collectz.models.jobs import JOB_STATUSES
from collectz.models.media_types import LIBRARY_SECTIONS, MEDIA_TYPES, PERSON_ROLES, SIGNED_ROLES
from collectz.models.user import ROLES
from collectz.services import tokens
from collectz.services.activity import STATUS_CLASSES
from collectz.services.imports import KINDS, OUTCOMES
from collectz.services.indexing import RESOLUTIONS
from collectz.services.invites import INVITE_ROLES
from collectz.services.queries import MAX_PER_PAGE, SORTS
from collectz.services.user_state import RATING_MAX, STATUSES

ERROR_CODES = {
    400: "The request could not be read (not JSON, not an object, a broken multipart body).",
    401: "No credentials, or a token that is unknown, revoked or expired.",
    403: "The role or the token's scopes do not allow this; or a session write without its CSRF token.",
    404: "No such record (or a feature that is turned off: code `feature_off`).",
    409: "The request conflicts with the record's state (already revoked, the last admin, a running import…).",
    413: "The upload is larger than the server accepts.",
    422: "A value is wrong: `fields` names each one with its message.",
    429: "Too many requests: wait for `Retry-After` seconds.",
    503: "The server cannot answer now (its database is unreachable).",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Any], *, required: list[str] | None = None, closed: bool = True) -> dict[str, Any]:
    """An object; by default every property is required (answers always carry every key) and no other is allowed."""
    schema: dict[str, Any] = {"type": "object", "properties": properties,
                              "required": list(properties) if required is None else required}
    if closed:
        schema["additionalProperties"] = False
    return schema


def page_of(item: str, *, cursor: bool) -> dict[str, Any]:
    """A list answer: keyset (`next` cursor) or numbered pages (`page`, `pages`, `next_page`)."""
    if cursor:
        return obj({"items": {"type": "array", "items": ref(item)}, "next": nullable(STRING),
                    "total": COUNT}, required=["items", "next"])
    return obj({"items": {"type": "array", "items": ref(item)}, "total": {"type": "integer", "minimum": 0},
                "page": {"type": "integer", "minimum": 1}, "pages": {"type": "integer", "minimum": 1},
                "next_page": nullable({"type": "integer", "minimum": 2})})


STRING: dict[str, Any] = {"type": "string"}
TEXT = nullable(STRING)
INT = {"type": "integer"}
ID = {"type": "integer", "minimum": 1}
TIME = {"type": "string", "format": "date-time"}
DAY = {"type": "string", "format": "date"}
COUNT = {"type": "integer", "minimum": 0}
ENUM_TYPES = {"type": "string", "enum": list(MEDIA_TYPES)}


def _text(limit: int) -> dict[str, Any]:
    return nullable({"type": "string", "maxLength": limit})


PERSON_IN = obj({"role": {"type": "string", "enum": list(PERSON_ROLES)},
                 "name": {"type": "string", "minLength": 1, "maxLength": 255},
                 "character": _text(255)}, required=["role", "name"])
SEASON_IN = obj({"number": {"type": "integer", "minimum": 0, "maximum": 10_000},
                 "available_episodes": nullable({"type": "integer", "minimum": 0, "maximum": 100_000}),
                 "expected_episodes": nullable({"type": "integer", "minimum": 0, "maximum": 100_000}),
                 "complete": {"type": "boolean"}}, required=["number"])

# The fields of an item a client may send (create: title required; update: any subset).
MEDIA_FIELDS: dict[str, Any] = {
    "title": {"type": "string", "maxLength": 500},
    "media_type": ENUM_TYPES,
    "original_title": _text(500),
    "year": nullable({"type": "integer", "minimum": 1800, "maximum": 2100}),
    "release_date": nullable(DAY),
    "formats": {"type": "array", "maxItems": 50, "items": {"type": "string", "maxLength": 100}},
    "overview": _text(20000),
    "runtime": nullable({"type": "integer", "minimum": 0, "maximum": 100_000}),
    "location": _text(255),
    "notes": _text(20000),
    "copies": {"type": "integer", "minimum": 1, "maximum": 100_000},
    "type_details": {"type": "object", "description": "The type's own fields (e.g. a book's publisher, pages).",
                     "additionalProperties": {"anyOf": [{"type": "string", "maxLength": 255},
                                                        {"type": "integer", "minimum": 0, "maximum": INT_MAX},
                                                        {"type": "null"}]}},
    "people": {"type": "array", "maxItems": 500, "items": PERSON_IN},
    "genres": {"type": "array", "maxItems": 100, "items": {"type": "string", "maxLength": 100}},
    "seasons": {"type": "array", "maxItems": 200, "items": SEASON_IN},
    "isbn": _text(40),
    "ean": _text(40),
    "asin": _text(40),
    "tmdb_id": nullable({"type": "integer", "minimum": 1, "maximum": INT_MAX}),
    "tmdb_media_type": nullable({"type": "string", "enum": ["movie", "tv"]}),
    "signed_by": _text(255),
    "signed_role": nullable({"type": "string", "enum": list(SIGNED_ROLES)}),
    "signed_on": nullable(DAY),
    "signed_at": _text(255),
}

STATE = obj({"rating": nullable({"type": "integer", "minimum": 0, "maximum": RATING_MAX}),
             "status": nullable({"type": "string", "enum": list(STATUSES)}),
             "watchlist": {"type": "boolean"}})

SCHEMAS: dict[str, Any] = {
    "Error": obj({"error": obj({
        "code": {"type": "string", "description": "Stable: bad_request, unauthorized, token_expired, forbidden, "
                                                  "not_found, feature_off, conflict, invalid_input, rate_limited…"},
        "message": {"type": "string", "description": "What went wrong and what to do, for a person."},
        "fields": {"type": "object", "additionalProperties": STRING,
                   "description": "Each bad field (or query parameter) with its message."},
    })}),
    "Health": obj({"status": {"type": "string", "enum": ["ok"]}, "version": STRING, "api": {"const": "v1"}}),
    "Me": obj({
        "id": ID, "email": STRING, "name": STRING, "role": {"type": "string", "enum": list(ROLES)},
        "auth": {"type": "string", "enum": ["token", "session"]},
        "scopes": {"type": "array", "items": {"type": "string", "enum": list(tokens.SCOPES)}},
        "token": nullable(obj({"id": ID, "name": STRING, "expires_at": TIME,
                               "scopes": {"type": "array", "items": STRING}})),
    }),
    "MediaInput": {**obj(MEDIA_FIELDS, required=["title"]), "description": "A new item: only `title` is needed."},
    "MediaPatch": {**obj(MEDIA_FIELDS, required=[]),
                   "description": "The fields to change; `people`, `genres` and `seasons` replace the whole list."},
    "Person": obj({"role": STRING, "name": STRING, "character": TEXT}),
    "Season": obj({"number": INT, "available_episodes": nullable(INT), "expected_episodes": nullable(INT),
                   "complete": {"type": "boolean"}}),
    "State": STATE,
    "StateInput": {**STATE, "required": [],
                   "description": "Your own rating, status and watchlist flag; what is left out becomes empty."},
    "Media": obj({
        "id": ID, "title": STRING, "media_type": ENUM_TYPES, "original_title": TEXT, "year": nullable(INT),
        "release_date": nullable(DAY), "formats": {"type": "array", "items": STRING}, "overview": TEXT,
        "runtime": nullable(INT), "rating": nullable({"type": "number"}), "location": TEXT, "notes": TEXT,
        "copies": INT, "type_details": {"type": "object"}, "people": {"type": "array", "items": ref("Person")},
        "genres": {"type": "array", "items": STRING}, "seasons": {"type": "array", "items": ref("Season")},
        "isbn": TEXT, "ean": TEXT, "asin": TEXT, "tmdb_id": nullable(INT), "tmdb_media_type": TEXT,
        "signed_by": TEXT, "signed_role": TEXT, "signed_on": nullable(DAY), "signed_at": TEXT,
        "import_source": TEXT, "added_by": nullable(ID), "created_at": TIME, "updated_at": TIME,
        "can_edit": {"type": "boolean", "description": "Whether you may change or delete it."},
        "my_state": nullable(ref("State")),
    }),
    "MediaSummary": obj({
        "id": ID, "title": STRING, "media_type": ENUM_TYPES, "year": nullable(INT),
        "formats": {"type": "array", "items": STRING}, "rating": nullable({"type": "number"}),
        "my_rating": nullable(INT), "byline": TEXT, "location": TEXT, "signed": {"type": "boolean"},
        "added_by": nullable(ID), "created_at": TIME, "can_edit": {"type": "boolean"},
    }),
    "MediaPage": page_of("MediaSummary", cursor=True),
    "BulkDelete": obj({"ids": {"type": "array", "minItems": 1, "maxItems": 500, "items": ID}}),
    "BulkResult": obj({"requested": COUNT, "deleted": COUNT, "skipped": COUNT, "message": STRING}),
    "Job": obj({
        "id": ID, "kind": {"type": "string", "enum": list(KINDS)}, "status": {"type": "string",
                                                                            "enum": list(JOB_STATUSES)},
        "source_name": TEXT, "total": COUNT, "processed": COUNT, "created": COUNT, "updated": COUNT,
        "skipped": COUNT, "failed": COUNT, "percent": {"type": "integer", "minimum": 0, "maximum": 100},
        "error": TEXT, "cancel_requested": {"type": "boolean"}, "created_by": nullable(ID), "created_at": TIME,
        "started_at": nullable(TIME), "finished_at": nullable(TIME),
    }),
    "JobStarted": obj({"job": ref("Job"), "started": {
        "type": "boolean", "description": "false: the same file (or Plex selection) is already being imported by "
                                          "you, and this is that job."}}),
    "JobPage": page_of("Job", cursor=False),
    "ImportRow": obj({
        "id": ID, "row_number": INT, "line": nullable(INT), "title": TEXT,
        "outcome": {"type": "string", "enum": list(OUTCOMES)}, "match_mode": TEXT, "matched_by": TEXT,
        "message": TEXT, "enrichment": TEXT,
        "media_id": {**nullable(ID), "description": "The item the row made or matched (a merge points it at the "
                                                    "surviving item); it stays when the item is deleted later."},
    }),
    "ImportRowPage": page_of("ImportRow", cursor=False),
    "CsvUpload": obj({
        "file": {"type": "string", "contentMediaType": "application/octet-stream",
                 "description": "The CSV file."},
        "mapping": {"type": "string", "description": (
            "Optional: a JSON object of our field → the file's column, e.g. {\"title\": \"Name\"}. Without it the "
            "columns are matched by their names, as the Import page preselects them. Our fields: "
            + ", ".join(f.name for f in csv_generic.FIELDS) + ".")},
        "default_type": {"type": "string", "enum": list(MEDIA_TYPES),
                         "description": "The type of rows that do not say (default: other)."},
    }, required=["file"]),
    "FileUpload": obj({"file": {"type": "string", "contentMediaType": "application/octet-stream",
                                "description": "The Delicious Library export (XML or CSV)."}}),
    "Member": obj({"id": ID, "email": STRING, "name": STRING, "role": {"type": "string", "enum": list(ROLES)},
                   "created_at": TIME, "last_login_at": nullable(TIME), "items_added": COUNT}),
    "MemberPage": page_of("Member", cursor=False),
    "Session": obj({"id": ID, "created_at": TIME, "last_seen_at": TIME, "expires_at": TIME, "ip": TEXT,
                    "user_agent": TEXT, "remember": {"type": "boolean"}}),
    "MemberDetail": obj({
        "id": ID, "email": STRING, "name": STRING, "role": {"type": "string", "enum": list(ROLES)},
        "created_at": TIME, "last_login_at": nullable(TIME), "items_added": COUNT, "items_rated": COUNT,
        "score": COUNT, "last_edit": nullable(TIME), "delete_blocked": TEXT,
        "sessions": {"type": "array", "items": ref("Session")},
    }),
    "RoleChange": obj({"role": {"type": "string", "enum": list(ROLES)}}),
    "MemberDeleted": obj({"id": ID, "items_kept": COUNT}),
    "Invitation": obj({
        "id": ID, "email": STRING, "role": {"type": "string", "enum": list(ROLES)},
        "status": {"type": "string", "enum": ["open", "used", "revoked", "expired"]}, "created_at": TIME,
        "expires_at": TIME, "used_at": nullable(TIME), "revoked_at": nullable(TIME), "created_by_name": TEXT,
        "used_by_name": TEXT,
    }),
    "InvitationPage": page_of("Invitation", cursor=False),
    "InvitationInput": obj({"email": {"type": "string", "format": "email", "maxLength": 254},
                            "role": {"type": "string", "enum": list(INVITE_ROLES)}}, required=["email"]),
    "InvitationCreated": obj({"invitation": ref("Invitation"), "link": {
        "type": "string", "description": "The registration link. Shown only in this answer: it is not stored."}}),
    "Activity": obj({
        "id": ID, "created_at": TIME, "action": STRING, "status": STRING, "http_status": nullable(INT),
        "actor_id": nullable(ID), "actor_email": TEXT, "who": STRING, "entity_type": TEXT, "entity_id": TEXT,
        "reason": TEXT, "method": STRING, "path": STRING, "ip": TEXT, "request_id": TEXT,
        "details": {"type": "object"},
    }),
    "ActivityPage": page_of("Activity", cursor=True),
    "Flag": obj({"key": STRING, "label": STRING, "description": STRING, "enabled": {"type": "boolean"},
                 "default": {"type": "boolean"}, "source": {"type": "string", "enum": ["env", "db", "default"]},
                 "locked": {"type": "boolean"}, "env_name": STRING, "env_error": TEXT, "updated_by": TEXT,
                 "updated_at": nullable(TIME)}),
    "FlagList": obj({"items": {"type": "array", "items": ref("Flag")},
                     "read_only": {"type": "boolean"}}),
    "FlagInput": obj({"enabled": {"type": "boolean"}}),
    "FlagChanged": obj({"flag": ref("Flag"), "changed": {"type": "boolean"}}),
}

# Query parameters shared by the lists.
LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE}
PAGE = {"type": "integer", "minimum": 1, "maximum": 100_000}
SECTIONS = list(LIBRARY_SECTIONS)
SORT_NAMES = list(SORTS)
RESOLUTION_NAMES = list(RESOLUTIONS)
ACTIVITY_STATUSES = list(STATUS_CLASSES)
