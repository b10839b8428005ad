"""Admin → Integrations (/admin/integrations): one card per provider; save, test, and Plex's sections.

A blueprint of its own beside `admin` (the page sits in the admin tab bar), guarded the same way: sign in first,
then admins only.
"""

from flask import Blueprint
from flask_login import current_user, login_required

from collectz.security.permissions import require_admin

bp = Blueprint("integrations", __name__, url_prefix="/admin/integrations")


@bp.before_request
@login_required
def _admins_only() -> None:
    require_admin(current_user, "change integrations")


@bp.context_processor
def _admin_tabs() -> dict:
    from collectz.blueprints.admin import TABS

    return {"admin_tabs": TABS}


from collectz.blueprints.integrations import views  # noqa: E402,F401  (registers the routes)
