"""Items: the list (the library page's search, filters and sorts, keyset pages), get, create, update, delete, bulk
delete, and your own rating and status. Every rule is the services' (collectz.services.media, queries, bulk,
user_state), exactly as for the pages.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for

from collectz.blueprints.api import auth, outputs
from collectz.blueprints.api.inputs import INT_MAX, MISSING, Reader, given, json_body
from collectz.blueprints.api.schemas import (
    LIMIT,
    MEDIA_FIELDS,
    RESOLUTION_NAMES,
    SECTIONS,
    SORT_NAMES,
    ref,
)
from collectz.blueprints.api.spec import Param, operation, read_query
from collectz.models import Media
from collectz.models.media_types import MEDIA_TYPES, SIGNED_ROLES
from collectz.security.permissions import require_writer
from collectz.services import bulk, queries, user_state
from collectz.services import media as media_service
from collectz.services.errors import InvalidInput
from collectz.services.media import MediaInput, SeasonInput
from collectz.services.people import Credit

READ, WRITE = "media:read", "media:write"

_TEXTS = {"original_title": 500, "overview": 20000, "location": 255, "notes": 20000, "isbn": 40, "ean": 40,
          "asin": 40, "signed_by": 255, "signed_at": 255}
_INTS = ("year", "runtime", "copies", "tmdb_id")

LIST_QUERY = (
    Param("q", {"type": "string", "maxLength": 200},
          "Search: every word occurs in the title, people, series, notes or identifiers; an ISBN, EAN or UPC "
          "finds its item."),
    Param("section", {"type": "string", "enum": SECTIONS}, "A library section (default all)."),
    Param("format", {"type": "string", "maxLength": 100}, "An owned format, e.g. Blu-ray."),
    Param("year_from", {"type": "integer", "minimum": 1000, "maximum": 3000}),
    Param("year_to", {"type": "integer", "minimum": 1000, "maximum": 3000}),
    Param("genre", {"type": "string", "maxLength": 100}),
    Param("director", {"type": "string", "maxLength": 100}, "Part of a director's name."),
    Param("cast", {"type": "string", "maxLength": 100}, "Part of a cast member's name."),
    Param("author", {"type": "string", "maxLength": 100}, "Part of an author's or writer's name."),
    Param("platform", {"type": "string", "maxLength": 100}, "A game's platform."),
    Param("resolution", {"type": "string", "enum": RESOLUTION_NAMES}),
    Param("rating_min", {"type": "number", "minimum": 0, "maximum": 10}),
    Param("rating_max", {"type": "number", "minimum": 0, "maximum": 10}),
    Param("my_rating_min", {"type": "integer", "minimum": 0, "maximum": 10}),
    Param("my_rating_max", {"type": "integer", "minimum": 0, "maximum": 10}),
    Param("location", {"type": "string", "maxLength": 255}),
    Param("signed", {"type": "boolean"}, "Signed copies only."),
    Param("sort", {"type": "string", "enum": SORT_NAMES}, "Default title."),
    Param("dir", {"type": "string", "enum": ["asc", "desc"]}, "Default: the sort's own direction."),
    Param("limit", LIMIT, f"Items per page (default {queries.DEFAULT_PER_PAGE})."),
    Param("cursor", {"type": "string", "maxLength": 1000}, "The `next` of the previous page."),
)


def _browse_args() -> dict[str, str]:
    """The query, type-checked, as the library page's arguments (limit → per_page, cursor → after)."""
    names = {"limit": "per_page", "cursor": "after"}
    return {names.get(name, name): ("1" if value else "") if isinstance(value, bool) else str(value)
            for name, value in read_query(LIST_QUERY).items()}


@operation("GET", "/media", summary="List and search items", scope=READ, tag="media", query=LIST_QUERY,
           description="The library page's list: the same search, filters and sorts, in keyset pages. Pass the "
                       "answer's `next` as `cursor` for the next page (with the same other parameters).",
           responses={200: ("A page of items.", ref("MediaPage"))})
def media_list() -> Response:
    args = _browse_args()
    params = queries.BrowseParams.from_args(args.get("section", "all"), args)
    if params.after and queries.decode_cursor(params) is None:
        message = "This cursor does not belong to this sort: start again without it."
        raise InvalidInput(message, fields={"cursor": message})
    actor = auth.actor()
    return jsonify(outputs.media_page(queries.browse(actor, params)))


def _detail(media_id: int) -> dict[str, Any]:
    return outputs.media(media_service.get_detail(auth.actor(), media_id))


@operation("GET", "/media/{media_id}", summary="One item", scope=READ, tag="media",
           responses={200: ("The item, with its people, genres, seasons and your own state.", ref("Media"))})
def media_get(media_id: int) -> Response:
    return jsonify(_detail(media_id))


def _credits(r: Reader, raw: list[dict[str, Any]]) -> list[Credit]:
    credits = []
    for entry in raw:
        role, name, character = entry.get("role"), entry.get("name"), entry.get("character")
        if set(entry) - {"role", "name", "character"} or not isinstance(role, str) or not isinstance(name, str) \
                or not name.strip() or not (character is None or isinstance(character, str)):
            r.errors.setdefault("people", "Each person is {\"role\", \"name\", \"character\" (optional)}.")
            return []
        credits.append(Credit(name, role, character))
    return credits


def _seasons(r: Reader, raw: list[dict[str, Any]]) -> list[SeasonInput]:
    seasons = []
    for entry in raw:
        s = Reader(entry, json=True, known=("number", "available_episodes", "expected_episodes", "complete"))
        number = s.integer("number", nullable=False, maximum=10_000)
        available = s.integer("available_episodes", maximum=100_000)
        expected = s.integer("expected_episodes", maximum=100_000)
        complete = s.boolean("complete")
        if s.errors or number is MISSING:
            r.errors.setdefault("seasons", "Each season is {\"number\", \"available_episodes\", "
                                           "\"expected_episodes\", \"complete\"} with whole numbers.")
            return []
        seasons.append(SeasonInput(number, given(available), given(expected), bool(given(complete, False))))
    return seasons


def _details(r: Reader, raw: dict[str, Any]) -> dict[str, Any]:
    for key, value in raw.items():
        if not (value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)
                                                            and 0 <= value <= INT_MAX)):
            r.errors.setdefault(key, "Must be text, a whole number or null.")
    return raw


def _read_media(body: dict[str, Any]) -> dict[str, Any]:
    """The item fields a body gives, type-checked (MediaInput's names; absent fields are absent)."""
    r = Reader(body, json=True, known=MEDIA_FIELDS)
    values: dict[str, Any] = {"title": r.text("title", nullable=False, max_length=500),
                              "media_type": r.choice("media_type", MEDIA_TYPES),
                              "release_date": r.day("release_date"), "signed_on": r.day("signed_on"),
                              "formats": r.text_list("formats", max_items=50, max_length=100),
                              "genres": r.text_list("genres", max_items=100, max_length=100),
                              "tmdb_media_type": r.choice("tmdb_media_type", ("movie", "tv"), nullable=True),
                              "signed_role": r.choice("signed_role", SIGNED_ROLES, nullable=True)}
    for name, limit in _TEXTS.items():
        values[name] = r.text(name, max_length=limit)
    for name in _INTS:
        values[name] = r.integer(name, nullable=name != "copies")
    people, seasons, details = r.objects("people"), r.objects("seasons", max_items=200), r.mapping("type_details")
    values["people"] = people if people is MISSING else _credits(r, people)
    values["seasons"] = seasons if seasons is MISSING else _seasons(r, seasons)
    values["type_details"] = details if details is MISSING else _details(r, details)
    r.done()
    return {name: value for name, value in values.items() if value is not MISSING}


def _as_input(values: dict[str, Any], base: MediaInput | None = None) -> MediaInput:
    """A MediaInput: the given values over the item's current ones (update) or the defaults (create)."""
    data = base or MediaInput(title="")
    for name, value in values.items():
        setattr(data, name, value)
    return data


def _current(media: Media) -> MediaInput:
    """The item as MediaInput (what an update starts from); people, genres and seasons are kept unless given."""
    return MediaInput(
        title=media.title, media_type=media.media_type, original_title=media.original_title, year=media.year,
        release_date=media.release_date, formats=list(media.formats or []), overview=media.overview,
        runtime=media.runtime, location=media.location, notes=media.notes, copies=media.copies,
        type_details=dict(media.type_details or {}), isbn=media.isbn13, ean=media.ean13, asin=media.asin,
        tmdb_id=media.tmdb_id, tmdb_media_type=media.tmdb_media_type, signed_by=media.signed_by,
        signed_role=media.signed_role, signed_on=media.signed_on, signed_at=media.signed_at)


@operation("POST", "/media", summary="Add an item", scope=WRITE, tag="media", body=ref("MediaInput"),
           description="Needs a writer's role (admin or member). Identifiers are normalised (ISBN-10 → ISBN-13, "
                       "UPC-A → EAN-13) and every bad field is named in one 422.",
           responses={201: ("The new item (its address is in Location).", ref("Media"))})
def media_create() -> Response:
    actor = auth.actor()
    require_writer(actor, "add items")  # the role before the body, as the page's form does
    values = _read_media(json_body())
    created = media_service.create_media(actor, _as_input(values))
    resp = jsonify(_detail(created.id))
    resp.status_code = 201
    resp.headers["Location"] = url_for("api.media_get", media_id=created.id)
    return resp


@operation("PATCH", "/media/{media_id}", summary="Change an item", scope=WRITE, tag="media",
           body=ref("MediaPatch"),
           description="Only the fields given change. A member may change the items they added; an admin any item. "
                       "Changing `media_type` without `type_details` drops the old type's details.",
           responses={200: ("The changed item.", ref("Media"))})
def media_update(media_id: int) -> Response:
    actor = auth.actor()
    current = media_service.get_media_for_edit(actor, media_id)
    values = _read_media(json_body())
    base = _current(current)
    if values.get("media_type", base.media_type) != base.media_type and "type_details" not in values:
        base.type_details = {}
    media_service.update_media(actor, media_id, _as_input(values, base))
    return jsonify(_detail(media_id))


@operation("DELETE", "/media/{media_id}", summary="Delete an item", scope=WRITE, tag="media",
           description="A member may delete the items they added; an admin any item.",
           responses={204: ("Deleted.", None)})
def media_delete(media_id: int) -> Response:
    media_service.delete_media(auth.actor(), media_id)
    return Response(status=204)


@operation("POST", "/media/bulk-delete", summary="Delete several items", scope=WRITE, tag="media",
           body=ref("BulkDelete"),
           description=f"Up to {bulk.MAX_ITEMS} ids. Items you may not delete (or that are gone) are skipped and "
                       "counted, not an error.",
           responses={200: ("What was deleted and skipped.", ref("BulkResult"))})
def media_bulk_delete() -> Response:
    actor = auth.actor()
    require_writer(actor, "delete items")
    r = Reader(json_body(), json=True, known=("ids",))
    ids = r.ids("ids")
    r.done()
    result = bulk.delete_media(actor, ids)
    return jsonify(requested=result.requested, deleted=result.deleted, skipped=result.skipped,
                   message=result.message)


@operation("GET", "/media/{media_id}/state", summary="Your rating and status of an item", scope=READ,
           tag="media", responses={200: ("Your own rating, status and watchlist flag (empty if none).", ref("State"))})
def media_state_get(media_id: int) -> Response:
    actor = auth.actor()
    media_service.get_media(actor, media_id)
    return jsonify(outputs.state(user_state.get_state(actor, media_id)))


@operation("PUT", "/media/{media_id}/state", summary="Set your rating and status of an item", scope=WRITE,
           tag="media", body=ref("StateInput"),
           description="Your own rating (0–10), status and watchlist flag; all empty removes them. Viewers keep "
                       "none.",
           responses={200: ("Your state now.", ref("State"))})
def media_state_put(media_id: int) -> Response:
    actor = auth.actor()
    user_state.media_for_state(actor, media_id)
    r = Reader(json_body(), json=True, known=("rating", "status", "watchlist"))
    rating, status = r.integer("rating", maximum=user_state.RATING_MAX), r.choice(
        "status", user_state.STATUSES, nullable=True)
    watchlist = r.boolean("watchlist")
    r.done()
    saved = user_state.set_state(actor, media_id, user_state.StateInput(given(rating), given(status),
                                                                          bool(given(watchlist, False))))
    return jsonify(outputs.state(saved))
