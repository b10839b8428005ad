"""Feature flags in the web layer: guard a view or a whole blueprint, and ask about a flag in a template.

A turned-off feature answers 404 with a page that says so ("this feature is turned off"), the same for every
role: to the household the feature does not exist right now, nobody was refused anything, so it is not a 403
and not a `permission.denied` event. The response carries an `X-Feature-Off: <key>` header so tests and
scripts can tell it from an ordinary 404.

    @bp.route("/imports")
    @require_feature("imports_ui")
    def index(): ...

    bp.before_request(feature_guard("imports_ui"))   # every route of a blueprint
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response

from collectz.services import flags
from collectz.web import htmx

F = TypeVar("F", bound=Callable[..., Any])

FEATURE_OFF_STATUS = 404


def feature_off_response(key: str) -> Response:
    """The "this feature is turned off" page (or its fragment for htmx; the API's JSON error under /api/)."""
    spec = flags.REGISTRY[key]
    message = (f"{spec.label} is turned off on this server. An admin can turn it on under Admin → Flags"
               f" (or with {flags.env_name(key)} in the server environment).")
    from collectz.blueprints.api import errors as api  # the API package's routes use this module

    if api.is_api_request():
        return api.error_response(FEATURE_OFF_STATUS, message, code="feature_off", headers={"X-Feature-Off": key})
    resp = htmx.render("errors/error.html", block="error", status=FEATURE_OFF_STATUS, code=FEATURE_OFF_STATUS,
                       title="This feature is turned off", message=message)
    resp.headers["X-Feature-Off"] = key
    return resp


def require_feature(key: str) -> Callable[[F], F]:
    """View decorator: the view runs only while the flag is on (checked on every request)."""
    if key not in flags.REGISTRY:
        raise LookupError(f"unknown feature flag {key!r}: add it to collectz.services.flags.REGISTRY")

    def decorate(view: F) -> F:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not flags.is_enabled(key):
                return feature_off_response(key)
            return view(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def feature_guard(key: str) -> Callable[[], Response | None]:
    """A before_request hook for a blueprint: `bp.before_request(feature_guard("imports_ui"))`.

    Register it after the blueprint's login hook so anonymous visitors are still sent to sign in first.
    """
    if key not in flags.REGISTRY:
        raise LookupError(f"unknown feature flag {key!r}: add it to collectz.services.flags.REGISTRY")

    def hook() -> Response | None:
        return None if flags.is_enabled(key) else feature_off_response(key)

    return hook


def init_app(app: Flask) -> None:
    """Templates may ask `feature_enabled("imports_ui")`; an unknown key fails loudly."""
    app.add_template_global(flags.is_enabled, "feature_enabled")
