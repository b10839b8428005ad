"""Form helpers shared by the blueprints."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask_wtf import FlaskForm

from collectz.services.errors import InvalidInput


def apply_errors(form: FlaskForm, exc: InvalidInput) -> None:
    """Show a service's field messages on the form (unknown fields go to the form's top)."""
    for field, message in exc.fields.items():
        target = getattr(form, field, None)
        if target is not None and hasattr(target, "errors"):
            target.errors = list(target.errors) + [message]
        else:
            form.form_errors.append(message)
    if not exc.fields and exc.message:
        form.form_errors.append(exc.message)


def safe_next(target: str | None, default: str) -> str:
    """Only a local path may be a post-login destination."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
