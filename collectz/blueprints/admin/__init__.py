"""Admin area: members (members.py), invitations (invitations.py), activity (activity.py), flags (flags.py),
queues (queues.py), backup (backup.py)."""

from flask import Blueprint, Response, redirect, url_for
from flask_login import current_user, login_required

from collectz.security.permissions import require_admin

bp = Blueprint("admin", __name__, url_prefix="/admin")

TABS = (
    ("members", "Members", "/admin/members"),
    ("invitations", "Invitations", "/admin/invitations"),
    ("activity", "Activity", "/admin/activity"),
    ("flags", "Flags", "/admin/flags"),
    ("queues", "Queues", "/admin/rq"),
    ("integrations", "Integrations", "/admin/integrations"),
    ("backup", "Backup", "/admin/backup"),
)


@bp.before_request
@login_required
def _admins_only() -> None:
    require_admin(current_user, "open the admin area")


@bp.context_processor
def _admin_tabs() -> dict:
    return {"admin_tabs": TABS}


@bp.route("/")
def index() -> Response:
    return redirect(url_for("admin.members"))


from collectz.blueprints.admin import activity, credentials, flags, invitations, members  # noqa: E402,F401,I001
from collectz.blueprints.admin import queues  # noqa: E402,F401
from collectz.blueprints.admin import backup  # noqa: E402,F401
