from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, EqualTo, Length

EMAIL_MAX = 254


class RegisterForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=EMAIL_MAX),
                                            Email(check_deliverability=False, message="Enter a valid email address.")])
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    invite = HiddenField("Invitation", validators=[Length(max=128)])


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=EMAIL_MAX),
                                            Email(check_deliverability=False, message="Enter a valid email address.")])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])
    remember = BooleanField("Keep me signed in on this device")


class ProfileForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    email = EmailField("Email", validators=[DataRequired(), Length(max=EMAIL_MAX),
                                            Email(check_deliverability=False, message="Enter a valid email address.")])


def _new_password_fields() -> tuple[PasswordField, PasswordField]:
    new = PasswordField("New password", validators=[DataRequired(), Length(max=256)],
                        render_kw={"autocomplete": "new-password"})
    confirm = PasswordField("Repeat the new password",
                            validators=[DataRequired(), EqualTo("new_password", message="The two passwords differ.")],
                            render_kw={"autocomplete": "new-password"})
    return new, confirm


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=256)],
                                     render_kw={"autocomplete": "current-password"})
    new_password, confirm_password = _new_password_fields()


class ResetForm(FlaskForm):
    token = HiddenField("Reset link", validators=[Length(max=128)])
    new_password, confirm_password = _new_password_fields()
