"""Register, log in, log out, profile."""

from __future__ import annotations

from flask import Blueprint, Response, flash, jsonify, request, url_for
from flask_login import current_user, login_required
from flask_wtf.csrf import generate_csrf

from collectz.blueprints.auth.forms import LoginForm, ProfileForm, RegisterForm
from collectz.config import current_settings
from collectz.extensions import db, limiter
from collectz.services import audit, invites, users
from collectz.services.errors import InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors, safe_next
from collectz.web.sessions import end_session, start_session

bp = Blueprint("auth", __name__, url_prefix="/auth")


def _login_account_key() -> str:
    return "login-account:" + (request.form.get("email") or "").strip().lower()[:254]


def _login_failed(resp: Response) -> bool:
    return resp.status_code >= 400


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
@limiter.limit(lambda: current_settings().LOGIN_LIMIT_PER_IP, methods=["POST"], deduct_when=_login_failed,
               scope="login-ip")
@limiter.limit(lambda: current_settings().LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_login_account_key,
               deduct_when=_login_failed, scope="login-account")
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
            return htmx.redirect(safe_next(request.args.get("next"), url_for("library.index")))
    status = 422 if request.method == "POST" else 200
    return htmx.render("auth/login.html", block="form", status=status, form=form)


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    if current_user.is_authenticated:
        audit.record("auth.logout", actor=current_user._get_current_object(), entity_type="user",
                     entity_id=current_user.id)
        end_session()
        db.session.commit()
    flash("You are signed out.", "info")
    return htmx.redirect(url_for("auth.login"))


@bp.route("/profile", methods=["GET", "POST"])
@login_required
def profile() -> Response:
    form = ProfileForm(obj=current_user)
    if form.validate_on_submit():
        try:
            users.update_profile(current_user._get_current_object(), name=form.name.data, email=form.email.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            flash("Profile saved.", "success")
            return htmx.redirect(url_for("auth.profile"))
    status = 422 if request.method == "POST" else 200
    return htmx.render("auth/profile.html", block="form", status=status, form=form)


@bp.route("/csrf")
def csrf_token() -> Response:
    """A fresh CSRF token for pages left open longer than the token lifetime."""
    return jsonify(token=generate_csrf(), refresh_seconds=current_settings().CSRF_TIME_LIMIT_SECONDS // 2)
