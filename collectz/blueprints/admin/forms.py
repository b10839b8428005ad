"""Forms of the Members and Invitations tabs."""

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Email, Length

ROLE_CHOICES = [
    SelectChoice("admin", "Admin (everything, including this area)"),
    SelectChoice("user", "Member (adds and edits own items)"),
    SelectChoice("viewer", "Viewer (read only)"),
]


class InviteForm(FlaskForm):
    email = EmailField("Email", id="invite-email",
                       validators=[DataRequired(), Length(max=254),
                                   Email(check_deliverability=False, message="Enter a valid email address.")])
    role = SelectField("Role", id="invite-role", choices=ROLE_CHOICES[1:])


class RoleForm(FlaskForm):
    role = SelectField("Role", id="member-role", choices=ROLE_CHOICES)
