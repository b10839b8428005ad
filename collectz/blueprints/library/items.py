"""Items: add, view, edit, delete, and each member's own rating and status.

A page and its drawer content come from the same templates: a plain request gets the page, an htmx
request the panel block, which swaps into `#drawer` on the library page or in place on a full page.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.library import bp
from collectz.blueprints.library.forms import MediaForm, StateForm, media_form
from collectz.models import Media, User
from collectz.models.media_types import TYPE_DETAILS
from collectz.security.permissions import require_writer
from collectz.services import media as media_service
from collectz.services import user_state
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors

MEDIA_CHANGED = "media-changed"
STATE_CHANGED = "media-state-changed"


def _actor() -> User:
    return current_user._get_current_object()


def _render_form(form: MediaForm, media: Media | None, block: str = "form") -> Response:
    form.pad_seasons()
    return htmx.render("library/media_form.html", block=block, status=form.response_status, form=form, media=media)


def _render_detail(media_id: int, block: str = "detail", status: int = 200, form: StateForm | None = None,
                   **extra: Any) -> Response:
    """The detail panel (or one of its blocks) with everything it shows."""
    detail = media_service.get_detail(_actor(), media_id)
    return htmx.render("library/media_detail.html", block=block, status=status, media=detail.media, detail=detail,
                       type_details=TYPE_DETAILS[detail.media.media_type],
                       state_form=form or StateForm(formdata=None, obj=detail.state), **extra)


def _detail_url(media_id: int) -> str:
    return url_for("library.media_detail", media_id=media_id)


@bp.route("/media/new", methods=["GET", "POST"])
def media_new() -> Response:
    require_writer(current_user, "add items")
    form = media_form(request.form if request.method == "POST" else request.args)
    created = form.save(lambda data: media_service.create_media(_actor(), data)) if form.is_save else None
    if created is not None:
        flash(f"Added {created.title}.", "success")
        return htmx.redirect(_detail_url(created.id))
    return _render_form(form, None)


@bp.route("/media/fields")
def media_fields() -> Response:
    """The type-specific part of the form for the chosen type (the type select asks for it)."""
    require_writer(current_user, "add items")
    return _render_form(media_form(request.args), None, block="type_fields")


@bp.route("/media/<int:media_id>")
def media_detail(media_id: int) -> Response:
    """The whole record: a page, or the drawer's content for the library list's links."""
    return _render_detail(media_id)


@bp.route("/media/<int:media_id>/edit", methods=["GET", "POST"])
def media_edit(media_id: int) -> Response:
    media = media_service.get_media_for_edit(current_user, media_id)
    form = media_form(request.form if request.method == "POST" else None, media)
    if form.is_save and form.save(lambda data: media_service.update_media(_actor(), media_id, data), media):
        flash(f"Saved {media.title}.", "success")
        if not htmx.is_fragment_request():
            return htmx.redirect(_detail_url(media_id))
        return htmx.trigger(_render_detail(media_id), MEDIA_CHANGED)
    return _render_form(form, media)


@bp.route("/media/<int:media_id>/delete", methods=["GET", "POST"])
def media_delete(media_id: int) -> Response:
    media = media_service.get_media_for_edit(current_user, media_id)
    if request.method == "POST":
        title = media.title
        media_service.delete_media(_actor(), media_id)
        flash(f"Deleted {title}.", "success")
        return htmx.redirect(url_for("library.index"))
    return htmx.render("library/media_delete.html", block="confirm", media=media)


@bp.route("/media/<int:media_id>/state", methods=["POST"])
def media_state(media_id: int) -> Response:
    """Save the member's own rating, status and watchlist flag."""
    user_state.media_for_state(_actor(), media_id)
    form = StateForm()
    if form.validate_on_submit():
        try:
            user_state.set_state(_actor(), media_id, form.to_input())
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            if not htmx.is_fragment_request():
                flash("Saved your rating and status.", "success")
                return htmx.redirect(_detail_url(media_id))
            return htmx.trigger(_render_detail(media_id, block="state", state_saved=True), STATE_CHANGED)
    return _render_detail(media_id, block="state", status=422, form=form)
