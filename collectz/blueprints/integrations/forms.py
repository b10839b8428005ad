"""The form of one integration card, built from the provider's catalogue entry.

Every card's form carries the provider key as its prefix ("tmdb-api_key"), so the ids on the page are unique and a
label belongs to its own card. Validation is the service's: these forms render fields and carry the CSRF token.
Secret inputs are password fields that never render a value.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice

from collectz.services import integrations as service
from collectz.services.integrations import IntegrationView, ProviderSpec, SettingField


class CardForm(FlaskForm):
    """The fields of one card; `service_data()` is what `integrations.save` takes."""

    def service_data(self) -> dict[str, Any]:
        return {name: f.data for name, f in self._fields.items() if name != "csrf_token"}


def _setting_field(f: SettingField) -> Field:
    if f.kind == "select":
        choices = [SelectChoice(value, label) for value, label in f.choices]
        return SelectField(f.label, choices=choices, description=f.help, validate_choice=False)
    if f.kind == "bool":
        return BooleanField(f.label, description=f.help)
    attrs = {"inputmode": "url", "spellcheck": "false", "autocapitalize": "off"} if f.kind == "url" else {}
    return StringField(f.label, description=f.help, render_kw=attrs or None)


@cache
def form_class(key: str) -> type[CardForm]:
    """A CardForm subclass with the provider's fields (built once per provider)."""
    spec: ProviderSpec = service.PROVIDERS_BY_KEY[key]
    attrs: dict[str, Any] = {"enabled": BooleanField(f"Use {spec.label}")}
    for f in spec.editable_settings:
        attrs[f.name] = _setting_field(f)
    for s in spec.secrets:
        attrs[s.name] = PasswordField(s.label, description=s.help,
                                      render_kw={"autocomplete": "off", "spellcheck": "false"})
        attrs[f"clear_{s.name}"] = BooleanField(f"Clear the saved {s.label}")
    return type(f"{key.title()}CardForm", (CardForm,), attrs)


def card_form(view: IntegrationView, *, bound: bool = False) -> CardForm:
    """The card's form: bound to the posted data, or filled from the saved values (secrets always empty)."""
    cls = form_class(view.key)
    if bound:
        return cls(prefix=view.key)
    data = {"enabled": view.enabled, **{f.name: view.values.get(f.name) for f in view.spec.editable_settings}}
    return cls(formdata=None, prefix=view.key, data=data)
