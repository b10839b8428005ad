"""Forms of the item pages: the add/edit form, built per media type, and a member's own rating and status."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    DateField,
    Field,
    FieldList,
    Form,
    FormField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from collectz.models import Media
from collectz.models.media_types import (
    MEDIA_TYPES,
    PERSON_ROLES,
    RUNTIME_TYPES,
    SEASON_TYPES,
    SIGNED_ROLES,
    TMDB_TYPES,
    TYPE_DETAILS,
    TYPE_ROLES,
)
from collectz.services.errors import InvalidInput
from collectz.services.media import COPIES_MAX, RUNTIME_MAX, MediaInput, SeasonInput, check_media
from collectz.services.people import Credit, people_by_role
from collectz.services.user_state import RATING_MAX, STATUSES, StateInput
from collectz.web.forms import apply_errors

DEFAULT_TYPE = "movie"
NAMES_HELP = "Comma separated, or one per line."
SEASON_ROWS_MORE = 3
T = TypeVar("T")


def split_names(text: str | None) -> list[str]:
    """Names typed into one box: one per line when there are several lines, else comma separated."""
    text = (text or "").strip()
    parts = text.splitlines() if "\n" in text else text.split(",")
    return [p.strip() for p in parts if p.strip()]


def join_names(names: list[str]) -> str:
    """The inverse of split_names: lines if any name has a comma in it."""
    return ("\n" if any("," in n for n in names) else ", ").join(names)


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


class _PrefixedIds:
    """Field ids get a prefix, so the form can sit in the drawer beside the list's own forms."""

    id_prefix = "item-"

    def bind_field(self, form: Form, unbound_field: Any, options: dict[str, Any]) -> Field:
        options["id"] = self.id_prefix + options.get("prefix", "") + options["name"]
        return super().bind_field(form, unbound_field, options)  # type: ignore[misc]


class SeasonRow(Form):
    number = IntegerField("Season", validators=[Optional(), NumberRange(0, 999, "A season number is 0 to 999.")])
    available = IntegerField("Owned episodes", validators=[Optional(), NumberRange(0, 9999, "0 to 9999.")])
    expected = IntegerField("Episodes in the season", validators=[Optional(), NumberRange(0, 9999, "0 to 9999.")])
    complete = BooleanField("Complete")

    def is_blank(self) -> bool:
        counts = (self.number.data, self.available.data, self.expected.data)
        return all(c is None for c in counts) and not self.complete.data


class MediaForm(FlaskForm):
    """Fields every type has; `media_form_class` adds a type's people, details, runtime, TMDB id and seasons."""

    media_kind: ClassVar[str] = DEFAULT_TYPE

    title = StringField("Title", validators=[DataRequired(message="A title is needed."), Length(max=500)])
    media_type = SelectField("Type", choices=[SelectChoice(k, v) for k, v in MEDIA_TYPES.items()],
                             default=DEFAULT_TYPE)
    original_title = StringField("Original title", validators=[Optional(), Length(max=500)])
    year = IntegerField("Year", validators=[Optional(), NumberRange(1800, 2100, "Enter a year between 1800 and 2100.")])
    release_date = DateField("Release date", validators=[Optional()])
    formats = StringField("Owned formats", description="Comma separated, e.g. Blu-ray, DVD",
                          validators=[Optional(), Length(max=500)])
    genres = StringField("Genres", description="Comma separated, e.g. Drama, Science fiction",
                         validators=[Optional(), Length(max=2000)])
    copies = IntegerField("Copies", default=1,
                          validators=[Optional(), NumberRange(1, COPIES_MAX, "At least one copy.")])
    location = StringField("Location", description="Where it is kept, e.g. Living room shelf 2",
                           validators=[Optional(), Length(max=255)])
    overview = TextAreaField("Overview", validators=[Optional(), Length(max=20000)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=20000)])
    isbn = StringField("ISBN", description="10 or 13 digits; stored as ISBN-13",
                       validators=[Optional(), Length(max=40)])
    ean = StringField("EAN / UPC barcode", description="13-digit EAN or 12-digit UPC",
                      validators=[Optional(), Length(max=40)])
    asin = StringField("ASIN", validators=[Optional(), Length(max=40)])
    signed_by = StringField("Signed by", validators=[Optional(), Length(max=255)])
    signed_role = SelectField("Signer's role", choices=[SelectChoice("", "—")]
                              + [SelectChoice(r, r.title()) for r in SIGNED_ROLES], default="")
    signed_on = DateField("Signed on", validators=[Optional()])
    signed_at = StringField("Signed at", description="Place or event", validators=[Optional(), Length(max=255)])
    # Submit buttons that re-render the form instead of saving it (they make the page work without JS).
    change_type = SubmitField("Change type")
    more_seasons = SubmitField("More season rows")

    class Meta(_PrefixedIds):
        pass

    # What the template needs to lay out the type-specific part.
    @property
    def people_fields(self) -> list[Field]:
        return [self[f"people_{role}"] for role in TYPE_ROLES[self.media_kind]]

    @property
    def detail_fields(self) -> list[Field]:
        return [self[d.name] for d in TYPE_DETAILS[self.media_kind] if d.in_form]

    def has(self, name: str) -> bool:
        return name in self._fields

    @property
    def first_invalid(self) -> str | None:
        """The name of the first field with an error (a form sent back focuses it), or None."""
        return next((name for name in self.errors if name is not None), None)

    @property
    def is_rerender(self) -> bool:
        """A post that asks to change type or add rows: show the form again, save nothing."""
        return bool(self.change_type.data or self.more_seasons.data)

    @property
    def is_save(self) -> bool:
        return self.is_submitted() and not self.is_rerender

    def save(self, action: Callable[[MediaInput], T], media: Media | None = None) -> T | None:
        """Check the form and the service's rules together, so every bad field is marked at once; then act.

        Returns the action's result, or None when something was wrong (the messages are on the fields).
        """
        valid = self.validate()
        data = self.to_input(media)
        try:
            if valid:
                return action(data)
            check_media(data)
        except InvalidInput as exc:
            fresh = {name: message for name, message in exc.fields.items()
                     if not (self.has(name) and self[name].errors)}
            if fresh or valid:
                apply_errors(self, InvalidInput(exc.message, fields=fresh))
        return None

    @property
    def response_status(self) -> int:
        """422 for a save that failed, 200 otherwise."""
        return 422 if self.is_submitted() and not self.is_rerender else 200

    def pad_seasons(self) -> None:
        """Blank season rows to fill in: two beyond the filled ones, three more on request."""
        if not self.has("seasons"):
            return
        rows = self["seasons"]
        wanted = max(len(rows.entries), sum(not r.form.is_blank() for r in rows) + 2)
        if self.more_seasons.data:
            wanted = len(rows.entries) + SEASON_ROWS_MORE
        while len(rows.entries) < wanted:
            rows.append_entry()

    def to_input(self, media: Media | None = None) -> MediaInput:
        """The service's input; fields this type's form does not show are kept from the item."""
        kind = self.media_kind
        same_type = media is not None and media.media_type == kind
        details = {d.name: self[d.name].data for d in TYPE_DETAILS[kind] if d.in_form}
        roles = TYPE_ROLES[kind]
        people = [Credit(name, role) for role in roles for name in split_names(self[f"people_{role}"].data)]
        if same_type:
            details = {**{k: v for k, v in media.type_details.items() if k not in details}, **details}
            people += [Credit(mp.person.name, mp.role) for mp in media.people if mp.role not in roles]
        seasons = []
        if self.has("seasons"):
            seasons = [SeasonInput(r.number.data, r.available.data, r.expected.data, bool(r.complete.data))
                       for r in (entry.form for entry in self["seasons"]) if not r.is_blank()]
        optional = {name: (self[name].data if self.has(name) else None) or None
                    for name in ("runtime", "tmdb_id", "tmdb_media_type")}
        return MediaInput(
            title=self.title.data or "", media_type=self.media_type.data, original_title=self.original_title.data,
            year=self.year.data, release_date=self.release_date.data,
            formats=(self.formats.data or "").split(","), genres=(self.genres.data or "").split(","),
            overview=self.overview.data, location=self.location.data, notes=self.notes.data,
            copies=self.copies.data or 1, type_details=details, people=people, seasons=seasons,
            isbn=self.isbn.data, ean=self.ean.data, asin=self.asin.data,
            signed_by=self.signed_by.data, signed_role=self.signed_role.data or None,
            signed_on=self.signed_on.data, signed_at=self.signed_at.data, **optional,
        )


_CLASSES: dict[str, type[MediaForm]] = {}


def media_form_class(media_type: str) -> type[MediaForm]:
    """The form class for one media type (built once)."""
    if media_type not in _CLASSES:
        attrs: dict[str, Any] = {"media_kind": media_type}
        if media_type in RUNTIME_TYPES:
            attrs["runtime"] = IntegerField("Runtime (minutes)", validators=[
                Optional(), NumberRange(0, RUNTIME_MAX, "Enter the runtime in minutes.")])
        for role in TYPE_ROLES[media_type]:
            attrs[f"people_{role}"] = TextAreaField(PERSON_ROLES[role].plural, description=NAMES_HELP,
                                                    validators=[Optional(), Length(max=20000)],
                                                    render_kw={"rows": 2})
        for spec in TYPE_DETAILS[media_type]:
            if spec.kind is int:
                attrs[spec.name] = IntegerField(spec.label, validators=[
                    Optional(), NumberRange(min=0, message="Enter a whole number, 0 or more.")])
            else:
                attrs[spec.name] = StringField(spec.label, validators=[Optional(), Length(max=spec.max_length)])
        if media_type in TMDB_TYPES:
            attrs["tmdb_id"] = IntegerField("TMDB id", validators=[
                Optional(), NumberRange(1, message="A positive number.")])
            attrs["tmdb_media_type"] = SelectField("TMDB kind", default="", choices=[
                SelectChoice("", "As the type says"), SelectChoice("movie", "Movie"), SelectChoice("tv", "TV")])
        if media_type in SEASON_TYPES:
            attrs["seasons"] = FieldList(FormField(SeasonRow), "Owned seasons")
        clashes = [name for name in attrs if name != "media_kind" and hasattr(MediaForm, name)]
        if clashes:  # a detail named like a form attribute would silently replace it
            raise RuntimeError(f"type fields {clashes} of {media_type} clash with MediaForm attributes")
        _CLASSES[media_type] = type(f"MediaForm_{media_type}", (MediaForm,), attrs)
    return _CLASSES[media_type]


def media_values(media: Media) -> dict[str, Any]:
    """The item as form data (what the edit form starts from)."""
    data = {name: getattr(media, name) for name in (
        "title", "media_type", "original_title", "year", "release_date", "overview", "runtime", "location",
        "notes", "copies", "asin", "tmdb_id", "tmdb_media_type", "signed_by", "signed_role", "signed_on",
        "signed_at")}
    data.update(media.type_details or {})
    data.update(isbn=media.isbn13, ean=media.ean13, formats=", ".join(media.formats or []),
                genres=", ".join(g.name for g in media.genres))
    data.update({f"people_{role}": join_names(names) for role, names in people_by_role(media).items()})
    data["seasons"] = [{"number": s.season_number, "available": s.available_episodes,
                        "expected": s.expected_episodes, "complete": s.complete} for s in media.seasons]
    return data


def media_form(formdata: MultiDict | None = None, media: Media | None = None) -> MediaForm:
    """The add/edit form for the type asked for: from posted or query data, else from the item (or blank)."""
    asked = formdata.get("media_type") if formdata else None
    kind = asked if asked in MEDIA_TYPES else (media.media_type if media else DEFAULT_TYPE)
    cls = media_form_class(kind)
    if formdata:
        form = cls(formdata=formdata)
    elif media is not None:
        form = cls(formdata=None, data=media_values(media))
    else:
        form = cls(formdata=None)
    return form


class StateForm(FlaskForm):
    """A member's own rating, status and watchlist flag on one item."""

    rating = SelectField("My rating", coerce=_optional_int, choices=[SelectChoice("", "Not rated")]
                         + [SelectChoice(i, f"{i} / {RATING_MAX}") for i in range(RATING_MAX + 1)])
    status = SelectField("My status", default="", choices=[SelectChoice("", "No status")]
                         + [SelectChoice(k, v) for k, v in STATUSES.items()])
    watchlist = BooleanField("On my watchlist")

    class Meta(_PrefixedIds):
        id_prefix = "state-"

    def to_input(self) -> StateInput:
        return StateInput(rating=self.rating.data, status=self.status.data or None, watchlist=bool(self.watchlist.data))
