"""Covers against both file stores: they survive a restart of the app and the worker (local disk and S3 through a
real S3 API, moto's server); with S3 down an upload fails with a clear message and records nothing; `flask storage
check` finds orphans and missing files (and deletes orphans when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from collectz import jobs
from collectz.extensions import db
from collectz.jobs.runner import build_worker
from collectz.models import Media
from collectz.services.storage import key_for, storage
from tests import s3_server as moto
from tests.conftest import Actors, CsrfClient, activity
from tests.fakes import images as fake
from tests.s3_server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.test_covers import add_item, item, keys, read, upload

pytestmark = pytest.mark.usefixtures("job_app")  # conftest: restores the jobs app and signal handlers

s3_server = moto.s3_server  # one moto server per test process (xdist worker)


def s3_settings(server: MotoServer, bucket: str) -> dict[str, Any]:
    return {"STORAGE_PROVIDER": "s3", "S3_BUCKET": bucket, "S3_REGION": REGION, "S3_ENDPOINT_URL": server.url,
            "S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "S3_FORCE_PATH_STYLE": True}


@pytest.fixture(params=["local", "s3"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings for a file store of the test's own: a folder, or a fresh bucket on this worker's moto server."""
    if request.param == "local":
        return {"UPLOAD_PATH": str(tmp_path / "uploads")}
    server: MotoServer = request.getfixturevalue("s3_server")
    return {**s3_settings(server, server.create_bucket()), "UPLOAD_PATH": str(tmp_path / "uploads")}


def signed_in(app: Flask, actors: Actors, name: str) -> CsrfClient:
    """`name` signed in on another app instance (a restarted process) of the same database."""
    again = Actors.__new__(Actors)
    again.app, again.ids = app, actors.ids
    return again.client(name)


def test_covers_survive_a_restart_of_the_app_and_the_worker(make_app: Any, store_settings: dict[str, Any]) -> None:
    first = make_app(**store_settings)
    actors = Actors(first)
    bob = actors.client("bob")
    media_id = add_item(bob)
    assert upload(bob, media_id, fake.jpeg(900, 1200, gps=True)).status_code == 303
    key = item(first, media_id).cover_key
    original = read(first, key)
    with first.app_context():
        assert storage().name == ("s3" if "S3_BUCKET" in store_settings else "local")

    # Both processes restart: a new app on the same database and store; the new worker runs the job left waiting.
    again = make_app(**store_settings)
    jobs.set_app(again)
    build_worker(again).work(burst=True)

    vera = signed_in(again, actors, "vera")
    image = vera.get(f"/library/media/{media_id}/cover")
    assert image.status_code == 200 and image.data == original and image.mimetype == "image/jpeg"
    thumb_key = item(again, media_id).thumb_key
    assert thumb_key and thumb_key.startswith(f"thumbs/{media_id}/")
    thumb = vera.get(f"/library/media/{media_id}/thumb")
    assert thumb.status_code == 200 and thumb.data == read(again, thumb_key)
    assert sorted(keys(again)) == sorted([key, thumb_key])


def test_with_s3_down_an_upload_fails_clearly_and_records_nothing(make_app: Any, tmp_path: Path) -> None:
    with moto_server() as server:
        app = make_app(**s3_settings(server, server.create_bucket()), UPLOAD_PATH=str(tmp_path))
        actors = Actors(app)
        bob = actors.client("bob")
        kept, new = add_item(bob, "Kept"), add_item(bob, "New")
        assert upload(bob, kept, fake.png()).status_code == 303
        first = item(app, kept).cover_key
        server.stop()

        replaced = upload(bob, kept, fake.jpeg())
        added = upload(bob, new, fake.jpeg())
        shown = bob.get(f"/library/media/{kept}/cover")

    for resp in (replaced, added, shown):
        assert resp.status_code == 503
        assert b"data-error-message" in resp.data and b"The file store (S3) is unreachable" in resp.data
        assert SECRET_ACCESS_KEY.encode() not in resp.data
    assert item(app, kept).cover_key == first  # still the object that is stored
    assert item(app, new).cover_key is None  # nothing points at an object that was never stored
    failures = activity(app, "media.cover_upload_failed")
    assert [f.entity_id for f in failures] == [str(kept), str(new)]
    assert all(f.status == "failed" and "unreachable" in f.reason for f in failures)
    assert [e.entity_id for e in activity(app, "media.cover_uploaded")] == [str(kept)]
    assert activity(app, "media.cover_replaced") == []


def flask(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=list(args))


def test_storage_check_finds_orphans_and_missing_files(make_app: Any, store_settings: dict[str, Any]) -> None:
    app = make_app(**store_settings)
    actors = Actors(app)
    bob = actors.client("bob")
    with_cover, with_proof = add_item(bob, "Cover"), add_item(bob, "Proof")
    upload(bob, with_cover, fake.png())
    upload(bob, with_proof, fake.jpeg(), slot="proof")
    cover, proof = item(app, with_cover).cover_key, item(app, with_proof).signed_proof_key
    orphan = key_for("covers", 999, "ab" * 32, "jpg")
    with app.app_context():
        storage().put(orphan, fake.png(), content_type="image/png")  # a file no item points at
        storage().put("exports/other.csv", b"a,b\n", content_type="text/csv")  # not ours to judge
        storage().delete(proof)  # lost behind the app's back

    found = flask(app, "storage", "check")
    assert found.exit_code == 1
    assert f"  {orphan}" in found.output and f"item {with_proof} signed_proof_key: {proof}" in found.output
    assert cover not in found.output and "exports/other.csv" not in found.output
    assert orphan in keys(app)  # reported, not touched

    cleaned = flask(app, "storage", "check", "--delete-orphans")
    assert cleaned.exit_code == 1 and f"{orphan} (deleted)" in cleaned.output  # the missing file is still missing
    assert orphan not in keys(app) and cover in keys(app) and "exports/other.csv" in keys(app)
    [deleted] = activity(app, "storage.orphans_deleted")
    assert deleted.details["keys"] == [orphan] and deleted.details["via"] == "cli"

    assert bob.post(f"/library/media/{with_proof}/proof/remove").status_code == 303  # the member removes it
    clean = flask(app, "storage", "check")
    assert clean.exit_code == 0 and "Everything matches." in clean.output
    with app.app_context():
        assert db.session.get(Media, with_cover).cover_key == cover
