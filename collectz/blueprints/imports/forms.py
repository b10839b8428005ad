"""Forms of the Import area: the uploads, the barcode batch, the CSV column mapping and a failed row's fix."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from werkzeug.datastructures import FileStorage, MultiDict
from wtforms import Form, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

from collectz.importers import csv_generic, media_type_of
from collectz.models.media_types import MEDIA_TYPES
from collectz.services.errors import InvalidInput

NOT_IMPORTED = ""
DEFAULT_TYPE = "other"
MAPPING_PREFIX = "map-"


class UploadForm(FlaskForm):
    """One file: a CSV file or a Delicious Library export."""

    file = FileField("File")

    def upload(self) -> FileStorage:
        """The chosen file, or InvalidInput naming the field."""
        data = self.file.data
        if not isinstance(data, FileStorage) or not data.filename:
            raise InvalidInput("Choose a file to upload.", fields={"file": "Choose a file to upload."})
        return data

    def fail(self, message: str) -> None:
        self.file.errors = [*self.file.errors, message]


class BarcodeForm(FlaskForm):
    codes = TextAreaField("Barcodes and ISBNs", description="One per line. A USB scanner types each code and Enter.",
                          validators=[Length(max=200_000)], render_kw={"rows": 8, "autocomplete": "off",
                                                                      "spellcheck": "false",
                                                                      "autocapitalize": "off"})


class PlexForm(FlaskForm):
    """"Import from Plex": no fields, the sections are the admin's choice (Admin → Integrations)."""


class MappingForm(Form):
    """Which column of the file feeds each of our fields, and the type of rows that do not say.

    A plain wtforms Form (CSRF comes from the app-wide check): the page's Preview may be a GET link.
    """

    default_type = SelectField("Type for rows without one", default=DEFAULT_TYPE,
                               choices=[SelectChoice(k, v) for k, v in MEDIA_TYPES.items()])

    class Meta:
        def bind_field(self, form: Form, unbound_field: Any, options: dict[str, Any]) -> Any:
            options["id"] = "csv-" + options["name"]
            return unbound_field.bind(form=form, **options)

    @property
    def field_rows(self) -> list[tuple[csv_generic.CsvField, Any]]:
        return [(spec, self[MAPPING_PREFIX + spec.name]) for spec in csv_generic.FIELDS]

    def mapping(self) -> dict[str, str]:
        """Our field name → the file's column, for the fields that are mapped."""
        return {spec.name: f.data for spec, f in self.field_rows if f.data}

    def options(self) -> dict[str, Any]:
        return {"mapping": self.mapping(), "default_type": self.default_type.data or DEFAULT_TYPE}


def _mapping_form_class() -> type[MappingForm]:
    attrs = {MAPPING_PREFIX + spec.name: SelectField(spec.label, description=spec.help, default=NOT_IMPORTED,
                                                     validate_choice=True)
             for spec in csv_generic.FIELDS}
    return type("CsvMappingForm", (MappingForm,), attrs)


_MAPPING_FORM: type[MappingForm] | None = None


def mapping_form(columns: list[str], formdata: MultiDict | None = None) -> MappingForm:
    """The mapping form for a file's columns: from posted data, else preselected from the columns' names."""
    global _MAPPING_FORM
    if _MAPPING_FORM is None:
        _MAPPING_FORM = _mapping_form_class()
    choices = [SelectChoice(NOT_IMPORTED, "— not imported —")] + [SelectChoice(c, c) for c in columns]
    if formdata is not None and any(key.startswith(MAPPING_PREFIX) for key in formdata):
        form = _MAPPING_FORM(formdata=formdata)
    else:
        auto = csv_generic.auto_mapping(columns)
        data = {MAPPING_PREFIX + name: column for name, column in auto.items()}
        if formdata is not None and formdata.get("default_type") in MEDIA_TYPES:
            data["default_type"] = formdata["default_type"]
        form = _MAPPING_FORM(formdata=None, data=data)
    for _spec, f in form.field_rows:
        f.choices = choices
    return form


FIX_FIELDS = ("title", "media_type", "year", "isbn", "ean", "asin", "rating", "release_date")


class FixRowForm(FlaskForm):
    """A failed row's main values, corrected before its retry."""

    title = StringField("Title", validators=[Optional(), Length(max=500)])
    media_type = SelectField("Type", choices=[SelectChoice(k, v) for k, v in MEDIA_TYPES.items()],
                             default=DEFAULT_TYPE)
    year = StringField("Year", validators=[Optional(), Length(max=20)])
    release_date = StringField("Release date", description="YYYY-MM-DD", validators=[Optional(), Length(max=40)])
    isbn = StringField("ISBN", validators=[Optional(), Length(max=40)])
    ean = StringField("EAN / UPC", validators=[Optional(), Length(max=40)])
    asin = StringField("ASIN", validators=[Optional(), Length(max=40)])
    rating = StringField("Rating", description="0 to 10", validators=[Optional(), Length(max=20)])

    @classmethod
    def for_row(cls, raw: dict[str, Any], formdata: MultiDict | None = None) -> FixRowForm:
        """Prefilled from the row's values as the parser read them."""
        if formdata is not None:
            return cls(formdata=formdata)
        data = {name: "" if raw.get(name) is None else str(raw.get(name)) for name in FIX_FIELDS}
        data["media_type"] = media_type_of(raw.get("media_type")) or DEFAULT_TYPE
        return cls(formdata=None, data=data)

    def values(self) -> dict[str, str]:
        return {name: self[name].data or "" for name in FIX_FIELDS}
