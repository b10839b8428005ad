"""Image checks and cleaning (services/images.py): the content decides, the header is checked before any pixel is
decoded, the location goes and the orientation stays, thumbnails are small and upright. No app needed."""

from __future__ import annotations

import io

import pytest
from PIL import ExifTags, Image

from collectz.services import images
from collectz.services.images import InvalidImage, prepare
from tests.fakes import images as fake

MB = 1024 * 1024
LIMITS = {"max_bytes": 10 * MB, "max_pixels": 50_000_000}


def reopened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize(("data", "fmt", "ext", "content_type"), [
    (fake.jpeg(), "JPEG", "jpg", "image/jpeg"),
    (fake.png(), "PNG", "png", "image/png"),
    (fake.webp(), "WEBP", "webp", "image/webp"),
    (fake.gif(), "GIF", "gif", "image/gif"),
])
def test_the_four_formats_are_accepted_by_content(data: bytes, fmt: str, ext: str, content_type: str) -> None:
    image = prepare(data, **LIMITS)
    assert (image.format, image.ext, image.content_type, image.width, image.height) == (fmt, ext, content_type,
                                                                                       60, 90)
    assert reopened(image.data).format == fmt
    assert len(image.sha256) == 64


def test_the_location_is_removed_and_the_orientation_kept() -> None:
    original = fake.jpeg(gps=True, orientation=6)
    assert reopened(original).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the fixture really has one

    image = prepare(original, **LIMITS)

    assert image.had_location is True
    cleaned = reopened(image.data)
    exif = cleaned.getexif()
    assert ExifTags.IFD.GPSInfo not in exif and exif.get_ifd(ExifTags.IFD.GPSInfo) == {}
    assert exif[ExifTags.Base.Orientation] == 6 and exif[ExifTags.Base.Make] == "TestPhone"
    assert "comment" not in cleaned.info and b"51.5072" not in image.data  # the JPEG comment went too
    assert prepare(fake.jpeg(), **LIMITS).had_location is False


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_the_location_goes_in_png_and_webp_too(fmt: str) -> None:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 3
    exif[ExifTags.IFD.GPSInfo] = fake.GPS
    image = prepare(fake.encode(fake.picture(), fmt, exif=exif.tobytes()), **LIMITS)
    cleaned = reopened(image.data).getexif()
    assert image.had_location and ExifTags.IFD.GPSInfo not in cleaned and cleaned[ExifTags.Base.Orientation] == 3


@pytest.mark.parametrize(("data", "message"), [
    (fake.NOT_AN_IMAGE, "not a JPEG, PNG, WebP or GIF image"),
    (b"", "The file is empty"),
    (fake.encode(fake.picture(), "BMP"), "not a JPEG, PNG, WebP or GIF image"),  # an image, of another type
    (fake.encode(fake.picture(), "TIFF"), "not a JPEG, PNG, WebP or GIF image"),
    (fake.jpeg()[:300], "damaged"),
])
def test_what_is_not_a_usable_image_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage) as refused:
        prepare(data, **LIMITS)
    assert message in refused.value.message


def test_a_huge_declared_size_is_refused_from_the_header() -> None:
    bomb = fake.png_claiming(50_000, 50_000)
    assert len(bomb) < 200  # a small file claiming 2.5 gigapixels
    with pytest.raises(InvalidImage) as refused:
        prepare(bomb, **LIMITS)
    assert "megapixels" in refused.value.message and "Use a smaller photo" in refused.value.message
    # Below Pillow's own bomb limit, our cap (a setting) decides, and says the size the file claims.
    with pytest.raises(InvalidImage) as capped:
        prepare(fake.png_claiming(8_000, 8_000), max_bytes=10 * MB, max_pixels=50_000_000)
    assert "8,000 × 8,000 pixels" in capped.value.message and "50 megapixels" in capped.value.message
    with pytest.raises(InvalidImage):
        prepare(fake.png(), max_bytes=10 * MB, max_pixels=59 * 90)


def test_a_file_over_the_byte_limit_is_refused_before_it_is_opened() -> None:
    with pytest.raises(InvalidImage) as refused:
        prepare(fake.png(), max_bytes=100, max_pixels=50_000_000)
    assert "too large" in refused.value.message and "up to 1 KB" in refused.value.message
    assert images.describe_size(10 * MB) == "10 MB"


def test_an_animated_gif_keeps_its_first_frame() -> None:
    image = prepare(fake.gif(frames=3), **LIMITS)
    assert getattr(reopened(image.data), "n_frames", 1) == 1


def test_a_phones_multi_picture_jpeg_is_a_jpeg_of_its_first_picture() -> None:
    mpo = fake.encode(fake.picture(), "MPO", save_all=True, append_images=[fake.picture(color=(0, 200, 0))])
    assert Image.open(io.BytesIO(mpo)).format == "MPO"
    image = prepare(mpo, **LIMITS)
    cleaned = reopened(image.data)
    assert (image.format, image.ext, cleaned.format, getattr(cleaned, "n_frames", 1)) == ("JPEG", "jpg", "JPEG", 1)
    assert images.thumbnail(mpo, max_pixels=50_000_000)[:2] == b"\xff\xd8"


def test_thumbnails_are_small_upright_jpegs_with_transparency_on_white() -> None:
    sideways = fake.jpeg(1200, 800, orientation=6)  # stored landscape, shown portrait
    thumb = reopened(images.thumbnail(sideways, max_pixels=50_000_000))
    assert thumb.format == "JPEG"
    assert thumb.size[0] <= images.THUMB_BOX[0] and thumb.size[1] <= images.THUMB_BOX[1]
    assert thumb.size[1] > thumb.size[0]  # turned upright
    assert thumb.getexif().get(ExifTags.Base.Orientation) is None

    clear = reopened(images.thumbnail(fake.png(transparent=True), max_pixels=50_000_000))
    assert clear.mode == "RGB" and clear.getpixel((0, 0))[0] > 240  # the transparent corner is white
