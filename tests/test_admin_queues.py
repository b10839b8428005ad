"""Admin → Queues (/admin/rq): counts per queue, workers, failed jobs with their tracebacks, retry and delete.

Jobs really run: a failing job is enqueued and a real rq SimpleWorker (the embedded ThreadWorker) works the
queues in burst mode. SQLite runs on the embedded fakeredis server, PostgreSQL on real Redis.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from rq.job import Job, JobStatus

from collectz import queue
from collectz.jobs.runner import ThreadWorker, build_worker
from collectz.services import queues as service
from tests.conftest import Actors, activity

SECRET_ARG = 987654321  # a job argument: never shown on the page


def explode(item_id: int) -> None:
    """A job that fails."""
    raise ValueError("boom")


def explode_html(item_id: int) -> None:
    raise ValueError("<b>bold</b> & boom")


def noop(item_id: int) -> int:
    return item_id


def fail(app: Flask, queue_name: str = "maintenance", func: Any = explode) -> str:
    """Enqueue a failing job and run a real worker over the queues in burst mode; returns the job id."""
    job = queue.get_queue(queue_name, app).enqueue(func, item_id=SECRET_ARG)
    build_worker(app, ThreadWorker).work(burst=True, logging_level="ERROR")
    assert Job.fetch(job.id, connection=queue.connection(app)).get_status() == JobStatus.FAILED
    return job.id


def counts(html: str) -> dict[str, dict[str, int]]:
    """{queue: {queued, started, failed, scheduled, deferred}} from the counts table."""
    found: dict[str, dict[str, int]] = {}
    for name, row in re.findall(r'<tr data-queue="(\w+)">(.*?)</tr>', html, re.S):
        found[name] = {kind: int(value) for kind, value in
                       re.findall(r'data-count="(\w+)">(?:<a [^>]*>)?(\d+)', row)}
    return found


def failed_ids(html: str) -> list[str]:
    return re.findall(r'data-testid="failed-job" data-job="([\w-]+)"', html)


def job_status(app: Flask, job_id: str) -> str | None:
    conn = queue.connection(app)
    return Job.fetch(job_id, connection=conn).get_status().value if Job.exists(job_id, conn) else None


@pytest.fixture
def alice(actors: Actors):
    return actors.client("alice")


def test_admin_sees_each_queue_with_its_counts(app: Flask, alice) -> None:
    failed = fail(app, "maintenance")
    imports, enrichment = queue.get_queue("imports", app), queue.get_queue("enrichment", app)
    first = imports.enqueue(noop, 1)
    imports.enqueue(noop, 2)
    imports.enqueue(noop, 3, depends_on=first)  # deferred until `first` finishes
    enrichment.enqueue(noop, 4)
    enrichment.enqueue_in(timedelta(hours=1), noop, 5)

    resp = alice.get("/admin/rq")

    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert counts(html) == {
        "imports": {"queued": 2, "started": 0, "failed": 0, "scheduled": 0, "deferred": 1},
        "enrichment": {"queued": 1, "started": 0, "failed": 0, "scheduled": 1, "deferred": 0},
        "maintenance": {"queued": 0, "started": 0, "failed": 1, "scheduled": 0, "deferred": 0},
    }
    assert failed_ids(html) == [failed]
    assert 'aria-current="page">Queues</a>' in html
    assert 'hx-trigger="every 5s"' in html and 'data-testid="queues-reload"' in html


def test_failed_job_lists_its_error_and_opens_to_the_escaped_traceback(app: Flask, alice) -> None:
    job_id = fail(app, "imports", explode_html)

    listing = alice.get("/admin/rq").get_data(as_text=True)
    row = listing[listing.index(f'data-job="{job_id}"'):]
    row = row[:row.index("</tr>")]
    assert "tests.test_admin_queues.explode_html" in row
    assert "ValueError: &lt;b&gt;bold&lt;/b&gt; &amp; boom" in row
    assert f'href="/admin/rq/jobs/{job_id}"' in row  # a plain link: the drawer works without JS

    resp = alice.get(f"/admin/rq/jobs/{job_id}")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    pre = re.search(r'<pre[^>]*data-testid="job-traceback">(.*?)</pre>', html, re.S)
    assert pre and pre.group(1).startswith("Traceback (most recent call last):")
    assert "raise ValueError(&#34;&lt;b&gt;bold&lt;/b&gt; &amp; boom&#34;)" in pre.group(1)
    assert "<b>bold</b>" not in html
    assert str(SECRET_ARG) not in html and str(SECRET_ARG) not in listing  # arguments are never shown
    assert 'data-testid="job-retry"' in html and 'data-testid="job-delete"' in html


def test_failed_list_is_newest_first_paginated_and_filtered_by_queue(app: Flask, alice, monkeypatch) -> None:
    monkeypatch.setattr(service, "PER_PAGE", 2)
    oldest, middle, newest = fail(app, "imports"), fail(app, "maintenance"), fail(app, "imports")

    first = alice.get("/admin/rq").get_data(as_text=True)
    assert failed_ids(first) == [newest, middle]
    assert "Page 1 of 2" in first and 'href="/admin/rq?page=2"' in first
    assert failed_ids(alice.get("/admin/rq?page=2").get_data(as_text=True)) == [oldest]

    only_imports = alice.get("/admin/rq?queue=imports").get_data(as_text=True)
    assert failed_ids(only_imports) == [newest, oldest]
    assert '<option value="imports" selected>' in only_imports
    assert alice.get("/admin/rq?queue=nope").status_code == 422


def test_retry_puts_a_failed_job_back_on_its_queue_and_is_audited(app: Flask, actors: Actors, alice) -> None:
    job_id = fail(app, "maintenance")

    resp = alice.post(f"/admin/rq/jobs/{job_id}/retry")

    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/rq"
    assert job_status(app, job_id) == "queued"
    page = alice.get("/admin/rq").get_data(as_text=True)
    assert counts(page)["maintenance"] == {"queued": 1, "started": 0, "failed": 0, "scheduled": 0, "deferred": 0}
    assert failed_ids(page) == []
    assert f"Job {job_id} is back on the maintenance queue." in page  # the toast
    [event] = activity(app, "admin.queue.retry")
    assert event.actor_id == actors.ids["alice"] and event.entity_id == job_id and event.status == "ok"
    assert event.details["job_id"] == job_id and event.details["queue"] == "maintenance"
    assert event.details["function"] == "tests.test_admin_queues.explode"

    # it really runs again (and fails again: back in the failed list)
    build_worker(app, ThreadWorker).work(burst=True, logging_level="ERROR")
    assert job_status(app, job_id) == "failed"


def test_delete_removes_a_failed_job_and_is_audited(app: Flask, actors: Actors, alice) -> None:
    job_id, kept = fail(app, "imports"), fail(app, "imports")

    resp = alice.post(f"/admin/rq/jobs/{job_id}/delete?queue=imports")

    assert resp.status_code == 303 and resp.headers["Location"] == "/admin/rq?queue=imports"
    assert job_status(app, job_id) is None
    page = alice.get("/admin/rq").get_data(as_text=True)
    assert failed_ids(page) == [kept] and counts(page)["imports"]["failed"] == 1
    assert alice.get(f"/admin/rq/jobs/{job_id}").status_code == 404
    [event] = activity(app, "admin.queue.delete")
    assert event.actor_id == actors.ids["alice"] and event.details == {
        "job_id": job_id, "queue": "imports", "function": "tests.test_admin_queues.explode"}


def test_only_failed_jobs_can_be_retried_or_deleted(app: Flask, alice) -> None:
    waiting = queue.get_queue("imports", app).enqueue(noop, 1)

    detail = alice.get(f"/admin/rq/jobs/{waiting.id}")
    assert detail.status_code == 200 and 'data-testid="job-retry"' not in detail.get_data(as_text=True)
    refused = alice.post(f"/admin/rq/jobs/{waiting.id}/retry")
    assert refused.status_code == 409 and b"data-error-message" in refused.data
    assert alice.post(f"/admin/rq/jobs/{waiting.id}/delete").status_code == 409
    assert job_status(app, waiting.id) == "queued"
    assert alice.post("/admin/rq/jobs/no-such-job/retry").status_code == 404
    assert alice.get("/admin/rq/jobs/no-such-job").status_code == 404
    assert [e.status for e in activity(app, "admin.queue.retry_failed")] == ["failed", "failed"]
    assert activity(app, "admin.queue.retry") == [] and activity(app, "admin.queue.delete") == []


def test_actions_need_the_csrf_token(app: Flask, alice) -> None:
    job_id = fail(app)
    for verb in ("retry", "delete"):
        assert alice.post(f"/admin/rq/jobs/{job_id}/{verb}", csrf=False).status_code == 403
    assert job_status(app, job_id) == "failed"


@pytest.mark.parametrize("name", ["bob", "vera"])
def test_members_and_viewers_are_refused(app: Flask, actors: Actors, name: str) -> None:
    job_id = fail(app)
    client = actors.client(name)
    for url in ("/admin/rq", "/admin/rq/counts", f"/admin/rq/jobs/{job_id}"):
        resp = client.get(url)
        assert resp.status_code == 403 and b"data-error-message" in resp.data and b"boom" not in resp.data
    for verb in ("retry", "delete"):
        assert client.post(f"/admin/rq/jobs/{job_id}/{verb}").status_code == 403
    assert job_status(app, job_id) == "failed"
    assert activity(app, "admin.queue.retry") == [] and activity(app, "admin.queue.delete") == []
    assert len([e for e in activity(app, "permission.denied") if e.actor_id == actors.ids[name]]) == 5


def test_anonymous_visitors_are_sent_to_sign_in(app: Flask) -> None:
    job_id = fail(app)
    client = app.test_client()
    for url in ("/admin/rq", "/admin/rq/counts", f"/admin/rq/jobs/{job_id}"):
        resp = client.get(url)
        assert resp.status_code == 303 and resp.headers["Location"].startswith("/auth/login")
    resp = client.post(f"/admin/rq/jobs/{job_id}/retry")
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/auth/login")
    assert job_status(app, job_id) == "failed"


HX = {"HX-Request": "true"}


def test_htmx_requests_get_only_their_block(app: Flask, alice) -> None:
    job_id = fail(app)

    tab = alice.get("/admin/rq", headers=HX)
    html = tab.get_data(as_text=True)
    assert tab.status_code == 200 and "HX-Request" in tab.headers["Vary"]
    assert "<html" not in html and 'id="admin-tab"' not in html  # the block, inside its stable target
    assert '<div id="queue-counts"' in html and 'id="failed-heading"' in html and job_id in html

    polled = alice.get("/admin/rq/counts", headers=HX)
    html = polled.get_data(as_text=True)
    assert polled.status_code == 200 and "HX-Request" in polled.headers["Vary"]
    assert "<html" not in html and '<div id="queue-counts"' not in html and "failed-heading" not in html
    assert counts(html)["maintenance"]["failed"] == 1

    drawer = alice.get(f"/admin/rq/jobs/{job_id}", headers=HX)
    html = drawer.get_data(as_text=True)
    assert "<html" not in html and 'id="job-drawer"' not in html and 'data-testid="queue-counts"' not in html
    assert 'data-testid="job-traceback"' in html

    # opened directly, each fragment URL is the whole page
    for url in ("/admin/rq/counts", f"/admin/rq/jobs/{job_id}"):
        page = alice.get(url).get_data(as_text=True)
        assert "<html" in page and '<div id="queue-counts"' in page and 'id="job-drawer"' in page


def test_an_htmx_retry_answers_with_the_tab_and_a_toast(app: Flask, alice) -> None:
    job_id = fail(app)

    resp = alice.post(f"/admin/rq/jobs/{job_id}/retry", headers=HX)

    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "<html" not in html
    assert failed_ids(html) == [] and counts(html)["maintenance"]["queued"] == 1
    assert 'hx-swap-oob' in html and f"Job {job_id} is back on the maintenance queue." in html


def test_workers_are_listed_or_the_page_says_how_to_start_one(app: Flask, alice, backend) -> None:
    html = alice.get("/admin/rq").get_data(as_text=True)
    assert 'data-testid="no-worker"' in html
    if backend.redis_url:
        assert ("No worker is running: start one with <code>python worker.py</code> (or <code>make worker</code>)"
                in html)
    else:
        assert "embedded queue" in html

    worker = build_worker(app, ThreadWorker)
    worker.register_birth()
    try:
        worker.set_state("idle")
        html = alice.get("/admin/rq/counts").get_data(as_text=True)
    finally:
        worker.register_death()
    row = re.search(rf'<tr data-worker="{worker.name}">(.*?)</tr>', html, re.S)
    assert row and "<td>idle</td>" in row.group(1) and "maintenance, imports, enrichment" in row.group(1)
    assert row.group(1).count("<time ") == 2  # last heartbeat and birth
    assert 'data-testid="no-worker"' not in html


def test_an_unreachable_redis_is_said_on_the_page(make_app) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    alice = Actors(app).client("alice")

    for url, headers in (("/admin/rq", {}), ("/admin/rq/counts", HX), ("/admin/rq/jobs/abc", {})):
        resp = alice.get(url, headers=headers)
        html = resp.get_data(as_text=True)
        assert resp.status_code == 200, url
        assert "The job queue (Redis) is unreachable" in html and "Traceback" not in html

    refused = alice.post("/admin/rq/jobs/abc/retry")
    assert refused.status_code == 503 and b"The job queue (Redis) is unreachable" in refused.data
    assert b"Traceback" not in refused.data
    [event] = activity(app, "admin.queue.retry_failed")
    assert event.http_status == 503
