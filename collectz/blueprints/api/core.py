"""Health, who am I, and the OpenAPI document."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from sqlalchemy import text

from collectz.blueprints.api import auth, outputs
from collectz.blueprints.api.schemas import ref
from collectz.blueprints.api.spec import document, operation
from collectz.extensions import db
from collectz.services.errors import DomainError
from collectz.version import __version__


class Unavailable(DomainError):
    status = 503


@operation("GET", "/health", summary="Is the API up", scope=auth.PUBLIC, tag="core",
           description="Answers 200 while the API and its database answer (503 with an error otherwise).",
           responses={200: ("Up.", ref("Health"))}, errors=(503,))
def health() -> Response:
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:
        db.session.rollback()
        raise Unavailable("The database is unreachable.") from None
    return jsonify(status="ok", version=__version__, api="v1")


@operation("GET", "/me", summary="The account calling", scope=auth.SIGNED_IN, tag="core",
           description="Who the credentials belong to, and what they may do: a token's scopes after its owner's "
                       "role has been applied.",
           responses={200: ("The account.", ref("Me"))})
def me() -> Response:
    who = auth.caller()
    assert who.user is not None and who.via is not None
    return jsonify(outputs.me(who.user, who.via, who.scopes, who.token))


@operation("GET", "/openapi.json", summary="This API's OpenAPI 3.1 description", scope=auth.PUBLIC, tag="core",
           responses={200: ("The OpenAPI document.", {"type": "object"})})
def openapi() -> Response:
    return jsonify(document(current_app.config["COLLECTZ"].SESSION_COOKIE_NAME))
