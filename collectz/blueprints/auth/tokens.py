"""Your account → Profile → API tokens: create one (shown once), see yours, revoke one.

The section is the `api_tokens` block of auth/profile.html (the partial auth/_api_tokens.html): a plain POST
re-renders the profile page (a new token cannot travel in a redirect), an htmx POST the block.
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from collectz.blueprints.auth.forms import ProfileForm
from collectz.blueprints.auth.views import ACCOUNT_TABS, _me, bp
from collectz.models.base import utcnow
from collectz.services import tokens
from collectz.services.errors import Conflict, InvalidInput
from collectz.web import htmx
from collectz.web.forms import apply_errors

_EXPIRY_LABELS = {7: "7 days", 30: "30 days", 90: "90 days", 365: "1 year"}


class TokenForm(FlaskForm):
    name = StringField("Token name", validators=[DataRequired(), Length(max=tokens.NAME_MAX)],
                       description="What will use it, e.g. \"home automation\".")
    scopes = SelectMultipleField("Scopes", choices=[SelectChoice(s, s) for s in tokens.SCOPES])
    expires_in_days = SelectField("Expires after", coerce=int, default=tokens.DEFAULT_EXPIRY_DAYS,
                                  choices=[SelectChoice(d, _EXPIRY_LABELS.get(d, f"{d} days"))
                                           for d in tokens.EXPIRY_DAYS])

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, prefix="token", **kwargs)


def section_context(form: TokenForm | None = None, **extra: Any) -> dict[str, Any]:
    """What the API tokens section shows: the form, your tokens, the scopes your role can use."""
    me = _me()
    return {"token_form": form or TokenForm(formdata=None), "api_tokens": tokens.list_tokens(me),
            "token_scopes": [(s, tokens.SCOPES[s]) for s in tokens.allowed_scopes(me.role)], "now": utcnow(),
            **extra}


def _render(status: int = 200, **context: Any) -> Response:
    return htmx.render("auth/profile.html", block="api_tokens", status=status, form=ProfileForm(obj=current_user),
                       account_tabs=ACCOUNT_TABS, **section_context(**context))


@bp.route("/tokens", methods=["POST"])
@login_required
def token_create() -> Response:
    """Create a token; the answer shows it once (never stored, never cached)."""
    form = TokenForm()
    if form.validate_on_submit():
        try:
            row, raw = tokens.create_token(_me(), form.name.data, form.scopes.data or [], form.expires_in_days.data)
        except InvalidInput as exc:
            apply_errors(form, exc)
        except Conflict as exc:
            form.form_errors.append(exc.message)
        else:
            resp = _render(201, new_token=raw, new_token_row=row)
            resp.headers["Cache-Control"] = "no-store"
            return resp
    return _render(422, form=form)


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def token_revoke(token_id: int) -> Response:
    row = tokens.revoke_token(_me(), token_id)
    flash(f"The token \"{row.name}\" was revoked: it no longer works.", "success")
    if htmx.is_fragment_request():
        return _render()
    return htmx.redirect(url_for("auth.profile"))
