"""Imports in a real browser: a CSV file through map → preview → start, the progress reaching "Done" by htmx
polling (no reload), the audit CSV download; and the Import pages on a phone without sideways scrolling."""

from __future__ import annotations

import csv
import io
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from collectz import jobs
from tests.e2e.conftest import LiveServer
from tests.e2e.helpers import PASSWORD, expect_library, toast

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
CSV_TEXT = ("Title,Year,ISBN,Type,Director\n"
            "Dune,1965,9780441013593,Book,\n"
            "=HYPERLINK(\"http://example.org\"),2001,,Movie,\n"
            "Alien,1979,,Movie,Ridley Scott\n")


@pytest.fixture
def worker() -> Iterator[Callable[[LiveServer], None]]:
    """`worker(server)` starts the in-process rq worker for the live app; stopped (and joined) after the test."""
    previous = jobs._app
    stops: list[threading.Event] = []
    before = set(threading.enumerate())

    def start(server: LiveServer) -> None:
        from collectz.jobs.runner import start_embedded

        stops.append(start_embedded(server.app))

    yield start
    for stop in stops:
        stop.set()
    for thread in set(threading.enumerate()) - before:
        if thread.name in ("collectz-worker", "collectz-ticker"):
            thread.join(timeout=10)
    jobs.set_app(previous)  # type: ignore[arg-type]


def add_member(server: LiveServer, email: str = "bob@example.org", name: str = "Bob") -> None:
    from collectz.extensions import db
    from collectz.models import User
    from collectz.security.passwords import hash_password

    with server.app.app_context():
        db.session.add(User(email=email, name=name, role="user", password_hash=hash_password(PASSWORD)))
        db.session.commit()
        db.session.remove()


def sign_in(page: Page, server: LiveServer, email: str = "bob@example.org") -> None:
    page.goto(server("/auth/login"))
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect_library(page, server)


def upload_csv(page: Page, server: LiveServer, tmp_path: Path) -> None:
    path = tmp_path / "my-films.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    page.get_by_role("link", name="Import", exact=True).click()
    expect(page.get_by_role("heading", name="Import", level=1)).to_be_visible()
    page.get_by_label("CSV file").set_input_files(str(path))
    page.get_by_role("button", name="Upload and map columns").click()
    expect(page.get_by_role("heading", name="Import “my-films.csv”")).to_be_visible()


def test_csv_import_map_preview_start_progress_and_audit_download(page: Page, serve: Callable[..., LiveServer],
                                                                   worker: Callable[[LiveServer], None],
                                                                   tmp_path: Path) -> None:
    server = serve()
    add_member(server)
    sign_in(page, server)
    upload_csv(page, server, tmp_path)

    # The mapping is preselected from the column names.
    expect(page.get_by_label("Title", exact=True)).to_have_value("Title")
    expect(page.get_by_label("Year", exact=True)).to_have_value("Year")
    expect(page.get_by_label("Directors", exact=True)).to_have_value("Director")

    page.get_by_role("button", name="Preview").click()
    preview = page.get_by_test_id("preview-table")
    expect(preview).to_be_visible()
    expect(preview.locator("tbody tr")).to_have_count(3)
    expect(preview.locator('tr[data-outcome="created"]')).to_have_count(3)
    expect(page.get_by_text("Nothing has been imported yet.")).to_be_visible()

    page.get_by_role("button", name="Start import").click()
    expect(page).to_have_url(re.compile(re.escape(server("/imports/jobs/")) + r"\d+$"))
    expect(toast(page, "Import started.")).to_be_visible()
    expect(page.get_by_test_id("job-status")).to_have_text("Queued")
    page.evaluate("window.__samePage = true")

    worker(server)  # only now: the page must learn that the job finished by polling

    expect(page.get_by_test_id("job-status")).to_have_text("Done", timeout=20_000)
    expect(page.get_by_test_id("job-processed")).to_have_text("3 / 3")
    expect(page.locator('[data-count="created"] dd')).to_have_text("3")
    rows = page.get_by_test_id("import-rows")
    expect(rows.locator('tr[data-outcome="created"]')).to_have_count(3)  # swapped in on "import-finished"
    assert page.evaluate("window.__samePage === true"), "the page was reloaded"
    assert page.get_by_test_id("job-progress").get_attribute("hx-trigger") is None  # polling stopped

    with page.expect_download() as info:
        page.get_by_role("link", name="Download audit CSV").click()
    download = info.value
    assert re.fullmatch(r"import-\d+-rows\.csv", download.suggested_filename)
    lines = list(csv.reader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    header = lines[0]
    assert header[:3] == ["row", "line", "outcome"] and len(lines) == 4
    assert [(line[header.index("title")], line[header.index("outcome")]) for line in lines[1:]] == [
        ("Dune", "created"), ("'=HYPERLINK(\"http://example.org\")", "created"), ("Alien", "created")]


def assert_no_sideways_scroll(page: Page, what: str) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, document.body.scrollWidth]")
    width = PHONE["viewport"]["width"]
    assert max(widths) <= width, f"{what} is {max(widths)} px wide on a {width} px screen"


def test_the_import_pages_fit_a_phone_screen(new_context: Callable[..., Any], serve: Callable[..., LiveServer],
                                            worker: Callable[[LiveServer], None], tmp_path: Path,
                                            screenshot_path: Callable[[str], Path]) -> None:
    server = serve()
    add_member(server)
    page = new_context(**PHONE).new_page()
    sign_in(page, server)
    worker(server)

    page.goto(server("/imports/"))
    assert_no_sideways_scroll(page, "the Import page")
    page.get_by_role("link", name="Barcode").click()
    expect(page.get_by_label("Barcodes and ISBNs")).to_be_focused()
    expect(page.get_by_role("button", name="Scan with camera")).to_be_hidden()  # no BarcodeDetector here
    assert_no_sideways_scroll(page, "the Barcode tab")

    upload_csv(page, server, tmp_path)
    assert_no_sideways_scroll(page, "the column mapping")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("preview-table")).to_be_visible()
    assert_no_sideways_scroll(page, "the preview")
    page.screenshot(path=screenshot_path("mobile-import-map"), full_page=True)

    page.get_by_role("button", name="Start import").click()
    expect(page.get_by_test_id("job-status")).to_have_text("Done", timeout=20_000)
    expect(page.get_by_test_id("import-rows")).to_be_visible()
    assert_no_sideways_scroll(page, "the job page")
    page.screenshot(path=screenshot_path("mobile-import-job"), full_page=True)

    page.goto(server("/imports/"))
    expect(page.get_by_test_id("import-history")).to_be_visible()
    assert_no_sideways_scroll(page, "the Import page with its history")
    page.screenshot(path=screenshot_path("mobile-import"), full_page=True)


# A stand-in for the browser's camera and barcode API: a canvas stream as the camera, a detector that "sees" a code.
FAKE_CAMERA = """
window.BarcodeDetector = class {
  static getSupportedFormats() { return Promise.resolve(["ean_13", "upc_a"]); }
  constructor(options) { window.__detectorFormats = options && options.formats; }
  detect() { return Promise.resolve([{ rawValue: "9780441013593" }]); }
};
navigator.mediaDevices.getUserMedia = (constraints) => {
  window.__cameraAsked = constraints;
  const canvas = document.createElement("canvas");
  canvas.width = 64; canvas.height = 48;
  canvas.getContext("2d").fillRect(0, 0, 64, 48);
  return Promise.resolve(canvas.captureStream(5));
};
"""


def test_camera_scanning_appends_each_code_once_to_the_codes_box(page: Page, serve: Callable[..., LiveServer]) -> None:
    server = serve()
    add_member(server)
    page.add_init_script(FAKE_CAMERA)
    sign_in(page, server)
    page.goto(server("/imports/?tab=barcode"))
    codes = page.get_by_label("Barcodes and ISBNs")
    codes.press_sequentially("036000291452")
    codes.press("Enter")  # as a USB scanner ends each code: a new line, not a submit
    expect(codes).to_have_value("036000291452\n")
    expect(page).to_have_url(server("/imports/?tab=barcode"))

    page.get_by_role("button", name="Scan with camera").click()
    expect(page.locator("[data-scan-status]")).to_have_text("Added 9780441013593.")
    page.wait_for_timeout(600)  # the detector keeps seeing the same code: it is not added again
    page.get_by_role("button", name="Stop the camera").click()

    expect(codes).to_have_value("036000291452\n9780441013593\n")
    expect(codes).to_be_focused()
    expect(page.get_by_role("button", name="Scan with camera")).to_be_visible()
    assert page.evaluate("window.__cameraAsked.video.facingMode") == "environment"
    assert page.evaluate("window.__detectorFormats") == ["ean_13", "upc_a"]
