"""Admin → Members (the full tab with the member drawer is being built)."""

from __future__ import annotations

from flask import Response
from sqlalchemy import select

from collectz.blueprints.admin import bp
from collectz.extensions import db
from collectz.models import User
from collectz.web import htmx


@bp.route("/members")
def members() -> Response:
    rows = db.session.scalars(select(User).order_by(User.name, User.id).limit(200)).all()
    return htmx.render("admin/members.html", block="tab", members=rows)
