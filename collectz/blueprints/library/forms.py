from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from collectz.models.media_types import MEDIA_TYPES


class MediaForm(FlaskForm):
    title = StringField("Title", validators=[DataRequired(message="A title is needed."), Length(max=500)])
    media_type = SelectField("Type", choices=[SelectChoice(k, v) for k, v in MEDIA_TYPES.items()], default="movie")
    original_title = StringField("Original title", validators=[Optional(), Length(max=500)])
    year = IntegerField("Year", validators=[Optional(), NumberRange(1800, 2100, "Enter a year between 1800 and 2100.")])
    formats = StringField("Owned formats", description="Comma separated, e.g. Blu-ray, DVD",
                          validators=[Optional(), Length(max=500)])
    copies = IntegerField("Copies", default=1, validators=[Optional(), NumberRange(1, 9999, "At least one copy.")])
    location = StringField("Location", validators=[Optional(), Length(max=255)])
    overview = TextAreaField("Overview", validators=[Optional(), Length(max=20000)])
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=20000)])
