"""collectZ: a self-hosted catalog for a household's media."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from collectz.config import Settings
from collectz.version import __version__

__all__ = ["create_app", "__version__"]


def create_app(overrides: Mapping[str, Any] | None = None, *, settings: Settings | None = None) -> Flask:
    """Build the app: settings, extensions, blueprints, error handlers. The only place an app is made."""
    from pathlib import Path

    from collectz import queue
    from collectz.extensions import csrf, db, limiter, migrate
    from collectz.schema import MIGRATIONS_DIR
    from collectz.services import flags
    from collectz.web import errors, features, limits, logexport, metrics, requestlog, sessions, setup

    settings = settings or Settings.from_env()
    for key, value in (overrides or {}).items():
        setattr(settings, key, value)
    settings.validate()
    flags.check_environment()

    app = Flask(__name__, template_folder="../templates", static_folder="../static",
                instance_path=settings.INSTANCE_PATH)
    app.config.update(settings.flask_config())
    Path(settings.INSTANCE_PATH).mkdir(parents=True, exist_ok=True)
    requestlog.configure_logging(settings.LOG_LEVEL)
    logexport.configure(settings)

    if settings.TRUST_PROXY_HOPS:
        hops = settings.TRUST_PROXY_HOPS
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops)  # type: ignore

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR), compare_type=True, render_as_batch=True)
    # First hooks: every answer, a CSRF refusal or a 429 included, gets a request id, a log line and a timing.
    requestlog.init_app(app)
    metrics.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    limits.init_app(app)
    queue.init_app(app)
    sessions.init_app(app)
    errors.init_app(app)
    setup.init_app(app)
    features.init_app(app)

    from collectz.blueprints.admin import bp as admin_bp
    from collectz.blueprints.api import bp as api_bp
    from collectz.blueprints.auth.views import bp as auth_bp
    from collectz.blueprints.core.views import bp as core_bp
    from collectz.blueprints.imports import bp as imports_bp
    from collectz.blueprints.integrations import bp as integrations_bp
    from collectz.blueprints.library import bp as library_bp

    for bp in (core_bp, auth_bp, library_bp, imports_bp, admin_bp, integrations_bp, api_bp):
        app.register_blueprint(bp)

    from collectz import cli

    cli.init_app(app)
    return app
