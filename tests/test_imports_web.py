"""The Import area in the browser's place: upload → map → preview → start → progress → audit, on each backend.

Jobs are enqueued as in production; a test runs them with a real rq worker in burst mode (nothing runs them
otherwise: the test app has no background worker).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from collectz import jobs
from collectz.extensions import db
from collectz.jobs.runner import build_worker
from collectz.models import ImportRow, Media, SyncJob
from collectz.services import flags
from tests.conftest import Actors, CsrfClient, activity

pytestmark = pytest.mark.usefixtures("job_app")  # conftest: restores the jobs app and signal handlers

CSV_TEXT = "Title,Year,ISBN,Type\nDune,1965,9780441013593,Book\n=1+2,2001,,Movie\nAlien,1979,,Movie\n"
HTMX = {"HX-Request": "true"}


def run_worker(app: Flask) -> None:
    jobs.set_app(app)
    build_worker(app).work(burst=True)


def upload(client: CsrfClient, path: str, content: bytes, filename: str = "items.csv", **headers: str) -> Any:
    return client.post(path, data={"file": (io.BytesIO(content), filename)}, content_type="multipart/form-data",
                       headers=headers)


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        try:
            return db.session.scalar(select(func.count()).select_from(model)) or 0
        finally:
            db.session.remove()


def job_of(app: Flask, job_id: int) -> SyncJob:
    with app.app_context():
        job = db.session.get(SyncJob, job_id)
        db.session.expunge_all()
        db.session.remove()
        return job


def rows_of(app: Flask, job_id: int) -> list[ImportRow]:
    with app.app_context():
        found = list(db.session.scalars(select(ImportRow).where(ImportRow.job_id == job_id)
                                        .order_by(ImportRow.row_number)))
        db.session.expunge_all()
        db.session.remove()
        return found


def upload_files(app: Flask) -> list[Path]:
    folder = Path(app.config["UPLOAD_PATH"]) / "imports"
    return sorted(folder.glob("*")) if folder.exists() else []


def job_id_from(resp: Any) -> int:
    location = resp.headers.get("Location") or resp.headers.get("HX-Redirect") or ""
    match = re.search(r"/imports/jobs/(\d+)$", location)
    assert match, (resp.status_code, location)
    return int(match.group(1))


def selected(html: str, name: str) -> str | None:
    """The selected option's value of <select name=...> in a page."""
    select_html = re.search(rf'<select[^>]*name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert select_html, f"no select {name}"
    option = re.search(r'<option[^>]*selected[^>]*value="([^"]*)"|<option[^>]*value="([^"]*)"[^>]*selected',
                       select_html.group(1))
    return (option.group(1) if option.group(1) is not None else option.group(2)) if option else None


def start_csv(client: CsrfClient, content: bytes = CSV_TEXT.encode(), **extra: str) -> tuple[str, int]:
    """Upload, then start with the preselected mapping; returns (token, job id)."""
    resp = upload(client, "/imports/csv", content)
    assert resp.status_code == 303, resp.get_data(as_text=True)[:500]
    token = resp.headers["Location"].split("/")[-2]
    start = client.post(f"/imports/csv/{token}/start", data={**mapping_of(client, token), **extra})
    return token, job_id_from(start)


def mapping_of(client: CsrfClient, token: str) -> dict[str, str]:
    """The map page's form as a browser would submit it untouched."""
    html = client.get(f"/imports/csv/{token}/map").get_data(as_text=True)
    names = re.findall(r'<select[^>]*name="([^"]+)"', html)
    return {name: selected(html, name) or "" for name in names}


# --- the CSV flow -----------------------------------------------------------------------------------------------


def test_csv_upload_map_preview_start_and_the_finished_job(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    page = bob.get("/imports/?tab=csv")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'action="/imports/csv"' in html and 'enctype="multipart/form-data"' in html
    assert 'accept=".csv,.tsv,.txt' in html and "/imports/csv/template.csv" in html

    resp = upload(bob, "/imports/csv", CSV_TEXT.encode())
    assert resp.status_code == 303
    assert re.fullmatch(r"/imports/csv/[\w-]+/map", resp.headers["Location"])
    token = resp.headers["Location"].split("/")[-2]

    mapping = bob.get(f"/imports/csv/{token}/map")
    assert mapping.status_code == 200
    html = mapping.get_data(as_text=True)
    assert selected(html, "map-title") == "Title"
    assert selected(html, "map-year") == "Year"
    assert selected(html, "map-isbn") == "ISBN"
    assert selected(html, "map-media_type") == "Type"
    assert selected(html, "map-directors") == ""
    assert selected(html, "default_type") == "other"

    media_before = count(app, Media)
    preview = bob.post(f"/imports/csv/{token}/preview", data=mapping_of(bob, token))
    assert preview.status_code == 200
    html = preview.get_data(as_text=True)
    assert 'data-testid="preview-table"' in html
    assert html.count('data-outcome="created"') == 3 and "Nothing has been imported yet" in html
    assert count(app, Media) == media_before == 0
    assert count(app, SyncJob) == 0

    # The preview as a fragment: only its block (the mapping form stays on the page).
    fragment = bob.post(f"/imports/csv/{token}/preview", data=mapping_of(bob, token), headers=HTMX)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and 'data-testid="preview-table"' in body and "csv-mapping" not in body
    assert "HX-Request" in fragment.headers["Vary"]

    start = bob.post(f"/imports/csv/{token}/start", data=mapping_of(bob, token))
    assert start.status_code == 303
    job_id = job_id_from(start)
    assert job_of(app, job_id).status == "queued"
    started = activity(app, "import.started")
    assert [(e.entity_id, e.actor_id) for e in started] == [(str(job_id), actors.ids["bob"])]

    run_worker(app)

    job = job_of(app, job_id)
    assert (job.status, job.total, job.created, job.failed) == ("succeeded", 3, 3, 0)
    assert count(app, Media) == 3
    page = bob.get(f"/imports/jobs/{job_id}")
    html = page.get_data(as_text=True)
    assert 'data-status="succeeded"' in html and ">Done<" in html
    assert re.search(r'data-count="created"><dt>Created</dt><dd>3</dd>', html)
    assert 'data-testid="import-rows"' in html and html.count('data-outcome="created"') == 3
    assert "/library/media/" in html and f"/imports/jobs/{job_id}/rows.csv" in html
    assert activity(app, "import.finished")[0].entity_id == str(job_id)


def test_rows_keep_their_item_when_it_is_deleted_and_follow_it_when_it_is_merged(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    _token, job_id = start_csv(bob)
    run_worker(app)
    dune, formula, alien = (row.media_id for row in rows_of(app, job_id))
    assert None not in (dune, formula, alien)

    # "=1+2" (2001) merged into Alien (1979): its row now leads to the item that holds its entry
    merged = bob.post("/library/duplicates/merge", data={"keep": alien, "merge": formula})
    assert merged.status_code == 303
    assert bob.post(f"/library/media/{dune}/delete").status_code in (200, 303)
    assert count(app, Media) == 1

    assert [row.media_id for row in rows_of(app, job_id)] == [dune, alien, alien]  # history kept, not blanked
    html = bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)
    assert f'<span class="muted" data-testid="item-deleted">Item {dune} (deleted)</span>' in html
    assert f"/library/media/{dune}\"" not in html
    assert html.count(f'href="/library/media/{alien}"') == 2
    audit = list(csv.DictReader(io.StringIO(bob.get(f"/imports/jobs/{job_id}/rows.csv").get_data(as_text=True))))
    assert [line["item_id"] for line in audit] == [str(dune), str(alien), str(alien)]


def test_the_audit_csv_has_a_line_per_row_and_escapes_formulas(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    _token, job_id = start_csv(bob)
    run_worker(app)

    resp = bob.get(f"/imports/jobs/{job_id}/rows.csv")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"].startswith("attachment;")
    lines = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert lines[0][:3] == ["row", "line", "outcome"]
    assert len(lines) == 1 + 3
    titles = [line[lines[0].index("title")] for line in lines[1:]]
    assert titles == ["Dune", "'=1+2", "Alien"]

    only_failed = bob.get(f"/imports/jobs/{job_id}/rows.csv?outcome=failed")
    assert len(list(csv.reader(io.StringIO(only_failed.get_data(as_text=True))))) == 1
    assert actors.client("carol").get(f"/imports/jobs/{job_id}/rows.csv").status_code == 404


def test_the_audit_csv_streams_when_every_request_is_audited(make_app: Any) -> None:
    """AUDIT_LOG_MODE=all commits the request's own event while the CSV is being streamed."""
    app = make_app(AUDIT_LOG_MODE="all")
    bob = Actors(app).client("bob")
    _token, job_id = start_csv(bob)
    run_worker(app)
    resp = bob.get(f"/imports/jobs/{job_id}/rows.csv")
    assert resp.status_code == 200
    assert len(list(csv.reader(io.StringIO(resp.get_data(as_text=True))))) == 1 + 3


def test_the_job_page_fragment_polls_while_running_and_stops_when_finished(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    _token, job_id = start_csv(bob)

    running = bob.get(f"/imports/jobs/{job_id}", headers=HTMX)
    body = running.get_data(as_text=True)
    assert running.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<section id="job-progress"')
    assert 'hx-trigger="every 1s"' in body and f'hx-get="/imports/jobs/{job_id}"' in body
    assert "import-rows" not in body and "HX-Request" in running.headers["Vary"]
    assert "HX-Trigger" not in running.headers
    full = bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)
    assert "<html" in full and 'hx-trigger="every 1s"' in full and ">Refresh</a>" in full

    run_worker(app)

    done = bob.get(f"/imports/jobs/{job_id}", headers=HTMX)
    body = done.get_data(as_text=True)
    assert 'id="job-progress"' in body and 'data-status="succeeded"' in body
    assert "hx-trigger" not in body and "hx-get" not in body
    assert done.headers["HX-Trigger"] == "import-finished"
    # What the trigger makes the page fetch: the row table alone.
    rows = bob.get(f"/imports/jobs/{job_id}/rows?outcome=created", headers=HTMX).get_data(as_text=True)
    assert "<html" not in rows and rows.count('data-outcome="created"') == 3 and "job-progress" not in rows


def test_the_same_file_twice_while_the_first_is_queued_returns_the_same_job(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    _token, first = start_csv(bob)
    _token, second = start_csv(bob)
    assert second == first
    assert count(app, SyncJob) == 1
    page = bob.get(f"/imports/jobs/{first}").get_data(as_text=True)
    assert "This file is already being imported" in page
    assert len(activity(app, "import.started")) == 1


def test_a_mapping_without_a_title_column_is_refused(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    resp = upload(bob, "/imports/csv", CSV_TEXT.encode())
    token = resp.headers["Location"].split("/")[-2]
    form = {**mapping_of(bob, token), "map-title": ""}

    start = bob.post(f"/imports/csv/{token}/start", data=form)
    assert start.status_code == 422
    assert "Choose which column holds the title." in start.get_data(as_text=True)
    preview = bob.post(f"/imports/csv/{token}/preview", data=form, headers=HTMX)
    assert preview.status_code == 422
    assert 'data-testid="preview-error"' in preview.get_data(as_text=True)
    bogus = bob.post(f"/imports/csv/{token}/start", data={**form, "map-title": "Nope"})
    assert bogus.status_code == 422
    assert count(app, SyncJob) == 0


def test_the_csv_template_downloads(app: Flask, actors: Actors) -> None:
    resp = actors.client("vera").get("/imports/csv/template.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert resp.get_data(as_text=True).startswith("import_ref,media_type,title,")


# --- cancel, fix, retry ------------------------------------------------------------------------------------------


def test_cancel_a_queued_job(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    _token, job_id = start_csv(bob)
    assert f'action="/imports/jobs/{job_id}/cancel"' in bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)

    resp = bob.post(f"/imports/jobs/{job_id}/cancel")
    assert resp.status_code == 303 and resp.headers["Location"] == f"/imports/jobs/{job_id}"
    assert job_of(app, job_id).status == "cancelled"
    assert [e.entity_id for e in activity(app, "import.cancel_requested")] == [str(job_id)]
    assert [e.entity_id for e in activity(app, "import.cancelled")] == [str(job_id)]
    run_worker(app)  # the enqueued stage finds a cancelled job and does nothing
    assert count(app, Media) == 0
    page = bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)
    assert 'data-status="cancelled"' in page and "/cancel" not in page

    again = bob.post(f"/imports/jobs/{job_id}/cancel", follow_redirects=True)
    assert "This import has already finished." in again.get_data(as_text=True)


def test_a_fixed_failed_row_is_created_by_a_retry(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    _token, job_id = start_csv(bob, b"Title,Year\nDune,1965\nSolaris,19x1\n")
    run_worker(app)
    failed = [r for r in rows_of(app, job_id) if r.outcome == "failed"]
    assert len(failed) == 1 and job_of(app, job_id).failed == 1
    row = failed[0]
    page = bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)
    fix_url = f"/imports/jobs/{job_id}/rows/{row.id}/fix"
    assert fix_url in page and "Retry failed rows (1)" in page

    form = bob.get(fix_url)
    html = form.get_data(as_text=True)
    assert form.status_code == 200 and 'value="Solaris"' in html and 'value="19x1"' in html

    still_bad = bob.post(fix_url, data={"title": "Solaris", "media_type": "movie", "year": "19x2"})
    assert still_bad.status_code == 422 and "year" in still_bad.get_data(as_text=True).lower()
    saved = bob.post(fix_url, data={"title": "Solaris", "media_type": "movie", "year": "1972"})
    assert saved.status_code == 303
    assert [e.details["row"] for e in activity(app, "import.row_fixed")] == [row.row_number]

    retry = bob.post(f"/imports/jobs/{job_id}/retry")
    assert retry.status_code == 303
    assert [e.entity_id for e in activity(app, "import.retried")] == [str(job_id)]
    run_worker(app)

    fixed = next(r for r in rows_of(app, job_id) if r.id == row.id)
    assert fixed.outcome == "created" and fixed.media_id
    job = job_of(app, job_id)
    assert (job.status, job.created, job.failed) == ("succeeded", 2, 0)
    with app.app_context():
        assert db.session.get(Media, fixed.media_id).year == 1972
    assert bob.get(fix_url).status_code == 409  # no longer a failed row


# --- Delicious, bad files, size limit -----------------------------------------------------------------------------


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_the_delicious_tab_refuses_files_that_are_not_an_export(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    files_before = upload_files(app)
    png = upload(bob, "/imports/delicious", PNG, "cover.png")
    assert png.status_code == 422
    html = png.get_data(as_text=True)
    assert "This is not a Delicious Library export: it is a binary file" in html
    assert 'data-tab="delicious"' in html and 'data-testid="upload-error"' in html

    spreadsheet = b"Name,Shelf,Price\nDune,A1,9.99\n"
    plain_csv = upload(bob, "/imports/delicious", spreadsheet, "items.csv")
    assert plain_csv.status_code == 422
    assert "This is not a Delicious Library export" in plain_csv.get_data(as_text=True)
    assert "columns (Title, Item Type" in plain_csv.get_data(as_text=True)

    assert upload_files(app) == files_before and count(app, SyncJob) == 0


def test_a_delicious_export_starts_at_once(app: Flask, actors: Actors) -> None:
    export = (b'<?xml version="1.0" encoding="UTF-8"?>\n<plist version="1.0"><array><dict>'
              b"<key>title</key><string>Kind of Blue</string><key>type</key><string>Music</string>"
              b"<key>uuidString</key><string>A1</string></dict></array></plist>\n")
    bob = actors.client("bob")
    resp = upload(bob, "/imports/delicious", export, "Library.xml")
    assert resp.status_code == 303
    job_id = job_id_from(resp)
    run_worker(app)
    job = job_of(app, job_id)
    assert (job.kind, job.status, job.created) == ("delicious", "succeeded", 1)


def test_empty_and_binary_csv_files_get_a_clear_message(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    files_before = upload_files(app)
    empty = upload(bob, "/imports/csv", b"")
    assert empty.status_code == 422 and "The file is empty." in empty.get_data(as_text=True)
    binary = upload(bob, "/imports/csv", PNG, "photo.csv")
    assert binary.status_code == 422 and "This is not a CSV file" in binary.get_data(as_text=True)
    nothing = bob.post("/imports/csv", data={}, content_type="multipart/form-data")
    assert nothing.status_code == 422 and "Choose a file to upload." in nothing.get_data(as_text=True)
    assert upload_files(app) == files_before


def test_a_file_above_the_limit_gets_a_413_page_naming_the_limit(make_app: Any) -> None:
    app = make_app(IMPORT_MAX_MB=1)
    actors = Actors(app)
    bob = actors.client("bob")
    files_before = upload_files(app)
    resp = upload(bob, "/imports/csv", b"title\n" + b"x" * (2 * 1024 * 1024), "big.csv")
    assert resp.status_code == 413
    html = resp.get_data(as_text=True)
    assert "files up to 1 MB can be imported" in html and "data-error-message" in html
    assert upload_files(app) == files_before and count(app, SyncJob) == 0

    # Just under the request limit but above the import limit: the service refuses it, as clearly.
    between = upload(bob, "/imports/csv", b"title\n" + b"x" * (1024 * 1024 + 100), "big.csv")
    assert between.status_code == 422
    assert "larger than the 1 MB import limit" in between.get_data(as_text=True)
    assert upload_files(app) == files_before


# --- barcodes -----------------------------------------------------------------------------------------------------


def test_a_barcode_batch_gives_each_code_its_outcome(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    page = bob.get("/imports/?tab=barcode").get_data(as_text=True)
    assert 'name="codes"' in page and "autofocus" in page and "data-scan-start hidden" in page

    resp = bob.post("/imports/barcodes", data={"codes": "978-0-441-01359-3\n036000291452\nhello\n"})
    assert resp.status_code == 303
    job_id = job_id_from(resp)
    started = activity(app, "import.started")
    assert [(e.entity_id, e.details["kind"], e.details["codes"]) for e in started] == [(str(job_id), "barcode", 3)]
    run_worker(app)

    outcomes = [(r.raw["line"], r.outcome) for r in rows_of(app, job_id)]
    assert outcomes == [(1, "created"), (2, "created"), (3, "failed")]
    html = bob.get(f"/imports/jobs/{job_id}").get_data(as_text=True)
    assert html.count('data-outcome="created"') == 2 and html.count('data-outcome="failed"') == 1
    assert "EAN/UPC" in html

    empty = bob.post("/imports/barcodes", data={"codes": "  \n"})
    assert empty.status_code == 422 and "Enter at least one barcode or ISBN." in empty.get_data(as_text=True)


# --- who sees what -------------------------------------------------------------------------------------------------


def test_a_viewer_sees_no_upload_forms_and_cannot_post(app: Flask, actors: Actors) -> None:
    vera = actors.client("vera")
    files_before = upload_files(app)
    for tab in ("csv", "delicious", "barcode"):
        html = vera.get(f"/imports/?tab={tab}").get_data(as_text=True)
        assert 'data-testid="read-only"' in html
        assert "<form method=\"post\" enctype" not in html and 'name="codes"' not in html
    assert upload(vera, "/imports/csv", CSV_TEXT.encode()).status_code == 403
    assert upload(vera, "/imports/delicious", CSV_TEXT.encode()).status_code == 403
    assert vera.post("/imports/barcodes", data={"codes": "9780441013593"}).status_code == 403
    assert upload_files(app) == files_before and count(app, SyncJob) == 0
    assert len(activity(app, "permission.denied")) == 3


def test_members_see_only_their_own_jobs_and_admins_see_everyones(app: Flask, actors: Actors) -> None:
    alice, bob, carol = actors.client("alice"), actors.client("bob"), actors.client("carol")
    _token, bobs = start_csv(bob)
    resp = alice.post("/imports/barcodes", data={"codes": "9780441013593"})
    alices = job_id_from(resp)

    assert bob.get(f"/imports/jobs/{alices}").status_code == 404
    assert carol.get(f"/imports/jobs/{bobs}").status_code == 404
    assert carol.post(f"/imports/jobs/{bobs}/cancel").status_code == 404
    assert alice.get(f"/imports/jobs/{bobs}").status_code == 200

    bob_history = bob.get("/imports/jobs").get_data(as_text=True)
    assert f'data-job="{bobs}"' in bob_history and f'data-job="{alices}"' not in bob_history
    assert ">Owner<" not in bob_history
    admin_history = alice.get("/imports/").get_data(as_text=True)
    assert f'data-job="{bobs}"' in admin_history and f'data-job="{alices}"' in admin_history
    assert ">Owner<" in admin_history and "<td>Bob</td>" in admin_history
    # an admin may cancel anyone's import
    assert alice.post(f"/imports/jobs/{bobs}/cancel").status_code == 303
    assert job_of(app, bobs).status == "cancelled"


def test_the_history_is_paginated(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    for i in range(23):
        bob.post("/imports/barcodes", data={"codes": f"code{i}"})
    first = bob.get("/imports/jobs").get_data(as_text=True)
    assert first.count("data-job=") == 20 and "Page 1 of 2" in first
    second = bob.get("/imports/jobs?page=2", headers=HTMX)
    body = second.get_data(as_text=True)
    assert "<html" not in body and body.count("data-job=") == 3


# --- flags, tabs, nav ----------------------------------------------------------------------------------------------


def set_flag(app: Flask, actors: Actors, key: str, on: bool) -> None:
    from collectz.models import User

    with app.app_context():
        flags.set_enabled(db.session.get(User, actors.ids["alice"]), key, on)
        db.session.remove()


def test_the_csv_routes_are_404_while_the_csv_flag_is_off(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    resp = upload(bob, "/imports/csv", CSV_TEXT.encode())
    token = resp.headers["Location"].split("/")[-2]
    set_flag(app, actors, "import_csv", False)

    for probe in (bob.get("/imports/csv/template.csv"), bob.get(f"/imports/csv/{token}/map"),
                  bob.get("/imports/?tab=csv"), upload(bob, "/imports/csv", CSV_TEXT.encode()),
                  bob.post(f"/imports/csv/{token}/start", data={})):
        assert probe.status_code == 404 and probe.headers["X-Feature-Off"] == "import_csv"
    page = bob.get("/imports/").get_data(as_text=True)
    assert 'data-tab="csv"' not in page and 'data-tab="delicious"' in page
    assert bob.post("/imports/barcodes", data={"codes": "9780441013593"}).status_code == 303

    set_flag(app, actors, "imports", False)
    off = bob.get("/imports/")
    assert off.status_code == 404 and off.headers["X-Feature-Off"] == "imports"


def test_tabs_switch_in_place_and_are_plain_links(app: Flask, actors: Actors) -> None:
    bob = actors.client("bob")
    full = bob.get("/imports/").get_data(as_text=True)
    assert 'href="/imports/?tab=barcode"' in full and 'aria-current="page">CSV<' in full
    assert "Recent imports" in full
    fragment = bob.get("/imports/?tab=barcode", headers=HTMX)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and "Recent imports" not in body
    assert 'aria-current="page">Barcode<' in body and 'name="codes"' in body
    assert "HX-Request" in fragment.headers["Vary"]


def test_the_nav_badge_counts_running_imports(app: Flask, actors: Actors) -> None:
    bob, carol = actors.client("bob"), actors.client("carol")
    badge = re.compile(r'id="imports-badge"[^>]*data-count="(\d+)"')
    assert badge.search(bob.get("/library/").get_data(as_text=True)).group(1) == "0"

    bob.post("/imports/barcodes", data={"codes": "9780441013593"})
    assert badge.search(bob.get("/library/").get_data(as_text=True)).group(1) == "1"
    assert badge.search(carol.get("/library/").get_data(as_text=True)).group(1) == "0"
    assert badge.search(actors.client("alice").get("/library/").get_data(as_text=True)).group(1) == "1"
    fragment = bob.get("/imports/badge", headers=HTMX).get_data(as_text=True)
    assert 'data-count="1"' in fragment and "<html" not in fragment

    run_worker(app)
    assert badge.search(bob.get("/library/").get_data(as_text=True)).group(1) == "0"
