"""Admin → member credentials: password reset links, must-reset flag."""

from collectz.blueprints.admin import bp  # noqa: F401
