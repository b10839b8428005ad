"""Admin → Integrations: the cards page; a card's save and Test; Plex's "Load sections" and their selection.

One template (integrations/index.html): a plain GET renders the page, an htmx request the `card` block of the one
card it acted on (swapped into `#integration-<provider>`). A plain POST answers 303 back to the card on the page;
an invalid one re-renders the page with that card's errors (422).
"""

from __future__ import annotations

from typing import Any

from flask import Response, flash, request, url_for
from flask_login import current_user

from collectz.blueprints.integrations import bp
from collectz.blueprints.integrations.forms import CardForm, card_form
from collectz.models import User
from collectz.services import integrations as service
from collectz.services.errors import InvalidInput
from collectz.services.integrations import IntegrationProblem, IntegrationView
from collectz.web import htmx
from collectz.web.forms import apply_errors

TEMPLATE = "integrations/index.html"


def _actor() -> User:
    return current_user._get_current_object()


def _render(view: IntegrationView | None = None, form: CardForm | None = None, status: int = 200,
            **extra: Any) -> Response:
    """The page (every card), or only `view`'s card for an htmx fragment request; `extra` is that card's state."""
    forms = {view.key: form or card_form(view)} if view is not None else {}
    extras = {view.key: extra} if view is not None else {}
    if view is not None and htmx.is_fragment_request():
        return htmx.render(TEMPLATE, block="card", status=status, card=view, forms=forms, extras=extras)
    views = service.cards()
    forms = {v.key: forms.get(v.key) or card_form(v) for v in views}
    return htmx.render(TEMPLATE, block="tab", status=status, groups=service.grouped(views), forms=forms,
                       extras=extras, status_labels=service.STATUS_LABELS)


def _done(view: IntegrationView) -> Response:
    if htmx.is_fragment_request():
        return _render(view)
    return htmx.redirect(url_for("integrations.index") + f"#integration-{view.key}")


@bp.route("")
def index() -> Response:
    return _render()


@bp.route("/<provider>", methods=["POST"])
def card_save(provider: str) -> Response:
    view = service.get(provider)
    form = card_form(view, bound=True)
    if form.validate_on_submit():
        try:
            saved = service.save(_actor(), provider, form.service_data())
        except InvalidInput as exc:
            apply_errors(form, exc)
        else:
            flash(f"{saved.label} settings saved.", "success")
            return _done(saved)
    return _render(view, form, status=422)


@bp.route("/<provider>/test", methods=["POST"])
def card_test(provider: str) -> Response:
    view = service.test(_actor(), provider)
    if view.status == "ok":
        flash(f"{view.label}: the connection works.", "success")
    else:
        flash(f"{view.label}: {view.status_label}. {view.last_error or ''}".strip(), "error")
    return _done(view)


@bp.route("/plex/sections")
def plex_sections() -> Response:
    """The Plex card with the server's libraries to choose from (a full page without htmx)."""
    try:
        sections, error = service.plex_sections(_actor()), None
    except IntegrationProblem as exc:
        sections, error = None, exc.message
    return _render(service.get("plex"), plex_sections=sections, sections_error=error)


@bp.route("/plex/sections", methods=["POST"])
def plex_sections_save() -> Response:
    try:
        view = service.select_plex_sections(_actor(), request.form.getlist("sections"))
    except (InvalidInput, IntegrationProblem) as exc:
        message = " ".join([exc.message, *exc.fields.values()])
        return _render(service.get("plex"), status=422, sections_error=message)
    count = len(view.sections)
    flash(f"Plex: {count} librar{'y' if count == 1 else 'ies'} selected for import.", "success")
    return _done(view)
