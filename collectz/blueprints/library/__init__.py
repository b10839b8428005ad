"""The library blueprint: browse (browse.py), items (items.py), their images (covers.py), duplicates (duplicates.py)."""

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("library", __name__, url_prefix="/library")


@bp.before_request
@login_required
def _members_only() -> None:
    return None


# Registers the routes (Library → Review included).
from collectz.blueprints.library import browse, covers, duplicates, export, items, lookup, review  # noqa: E402,F401
