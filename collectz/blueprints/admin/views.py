"""Admin area: members and invitations (the full screens grow in the admin issue)."""

from __future__ import annotations

from flask import Blueprint, Response, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from collectz.blueprints.admin.forms import InviteForm
from collectz.extensions import db
from collectz.models import User
from collectz.security.permissions import require_admin
from collectz.services import invites
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@login_required
def _admins_only() -> None:
    require_admin(current_user, "open the admin area")


@bp.route("/", methods=["GET", "POST"])
def index() -> Response:
    form = InviteForm()
    invite_link = None
    if form.validate_on_submit():
        try:
            _invite, token = invites.create_invite(current_user._get_current_object(), form.email.data,
                                                   form.role.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            invite_link = url_for("auth.register", invite=token, _external=True)
            form = InviteForm(formdata=None)
    members = db.session.scalars(select(User).order_by(User.name, User.id).limit(200)).all()
    status = 422 if request.method == "POST" and form.errors else 200
    return htmx.render("admin/index.html", block="invite", status=status, form=form, members=members,
                       invite_link=invite_link)
