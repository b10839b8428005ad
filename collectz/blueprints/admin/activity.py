"""Admin → Activity."""

from collectz.blueprints.admin import bp  # noqa: F401
