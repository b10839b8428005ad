"""Admin → Queues (/admin/rq): the rq queues, their workers and failed jobs; retry or delete a failed job.

One template (admin/queues.html): a plain GET renders the page; an htmx GET the `tab` block, the `counts` block
(polled every 5 s) or the `drawer` block (one job). Every fragment URL is a full page when opened directly.
An unreachable Redis is said on the page (200), never a 500.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz import queue
from collectz.blueprints.admin import bp
from collectz.services import queues as service
from collectz.web import htmx

TEMPLATE = "admin/queues.html"


def _list_args() -> dict[str, str]:
    """The failed list's filter, carried by links and actions so they come back to the same list."""
    name = service.check_queue_name(request.args.get("queue"))
    return {"queue": name} if name else {}


def _render(block: str, job_id: str | None = None) -> Response:
    """The queues page or one of its blocks, from one context; the polled block reads counts only."""
    conn, args = queue.connection(), _list_args()
    context: dict[str, Any] = {"overview": None, "failed": None, "detail": None, "unavailable": None}
    try:
        context["overview"] = service.overview(conn)
        if block != "counts" or not htmx.is_fragment_request():
            context["failed"] = service.failed_jobs(conn, args.get("queue"), request.args.get("page", 1, type=int))
        if job_id is not None:
            context["detail"] = service.job_detail(conn, job_id)
    except service.QueueUnavailable as exc:
        context["unavailable"] = exc.message
    return htmx.render(TEMPLATE, block=block, list_args=args, queue_names=queue.QUEUE_NAMES,
                       embedded=queue.is_embedded(), **context)


@bp.route("/rq")
def queues() -> Response:
    return _render("tab")


@bp.route("/rq/counts")
def queues_counts() -> Response:
    return _render("counts")


@bp.route("/rq/jobs/<rq_job_id>")
def queue_job(rq_job_id: str) -> Response:
    return _render("drawer", rq_job_id)


@bp.route("/rq/jobs/<rq_job_id>/retry", methods=["POST"])
def queue_job_retry(rq_job_id: str) -> Response:
    info = service.retry_failed(current_user._get_current_object(), queue.connection(), rq_job_id)
    flash(f"Job {info.id} is back on the {info.queue} queue.", "success")
    return _after_action()


@bp.route("/rq/jobs/<rq_job_id>/delete", methods=["POST"])
def queue_job_delete(rq_job_id: str) -> Response:
    info = service.delete_failed(current_user._get_current_object(), queue.connection(), rq_job_id)
    flash(f"Failed job {info.id} was deleted.", "success")
    return _after_action()


def _after_action() -> Response:
    if htmx.is_fragment_request():
        return _render("tab")
    return htmx.redirect(url_for("admin.queues", **_list_args()))
