from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254),
                                            Email(check_deliverability=False, message="Enter a valid email address.")])
    role = SelectField("Role", choices=[SelectChoice("user", "Member (adds and edits own items)"),
                                        SelectChoice("viewer", "Viewer (read only)")])
