"""Images from members and providers: checked, cleaned and made small with Pillow (no Flask, no storage, no DB).

The content decides the type, never the file name: only JPEG, PNG, WebP and GIF decoders are even tried. The size
an image declares is read from its header and refused above the pixel cap before any pixel is decoded (a small PNG
can claim 50,000 × 50,000). Every accepted image is saved again, which keeps its pixels, its colour profile and its
EXIF orientation and drops everything else that travelled with it: the EXIF location (GPS), XMP, comments, trailing
bytes. An animated GIF or WebP, or a phone's multi-picture JPEG (MPO), keeps its first picture: a cover is a still
picture.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

# Pillow format name → (file extension, content type). Nothing else is accepted.
FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp"),
           "GIF": ("gif", "image/gif")}
CONTENT_TYPES = {ext: content_type for ext, content_type in FORMATS.values()}
ACCEPT = "JPEG, PNG, WebP or GIF"
# Thumbnails fit this box: grid cards are 150–200 CSS pixels wide, so this is sharp on a 2x screen too.
THUMB_BOX = (320, 480)
THUMB_QUALITY = 82
WEBP_QUALITY = 90


class InvalidImage(ValueError):
    """The upload is not an image we keep; `message` says why in words a member can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PreparedImage:
    """An accepted image, cleaned: the bytes to store and what they are."""

    data: bytes
    format: str  # JPEG | PNG | WEBP | GIF
    width: int
    height: int
    had_location: bool  # the original carried an EXIF location, which is not in `data`

    @property
    def ext(self) -> str:
        return FORMATS[self.format][0]

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][1]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def describe_size(size: int) -> str:
    """A byte count as people say it: "10 MB", "512 KB"."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    return f"{max(1, size // 1024)} KB"


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open (the header only) and check the declared size; the caller closes the image."""
    try:
        image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except Image.DecompressionBombError:
        raise InvalidImage(_too_many_pixels(None, max_pixels)) from None
    except UnidentifiedImageError:
        raise InvalidImage(f"This file is not a {ACCEPT} image. Choose a photo or an image file.") from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InvalidImage(f"This {ACCEPT} image is damaged and cannot be read.") from None
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        image.close()
        raise InvalidImage(_too_many_pixels((width, height), max_pixels))
    return image


def _too_many_pixels(size: tuple[int, int] | None, max_pixels: int) -> str:
    said = f" says it is {size[0]:,} × {size[1]:,} pixels:" if size else " is too large in pixels:"
    return (f"This image{said} images of up to {max_pixels / 1_000_000:.3g} megapixels are accepted. "
            "Use a smaller photo.")


def prepare(data: bytes, *, max_bytes: int, max_pixels: int) -> PreparedImage:
    """Check an upload and return it cleaned, or raise InvalidImage saying what is wrong."""
    if not data:
        raise InvalidImage("The file is empty. Choose a photo or an image file.")
    if len(data) > max_bytes:
        raise InvalidImage(f"The image is too large ({describe_size(len(data))}): images of up to "
                           f"{describe_size(max_bytes)} are accepted.")
    image = _open(data, max_pixels)
    try:
        # A phone's multi-picture JPEG (MPO: the photo plus depth or preview images) is a JPEG: its first picture.
        fmt = "JPEG" if image.format == "MPO" else image.format or ""
        if fmt not in FORMATS:  # cannot happen with formats= above; kept as the rule's own statement
            raise InvalidImage(f"This file is not a {ACCEPT} image. Choose a photo or an image file.")
        image.seek(0)
        image.load()
        cleaned, had_location = _resave(image, fmt)
        return PreparedImage(cleaned, fmt, image.width, image.height, had_location)
    except InvalidImage:
        raise
    except Image.DecompressionBombError:
        raise InvalidImage(_too_many_pixels(image.size, max_pixels)) from None
    except (OSError, SyntaxError, ValueError, EOFError):
        raise InvalidImage(f"This {ACCEPT} image is damaged or incomplete and cannot be read.") from None
    finally:
        image.close()


def _resave(image: Image.Image, fmt: str) -> tuple[bytes, bool]:
    """The image saved again in its own format with its orientation and colour profile, and nothing else."""
    exif, had_location = _exif_without_location(image)
    options: dict[str, object] = {}
    icc = image.info.get("icc_profile")
    if icc:
        options["icc_profile"] = icc
    if fmt != "GIF" and len(exif):
        options["exif"] = exif.tobytes()
    if fmt == "JPEG":
        # The original's quantisation tables and subsampling ("keep"), so saving again costs no visible quality.
        # Pillow accepts "keep" only from a plain JPEG; an MPO's first picture gives its tables explicitly.
        if image.format == "JPEG":
            options.update(quality="keep")
        else:
            options.update(qtables=image.quantization, subsampling=JpegImagePlugin.get_sampling(image))
        options["comment"] = b""
    elif fmt == "WEBP":
        options.update(quality=WEBP_QUALITY)
    elif fmt == "GIF" and "transparency" in image.info:
        options["transparency"] = image.info["transparency"]
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue(), had_location


def _exif_without_location(image: Image.Image) -> tuple[Image.Exif, bool]:
    """A new EXIF block with the original's tags (orientation, camera, dates) but no GPS IFD and no maker notes.

    Built afresh rather than by deleting the GPS tag: Pillow's Exif keeps a cache of the IFDs it has read and writes
    a deleted GPS IFD back from it."""
    source = image.getexif()
    had_location = ExifTags.IFD.GPSInfo in source
    kept = Image.Exif()
    for tag, value in source.items():
        if tag not in (ExifTags.IFD.GPSInfo, ExifTags.IFD.Exif, ExifTags.IFD.Interop, ExifTags.IFD.MakerNote):
            kept[tag] = value
    if ExifTags.IFD.Exif in source:
        sub = {tag: value for tag, value in source.get_ifd(ExifTags.IFD.Exif).items()
               if tag not in (ExifTags.IFD.Interop, ExifTags.IFD.MakerNote, ExifTags.Base.MakerNote)}
        if sub:
            kept[ExifTags.IFD.Exif] = sub
    return kept, had_location


def thumbnail(data: bytes, *, max_pixels: int) -> bytes:
    """A JPEG no larger than THUMB_BOX, upright (EXIF orientation applied), transparency on white."""
    image = _open(data, max_pixels)
    try:
        image.seek(0)
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", (THUMB_BOX[0] * 2, THUMB_BOX[1] * 2))  # decode at a fraction of the size: faster
        small = ImageOps.exif_transpose(image)
        small.thumbnail(THUMB_BOX, Image.Resampling.LANCZOS)
        if small.mode in ("RGBA", "LA", "PA") or (small.mode == "P" and "transparency" in small.info):
            rgba = small.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            small = flat
        elif small.mode != "RGB":
            small = small.convert("RGB")
        out = io.BytesIO()
        small.save(out, "JPEG", quality=THUMB_QUALITY, optimize=True, progressive=True)
        return out.getvalue()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        raise InvalidImage(f"This {ACCEPT} image is damaged and no thumbnail can be made of it.") from None
    finally:
        image.close()
