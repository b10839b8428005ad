"""Register, log in, log out; your account (profile, password, sessions); password reset links."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, flash, jsonify, request, url_for
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf

from collectz.blueprints.auth.forms import LoginForm, PasswordForm, ProfileForm, RegisterForm, ResetForm
from collectz.config import current_settings
from collectz.extensions import db, limiter
from collectz.models import User
from collectz.services import audit, invites, resets, users
from collectz.services import sessions as session_service
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors, safe_next
from collectz.web.sessions import current_session_id, end_session, forget_cookie, start_session

bp = Blueprint("auth", __name__, url_prefix="/auth")

ACCOUNT_TABS = (("profile", "Profile", "auth.profile"), ("password", "Password", "auth.password"),
                ("sessions", "Sessions", "auth.sessions"))
# What an account flagged must_reset may still open: the password page and the way out.
MUST_RESET_OPEN = frozenset({"auth.password", "auth.logout", "auth.csrf_token", "auth.reset", "static", "core.healthz"})


def _me() -> User:
    return current_user._get_current_object()


def _login_account_key() -> str:
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:254]


def _password_account_key() -> str:
    return f"password-change:{current_user.id}"


def _failed(resp: Response) -> bool:
    return resp.status_code >= 400


@bp.before_app_request
def _must_reset_gate() -> Response | None:
    """An account flagged must_reset can only choose a new password (or sign out) until it has."""
    if request.endpoint in MUST_RESET_OPEN or request.endpoint is None or request.blueprint == "api":
        return None  # the API answers a locked account itself, in JSON (blueprints/api/auth.py)
    if current_user.is_authenticated and current_user.must_reset:
        return htmx.redirect(url_for("auth.password"))
    return None


@bp.route("/register", methods=["GET", "POST"])
def register() -> Response:
    if current_user.is_authenticated:
        return htmx.redirect(url_for("library.index"))
    form = RegisterForm()
    first = not invites.users_exist()
    if request.method == "GET":
        form.invite.data = request.args.get("invite", "")
    if form.validate_on_submit():
        try:
            user = users.register(users.Registration(form.email.data, form.name.data, form.password.data,
                                                      form.invite.data))
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            start_session(user, remember=False)
            db.session.commit()
            flash(f"Welcome, {user.name}." + (" You are the admin of this collection." if first else ""), "success")
            return htmx.redirect(url_for("library.index"))
    status = 422 if request.method == "POST" else 200
    return htmx.render("auth/register.html", block="form", status=status, form=form, first=first)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_settings().LOGIN_LIMIT_PER_IP, methods=["POST"], deduct_when=_failed,
               scope="login-ip", override_defaults=False)  # and the auth class limit (web/limits.py)
@limiter.limit(lambda: current_settings().LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_login_account_key,
               deduct_when=_failed, scope="login-account", override_defaults=False)
def login() -> Response:
    if current_user.is_authenticated:
        return htmx.redirect(url_for("library.index"))
    if not invites.users_exist():
        return htmx.redirect(url_for("auth.register"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = users.authenticate(form.email.data, form.password.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            start_session(user, remember=bool(form.remember.data))
            audit.record("auth.login", actor=user, entity_type="user", entity_id=user.id,
                         details={"remember": bool(form.remember.data)})
            db.session.commit()
            if user.must_reset:
                return htmx.redirect(url_for("auth.password"))
            return htmx.redirect(safe_next(request.args.get("next"), url_for("library.index")))
    status = 422 if request.method == "POST" else 200
    return htmx.render("auth/login.html", block="form", status=status, form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if current_user.is_authenticated:
        audit.record("auth.logout", actor=_me(), entity_type="user", entity_id=current_user.id)
        end_session()
        db.session.commit()
    flash("You are signed out.", "info")
    return htmx.redirect(url_for("auth.login"))


def _account_tab(template: str, *, form: Any = None, **context: Any) -> Response:
    """A tab of your account: the page, the `tab` block for htmx navigation, the `form` block after a bad POST."""
    posted = request.method == "POST"
    return htmx.render(template, block="form" if posted else "tab", status=422 if posted else 200, form=form,
                       account_tabs=ACCOUNT_TABS, **context)


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile() -> Response:
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        try:
            users.update_profile(_me(), name=form.name.data, email=form.email.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            flash("Profile saved.", "success")
            return htmx.redirect(url_for("auth.profile"))
    return _account_tab("auth/profile.html", form=form, **api_tokens.section_context())


@bp.route("/password", methods=["GET", "POST"])
@login_required
@limiter.limit(lambda: current_settings().LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_password_account_key,
               deduct_when=_failed, scope="password-change", override_defaults=False)
def password() -> Response:
    form = PasswordForm()
    required = current_user.must_reset
    if form.validate_on_submit():
        try:
            revoked = users.change_password(_me(), current=form.current_password.data, new=form.new_password.data,
                                            keep_session_id=current_session_id())
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            others = f" {revoked} other session{'' if revoked == 1 else 's'} signed out." if revoked else ""
            flash("Password changed." + others, "success")
            return htmx.redirect(url_for("library.index" if required else "auth.password"))
    return _account_tab("auth/password.html", form=form, required=required)


@bp.route("/sessions")
@login_required
def sessions() -> Response:
    return _account_tab("auth/sessions.html", **_sessions_context())


def _sessions_context() -> dict[str, Any]:
    return {"sessions": session_service.list_user_sessions(current_user.id), "this_session_id": current_session_id()}


@bp.route("/sessions/<int:session_id>/revoke", methods=["POST"])
@login_required
def session_revoke(session_id: int) -> Response:
    this_one = session_id == current_session_id()
    session_service.revoke_session_by_id(_me(), session_id)
    if this_one:
        forget_cookie()
        flash("This browser is signed out.", "info")
        return htmx.redirect(url_for("auth.login"))
    flash("That session is signed out.", "success")
    return _sessions_changed()


@bp.route("/sessions/revoke-others", methods=["POST"])
@login_required
def sessions_revoke_others() -> Response:
    count = users.revoke_other_sessions(_me(), keep_session_id=current_session_id())
    flash(f"{count} other session{'' if count == 1 else 's'} signed out.", "success")
    return _sessions_changed()


def _sessions_changed() -> Response:
    if htmx.is_fragment_request():
        return htmx.render("auth/sessions.html", block="session_list", **_sessions_context())
    return htmx.redirect(url_for("auth.sessions"))


@bp.route("/reset", methods=["GET", "POST"])
def reset() -> Response:
    """A password reset link: GET shows the form (it never uses the link up), POST sets the password."""
    form = ResetForm(token=request.args.get("token", ""))
    try:
        account = resets.open_link(form.token.data)
        if form.validate_on_submit():
            try:
                resets.complete(form.token.data, form.new_password.data)
            except InvalidInput as exc:
                apply_errors(form, exc)
            else:
                flash("Your new password is set and you are signed out everywhere. Log in with it.", "success")
                return htmx.redirect(url_for("auth.login"))
    except resets.ResetLinkInvalid as exc:
        return htmx.render("auth/reset.html", status=exc.status, failure=exc.message, reason=exc.reason)
    status = 422 if request.method == "POST" else 200
    return htmx.render("auth/reset.html", block="form", status=status, form=form, account=account)


@bp.route("/csrf")
def csrf_token() -> Response:
    """A fresh CSRF token for pages left open longer than the token lifetime."""
    return jsonify(token=generate_csrf(), refresh_seconds=current_settings().CSRF_TIME_LIMIT_SECONDS // 2)


from collectz.blueprints.auth import tokens as api_tokens  # noqa: E402  (the profile's API tokens section)
