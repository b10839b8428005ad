from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField
from wtforms.validators import DataRequired, Email, Length


class InviteForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254),
                                            Email(check_deliverability=False, message="Enter a valid email address.")])
    role = SelectField("Role", choices=[("user", "Member (adds and edits own items)"), ("viewer", "Viewer (read only)")])
