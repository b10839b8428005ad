"""Likely duplicates and merging two items into one."""

from __future__ import annotations

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.library import bp
from collectz.services import duplicates as duplicates_service
from collectz.services import merge as merge_service
from collectz.services.errors import InvalidInput
from collectz.web import htmx


@bp.route("/duplicates")
def duplicates() -> Response:
    page = duplicates_service.duplicates_page(current_user, request.args.get("page", 1, type=int))
    return htmx.render("library/duplicates.html", block="duplicate_list", page=page)


@bp.route("/duplicates/merge", methods=["GET", "POST"])
def merge() -> Response:
    actor = current_user._get_current_object()
    keep_id, merge_id = request.values.get("keep", type=int), request.values.get("merge", type=int)
    error = None
    if request.method == "POST":
        try:
            survivor = merge_service.merge_media(actor, keep_id, merge_id, request.form)
        except InvalidInput as exc:
            error = exc
        else:
            flash(f"Merged into {survivor.title}.", "success")
            return htmx.redirect(url_for("library.media_detail", media_id=survivor.id))
    plan = merge_service.plan_merge(actor, keep_id, merge_id, request.form)
    return htmx.render("library/merge.html", block="merge", plan=plan, error=error, status=422 if error else 200)
