"""Look-up in the add/edit form: candidates for a title, ISBN or barcode (typed or photographed), and Apply.

The look-up box sits above the item form in `library/media_form.html` (block `lookup`, swapped into `#lookup`).
Apply posts the item form itself (its buttons belong to it through the `form` attribute), so what the person already
typed is kept: the candidate fills only empty fields unless "replace" is ticked, the filled fields are marked, and
nothing is saved until the person presses Save. Without JavaScript each step is a plain GET or POST and a full page.
"""

from __future__ import annotations

from typing import Any

from flask import Response, request
from flask_login import current_user
from werkzeug.datastructures import MultiDict

from collectz.blueprints.library import bp
from collectz.blueprints.library.forms import DEFAULT_TYPE, MediaForm, media_form, media_form_class
from collectz.models import Media
from collectz.models.media_types import MEDIA_TYPES
from collectz.security.permissions import require_writer
from collectz.services import lookup as lookup_service
from collectz.services import media as media_service
from collectz.services.lookup import LookupResult, PhotoError
from collectz.web import htmx

TEMPLATE = "library/media_form.html"
TRUE = ("1", "on", "true", "yes")


def _media() -> Media | None:
    """The item being edited (`media_id`), which the actor must be allowed to change; None on the add form."""
    media_id = request.values.get("media_id", type=int)
    return None if media_id is None else media_service.get_media_for_edit(current_user, media_id)


def _kind(media: Media | None) -> str:
    """The form's media type: the item form's select (htmx includes it), else the box's own hidden copy."""
    for name in ("media_type", "lookup_type"):
        value = request.values.get(name)
        if value in MEDIA_TYPES:
            return value
    return media.media_type if media is not None else DEFAULT_TYPE


def _blank_form(kind: str, media: Media | None) -> MediaForm:
    """The form around the box on a full page: the item as saved, or a blank form of the type asked for."""
    if media is not None:
        return media_form(None, media)
    form = media_form_class(kind)(formdata=None)
    form.media_type.data = kind
    return form


def _render_box(result: LookupResult, media: Media | None, kind: str, status: int = 200) -> Response:
    """The look-up box with its results: the fragment, or the add/edit page around it."""
    form = _blank_form(kind, media)
    form.pad_seasons()
    return htmx.render(TEMPLATE, block="lookup", status=status, form=form, media=media, lookup=result,
                       lookup_rows=lookup_service.shown(result))


@bp.route("/lookup")
def lookup() -> Response:
    """Candidates for what was typed in the box (or, with htmx, in the Title field when the box is empty)."""
    require_writer(current_user, "add items")
    media = _media()
    kind = _kind(media)
    term = request.args.get("q", "").strip() or request.args.get("title", "")
    result = lookup_service.find(kind, term, year=request.args.get("year", type=int))
    return _render_box(result, media, kind)


@bp.route("/lookup/photo", methods=["POST"])
def lookup_photo() -> Response:
    """A photo of a barcode (or, with cover recognition set up, of a cover) → candidates, or why not."""
    require_writer(current_user, "add items")
    media = _media()
    kind = _kind(media)
    upload = request.files.get("photo")
    if upload is None or not upload.filename:
        result = LookupResult(media_type=kind, kind="photo", notice="Choose or take a photo first.")
        return _render_box(result, media, kind, status=422)
    try:
        result = lookup_service.read_photo(kind, upload.read(lookup_service.PHOTO_MAX_BYTES + 1))
    except PhotoError as exc:
        result = LookupResult(media_type=kind, kind="photo", problems=[exc.message])
        return _render_box(result, media, kind, status=422)
    return _render_box(result, media, kind)


@bp.route("/lookup/apply", methods=["POST"])
def lookup_apply() -> Response:
    """The item form again with the candidate's values in its empty fields (all, with "replace"), marked."""
    require_writer(current_user, "add items")
    media = _media()
    candidate = lookup_service.candidate_from_token(request.form.get("candidate", ""))
    candidate, problems = lookup_service.complete(candidate)
    form, filled = _filled_form(request.form, media, lookup_service.form_values(candidate),
                                overwrite=request.form.get("overwrite", "").lower() in TRUE)
    form.pad_seasons()
    result = LookupResult(media_type=form.media_kind, problems=problems)
    source = lookup_service.provider_name(candidate.provider)
    return htmx.render(TEMPLATE, block="form", form=form, media=media, lookup=result, lookup_rows=[],
                       lookup_filled=dict.fromkeys(filled, source), lookup_source=source,
                       lookup_title=candidate.title)


def _filled_form(posted: MultiDict[str, Any], media: Media | None, values: dict[str, str], *,
                 overwrite: bool) -> tuple[MediaForm, list[str]]:
    """The posted form with `values` merged in, and the names of the fields that took a value.

    A new item takes the candidate's type; an item being edited keeps its type unless "replace" is ticked.
    """
    merged = MultiDict(posted)
    for name in ("candidate", "overwrite", "csrf_token"):
        merged.poplist(name)
    filled: list[str] = []
    kind = merged.get("media_type") if merged.get("media_type") in MEDIA_TYPES else None
    wanted = values.get("media_type")
    if wanted and wanted != kind and (media is None or overwrite or kind is None):
        merged["media_type"] = wanted
        filled.append("media_type")
    for name, value in values.items():
        if name != "media_type" and (overwrite or not (merged.get(name) or "").strip()):
            merged[name] = value
            filled.append(name)
    form = media_form(merged, media)
    return form, [name for name in filled if form.has(name)]
