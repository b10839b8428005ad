"""GET /metrics: Prometheus text behind METRICS_TOKEN; request, sign-in, rate-limit, job, import-row and queue
figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from collectz import queue
from collectz.extensions import db
from collectz.models import SyncJob
from collectz.models.base import utcnow
from tests.conftest import Actors

TOKEN = "metrics-token-" + "x" * 24
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = client.get("/metrics", headers=AUTH)
    assert resp.status_code == 200, resp.status_code
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_app(make_app: Any) -> Flask:
    return make_app(METRICS_TOKEN=TOKEN)


def test_without_a_token_setting_there_is_no_metrics_endpoint(app: Flask):
    assert app.test_client().get("/metrics", headers=AUTH).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer "])
def test_the_wrong_token_is_refused(metrics_app: Flask, header: str | None):
    resp = metrics_app.test_client().get("/metrics", headers={"Authorization": header} if header else {})
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert b"collectz_" not in resp.data


def test_requests_are_counted_and_timed_by_endpoint_not_by_path(metrics_app: Flask):
    actors = Actors(metrics_app)
    bob = actors.client("bob")
    before = scrape(bob)
    for _ in range(3):
        assert bob.get("/library/").status_code == 200
    bob.get("/library/media/424242")
    bob.get("/no/such/page/1")
    bob.get("/no/such/page/2")
    after = scrape(bob)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("collectz_http_requests_total", endpoint="library.index", method="GET", status="200") == 3
    assert delta("collectz_http_requests_total", endpoint="library.media_detail", method="GET", status="404") == 1
    assert delta("collectz_http_requests_total", endpoint="unmatched", method="GET", status="404") == 2
    assert delta("collectz_http_request_duration_seconds_count", endpoint="library.index", method="GET") == 3
    assert delta("collectz_http_request_duration_seconds_bucket", endpoint="library.index", method="GET",
                 le="+Inf") == 3
    assert delta("collectz_http_request_duration_seconds_sum", endpoint="library.index", method="GET") > 0
    assert not [k for k in after if "/no/such" in str(k)]  # raw paths never become labels
    assert delta("collectz_http_requests_total", endpoint="metrics", method="GET", status="200") == 0


def test_sign_in_failures_and_rate_limit_refusals_are_counted(make_app: Any):
    app = make_app(METRICS_TOKEN=TOKEN, LOGIN_LIMIT_PER_ACCOUNT="2 per minute")
    Actors(app)
    client = app.test_client()
    before = scrape(client)
    codes = [client.post("/auth/login", data={"email": "bob@example.org", "password": "wrong password 1"})
             .status_code for _ in range(3)]
    client.get("/auth/reset?token=not-a-real-link")
    after = scrape(client)

    assert codes == [422, 422, 429]
    assert value(after, "collectz_auth_failures_total", endpoint="auth.login", reason="refused") - \
        value(before, "collectz_auth_failures_total", endpoint="auth.login", reason="refused") == 2
    assert value(after, "collectz_auth_failures_total", endpoint="auth.login", reason="rate_limited") - \
        value(before, "collectz_auth_failures_total", endpoint="auth.login", reason="rate_limited") == 1
    assert value(after, "collectz_auth_failures_total", endpoint="auth.reset", reason="refused") - \
        value(before, "collectz_auth_failures_total", endpoint="auth.reset", reason="refused") == 1
    assert value(after, "collectz_rate_limited_total", limit_class="auth") - \
        value(before, "collectz_rate_limited_total", limit_class="auth") == 1


def test_jobs_import_rows_and_queue_depth_come_from_their_sources(metrics_app: Flask):
    actors = Actors(metrics_app)
    now = utcnow()
    with metrics_app.app_context():
        def job(kind: str, status: str, seconds: float | None, **counts: int) -> SyncJob:
            finished = now if seconds is not None else None
            started = now - timedelta(seconds=seconds) if seconds is not None else now
            return SyncJob(kind=kind, status=status, created_by=actors.ids["bob"], started_at=started,
                           finished_at=finished, **counts)

        db.session.add_all([job("csv", "succeeded", 2.0, created=10, updated=5, skipped=1),
                            job("csv", "succeeded", 4.0, created=3, failed=2),
                            job("delicious", "failed", 1.5, failed=7), job("csv", "running", None, created=4),
                            job("plex", "queued", None)])
        db.session.commit()
        for _ in range(2):
            queue.get_queue("imports", metrics_app).enqueue("collectz.jobs.imports.run_stage", 999999)
    samples = scrape(metrics_app.test_client())

    assert value(samples, "collectz_database_up") == 1 and value(samples, "collectz_queue_up") == 1
    assert value(samples, "collectz_jobs", kind="csv", status="succeeded") == 2
    assert value(samples, "collectz_jobs", kind="csv", status="running") == 1
    assert value(samples, "collectz_jobs", kind="plex", status="queued") == 1
    assert value(samples, "collectz_job_duration_seconds_count", kind="csv", status="succeeded") == 2
    assert value(samples, "collectz_job_duration_seconds_sum", kind="csv", status="succeeded") == pytest.approx(6.0,
                                                                                                              abs=0.01)
    assert value(samples, "collectz_job_duration_seconds_count", kind="delicious", status="failed") == 1
    assert value(samples, "collectz_import_rows_total", kind="csv", outcome="created") == 17
    assert value(samples, "collectz_import_rows_total", kind="csv", outcome="failed") == 2
    assert value(samples, "collectz_import_rows_total", kind="delicious", outcome="failed") == 7
    assert value(samples, "collectz_queue_depth", queue="imports") == 2
    assert value(samples, "collectz_queue_depth", queue="enrichment") == 0
    assert ("collectz_queue_failed", (("queue", "maintenance"),)) in samples


def test_a_scrape_still_answers_while_the_database_and_redis_are_down(make_app: Any, tmp_path):
    app = make_app(METRICS_TOKEN=TOKEN, DATABASE_URL="sqlite:///" + str(tmp_path / "missing" / "x.db"),
                   REDIS_URL="redis://127.0.0.1:1/0")
    samples = scrape(app.test_client())
    assert value(samples, "collectz_database_up") == 0 and value(samples, "collectz_queue_up") == 0
    assert app.test_client().get("/healthz").status_code == 503  # the scrape itself did not fail


def test_the_gunicorn_multiprocess_directory_is_read_when_set(metrics_app: Flask, tmp_path, monkeypatch):
    """With PROMETHEUS_MULTIPROC_DIR, the scrape merges every worker's files (written by prometheus_client)."""
    import subprocess
    import sys

    script = ("from prometheus_client import Counter; "
              "Counter('collectz_probe', 'probe', ['worker']).labels('other').inc(5)")
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    samples = scrape(metrics_app.test_client())
    assert value(samples, "collectz_probe_total", worker="other") == 5
