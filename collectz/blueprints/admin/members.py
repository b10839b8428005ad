"""Admin → Members: the list, the member drawer (role, counters, sessions), deletion.

One template (admin/members.html): a plain GET renders the page, an htmx GET the `tab` block (the list and
an empty drawer) or the `drawer` block (one member). The drawer URLs are full pages when opened directly.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.admin import bp
from collectz.blueprints.admin.forms import RoleForm
from collectz.services import members as service
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors

TEMPLATE = "admin/members.html"


def _actor() -> Any:
    return current_user._get_current_object()


def _render(block: str, member_id: int | None = None, status: int = 200, **extra: Any) -> Response:
    """The members page (list + drawer) or one of its blocks, from one context."""
    page = service.list_members(request.args.get("page", 1, type=int))
    detail = service.member_detail(_actor(), member_id) if member_id is not None else None
    if detail is not None:
        extra.setdefault("form", RoleForm(formdata=None, role=detail.user.role))
        # the credentials panel sends plain (no-JS) posts back to the drawer's own URL
        extra["credentials_back"] = url_for("admin.member_detail", member_id=member_id)
    return htmx.render(TEMPLATE, block=block, status=status, page=page, detail=detail,
                       member=detail.user if detail else None,
                       score_formula=service.SCORE_FORMULA, **extra)


@bp.route("/members")
def members() -> Response:
    return _render("tab")


@bp.route("/members/<int:member_id>")
def member_detail(member_id: int) -> Response:
    return _render("drawer", member_id)


@bp.route("/members/<int:member_id>/role", methods=["POST"])
def member_role(member_id: int) -> Response:
    form = RoleForm()
    if form.validate_on_submit():
        try:
            user = service.change_role(_actor(), member_id, form.role.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            flash(f"{user.name} is now {user.role}.", "success")
            if user.id == current_user.id and user.role != "admin":
                return htmx.redirect(url_for("library.index"))
            if htmx.is_fragment_request():
                return _render("drawer", member_id, saved=True)
            return htmx.redirect(url_for("admin.member_detail", member_id=member_id))
    return _render("drawer", member_id, status=422, form=form)


@bp.route("/members/<int:member_id>/delete", methods=["GET", "POST"])
def member_delete(member_id: int) -> Response:
    if request.method == "POST":
        name = service.get_member(member_id).name
        kept = service.delete_member(_actor(), member_id)
        flash(f"{name} was deleted. Their {kept} item{'' if kept == 1 else 's'} stay in the library "
              "as added by a former member.", "success")
        return htmx.redirect(url_for("admin.members"))
    return _render("drawer", member_id, confirm_delete=True)


@bp.route("/members/<int:member_id>/sessions/<int:session_id>/revoke", methods=["POST"])
def member_session_revoke(member_id: int, session_id: int) -> Response:
    service.revoke_member_session(_actor(), member_id, session_id)
    flash("That session was signed out.", "success")
    if htmx.is_fragment_request():
        return _render("drawer", member_id)
    return htmx.redirect(url_for("admin.member_detail", member_id=member_id))
