"""Admin → Backup (/admin/backup): download a full backup archive; see the automatic pre-migration backups.

The download is a plain form POST (no htmx: the browser saves the answer as a file). The archive is built into an
anonymous temporary file in the instance folder first, so a failure is a page with its reason (never a cut-off
file), and the file is gone as soon as the response is closed. Restoring stays a command (`flask backup restore`).
"""

from __future__ import annotations

from flask import Response, send_file
from flask_login import current_user

from collectz.blueprints.admin import bp
from collectz.services import backup as service
from collectz.web import htmx

TEMPLATE = "admin/backup.html"


def _render(status: int = 200, error: str | None = None) -> Response:
    return htmx.render(TEMPLATE, block="tab", status=status, error=error, automatic=service.automatic_backups(),
                       keep=service.KEEP_AUTOMATIC)


@bp.route("/backup")
def backup() -> Response:
    return _render()


@bp.route("/backup/download", methods=["POST"])
def backup_download() -> Response:
    try:
        handle, name, summary = service.build_download(current_user._get_current_object())
    except service.BackupError as exc:
        return _render(503, exc.message)
    resp = send_file(handle, mimetype="application/x-tar", as_attachment=True, download_name=name)
    resp.content_length = summary.size
    resp.headers["Cache-Control"] = "no-store"
    return resp
