"""Admin → Flags."""

from collectz.blueprints.admin import bp  # noqa: F401
