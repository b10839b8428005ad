"""Admin → a member's password: one-time reset links, invalidating them, requiring a new password.

The controls live in `admin/_member_credentials.html`, included in the member drawer; they answer htmx with
that panel (the `panel` block of admin/member_credentials.html) and plain posts with a redirect back to where
they came from, except creating a link: its answer is the only place the link is ever shown.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, make_response, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import AnyOf, Length

from collectz.blueprints.admin import bp
from collectz.models import User
from collectz.services import resets
from collectz.web import htmx
from collectz.web.forms import safe_next
from collectz.web.links import reset_url

TEMPLATE = "admin/member_credentials.html"


class CredentialsForm(FlaskForm):
    """Every control posts `next`: the page to go back to without JavaScript (the drawer it sits in)."""

    next = HiddenField(validators=[Length(max=500)])


class DeliveredForm(CredentialsForm):
    how = HiddenField(validators=[AnyOf(["copied", "marked"])], default="marked")


class MustResetForm(CredentialsForm):
    required = HiddenField(validators=[AnyOf(["1", "0"])])


@bp.context_processor
def _credential_status() -> dict[str, Any]:
    return {"credential_status": resets.status_for}


def _actor() -> User:
    return current_user._get_current_object()


def _back(form: CredentialsForm, member: User) -> str:
    return safe_next(form.next.data, url_for("admin.member_credentials", member_id=member.id))


def _render(member: User, back: str, status: int = 200, **extra: Any) -> Response:
    return htmx.render(TEMPLATE, block="panel", status=status, member=member, credentials_back=back, **extra)


def _done(form: CredentialsForm, member: User, message: str) -> Response:
    flash(message, "success")
    if htmx.is_fragment_request():
        return _render(member, _back(form, member))
    return htmx.redirect(_back(form, member))


@bp.route("/members/<int:member_id>/credentials")
def member_credentials(member_id: int) -> Response:
    member = resets.get_member(_actor(), member_id)
    return htmx.render(TEMPLATE, block="tab", member=member, credentials_back=request.path)


@bp.route("/members/<int:member_id>/reset-links", methods=["POST"])
def member_reset_create(member_id: int) -> Response:
    form = CredentialsForm()
    member = resets.get_member(_actor(), member_id)
    reset, token = resets.create_link(_actor(), member)
    # Shown in this answer only: a full page without htmx (a redirect would have to carry the token).
    return htmx.render(TEMPLATE, block="panel", member=member, credentials_back=_back(form, member),
                       reset=reset, reset_url=reset_url(token))


@bp.route("/members/<int:member_id>/reset-links/<int:reset_id>/delivered", methods=["POST"])
def member_reset_delivered(member_id: int, reset_id: int) -> Response:
    form = DeliveredForm()
    member = resets.get_member(_actor(), member_id)
    how = form.how.data if form.validate_on_submit() else "marked"
    resets.mark_delivered(_actor(), member, reset_id, how)
    if how == "copied":  # the Copy button's background request: the link stays on screen
        return make_response("", 204)
    return _done(form, member, f"Noted: the reset link was sent to {member.name}.")


@bp.route("/members/<int:member_id>/reset-links/invalidate", methods=["POST"])
def member_reset_invalidate(member_id: int) -> Response:
    form = CredentialsForm()
    member = resets.get_member(_actor(), member_id)
    count = resets.invalidate_links(_actor(), member)
    return _done(form, member, f"{count} reset link{'' if count == 1 else 's'} of {member.name} cancelled.")


@bp.route("/members/<int:member_id>/must-reset", methods=["POST"])
def member_must_reset(member_id: int) -> Response:
    form = MustResetForm()
    member = resets.get_member(_actor(), member_id)
    if not form.validate_on_submit():
        return _render(member, _back(form, member), status=422, must_reset_error="Choose on or off.")
    required = form.required.data == "1"
    resets.require_new_password(_actor(), member, required)
    message = (f"{member.name} must choose a new password before doing anything else." if required
               else f"{member.name} no longer has to choose a new password.")
    return _done(form, member, message)
