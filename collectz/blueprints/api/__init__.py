"""The JSON API, v1: the catalog for scripts, home automation and apps, with the same services (and so the same
rules) as the pages. Declared in spec.py-decorated views: core.py (health, me, the OpenAPI document), media.py,
imports.py and admin.py.
"""

from __future__ import annotations

from flask import Blueprint, Response

from collectz.config import current_settings
from collectz.extensions import client_ip, csrf, limiter

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# CSRF is checked by the blueprint's own hook: for session requests only (a token request has no cookie to abuse).
csrf.exempt(bp)
# Guessing tokens costs like guessing passwords: failed authentications share the sign-in limit per address.
limiter.limit(lambda: current_settings().LOGIN_LIMIT_PER_IP, key_func=client_ip, scope="api-auth",
              deduct_when=lambda resp: resp.status_code == 401, override_defaults=False)(bp)


@bp.record_once
def _install(state) -> None:  # type: ignore[no-untyped-def]
    from collectz.blueprints.api import auth

    auth.install(state.app)


@bp.before_request
def _before() -> Response | None:
    from collectz.blueprints.api import auth

    return auth.authenticate()


# Registers the routes.
from collectz.blueprints.api import admin, core, imports, media  # noqa: E402,F401
