"""Library → Export: the view the user is on (section, search, filters, sort) as a CSV or JSON download."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import chain

from flask import Flask, Response, current_app, request
from flask_login import current_user

from collectz.blueprints.library import bp
from collectz.services import export as export_service
from collectz.services import queries

_MIMETYPES = {"csv": "text/csv", "json": "application/json"}


def _each_in_app_context(app: Flask, chunks: Iterator[str]) -> Iterator[str]:
    """The chunks after the first, each made in its own app context (its own database session). Nothing is held
    between chunks (unlike stream_with_context, which keeps the request context pushed until the body is done),
    so a download the client drops half-way is closed cleanly wherever it is garbage-collected."""
    while True:
        with app.app_context():
            chunk = next(chunks, None)
        if chunk is None:
            return
        yield chunk


def _download(fmt: str) -> Response:
    """Stream the export; its first chunk is made before the response starts (the view is found and the export
    recorded then, so a failure is an error page, not a cut-off file)."""
    params = queries.BrowseParams.from_args(request.args.get("section", "all"), request.args)
    exporter = export_service.export_csv if fmt == "csv" else export_service.export_json
    chunks = exporter(current_user._get_current_object(), params)
    first = next(chunks)
    body = chain([first], _each_in_app_context(current_app._get_current_object(), chunks))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    resp = Response(body, mimetype=_MIMETYPES[fmt])
    resp.headers["Content-Disposition"] = f'attachment; filename="collectz-{params.section}-{stamp}.{fmt}"'
    resp.headers["Cache-Control"] = "no-store"
    return resp


@bp.route("/export.csv")
def export_csv() -> Response:
    """The current view in the import template's columns (it imports back as the same items)."""
    return _download("csv")


@bp.route("/export.json")
def export_json() -> Response:
    """The current view with every stored field, as one JSON document."""
    return _download("json")
