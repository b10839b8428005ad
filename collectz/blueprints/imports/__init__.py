"""The imports blueprint: upload, map, preview, start; job pages with live progress; history."""

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("imports", __name__, url_prefix="/imports")


@bp.before_request
@login_required
def _members_only() -> None:
    return None


from collectz.blueprints.imports import views  # noqa: E402,F401  (registers the routes)
