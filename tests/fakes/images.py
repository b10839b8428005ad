"""Test images made on the fly, and a local fake of an image host (a cover address an import or a provider gives).

    host = FakeImageHost()
    with serve_wsgi(host) as running:
        running.url + "/covers/dune.jpg"   # a JPEG
        running.url + "/error.jpg"         # 500, an HTML error page
        running.url + "/not-an-image.jpg"  # 200, text/html: a page, not an image
        running.url + "/moved.jpg"         # 302 to `host.redirect_to` (another server's address)

`requests` records each path asked for; `failures` makes the next N image answers 500 first.
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from typing import Any

from PIL import ExifTags, Image
from werkzeug.wrappers import Request, Response

GPS = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (51.0, 30.0, 26.0),
       ExifTags.GPS.GPSLongitudeRef: "W", ExifTags.GPS.GPSLongitude: (0.0, 7.0, 39.0)}


def picture(width: int = 60, height: int = 90, color: tuple[int, int, int] = (180, 40, 40)) -> Image.Image:
    """A two-tone picture (so a thumbnail of it is not one flat colour)."""
    image = Image.new("RGB", (width, height), color)
    image.paste((20, 60, 160), (0, 0, width // 2, height // 3))
    return image


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def jpeg(width: int = 60, height: int = 90, *, gps: bool = False, orientation: int | None = None,
         color: tuple[int, int, int] = (180, 40, 40)) -> bytes:
    """A JPEG, optionally with an EXIF location and orientation (as a phone writes them), a camera make and a
    comment."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TestPhone"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    if gps:
        exif[ExifTags.IFD.GPSInfo] = GPS
    return encode(picture(width, height, color), "JPEG", quality=90, exif=exif.tobytes(),
                  comment=b"taken at 51.5072 N, 0.1276 W")


def png(width: int = 60, height: int = 90, *, transparent: bool = False) -> bytes:
    image = picture(width, height)
    if transparent:
        image = image.convert("RGBA")
        image.paste((0, 0, 0, 0), (0, 0, width // 2, height // 2))  # a clear corner
    return encode(image, "PNG")


def webp(width: int = 60, height: int = 90) -> bytes:
    return encode(picture(width, height), "WEBP", quality=80)


def gif(frames: int = 1) -> bytes:
    first = picture().convert("P")
    rest = [picture(color=(40, 160, 40)).convert("P") for _ in range(frames - 1)]
    return encode(first, "GIF", save_all=frames > 1, append_images=rest, duration=100, loop=0)


def png_claiming(width: int, height: int) -> bytes:
    """A tiny, valid PNG whose header says it is `width` × `height` (a decompression bomb's calling card): the
    signature, an IHDR with those dimensions, one small IDAT and IEND, each with a correct CRC."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


NOT_AN_IMAGE = b"<!doctype html><html><body><h1>Hello</h1><p>This is a web page, not a picture.</p></body></html>"


class FakeImageHost:
    """A WSGI image host: /covers/<name> are images, the other paths fail in the ways real hosts do."""

    def __init__(self) -> None:
        self.images: dict[str, tuple[bytes, str]] = {"dune.jpg": (jpeg(gps=True), "image/jpeg"),
                                                     "fox.png": (png(), "image/png")}
        self.redirect_to = ""
        self.failures = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.answer(Request(environ))(environ, start_response)

    def answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request.full_path.rstrip("?"))
            fail = self.failures > 0
            self.failures = max(0, self.failures - 1)
        path = request.path
        if path == "/error.jpg" or (fail and path.startswith("/covers/")):
            return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", 500,
                            mimetype="text/html")
        if path == "/not-an-image.jpg":
            return Response(NOT_AN_IMAGE, 200, mimetype="text/html")
        if path == "/moved.jpg":
            return Response("", 302, headers={"Location": self.redirect_to})
        name = path.removeprefix("/covers/")
        if path.startswith("/covers/") and name in self.images:
            data, content_type = self.images[name]
            return Response(data, 200, mimetype=content_type)
        return Response("not found", 404, mimetype="text/plain")
