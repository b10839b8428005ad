"""Shared by the look-up tests: real barcode pictures, a blank photo, and TMDB turned on against its fake."""

from __future__ import annotations

import io
from typing import Any

import zxingcpp
from flask import Flask
from PIL import Image

from collectz.extensions import db
from collectz.models import User
from collectz.services import integrations
from tests.conftest import Actors

TMDB_KEY = "0123456789abcdef0123456789abcdef"


def barcode_png(code: str, fmt: Any = zxingcpp.BarcodeFormat.EAN13, *, scale: int = 3) -> bytes:
    """A real barcode, drawn by zxing-cpp, as a PNG with some white "table" around it."""
    drawn = zxingcpp.create_barcode(code, fmt).to_image(scale=scale)
    pixels = memoryview(drawn)
    height, width = pixels.shape
    image = Image.frombytes("L", (width, height), bytes(pixels))
    canvas = Image.new("RGB", (width + 200, height + 300), "white")
    canvas.paste(image.convert("RGB"), (100, 150))
    out = io.BytesIO()
    canvas.save(out, "PNG")
    return out.getvalue()


def blank_jpeg() -> bytes:
    """A photo of nothing in particular: no barcode anywhere."""
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (200, 190, 180)).save(out, "JPEG")
    return out.getvalue()


def turn_on_tmdb(app: Flask, actors: Actors) -> None:
    """Alice saves the TMDB card with the fake's key (the app's PROVIDER_URL_OVERRIDES points at the fake)."""
    with app.app_context():
        admin = db.session.get(User, actors.ids["alice"])
        integrations.save(admin, "tmdb", {"enabled": True, "language": "en-US", "api_key": TMDB_KEY})
        db.session.remove()
