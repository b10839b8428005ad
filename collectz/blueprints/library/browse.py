"""Browsing the library: the list (grid/table), search, filters, sort, pages."""

from __future__ import annotations

from flask import Response, abort, request

from collectz.blueprints.library import bp
from collectz.models.media_types import LIBRARY_SECTIONS
from collectz.services import queries
from collectz.web import htmx


@bp.route("/")
@bp.route("/<section>")
def index(section: str = "all") -> Response:
    if section not in LIBRARY_SECTIONS:
        abort(404)
    page = queries.library_page(section, request.args.get("page", 1, type=int))
    return htmx.render("library/index.html", block="item_list", section=section, page=page)
