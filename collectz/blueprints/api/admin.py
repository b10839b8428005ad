"""Admin: members (role, deletion), invitations, the activity log and feature flags. Admins only, as the Admin
area (its blueprint checks the role for every page; these operations check it the same way), with the `admin`
scope for a token. The rules are the services' (members, invites, activity, flags).
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email
from flask import Response, jsonify, request

from collectz.blueprints.api import auth, outputs
from collectz.blueprints.api.inputs import Reader, given, json_body
from collectz.blueprints.api.schemas import ACTIVITY_STATUSES, LIMIT, PAGE, ref
from collectz.blueprints.api.spec import Param, operation, read_query
from collectz.models import User
from collectz.models.user import ROLES
from collectz.security.permissions import require_admin
from collectz.services import activity, flags, invites, members
from collectz.services.errors import InvalidInput
from collectz.web.links import invite_url

SCOPE = "admin"
_PER_PAGE = 25


def _admin() -> User:
    """The acting admin (Forbidden, and audited, for anyone else), as the Admin area's own hook does."""
    user = auth.actor()
    require_admin(user, "use the admin API")
    return user


_PAGING = (Param("page", PAGE, "Page number (default 1)."),
           Param("limit", LIMIT, f"Per page (default {_PER_PAGE})."))
_INVITATION_QUERY = (Param("show", {"type": "string", "enum": ["open", "all"]},
                           "open (default): usable ones; all: with used, revoked and expired ones."), *_PAGING)


@operation("GET", "/admin/members", summary="Members", scope=SCOPE, tag="admin", query=_PAGING,
           responses={200: ("A page of members by name, with how many items each added.", ref("MemberPage"))})
def admin_members() -> Response:
    _admin()
    query = read_query(_PAGING)
    found = members.list_members(query.get("page", 1), query.get("limit", _PER_PAGE))
    return jsonify(outputs.numbered(found, [outputs.member(row) for row in found.items]))


@operation("GET", "/admin/members/{member_id}", summary="One member", scope=SCOPE, tag="admin",
           responses={200: ("The member with their counters and live sessions.", ref("MemberDetail"))})
def admin_member(member_id: int) -> Response:
    return jsonify(outputs.member_detail(members.member_detail(_admin(), member_id)))


@operation("PATCH", "/admin/members/{member_id}", summary="Change a member's role", scope=SCOPE, tag="admin",
           body=ref("RoleChange"), description="The last admin keeps their role (422 naming `role`).",
           responses={200: ("The member.", ref("MemberDetail"))})
def admin_member_role(member_id: int) -> Response:
    actor = _admin()
    r = Reader(json_body(), json=True, known=("role",))
    role = r.choice("role", ROLES)
    if not r.has("role"):
        r.errors["role"] = "Choose admin, user or viewer."
    r.done()
    members.change_role(actor, member_id, role)
    return jsonify(outputs.member_detail(members.member_detail(actor, member_id)))


@operation("DELETE", "/admin/members/{member_id}", summary="Delete a member", scope=SCOPE, tag="admin",
           errors=(409,), description="Their items stay (as added by a former member). You cannot delete yourself, "
                                      "nor the last admin (409).",
           responses={200: ("Deleted; how many of their items stayed.", ref("MemberDeleted"))})
def admin_member_delete(member_id: int) -> Response:
    kept = members.delete_member(_admin(), member_id)
    return jsonify(id=member_id, items_kept=kept)


@operation("GET", "/admin/invitations", summary="Invitations", scope=SCOPE, tag="admin",
           query=_INVITATION_QUERY,
           responses={200: ("A page of invitations, newest first (never their links).", ref("InvitationPage"))})
def admin_invitations() -> Response:
    actor = _admin()
    query = read_query(_INVITATION_QUERY)
    found = invites.list_invites(actor, show_all=query.get("show") == "all", page=query.get("page", 1),
                                 per_page=query.get("limit", _PER_PAGE))
    return jsonify(outputs.numbered(found, [outputs.invitation(row) for row in found.items]))


@operation("POST", "/admin/invitations", summary="Invite a member", scope=SCOPE, tag="admin",
           body=ref("InvitationInput"),
           description="The answer holds the registration link: it is shown only once (only its hash is kept).",
           responses={201: ("The invitation and its link.", ref("InvitationCreated"))})
def admin_invitation_create() -> Response:
    actor = _admin()
    r = Reader(json_body(), json=True, known=("email", "role"))
    email, role = r.text("email", nullable=False, max_length=254), r.choice("role", invites.INVITE_ROLES)
    r.done()
    try:
        validate_email(given(email, ""), check_deliverability=False)
    except EmailNotValidError:
        raise InvalidInput("Enter a valid email address.", fields={"email": "Enter a valid email address."}) from None
    invite, raw = invites.create_invite(actor, email, given(role, "user"))
    resp = jsonify(invitation=outputs.invitation(outputs.invite_row(invite, "open", actor)), link=invite_url(raw))
    resp.status_code = 201
    return resp


@operation("POST", "/admin/invitations/{invite_id}/revoke", summary="Revoke an invitation", scope=SCOPE,
           tag="admin", errors=(409,), description="Its link stops working. A used or revoked invitation is a 409.",
           responses={200: ("The revoked invitation.", ref("Invitation"))})
def admin_invitation_revoke(invite_id: int) -> Response:
    actor = _admin()
    invite = invites.revoke_invite(actor, invite_id)
    creator = members.get_member(invite.created_by) if invite.created_by else None
    return jsonify(outputs.invitation(outputs.invite_row(invite, "revoked", creator)))


ACTIVITY_QUERY = (
    Param("q", {"type": "string", "maxLength": activity.MAX_TERM}, "Free text over the event and its details."),
    Param("action", {"type": "string", "maxLength": 64}, "Exact action, e.g. media.deleted."),
    Param("entity", {"type": "string", "maxLength": 32}, "Exact entity type, e.g. media."),
    Param("user", {"type": "string", "maxLength": 254}, "The actor's email."),
    Param("status", {"type": "string", "enum": ACTIVITY_STATUSES}, "An HTTP status class."),
    Param("from", {"type": "string", "format": "date"}, "From this UTC day."),
    Param("to", {"type": "string", "format": "date"}, "To this UTC day (inclusive)."),
    Param("cursor", {"type": "string", "maxLength": 64}, "The `next` of the previous page."),
    Param("limit", LIMIT, f"Events per page (default {activity.PER_PAGE})."),
)


@operation("GET", "/admin/activity", summary="The activity log", scope=SCOPE, tag="admin", query=ACTIVITY_QUERY,
           description="Newest first, with Admin → Activity's filters, in keyset pages.",
           responses={200: ("A page of events.", ref("ActivityPage"))})
def admin_activity() -> Response:
    actor = _admin()
    query = read_query(ACTIVITY_QUERY)
    filters = activity.parse_filters(request.args)  # the dates, and what the page's own filter form checks
    try:
        page = activity.activity_page(actor, filters, query.get("cursor"), query.get("limit", activity.PER_PAGE))
    except InvalidInput as exc:
        raise InvalidInput(exc.message, fields={"cursor" if k == "after" else k: v
                                                for k, v in exc.fields.items()}) from None
    return jsonify(outputs.activity_page(page))


@operation("GET", "/admin/flags", summary="Feature flags", scope=SCOPE, tag="admin",
           responses={200: ("Every flag with its value and where the value comes from.", ref("FlagList"))})
def admin_flags() -> Response:
    _admin()
    return jsonify(items=[outputs.flag(state) for state in flags.list_flags()], read_only=flags.read_only())


@operation("PUT", "/admin/flags/{key}", summary="Turn a feature on or off", scope=SCOPE, tag="admin",
           body=ref("FlagInput"), errors=(409,),
           description="For everyone, at once. A flag set in the server environment (or all flags, when they are "
                       "read-only) cannot be changed here: 409.",
           responses={200: ("The flag, and whether it changed.", ref("FlagChanged"))})
def admin_flag_set(key: str) -> Response:
    actor = _admin()
    r = Reader(json_body(), json=True, known=("enabled",))
    enabled = r.boolean("enabled")
    if not r.has("enabled"):
        r.errors["enabled"] = "Say true or false."
    r.done()
    state, changed = flags.set_enabled(actor, key, enabled)
    return jsonify(flag=outputs.flag(state), changed=changed)
