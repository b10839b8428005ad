"""Covers and signed-copy proof photos through the web: upload, replace, remove, who may, what is refused (each with
a clear message, nothing stored or recorded, an activity entry), how images are served, and the grid's thumbnails.
The file store is local disk under a folder of the test's own (tests/test_covers_storage.py runs S3)."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import ExifTags, Image
from sqlalchemy import event

from collectz import jobs
from collectz.extensions import db
from collectz.jobs.runner import build_worker
from collectz.models import Media
from collectz.services import covers
from collectz.services.errors import InvalidInput
from collectz.services.storage import storage
from tests.conftest import Actors, CsrfClient, activity, statements
from tests.fakes import images as fake

pytestmark = pytest.mark.usefixtures("job_app")  # conftest: restores the jobs app and signal handlers

HX = {"HX-Request": "true"}


@pytest.fixture
def app(make_app: Any, tmp_path: Path) -> Flask:
    return make_app(UPLOAD_PATH=str(tmp_path / "uploads"))


def add_item(client: CsrfClient, title: str = "Dune", media_type: str = "book") -> int:
    resp = client.post("/library/media/new", data={"title": title, "media_type": media_type, "copies": "1"})
    assert resp.status_code == 303, resp.get_data(as_text=True)[:300]
    return int(resp.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def upload(client: CsrfClient, media_id: int, data: bytes, *, slot: str = "cover", filename: str = "photo.jpg",
           headers: dict[str, str] | None = None) -> Any:
    return client.post(f"/library/media/{media_id}/{slot}/upload", data={"image": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data", headers=headers or {})


def keys(app: Flask) -> list[str]:
    """Every object in the file store."""
    with app.app_context():
        return sorted(storage().keys())


def item(app: Flask, media_id: int) -> Media:
    with app.app_context():
        row = db.session.get(Media, media_id)
        db.session.expunge(row)
        db.session.remove()
        return row


def read(app: Flask, key: str) -> bytes:
    with app.app_context():
        return storage().read(key)


def run_jobs(app: Flask) -> None:
    jobs.set_app(app)
    build_worker(app).work(burst=True)


def version(key: str) -> str:
    return covers.version_of(key)


# --- upload, see, replace, remove ---------------------------------------------------------------------------------


def test_the_owner_adds_a_cover_and_every_member_sees_it(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)
    photo = fake.jpeg(gps=True, orientation=6)

    resp = upload(bob, media_id, photo)

    assert resp.status_code == 303 and resp.headers["Location"].endswith(f"/library/media/{media_id}"
                                                                         f"#item-{media_id}-images")
    key = item(app, media_id).cover_key
    assert key and key.startswith(f"covers/{media_id}/") and key.endswith(".jpg")
    assert keys(app) == [key]
    stored = Image.open(io.BytesIO(read(app, key)))
    assert ExifTags.IFD.GPSInfo not in stored.getexif() and stored.getexif()[ExifTags.Base.Orientation] == 6
    [event_] = activity(app, "media.cover_uploaded")
    assert event_.actor_id == actors.ids["bob"] and event_.entity_id == str(media_id)
    assert event_.details["location_removed"] is True and event_.details["key"] == key

    # A viewer sees it, through the app, cached privately; `v` names the content, so a current link is kept.
    vera = actors.client("vera")
    url = f"/library/media/{media_id}/cover?v={version(key)}"
    image = vera.get(url)
    assert image.status_code == 200 and image.mimetype == "image/jpeg" and image.data == read(app, key)
    assert image.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    assert image.headers["ETag"] == f'"{version(key)}"' and image.headers["X-Content-Type-Options"] == "nosniff"
    assert vera.get(f"/library/media/{media_id}/cover").headers["Cache-Control"] == "private, no-cache"
    again = vera.get(url, headers={"If-None-Match": image.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert app.test_client().get(url).status_code == 303  # signed out: to the sign-in page, no bytes

    page = vera.get(f"/library/media/{media_id}").get_data(as_text=True)
    assert f'src="{url}"' in page.replace("&amp;", "&") and "image-cover-upload" not in page
    own = bob.get(f"/library/media/{media_id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in own
    assert re.search(r'<input[^>]*type="file" name="image" accept="image/\*" capture="environment"', own)
    assert 'data-testid="image-cover-remove"' in own and 'data-testid="image-proof-upload"' in own
    assert "JPEG, PNG, WebP or GIF up to 10 MB." in own


def test_replace_and_remove_delete_the_old_files_after_the_change(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)
    assert upload(bob, media_id, fake.png(), filename="first.png").status_code == 303
    first = item(app, media_id).cover_key
    run_jobs(app)  # the thumbnail job the upload enqueued
    thumb = item(app, media_id).thumb_key
    assert thumb == covers.thumb_key_for(media_id, first) and sorted(keys(app)) == sorted([first, thumb])

    assert upload(bob, media_id, fake.webp(), filename="second.webp").status_code == 303
    second = item(app, media_id)
    assert second.cover_key.endswith(".webp") and second.thumb_key is None
    assert keys(app) == [second.cover_key]  # the old cover and its thumbnail are gone
    [replaced] = activity(app, "media.cover_replaced")
    assert replaced.details["previous"] == first and replaced.actor_id == actors.ids["bob"]

    resp = bob.post(f"/library/media/{media_id}/cover/remove")
    assert resp.status_code == 303
    gone = item(app, media_id)
    assert (gone.cover_key, gone.thumb_key) == (None, None) and keys(app) == []
    assert [e.details["key"] for e in activity(app, "media.cover_removed")] == [second.cover_key]
    placeholder = bob.get(f"/library/media/{media_id}/cover")
    assert placeholder.status_code == 302 and placeholder.headers["Location"].endswith("/static/img/no-image.svg")
    assert bob.post(f"/library/media/{media_id}/cover/remove").status_code == 303  # nothing left: nothing done
    assert len(activity(app, "media.cover_removed")) == 1


def test_the_same_picture_again_keeps_its_file(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)
    upload(bob, media_id, fake.png())
    key = item(app, media_id).cover_key
    assert upload(bob, media_id, fake.png()).status_code == 303
    assert item(app, media_id).cover_key == key and keys(app) == [key]


def test_the_proof_photo_is_a_slot_of_its_own(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)
    upload(bob, media_id, fake.png())
    assert upload(bob, media_id, fake.jpeg(), slot="proof").status_code == 303
    both = item(app, media_id)
    assert both.cover_key.startswith("covers/") and both.signed_proof_key.startswith(f"proofs/{media_id}/")
    proof = actors.client("vera").get(f"/library/media/{media_id}/proof")
    assert proof.status_code == 200 and proof.data == read(app, both.signed_proof_key)
    assert activity(app, "media.proof_uploaded")[0].details["format"] == "JPEG"

    bob.post(f"/library/media/{media_id}/proof/remove")
    after = item(app, media_id)
    assert after.signed_proof_key is None and after.cover_key == both.cover_key
    assert both.signed_proof_key not in keys(app)


def test_whoever_may_edit_the_item_may_change_its_images(app: Flask, actors: Actors) -> None:
    media_id = add_item(actors.client("bob"))
    for name in ("carol", "vera"):  # another member; a viewer
        client = actors.client(name)
        assert upload(client, media_id, fake.png()).status_code == 403
        assert upload(client, media_id, fake.png(), slot="proof").status_code == 403
        assert client.post(f"/library/media/{media_id}/cover/remove").status_code == 403
    assert keys(app) == [] and item(app, media_id).cover_key is None
    denials = activity(app, "permission.denied")
    assert {d.actor_id for d in denials} == {actors.ids["carol"], actors.ids["vera"]} and len(denials) == 6
    assert upload(actors.client("alice"), media_id, fake.png()).status_code == 303  # an admin may
    assert activity(app, "media.cover_uploaded")[0].actor_id == actors.ids["alice"]
    assert actors.client("bob").post("/library/media/999999/cover/upload").status_code == 404


# --- refused uploads ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "filename", "message"), [
    (fake.NOT_AN_IMAGE, "holiday.jpg", "This file is not a JPEG, PNG, WebP or GIF image."),
    (b"", "empty.jpg", "The file is empty."),
    (fake.png_claiming(50_000, 50_000), "huge.png", "megapixels are accepted"),
])
def test_a_bad_upload_gets_a_clear_message_and_leaves_no_trace(app: Flask, actors: Actors, data: bytes,
                                                               filename: str, message: str) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)

    resp = upload(bob, media_id, data, filename=filename)

    assert resp.status_code == 422
    page = resp.get_data(as_text=True)
    assert "<html" in page and message in page and 'data-testid="image-cover-error"' in page
    assert keys(app) == [] and item(app, media_id).cover_key is None
    [refused] = activity(app, "media.cover_refused")
    assert refused.status == "failed" and message in refused.reason and refused.actor_id == actors.ids["bob"]
    assert refused.details["filename"] == filename
    assert activity(app, "media.cover_uploaded") == []


def test_an_upload_without_a_file_says_to_choose_one(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)
    resp = bob.post(f"/library/media/{media_id}/proof/upload", data={}, headers=HX)
    assert resp.status_code == 422
    body = resp.get_data(as_text=True)
    assert "Choose a photo or an image file to upload." in body and "<html" not in body
    assert f'id="item-{media_id}-images"' in body and 'data-testid="image-proof-error"' in body


def test_an_oversized_upload_is_refused_unread_with_a_clear_page(make_app: Any, tmp_path: Path) -> None:
    app = make_app(UPLOAD_PATH=str(tmp_path / "uploads"), MAX_IMAGE_BYTES=4096)
    actors = Actors(app)
    bob = actors.client("bob")
    media_id = add_item(bob)
    big = fake.png(1000, 1000) + b"\0" * (covers.UPLOAD_ALLOWANCE + 4096)  # beyond the image and its form

    resp = upload(bob, media_id, big, filename="big.png")

    assert resp.status_code == 413
    assert b"data-error-message" in resp.data and b"The image is too large" in resp.data and b"4 KB" in resp.data
    assert keys(app) == [] and item(app, media_id).cover_key is None
    [refused] = activity(app, "media.cover_refused")
    assert refused.details["size"] > 4096 and "too large" in refused.reason
    # Within the form's allowance the request is read, and the image itself is over the limit: the form says so.
    near = upload(bob, media_id, fake.png(200, 200) + b"\0" * 8192, filename="near.png")
    assert near.status_code == 422 and b"images of up to 4 KB are accepted" in near.data
    assert b"JPEG, PNG, WebP or GIF up to 4 KB." in near.data
    # A viewer with a large upload hears that they may not, not that it is large.
    assert upload(actors.client("vera"), media_id, big).status_code == 403


def test_if_recording_fails_the_new_file_is_deleted(app: Flask, actors: Actors) -> None:
    bob_id = actors.ids["bob"]
    media_id = add_item(actors.client("bob"))

    def broken(*_args: Any) -> None:
        raise RuntimeError("the database went away")

    with app.test_request_context():
        from collectz.models import User

        bob = db.session.get(User, bob_id)
        event.listen(db.session, "before_flush", broken)
        try:
            with pytest.raises(RuntimeError):
                covers.set_image(bob, media_id, "cover", fake.png())
        finally:
            event.remove(db.session, "before_flush", broken)
        db.session.remove()
    assert keys(app) == [] and item(app, media_id).cover_key is None


def test_the_service_refuses_an_unknown_slot(app: Flask, actors: Actors) -> None:
    media_id = add_item(actors.client("bob"))
    with app.test_request_context():
        from collectz.models import User

        with pytest.raises(covers.NotFound):
            covers.set_image(db.session.get(User, actors.ids["bob"]), media_id, "poster", fake.png())
        with pytest.raises(InvalidInput):
            covers.set_image(db.session.get(User, actors.ids["bob"]), media_id, "cover", b"GIF89a broken")


# --- htmx -------------------------------------------------------------------------------------------------------------


def test_htmx_swaps_the_images_section_in_place(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)

    resp = upload(bob, media_id, fake.gif(), headers=HX)

    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(f'<section class="item-images" id="item-{media_id}-images"')
    assert "HX-Request" in resp.headers["Vary"] and resp.headers["HX-Trigger"] == "media-changed"
    assert "Added the cover." in body  # the flash, as an out-of-band toast
    removed = bob.post(f"/library/media/{media_id}/cover/remove", headers=HX)
    assert removed.status_code == 200 and "No cover" in removed.get_data(as_text=True)
    # The drawer's detail panel (the item page's htmx block) carries the section too.
    drawer = bob.get(f"/library/media/{media_id}", headers=HX).get_data(as_text=True)
    assert "<html" not in drawer and f'id="item-{media_id}-images"' in drawer


# --- the grid -------------------------------------------------------------------------------------------------------


def test_the_grid_shows_thumbnails_without_more_queries(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    ids = [add_item(bob, f"Book {n}") for n in range(6)]
    with statements(app) as plain:
        assert bob.get("/library/?per_page=6", headers=HX).status_code == 200
    for media_id in ids[:4]:
        upload(bob, media_id, fake.jpeg(600, 900))
    run_jobs(app)

    with statements(app) as with_thumbs:
        page = bob.get("/library/?per_page=6", headers=HX).get_data(as_text=True)
    assert len(with_thumbs) == len(plain)
    thumbs = re.findall(r'<img class="cover cover-image" src="([^"]+)"', page)
    assert len(thumbs) == 4 and page.count('aria-hidden="true">B</span>') == 2  # the rest keep their letter
    thumb = bob.get(thumbs[0].replace("&amp;", "&"))
    assert thumb.status_code == 200 and thumb.mimetype == "image/jpeg"
    assert thumb.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    small = Image.open(io.BytesIO(thumb.data))
    assert small.size[0] <= 320 and small.size[1] <= 480


def test_a_cover_missing_from_the_store_gets_no_thumbnail(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    media_id = add_item(bob)
    upload(bob, media_id, fake.png())
    with app.app_context():
        db.session.query(Media).filter_by(id=media_id).update({"cover_key": "covers/1/" + "0" * 64 + ".png"})
        db.session.commit()
        assert covers.make_thumbnail(media_id) is None  # the recorded cover is not in the store: nothing made
        db.session.remove()
    assert item(app, media_id).thumb_key is None


def test_deleting_items_deletes_their_images_unless_another_item_uses_them(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    single, first, second, keep, gone = (add_item(bob, title) for title in ("One", "Two", "Three", "Kept", "Gone"))
    for media_id, picture in ((single, fake.png()), (first, fake.webp()), (second, fake.jpeg()),
                              (gone, fake.gif())):
        assert upload(bob, media_id, picture).status_code == 303
    assert upload(bob, single, fake.jpeg(orientation=3), slot="proof").status_code == 303
    run_jobs(app)  # thumbnails
    kept_files = {item(app, keep).cover_key} - {None}
    assert len(keys(app)) == 2 * 4 + 1

    assert bob.post(f"/library/media/{single}/delete", data={"confirm": "yes"}).status_code in (302, 303)
    assert not [k for k in keys(app) if f"/{single}/" in k]  # cover, thumbnail and proof photo

    assert bob.post("/library/bulk/delete", data={"ids": [first, second], "confirm": "yes"}).status_code in (302, 303)
    assert not [k for k in keys(app) if f"/{first}/" in k or f"/{second}/" in k]

    # A merge: the survivor had no cover and takes the merged item's; that file stays, its old thumbnail goes.
    resp = bob.post("/library/duplicates/merge", data={"keep": keep, "merge": gone})
    assert resp.status_code in (302, 303), resp.get_data(as_text=True)[:300]
    survivor = item(app, keep)
    assert survivor.cover_key and survivor.cover_key.startswith(f"covers/{gone}/") and not kept_files
    assert [k for k in keys(app) if k.startswith("covers/")] == [survivor.cover_key]
    assert not [k for k in keys(app) if k.startswith(f"thumbs/{gone}/")]


def test_an_upload_while_the_queue_is_down_keeps_the_cover_and_the_sweep_makes_the_thumbnail(
        make_app: Any, tmp_path: Path) -> None:
    from collectz.jobs import covers as cover_jobs

    uploads = str(tmp_path / "uploads")
    down = make_app(UPLOAD_PATH=uploads, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    bob = Actors(down).client("bob")
    media_id = add_item(bob)

    assert upload(bob, media_id, fake.png()).status_code == 303  # the thumbnail job could not be queued
    stored = item(down, media_id)
    assert stored.cover_key and stored.thumb_key is None and keys(down) == [stored.cover_key]

    up = make_app(UPLOAD_PATH=uploads)  # the queue is back: the periodic sweep finds the missing thumbnail
    jobs.set_app(up)
    assert cover_jobs.sweep_covers()["thumbnails"] == 1
    run_jobs(up)
    assert item(up, media_id).thumb_key == covers.thumb_key_for(media_id, stored.cover_key)
