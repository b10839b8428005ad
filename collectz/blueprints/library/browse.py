"""Browsing the library: the list (grid/table), search, filters, sort, keyset pages, bulk delete."""

from __future__ import annotations

from flask import Response, abort, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.library import bp
from collectz.models.media_types import LIBRARY_SECTIONS
from collectz.services import bulk, queries
from collectz.web import htmx
from collectz.web.forms import safe_next

VIEW_COOKIE = "library_view"
VIEW_COOKIE_AGE = 365 * 24 * 3600


def _view() -> tuple[str, bool]:
    """grid or table: asked for in the URL (and then remembered in a cookie), or remembered."""
    asked = request.args.get("view", "")
    if asked in queries.VIEWS:
        return asked, True
    remembered = request.cookies.get(VIEW_COOKIE, "")
    return (remembered if remembered in queries.VIEWS else queries.VIEWS[0]), False


def _browse(section: str, block: str) -> Response:
    if section not in LIBRARY_SECTIONS:
        abort(404)
    actor = current_user._get_current_object()
    params = queries.BrowseParams.from_args(section, request.args)
    view, chosen = _view()
    page = queries.browse(actor, params)
    options = None if htmx.is_fragment_request() else queries.filter_options()
    # The list's fragments are kept, the latest of each member's address, by everything they show: the same rows in
    # the same view render once (fifty cards cost more than the rest of a list request besides the database, and
    # the same few views are asked again and again). The rows hold the viewer's own ratings; the ids the viewer may
    # edit and whether they may select are the viewer's permissions on them.
    kept = (view, actor.can_write, page.total, tuple(page.rows), page.editable, page.next_cursor)
    resp = htmx.render_kept("library/index.html", block, actor.id, kept, section=section, params=params, page=page,
                            view=view, options=options, sorts=queries.SORTS, selectable=actor.can_write)
    if chosen:
        resp.set_cookie(VIEW_COOKIE, view, max_age=VIEW_COOKIE_AGE, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return resp


@bp.route("/", defaults={"section": "all"})
@bp.route("/<section>")
def index(section: str) -> Response:
    """A library section as a page; an htmx request gets the list block (count, rows, next-page link)."""
    return _browse(section, "item_list")


@bp.route("/<section>/more")
def index_more(section: str) -> Response:
    """The next rows only, appended by "Load more"; opened directly it is the same page as index."""
    return _browse(section, "page_rows")


@bp.route("/bulk/delete", methods=["POST"])
def bulk_delete() -> Response:
    """Delete the selected items: first a confirmation of what will be deleted and skipped, then the delete."""
    actor = current_user._get_current_object()
    ids = request.form.getlist("ids")
    back = safe_next(request.form.get("next"), url_for("library.index"))
    if request.form.get("confirm") != "yes":
        plan = bulk.plan_delete(actor, ids)
        return htmx.render("library/index.html", block="bulk_confirm", plan=plan, back=back, section="all")
    result = bulk.delete_media(actor, ids)
    flash(result.message, "success" if not result.skipped else "error")
    return htmx.redirect(back)
