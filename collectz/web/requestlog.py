"""One structured log line per request, with a request id, from a hook that runs for every request."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from flask import Flask, Response, g, has_request_context, request

log = logging.getLogger("collectz.request")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(log_context())
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        if record.exc_info:
            key, text = exception_text(record.exc_info)
            entry[key] = text
        return json.dumps(entry, default=str)


def exception_text(exc_info: Any) -> tuple[str, str]:
    """("exc", the traceback); for the database being unreachable ("db_error", one line): an outage would otherwise
    fill the logs with identical tracebacks that say nothing the line does not."""
    from sqlalchemy.exc import InterfaceError, OperationalError

    exc = exc_info[1] if isinstance(exc_info, tuple) else None
    if isinstance(exc, (OperationalError, InterfaceError)):
        name, first = db_error_summary(exc, 300)
        return "db_error", f"{name}: {first}"
    return "exc", logging.Formatter().formatException(exc_info)


def db_error_summary(exc: Any, limit: int) -> tuple[str, str]:
    """A database error as (the driver's exception name, the first `limit` characters of its first line)."""
    cause = exc.orig if getattr(exc, "orig", None) is not None else exc
    return type(cause).__name__, (str(cause).strip().splitlines() or [""])[0][:limit]


def configure_logging(level: str) -> None:
    root = logging.getLogger("collectz")
    if not any(getattr(h, "_collectz", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(JsonFormatter())
        handler._collectz = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    # urllib3 logs whole request lines, query strings (provider API keys) included, at DEBUG: never let it.
    transport = logging.getLogger("urllib3")
    transport.setLevel(max(transport.level, logging.WARNING))


def request_id() -> str | None:
    return getattr(g, "request_id", None) if has_request_context() else None


def log_context() -> dict[str, Any]:
    """What ties a log line to its cause: the request id in a request, the rq job (id, function, ids) in a job."""
    if has_request_context():
        rid = getattr(g, "request_id", None)
        return {"request_id": rid} if rid else {}
    try:
        from rq import get_current_job

        job = get_current_job()
    except Exception:
        job = None
    if job is None:
        return {}
    # rq_*: a line's own "job_id" field (the import job's row id) keeps its meaning.
    context: dict[str, Any] = {"rq_job_id": job.id, "rq_job": job.func_name}
    if job.args and all(isinstance(arg, int) for arg in job.args):
        context["rq_job_args"] = list(job.args)  # only ids cross Redis: the sync job and chunk it works on
    return context


def init_app(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _log(resp: Response) -> Response:
        resp.headers["X-Request-ID"] = getattr(g, "request_id", "")
        _emit(resp.status_code)
        return resp

    @app.teardown_request
    def _log_unhandled(exc: BaseException | None) -> None:
        # Only for real requests (before_request ran) that ended without a response being logged.
        if getattr(g, "request_started", None) is not None and not getattr(g, "request_logged", False):
            _emit(500, error=repr(exc) if exc else None)


def _emit(status: int, error: str | None = None) -> None:
    if getattr(g, "request_logged", False):
        return
    g.request_logged = True
    started = getattr(g, "request_started", None)
    from flask_login import current_user

    user_id = getattr(current_user, "id", None) if getattr(g, "_login_user", None) is not None else None
    fields = {
        "request_id": getattr(g, "request_id", None),
        "method": request.method,
        "path": request.path,
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started else None,
        "user_id": user_id,
    }
    if error:
        fields["error"] = error
    log.info("request", extra={"fields": fields})
