"""Prometheus metrics at `GET /metrics` (text format), served only with the METRICS_TOKEN bearer token.

Request latency and status counts, sign-in failures and rate-limit refusals are counted by the web process that
served the request (with PROMETHEUS_MULTIPROC_DIR set, gunicorn's workers share them through that directory). Job,
import-row and queue figures are read at scrape time from their sources of truth, the sync_jobs rows and the rq
queues, so they are right whichever process (or machine) ran the job.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, abort, g, request
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from collectz.web.limits import AUTH

log = logging.getLogger("collectz.metrics")

# Page and fragment loads take milliseconds; imports' uploads and exports seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_SECONDS = Histogram("collectz_http_request_duration_seconds", "Time to answer a request, by endpoint.",
                            ["endpoint", "method"], buckets=_BUCKETS)
REQUESTS = Counter("collectz_http_requests", "Requests answered, by endpoint, method and status.",
                   ["endpoint", "method", "status"])
AUTH_FAILURES = Counter("collectz_auth_failures", "Refused sign-ins, registrations, reset links and password "
                        "changes, by endpoint and reason.", ["endpoint", "reason"])
RATE_LIMITED = Counter("collectz_rate_limited", "Requests refused by a rate limit, by endpoint class.",
                       ["limit_class"])
LOG_EXPORT_DROPPED = Counter("collectz_log_export_dropped", "Log lines the log export could not deliver.",
                             ["exporter"])

_UNMATCHED = "unmatched"  # a 404 for a URL no route knows: one label, not one per probed path


def init_app(app: Flask) -> None:
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view)

    @app.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(resp: Response) -> Response:
        observe(resp.status_code)
        return resp


def observe(status: int) -> None:
    """Count this request (once) under its endpoint, never under its raw path (label cardinality)."""
    started = getattr(g, "metrics_started", None)
    if started is None or getattr(g, "metrics_counted", False) or request.endpoint == "metrics":
        return
    g.metrics_counted = True
    endpoint = request.endpoint or _UNMATCHED
    method = request.method if request.method in ("GET", "POST", "HEAD", "PUT", "PATCH", "DELETE") else "other"
    REQUEST_SECONDS.labels(endpoint, method).observe(time.perf_counter() - started)
    REQUESTS.labels(endpoint, method, str(status)).inc()
    # A refusal at a credential endpoint (the rate limits' AUTH set) is an authentication failure.
    if endpoint in AUTH and status >= 400 and (method == "POST" or endpoint == "auth.reset"):
        reason = {429: "rate_limited", 403: "csrf"}.get(status, "refused")
        AUTH_FAILURES.labels(endpoint, reason).inc()


def metrics_view() -> Response:
    """The scrape: 404 when no token is configured (the endpoint does not exist), 401 without the right one."""
    token = current_token()
    if not token:
        abort(404)
    offered = request.headers.get("Authorization", "")
    scheme, _, value = offered.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        resp = Response("A bearer token is needed for /metrics.\n", status=401, mimetype="text/plain")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return resp
    body = generate_latest(_process_registry()) + generate_latest(_scrape_registry())
    return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)  # the classic text format every scraper reads


def current_token() -> str:
    from collectz.config import current_settings

    return current_settings().METRICS_TOKEN


def _process_registry() -> CollectorRegistry:
    """This process's counters, or every worker's when gunicorn runs with PROMETHEUS_MULTIPROC_DIR."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


def _scrape_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StateCollector())
    return registry


class StateCollector(Collector):
    """Figures read from the database and the queues at scrape time."""

    def collect(self) -> Iterator[Metric]:
        yield from _database_metrics()
        yield from _queue_metrics()


def _database_metrics() -> Iterator[Metric]:
    from sqlalchemy import func, select

    from collectz.extensions import db
    from collectz.models import SyncJob

    up = GaugeMetricFamily("collectz_database_up", "1 when the database answered this scrape.")
    try:
        counts = db.session.execute(select(SyncJob.kind, SyncJob.status, func.count())
                                    .group_by(SyncJob.kind, SyncJob.status)).all()
        seconds = _duration(db.engine.dialect.name, SyncJob.started_at, SyncJob.finished_at)
        durations = db.session.execute(
            select(SyncJob.kind, SyncJob.status, func.count(), func.sum(seconds))
            .where(SyncJob.started_at.is_not(None), SyncJob.finished_at.is_not(None))
            .group_by(SyncJob.kind, SyncJob.status)).all()
        rows = db.session.execute(
            select(SyncJob.kind, func.sum(SyncJob.created), func.sum(SyncJob.updated), func.sum(SyncJob.skipped),
                   func.sum(SyncJob.failed)).group_by(SyncJob.kind)).all()
        db.session.rollback()
    except Exception as exc:
        db.session.rollback()
        log.warning("metrics: database unreachable", extra={"fields": {"error": type(exc).__name__}})
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    jobs = GaugeMetricFamily("collectz_jobs", "Import jobs by kind and status (queued, running, succeeded, failed, "
                             "cancelled).", labels=["kind", "status"])
    for kind, status, count in counts:
        jobs.add_metric([kind, status], count)
    yield jobs
    took = SummaryMetricFamily("collectz_job_duration_seconds", "Run time of finished import jobs, by kind and "
                               "outcome.", labels=["kind", "status"])
    for kind, status, count, total in durations:
        took.add_metric([kind, status], count_value=count, sum_value=float(total or 0))
    yield took
    imported = CounterMetricFamily("collectz_import_rows", "Source rows imported, by kind and outcome "
                                   "(rate() gives rows per second).", labels=["kind", "outcome"])
    for kind, *sums in rows:
        for outcome, value in zip(("created", "updated", "skipped", "failed"), sums, strict=True):
            imported.add_metric([kind, outcome], float(value or 0))
    yield imported


def _duration(dialect: str, start: object, end: object) -> object:
    from sqlalchemy import func

    if dialect == "postgresql":
        return func.extract("epoch", end - start)  # type: ignore[operator]
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _queue_metrics() -> Iterator[Metric]:
    from rq import Worker
    from rq.registry import FailedJobRegistry, StartedJobRegistry

    from collectz import queue

    up = GaugeMetricFamily("collectz_queue_up", "1 when Redis answered this scrape.")
    depth = GaugeMetricFamily("collectz_queue_depth", "Jobs waiting in each rq queue.", labels=["queue"])
    started = GaugeMetricFamily("collectz_queue_started", "Jobs running from each rq queue.", labels=["queue"])
    failed = GaugeMetricFamily("collectz_queue_failed", "Jobs in each rq queue's failed registry.", labels=["queue"])
    workers = GaugeMetricFamily("collectz_queue_workers", "rq workers registered in Redis.")
    try:
        conn = queue.connection()
        for name in queue.QUEUE_NAMES:
            q = queue.get_queue(name)
            depth.add_metric([name], q.count)
            started.add_metric([name], StartedJobRegistry(queue=q).count)
            failed.add_metric([name], FailedJobRegistry(queue=q).count)
        workers.add_metric([], Worker.count(connection=conn))
    except Exception as exc:
        log.warning("metrics: queue unreachable", extra={"fields": {"error": type(exc).__name__}})
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield from (up, depth, started, failed, workers)
