"""Admin → Activity: the filtered, paginated log (a page, or the `tab` block for htmx) and its CSV export."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Response, request, stream_with_context
from flask_login import current_user

from collectz.blueprints.admin import bp
from collectz.services import activity as activity_service
from collectz.services.errors import InvalidInput
from collectz.web import htmx

FILTER_ARGS = ("q", "action", "entity", "user", "status", "from", "to")


@bp.route("/activity")
def activity() -> Response:
    actor = current_user._get_current_object()
    context: dict[str, Any] = {"errors": {}, "page": None}
    try:
        filters = activity_service.parse_filters(request.args)
        context["page"] = activity_service.activity_page(actor, filters, request.args.get("after"))
        context["values"], context["filters"] = filters.as_args(), filters
    except InvalidInput as exc:
        context["errors"] = exc.fields
        context["values"] = {name: request.args.get(name, "") for name in FILTER_ARGS}
        context["filters"] = None
    return htmx.render("admin/activity.html", block="tab", status=422 if context["errors"] else 200,
                       choices=activity_service.filter_choices(), status_classes=activity_service.STATUS_CLASSES,
                       **context)


@bp.route("/activity.csv")
def activity_export() -> Response:
    """The filtered log as a streamed CSV download (a bad filter is a 422 page, as on the list)."""
    filters = activity_service.parse_filters(request.args)
    chunks = activity_service.start_export(current_user._get_current_object(), filters)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    resp = Response(stream_with_context(chunks), mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="collectz-activity-{stamp}.csv"'
    return resp
