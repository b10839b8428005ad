"""Browsing the library: the list (grid/table), search, filters, sort, keyset pages, bulk delete."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from flask import Response, abort, flash, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup

from collectz.blueprints.library import bp
from collectz.models.media_types import LIBRARY_SECTIONS
from collectz.services import bulk, queries
from collectz.web import htmx
from collectz.web.forms import safe_next

VIEW_COOKIE = "library_view"
VIEW_COOKIE_AGE = 365 * 24 * 3600
ROWS_KEPT = 128  # rendered pages of rows kept per process


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
    resp = htmx.render("library/index.html", block=block, section=section, params=params, page=page, view=view,
                       options=options, sorts=queries.SORTS, selectable=actor.can_write)
    if chosen:
        resp.set_cookie(VIEW_COOKIE, view, max_age=VIEW_COOKIE_AGE, httponly=True, samesite="Lax",
                        secure=request.is_secure)
    return resp


_rows_lock = threading.Lock()
_rows_kept: OrderedDict[Any, Markup] = OrderedDict()


@bp.app_template_global()
def library_rows(page: queries.BrowsePage, view: str, selectable: bool, section: str,
                 params: queries.BrowseParams) -> Markup:
    """A page's rows (library/_browse_rows.html) as HTML, kept per process: the HTML is made from exactly what the
    key holds (the rows, with the viewer's own ratings, which of them the viewer may edit, the view, the next page's
    cursor, the app's address prefix), so the same rows in the same view render once. Rendering fifty cards costs
    more than the rest of a list request besides the database, and the same few views are asked again and again."""
    key = (request.script_root, view, selectable, section, params, tuple(page.rows), page.editable,
           page.next_cursor)
    with _rows_lock:
        html = _rows_kept.get(key)
        if html is not None:
            _rows_kept.move_to_end(key)
            return html
    html = Markup(render_template("library/_browse_rows.html", page=page, view=view, selectable=selectable,
                                  section=section, params=params))
    with _rows_lock:
        _rows_kept[key] = html
        while len(_rows_kept) > ROWS_KEPT:
            _rows_kept.popitem(last=False)
    return html


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
