"""Browser fixtures: one Debian Chromium per xdist worker, a live server per test, a fresh context per test.

The live server is an app from `make_app(...)`, so each browser test runs on every backend (SQLite, and
PostgreSQL + Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set) and its tables are emptied afterwards.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
]
# Browser waits fail fast: every page here is local and answers in milliseconds.
DEFAULT_TIMEOUT_MS = 10_000
SCREENSHOT_DIR = Path(os.environ.get("COLLECTZ_E2E_SCREENSHOTS") or Path(tempfile.gettempdir()) / "collectz-e2e")


@dataclass
class LiveServer:
    app: Flask
    url: str

    def __call__(self, path: str = "/") -> str:
        return self.url + path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (never a downloaded browser)."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: the browser tests need Debian's chromium package (apt-get install chromium)"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def serve(make_app: Callable[..., Flask]) -> Iterator[Callable[..., LiveServer]]:
    """`serve(**setting_overrides)` starts the app on 127.0.0.1 (a free port) in a thread; stopped after the test."""
    running: list[tuple[Any, threading.Thread]] = []

    def start(**overrides: Any) -> LiveServer:
        app = make_app(**overrides)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                  name=f"live-server-{server.server_port}", daemon=True)
        thread.start()
        running.append((server, thread))
        return LiveServer(app=app, url=f"http://127.0.0.1:{server.server_port}")

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def live_server(serve: Callable[..., LiveServer]) -> LiveServer:
    return serve()


@pytest.fixture
def new_context(browser: Any, serve: Callable[..., LiveServer]) -> Iterator[Callable[..., Any]]:
    """`new_context(**playwright_options)`: a fresh browser context (own cookies), closed after the test.

    It depends on `serve` so that contexts close before the servers stop and the tables are emptied.
    """
    contexts: list[Any] = []

    def open_context(**options: Any) -> Any:
        context = browser.new_context(**options)
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_context: Callable[..., Any]) -> Any:
    """A page in a fresh desktop-sized context."""
    return new_context(viewport={"width": 1280, "height": 800}).new_page()


@pytest.fixture
def screenshot_path(backend: Any) -> Callable[[str], Path]:
    """Where a screenshot goes: outside the repository, one file per backend and xdist worker."""

    def path(name: str) -> Path:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        return SCREENSHOT_DIR / f"{name}-{backend.name}-{worker}.png"

    return path
