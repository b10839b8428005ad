"""Admin → Invitations: create (the link is shown once), list (open by default, ?show=all for history), revoke."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.admin import bp
from collectz.blueprints.admin.forms import InviteForm
from collectz.services import invites
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors
from collectz.web.links import invite_url

TEMPLATE = "admin/invitations.html"


def _list_args() -> dict[str, Any]:
    """The list's own query arguments, kept on links and on the revoke form."""
    return {"show": "all"} if request.args.get("show") == "all" else {}


def _render(form: InviteForm, status: int = 200, **extra: Any) -> Response:
    actor = current_user._get_current_object()
    show_all = bool(_list_args())
    page = invites.list_invites(actor, show_all=show_all, page=request.args.get("page", 1, type=int))
    return htmx.render(TEMPLATE, block="tab", status=status, form=form, page=page, show_all=show_all,
                       hidden=0 if show_all else invites.count_hidden(actor), list_args=_list_args(), **extra)


@bp.route("/invitations")
def invitations() -> Response:
    return _render(InviteForm(formdata=None))


@bp.route("/invitations", methods=["POST"])
def invitation_create() -> Response:
    form = InviteForm()
    if form.validate_on_submit():
        try:
            invite, token = invites.create_invite(current_user._get_current_object(), form.email.data,
                                                  form.role.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            # The raw token exists only in this response: no redirect (it would have to travel in a URL or
            # the session), and no caching anywhere.
            link = invite_url(token)
            resp = _render(InviteForm(formdata=None), status=201, invite_link=link, new_invite=invite)
            resp.headers["Cache-Control"] = "no-store"
            return resp
    return _render(form, status=422)


@bp.route("/invitations/<int:invite_id>/revoke", methods=["POST"])
def invitation_revoke(invite_id: int) -> Response:
    invite = invites.revoke_invite(current_user._get_current_object(), invite_id)
    flash(f"The invitation for {invite.email} was revoked: its link no longer works.", "success")
    if htmx.is_fragment_request():
        return _render(InviteForm(formdata=None))
    return htmx.redirect(url_for("admin.invitations", **_list_args()))
