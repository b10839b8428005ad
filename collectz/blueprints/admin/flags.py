"""Admin → Flags: every known feature flag, with an on/off form each (read-only when the environment says so)."""

from __future__ import annotations

from flask import Response, flash, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import HiddenField
from wtforms.validators import AnyOf

from collectz.blueprints.admin import bp
from collectz.services import flags as flags_service
from collectz.web import htmx


class FlagForm(FlaskForm):
    """The value a flag should have (not "toggle"), so a repeated submit cannot flip it back."""

    enabled = HiddenField(validators=[AnyOf(["true", "false"], message="Choose on (true) or off (false).")])


def _render(status: int = 200, error: str | None = None) -> Response:
    return htmx.render("admin/flags.html", block="tab", status=status, flags=flags_service.list_flags(),
                       read_only=flags_service.read_only(), read_only_env=flags_service.READ_ONLY_ENV, error=error)


@bp.route("/flags")
def flags() -> Response:
    return _render()


@bp.route("/flags/<key>", methods=["POST"])
def flag_set(key: str) -> Response:
    form = FlagForm()
    if not form.validate_on_submit():
        return _render(422, "; ".join(form.enabled.errors) or "The form was incomplete; reload and try again.")
    state, changed = flags_service.set_enabled(current_user._get_current_object(), key, form.enabled.data == "true")
    word = "on" if state.enabled else "off"
    flash(f"{state.spec.label} is now {word}." if changed else f"{state.spec.label} was already {word}.",
          "success" if changed else "info")
    if htmx.is_fragment_request():
        return _render()
    return htmx.redirect(url_for("admin.flags"))
