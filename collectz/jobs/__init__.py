"""rq entry points only: ids in, load the row, call a service, record status.

A worker builds the app once (`set_app`); a job runs inside its app context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask

_app: Flask | None = None


def set_app(app: Flask) -> None:
    global _app
    _app = app


@contextmanager
def app_context() -> Iterator[Flask]:
    global _app
    if _app is None:
        from collectz import create_app

        _app = create_app()
    with _app.app_context():
        yield _app
