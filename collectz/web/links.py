"""Links that leave the app (in an e-mail, a chat message, a copied invitation): absolute, on the address members
use."""

from __future__ import annotations

from typing import Any

from flask import current_app, url_for


def public_url(endpoint: str, **values: Any) -> str:
    """PUBLIC_URL (the address members use, behind a proxy) + the endpoint's path; without it, this request's
    host."""
    public = current_app.config["COLLECTZ"].PUBLIC_URL.rstrip("/")
    if public:
        return public + url_for(endpoint, **values)
    return url_for(endpoint, **values, _external=True)


def invite_url(token: str) -> str:
    """Where an invited person registers."""
    return public_url("auth.register", invite=token)


def reset_url(token: str) -> str:
    """Where a member sets a new password with an admin's reset link."""
    return public_url("auth.reset", token=token)
