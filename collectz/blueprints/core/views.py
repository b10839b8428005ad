"""Home and health."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect, url_for
from flask_login import current_user
from sqlalchemy import text

from collectz import queue
from collectz.extensions import db
from collectz.version import __version__, git_sha

bp = Blueprint("core", __name__)


@bp.route("/")
def index() -> Response:
    if current_user.is_authenticated:
        return redirect(url_for("library.index"))
    return redirect(url_for("auth.login"))


@bp.route("/healthz")
def healthz() -> tuple[Response, int]:
    """Status, version, git sha, database and queue reachability; 503 when the database is down."""
    try:
        db.session.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:
        db.session.rollback()
        database = f"unreachable: {type(exc).__name__}"
    queue_state = "ok" if queue.reachable() else "unreachable"
    healthy = database == "ok"
    body = {
        "status": "ok" if healthy and queue_state == "ok" else ("degraded" if healthy else "down"),
        "version": __version__,
        "git_sha": git_sha(),
        "database": database,
        "database_backend": db.engine.dialect.name,
        "queue": queue_state,
        "queue_backend": "embedded" if queue.is_embedded() else "redis",
    }
    return jsonify(body), 200 if healthy else 503
