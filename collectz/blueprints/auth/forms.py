from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Email, Length

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
