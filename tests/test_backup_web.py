"""Admin → Backup (/admin/backup): the page and its fragment, the download (a real archive, audited), who may not,
and a file store that is down (a clear page, audited, never a 500)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from collectz.services import backup
from tests import s3_server as moto
from tests.conftest import Actors, activity
from tests.test_backup import add_items, png

HX = {"HX-Request": "true"}


@pytest.fixture
def app(make_app: Any, tmp_path: Path) -> Flask:
    """The backend's database with an instance folder (and so a file store and backups folder) of this test's own."""
    return make_app(INSTANCE_PATH=str(tmp_path / "instance"))


@pytest.fixture
def alice(actors: Actors):
    return actors.client("alice")


def test_the_page_offers_a_download_form_and_lists_automatic_backups(app: Flask, alice) -> None:
    page = alice.get("/admin/backup")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in html
    assert re.search(r'<a href="/admin/backup"\s+aria-current="page">Backup</a>', html)
    assert 'method="post" action="/admin/backup/download"' in html and 'name="csrf_token"' in html
    assert "hx-post" not in html.split('id="admin-tab"')[1]  # the download is a plain form: the browser saves it
    assert 'data-testid="no-automatic-backups"' in html and "flask backup restore" in html

    folder = Path(app.instance_path) / "backups"
    folder.mkdir()
    (folder / "pre-migrate-20260101-120000-0004.sqlite3").write_bytes(b"x" * 2048)
    (folder / "unrelated.txt").write_text("not a backup")
    html = alice.get("/admin/backup").get_data(as_text=True)
    assert "pre-migrate-20260101-120000-0004.sqlite3" in html and "unrelated.txt" not in html


def test_an_htmx_request_gets_the_tab_block(app: Flask, alice) -> None:
    resp = alice.get("/admin/backup", headers=HX)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "HX-Request" in resp.headers["Vary"]
    assert "<html" not in html and 'id="admin-tab"' not in html  # the block, inside its stable target
    assert 'id="backup-heading"' in html and 'data-testid="backup-download"' in html


def test_an_admin_downloads_a_complete_archive(app: Flask, actors: Actors, alice, tmp_path: Path) -> None:
    add_items(app, 3)
    with app.app_context():
        from collectz.services.storage import storage

        storage().put("covers/1/" + "c" * 64 + ".png", png(1), content_type="image/png")
        digests = backup.table_digests()

    resp = alice.post("/admin/backup/download")
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    assert resp.mimetype == "application/x-tar" and resp.headers["Cache-Control"] == "no-store"
    name = re.fullmatch(r'attachment; filename=(collectz-backup-\d{8}-\d{6}\.tar)',
                        resp.headers["Content-Disposition"]).group(1)
    body = resp.get_data()
    assert int(resp.headers["Content-Length"]) == len(body) > 0
    saved = tmp_path / name
    saved.write_bytes(body)

    manifest = backup.verify_backup(saved)
    assert {t.name: backup.TableDigest(t.rows, t.sha256) for t in manifest.tables} == digests
    assert [o.key for o in manifest.objects] == ["covers/1/" + "c" * 64 + ".png"]
    [event] = activity(app, "backup.downloaded")
    assert event.actor_id == actors.ids["alice"] and event.status == "ok"
    assert event.details["file"] == name and event.details["bytes"] == len(body)
    assert event.details["rows"] == manifest.rows and event.details["objects"] == 1
    assert list((Path(app.instance_path) / "backups").iterdir()) == []  # the temporary file is gone


def test_the_download_needs_the_csrf_token(app: Flask, alice) -> None:
    assert alice.post("/admin/backup/download", csrf=False).status_code == 403
    assert activity(app, "backup.downloaded") == []


@pytest.mark.parametrize("name", ["bob", "vera"])
def test_members_and_viewers_are_refused(app: Flask, actors: Actors, name: str) -> None:
    client = actors.client(name)
    assert client.get("/admin/backup").status_code == 403
    resp = client.post("/admin/backup/download")
    assert resp.status_code == 403 and resp.mimetype == "text/html"
    assert activity(app, "backup.downloaded") == []
    assert len([e for e in activity(app, "permission.denied") if e.actor_id == actors.ids[name]]) == 2


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask) -> None:
    client = app.test_client()
    for resp in (client.get("/admin/backup"), client.post("/admin/backup/download")):
        assert resp.status_code == 303 and resp.headers["Location"].startswith("/auth/login")


def test_a_file_store_that_is_down_is_a_clear_page_and_audited(make_app: Any, tmp_path: Path) -> None:
    with moto.moto_server() as server:
        bucket = server.create_bucket()
        env = server.settings_env(bucket)
    # the server is stopped: its port refuses connections
    app = make_app(INSTANCE_PATH=str(tmp_path / "instance"), STORAGE_PROVIDER="s3", S3_BUCKET=bucket,
                   S3_ENDPOINT_URL=env["S3_ENDPOINT_URL"], S3_ACCESS_KEY_ID=moto.ACCESS_KEY_ID,
                   S3_SECRET_ACCESS_KEY=moto.SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE=True)
    alice = Actors(app).client("alice")

    resp = alice.post("/admin/backup/download")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 503 and resp.mimetype == "text/html" and "<html" in html
    assert 'data-testid="backup-error"' in html and "file store (S3) is unreachable" in html
    assert moto.SECRET_ACCESS_KEY not in html
    [event] = activity(app, "backup.download_failed")
    assert event.status == "failed" and "unreachable" in event.reason
    assert activity(app, "backup.downloaded") == []
    assert list((tmp_path / "instance" / "backups").iterdir()) == []
