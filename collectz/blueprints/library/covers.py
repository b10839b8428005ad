"""An item's cover and signed-copy proof photo: upload, replace, remove, and the images themselves.

The forms are plain multipart posts answered with a redirect to the item; htmx swaps the item's images section in
place instead. Images are served here after the sign-in check (every member sees every item's images), streamed from
the file store, never from a public address; `?v=` names the content, so a current link may be cached privately
for good.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Response, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wsgi import wrap_file

from collectz.blueprints.library import bp
from collectz.blueprints.library.items import MEDIA_CHANGED, _render_detail
from collectz.config import current_settings
from collectz.jobs import covers as cover_jobs
from collectz.models import User
from collectz.services import covers
from collectz.services.errors import InvalidInput
from collectz.web import htmx

UPLOAD = "library.media_image_upload"
CACHE_FOREVER = "private, max-age=31536000, immutable"
CACHE_CHECK = "private, no-cache"

# Templates name an image's `?v=` with the same rule the image route checks it with.
bp.add_app_template_global(covers.version_of, "image_version")


def _actor() -> User:
    return current_user._get_current_object()


@bp.url_value_preprocessor
def _image_upload_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """An image upload may be MAX_IMAGE_BYTES (plus its form), not the import's limit. This runs before the CSRF
    check reads the form, so a larger request is refused, with a clear page and an activity entry, unread."""
    if endpoint != UPLOAD or not values:
        return
    request.max_content_length = current_settings().MAX_IMAGE_BYTES + covers.UPLOAD_ALLOWANCE
    if current_user.is_authenticated:  # others are sent to sign in by the blueprint's own check
        covers.check_upload_size(_actor(), values["media_id"], values["slot"], request.content_length)


def _images_section(media_id: int, status: int = 200, **extra: Any) -> Response:
    """The item page, or (htmx) its images section only."""
    return _render_detail(media_id, block="images", status=status, **extra)


@bp.route("/media/<int:media_id>/cover/upload", methods=["POST"], defaults={"slot": "cover"})
@bp.route("/media/<int:media_id>/proof/upload", methods=["POST"], defaults={"slot": "proof"})
def media_image_upload(media_id: int, slot: str) -> Response:
    """Add or replace the cover or the proof photo (taken with the camera or chosen from the files)."""
    chosen = next((f for f in request.files.getlist("image") if f.filename), None)
    data = chosen.read() if chosen else b""
    try:
        change = covers.set_image(_actor(), media_id, slot, data, filename=chosen.filename if chosen else None)
    except InvalidInput as exc:
        return _images_section(media_id, status=exc.status, image_errors={slot: exc.message})
    if slot == "cover":
        cover_jobs.enqueue_thumbnail(media_id)
    flash(change.message, "success")
    return _done(media_id)


@bp.route("/media/<int:media_id>/cover/remove", methods=["POST"], defaults={"slot": "cover"})
@bp.route("/media/<int:media_id>/proof/remove", methods=["POST"], defaults={"slot": "proof"})
def media_image_remove(media_id: int, slot: str) -> Response:
    change = covers.remove_image(_actor(), media_id, slot)
    if change is not None:
        flash(change.message, "success")
    return _done(media_id)


def _done(media_id: int) -> Response:
    if not htmx.is_fragment_request():
        return htmx.redirect(url_for("library.media_detail", media_id=media_id) + f"#item-{media_id}-images")
    return htmx.trigger(_images_section(media_id), MEDIA_CHANGED)


@bp.route("/media/<int:media_id>/cover", defaults={"variant": "cover"})
@bp.route("/media/<int:media_id>/proof", defaults={"variant": "proof"})
@bp.route("/media/<int:media_id>/thumb", defaults={"variant": "thumb"})
def media_image(media_id: int, variant: str) -> Response:
    """The image itself, streamed; an item without one gets the placeholder picture."""
    ref = covers.image_ref(_actor(), media_id, variant)
    if ref is None:
        return redirect(url_for("static", filename="img/no-image.svg"))
    cache = CACHE_FOREVER if request.args.get("v") == ref.version else CACHE_CHECK
    if ref.version in request.if_none_match:
        resp = Response(status=304)
    else:
        stream = covers.open_image(ref)
        resp = Response(wrap_file(request.environ, stream), mimetype=ref.content_type, direct_passthrough=True)
        try:
            resp.content_length = os.fstat(stream.fileno()).st_size
        except (OSError, ValueError):  # a streamed S3 body has no file behind it
            pass
        resp.headers["Content-Disposition"] = "inline"
    resp.set_etag(ref.version)
    resp.headers["Cache-Control"] = cache
    return resp
