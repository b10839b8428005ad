"""What a serving process does before it answers requests."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from flask import Flask

from collectz.schema import MIGRATIONS_DIR, SchemaError, upgrade

log = logging.getLogger("collectz.startup")


def prepare(app: Flask, *, migrate: bool | None = None, directory: Path | str = MIGRATIONS_DIR) -> None:
    """Apply migrations if asked; on failure print the reason (naming the revision) and exit."""
    settings = app.config["COLLECTZ"]
    if migrate if migrate is not None else settings.RUN_MIGRATIONS_ON_START:
        try:
            upgrade(app, directory=directory)
        except SchemaError as exc:
            log.error("refusing to start: %s", exc)
            print(f"collectZ refuses to start: {exc}", file=sys.stderr)
            raise SystemExit(3) from exc
