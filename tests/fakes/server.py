"""Serve a WSGI app (a provider fake) on a free loopback port in a background thread."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import WSGIRequestHandler, make_server


class RunningFake:
    """A fake that is serving: `url` is its base address (no trailing slash)."""

    def __init__(self, app: Callable[..., Any], host: str = "127.0.0.1",
                 request_handler: type[WSGIRequestHandler] | None = None) -> None:
        self.app = app
        self._server = make_server(host, 0, app, threaded=True, request_handler=request_handler)
        self.host = host
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake:{self.port}", daemon=True)

    def start(self) -> RunningFake:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve_wsgi(app: Callable[..., Any], host: str = "127.0.0.1",
               request_handler: type[WSGIRequestHandler] | None = None) -> Iterator[RunningFake]:
    """`with serve_wsgi(fake_app) as fake: fake.url` — stopped when the block ends. `request_handler` replaces
    werkzeug's (e.g. one that keeps header names with underscores, which werkzeug drops)."""
    running = RunningFake(app, host, request_handler).start()
    try:
        yield running
    finally:
        running.stop()
