"""Items: add, view, edit, delete."""

from __future__ import annotations

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.library import bp
from collectz.blueprints.library.forms import MediaForm
from collectz.security.permissions import can_edit_media, require_writer
from collectz.services import media as media_service
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors


def _form_input(form: MediaForm) -> media_service.MediaInput:
    return media_service.MediaInput(
        title=form.title.data or "", media_type=form.media_type.data, original_title=form.original_title.data,
        year=form.year.data, overview=form.overview.data, location=form.location.data, notes=form.notes.data,
        copies=form.copies.data or 1, formats=(form.formats.data or "").split(","),
    )


@bp.route("/media/new", methods=["GET", "POST"])
def media_new() -> Response:
    require_writer(current_user, "add items")
    form = MediaForm()
    if form.validate_on_submit():
        try:
            media = media_service.create_media(current_user._get_current_object(), _form_input(form))
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            flash(f"Added {media.title}.", "success")
            return htmx.redirect(url_for("library.media_detail", media_id=media.id))
    return htmx.render("library/media_form.html", block="form", form=form, media=None,
                       status=422 if request.method == "POST" else 200)


@bp.route("/media/<int:media_id>")
def media_detail(media_id: int) -> Response:
    media = media_service.get_media(current_user, media_id)
    return htmx.render("library/media_detail.html", block="detail", media=media,
                       can_edit=can_edit_media(current_user, media))


@bp.route("/media/<int:media_id>/edit", methods=["GET", "POST"])
def media_edit(media_id: int) -> Response:
    media = media_service.get_media_for_edit(current_user, media_id)
    form = MediaForm(obj=media)
    if request.method == "GET":
        form.formats.data = ", ".join(media.formats or [])
    if form.validate_on_submit():
        try:
            media_service.update_media(current_user._get_current_object(), media_id, _form_input(form))
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            flash("Saved.", "success")
            return htmx.redirect(url_for("library.media_detail", media_id=media_id))
    return htmx.render("library/media_form.html", block="form", form=form, media=media,
                       status=422 if request.method == "POST" else 200)


@bp.route("/media/<int:media_id>/delete", methods=["GET", "POST"])
def media_delete(media_id: int) -> Response:
    media = media_service.get_media_for_edit(current_user, media_id)
    if request.method == "POST":
        title = media.title
        media_service.delete_media(current_user._get_current_object(), media_id)
        flash(f"Deleted {title}.", "success")
        return htmx.redirect(url_for("library.index"))
    return htmx.render("library/media_delete.html", block="confirm", media=media)
