"""Maintenance jobs (queue `maintenance`)."""

from __future__ import annotations

import logging

from collectz.jobs import app_context

log = logging.getLogger("collectz.jobs")


def cleanup_sessions() -> int:
    """Delete expired login sessions; returns how many."""
    with app_context():
        from collectz.services.sessions import cleanup_expired

        removed = cleanup_expired()
        log.info("sessions cleaned", extra={"fields": {"job": "cleanup_sessions", "removed": removed}})
        return removed
