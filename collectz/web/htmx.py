"""All htmx protocol knowledge lives here.

A fragment request is `HX-Request` and not `HX-Boosted` and not a history restore. A page and
its fragments come from the same template: a plain GET renders the page, an htmx GET renders
the named block.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from flask import Response, get_flashed_messages, make_response, render_template, request
from jinja2_fragments.flask import render_block

KEPT_FRAGMENTS = 128  # rendered fragments kept per process (render_kept)
_kept_lock = threading.Lock()
_kept: OrderedDict[Hashable, tuple[Hashable, str]] = OrderedDict()  # slot → (key, body)


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def is_fragment_request() -> bool:
    return (
        is_htmx()
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render(template: str, block: str | None = None, status: int = 200, **context: Any) -> Response:
    """The page for a plain request, the named block for an htmx fragment request."""
    if block and is_fragment_request():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return make_response(body, status)


def render_kept(template: str, block: str, slot: Hashable, key: Hashable, **context: Any) -> Response:
    """As `render`, but a fragment request's block is kept per process and rendered once for the same key. The
    key is the caller's: it must hold everything the block shows that is not a constant of the app (the page's
    data, the viewer's permissions on it). A slot (the caller's, e.g. the viewer, plus the address: prefix, path and
    query) keeps one fragment, the latest: one whose data changed replaces the old one instead of piling up beside
    it. A plain request renders the page as `render` does."""
    if not is_fragment_request():
        return render(template, block, **context)
    where = (template, block, request.script_root, request.full_path, slot)
    with _kept_lock:
        found = _kept.get(where)
        if found is not None and found[0] == key:
            _kept.move_to_end(where)
            return make_response(found[1], 200)
    body = render_block(template, block, **context)
    with _kept_lock:
        _kept[where] = (key, body)
        _kept.move_to_end(where)
        while len(_kept) > KEPT_FRAGMENTS:
            _kept.popitem(last=False)
    return make_response(body, 200)


def redirect(url: str) -> Response:
    """303 to a GET for a plain request (e.g. after a write); HX-Redirect (a full page load) for htmx."""
    if is_htmx():
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = url
        return resp
    resp = make_response("", 303)
    resp.headers["Location"] = url
    return resp


def trigger(resp: Response, event: str) -> Response:
    existing = resp.headers.get("HX-Trigger")
    resp.headers["HX-Trigger"] = f"{existing}, {event}" if existing else event
    return resp


def finish_response(resp: Response) -> Response:
    """after_request: `Vary: HX-Request` always; pending flashes become out-of-band toasts on fragments."""
    resp.vary.add("HX-Request")
    # A 204/HX-Redirect answer has no body to carry toasts: its flashes wait for the next page.
    has_body = resp.status_code != 204 and "HX-Redirect" not in resp.headers
    if is_fragment_request() and has_body and resp.mimetype == "text/html" and not resp.direct_passthrough:
        messages = get_flashed_messages(with_categories=True)
        if messages:
            toast = render_template("components/_toasts.html", messages=messages, oob=True)
            resp.set_data(resp.get_data(as_text=True) + toast)
    return resp
