"""The rq queues as Admin → Queues shows them: counts, workers, failed jobs; retry and delete a failed job.

Reads never change Redis (registry counts skip rq's clean-up, which the workers run anyway). Only ids and
metadata are read: a job's pickled payload (its arguments) is never unpickled here; the function name is
read from the payload's opcodes instead, so the web process runs no code from Redis.
"""

from __future__ import annotations

import pickletools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.results import Result

from collectz.queue import QUEUE_NAMES
from collectz.security.permissions import Actor, require_admin
from collectz.services import audit
from collectz.services.errors import Conflict, DomainError, InvalidInput, NotFound
from collectz.services.pagination import Page

T = TypeVar("T")
PER_PAGE = 20
UNAVAILABLE = "The job queue (Redis) is unreachable, so queue counts, workers and failed jobs cannot be shown."


class QueueUnavailable(DomainError):
    """Redis did not answer."""

    status = 503


@dataclass(frozen=True)
class QueueCounts:
    name: str
    queued: int
    started: int
    failed: int
    scheduled: int
    deferred: int


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    state: str  # "busy" | "idle" | what rq stored ("?" while starting)
    current_job_id: str | None
    queues: list[str]
    last_heartbeat: datetime | None
    birth_date: datetime | None


@dataclass(frozen=True)
class Overview:
    queues: list[QueueCounts]
    workers: list[WorkerInfo]


@dataclass(frozen=True)
class JobInfo:
    """One job's metadata; `traceback` only for a failed job (arguments are never read)."""

    id: str
    queue: str
    status: str
    function: str | None
    enqueued_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    traceback: str | None
    in_failed: bool  # in its queue's failed registry, so it may be retried or deleted

    @property
    def error(self) -> str | None:
        """The exception's last line (`ValueError: boom`)."""
        lines = [line for line in (self.traceback or "").splitlines() if line.strip()]
        return lines[-1].strip()[:300] if lines else None


def _guard(call: Callable[[], T]) -> T:
    """Run a Redis read or write; an unreachable Redis becomes QueueUnavailable (a page, not a 500)."""
    try:
        return call()
    except RedisError as exc:
        raise QueueUnavailable(UNAVAILABLE) from exc


def overview(conn: Redis) -> Overview:
    """Counts per queue and the registered workers."""
    return _guard(lambda: Overview([_counts(conn, name) for name in QUEUE_NAMES], _workers(conn)))


def _counts(conn: Redis, name: str) -> QueueCounts:
    q = Queue(name, connection=conn)
    return QueueCounts(
        name=name,
        queued=q.count,
        started=q.started_job_registry.get_job_count(cleanup=False),
        failed=_failed_total(conn, name),
        scheduled=q.scheduled_job_registry.get_job_count(cleanup=False),
        deferred=q.deferred_job_registry.get_job_count(cleanup=False),
    )


def _workers(conn: Redis) -> list[WorkerInfo]:
    found = []
    for w in Worker.all(connection=conn):
        found.append(WorkerInfo(name=w.name, state=w.get_state(), current_job_id=w.get_current_job_id(),
                                queues=w.queue_names(), last_heartbeat=w.last_heartbeat, birth_date=w.birth_date))
    return sorted(found, key=lambda w: w.name)


def check_queue_name(name: str | None) -> str | None:
    """'' or None means every queue; anything else must be one of ours."""
    if not name:
        return None
    if name not in QUEUE_NAMES:
        raise InvalidInput(f"There is no queue called {name!r} (queues: {', '.join(QUEUE_NAMES)}).",
                           fields={"queue": "Choose one of the queues."})
    return name


def _failed_key(name: str) -> str:
    return FailedJobRegistry(name, connection=None).key  # type: ignore[arg-type]


def _failed_total(conn: Redis, name: str) -> int:
    # Entries are scored by expiry; expired ones (not yet cleaned up by a worker) are not counted.
    return int(conn.zcount(_failed_key(name), time.time(), "+inf"))


def failed_jobs(conn: Redis, queue_name: str | None = None, page: int = 1,
                per_page: int | None = None) -> Page[JobInfo]:
    """Failed jobs, newest first, of one queue or all of them (PER_PAGE a page).

    A failed entry's score is when it expires: the failure second + the failure TTL, the same for all our jobs.
    So each queue's top `page * per_page` entries (and any tied with the last) hold the page; ties within a
    second are ordered by the job's `ended_at`, and the queues are merged on (score, ended_at).
    """
    names: Sequence[str] = [queue_name] if queue_name else QUEUE_NAMES
    per_page = per_page or PER_PAGE
    page = max(1, page)

    def read() -> Page[JobInfo]:
        now, wanted = time.time(), page * per_page
        scores: dict[str, float] = {}
        total = 0
        for name in names:
            key = _failed_key(name)
            total += int(conn.zcount(key, now, "+inf"))
            top = conn.zrevrangebyscore(key, "+inf", now, start=0, num=wanted, withscores=True)
            if len(top) == wanted:  # entries tied with the last one may belong on this page too
                top += conn.zrangebyscore(key, top[-1][1], top[-1][1], withscores=True)
            scores.update((raw.decode(), score) for raw, score in top)
        ids = list(scores)
        with conn.pipeline() as pipe:
            for job_id in ids:
                pipe.hget(Job.key_for(job_id), "ended_at")
            ended = [raw or b"" for raw in pipe.execute()]  # ISO-8601 UTC: sorts as text
        order = sorted(zip(ids, ended, strict=True), key=lambda pair: (scores[pair[0]], pair[1]), reverse=True)
        page_ids = [job_id for job_id, _ended in order[(page - 1) * per_page:wanted]]
        jobs = Job.fetch_many(page_ids, connection=conn)
        items = [_info(conn, job, in_failed=True) if job else _gone(job_id)
                 for job_id, job in zip(page_ids, jobs, strict=True)]
        return Page(items, page, per_page, total)

    return _guard(read)


def job_detail(conn: Redis, job_id: str) -> JobInfo:
    """One job of our queues, whatever its state; NotFound if it is unknown or has expired."""
    return _guard(lambda: _info(conn, _fetch(conn, job_id), None))


def retry_failed(actor: Actor, conn: Redis, job_id: str) -> JobInfo:
    """Put a failed job back on its queue (admins only); one `admin.queue.retry` event."""
    require_admin(actor, "retry background jobs")
    return _act(actor, conn, job_id, "retry", lambda registry, job: registry.requeue(job))


def delete_failed(actor: Actor, conn: Redis, job_id: str) -> JobInfo:
    """Delete a failed job and its result (admins only); one `admin.queue.delete` event."""
    require_admin(actor, "delete background jobs")
    return _act(actor, conn, job_id, "delete", lambda registry, job: registry.remove(job, delete_job=True))


def _act(actor: Actor, conn: Redis, job_id: str, verb: str,
         change: Callable[[FailedJobRegistry, Job], object]) -> JobInfo:
    action = f"admin.queue.{verb}"
    try:
        def run() -> JobInfo:
            job = _fetch(conn, job_id)
            info = _info(conn, job, None)
            if not info.in_failed:
                raise Conflict(f"Job {job_id} is not a failed job (it is {info.status}): only failed jobs can be "
                               f"retried or deleted here.")
            change(FailedJobRegistry(info.queue, connection=conn), job)
            return info

        info = _guard(run)
    except (NotFound, Conflict, QueueUnavailable) as exc:
        audit.record_failure(f"{action}_failed", actor=actor, entity_type="rq_job", entity_id=job_id,
                             reason=exc.message[:255], http_status=exc.status, details={"job_id": job_id})
        raise
    audit.record(action, actor=actor, entity_type="rq_job", entity_id=job_id, commit=True,
                 details={"job_id": job_id, "queue": info.queue, "function": info.function})
    return info


def _fetch(conn: Redis, job_id: str) -> Job:
    try:
        job = Job.fetch(job_id, connection=conn)
    except (NoSuchJobError, ValueError, TypeError):
        raise NotFound(f"There is no job {job_id!r} (it may have finished and expired, or been deleted).") from None
    if job.origin not in QUEUE_NAMES:
        raise NotFound(f"Job {job_id!r} is not on one of collectZ's queues.")
    return job


def _info(conn: Redis, job: Job, in_failed: bool | None) -> JobInfo:
    if in_failed is None:
        in_failed = conn.zscore(_failed_key(job.origin), job.id) is not None
    status = job.get_status(refresh=False)
    failed = in_failed or status == JobStatus.FAILED
    return JobInfo(
        id=job.id,
        queue=job.origin,
        status=str(getattr(status, "value", status) or "unknown"),
        function=function_name(job),
        enqueued_at=job.enqueued_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        traceback=_traceback(job) if failed else None,
        in_failed=in_failed,
    )


def _gone(job_id: str) -> JobInfo:
    """A failed entry whose job hash expired before the registry was cleaned up."""
    return JobInfo(job_id, "", "expired", None, None, None, None, None, in_failed=True)


def _traceback(job: Job) -> str | None:
    # A failure result carries no return value, so reading it unpickles nothing.
    result = job.latest_result()
    if result is not None and result.type == Result.Type.FAILED:
        return result.exc_string
    return None


def function_name(job: Job) -> str | None:
    """The dotted function name from the job payload, read from its pickle opcodes without unpickling it."""
    try:
        for index, (op, arg, _pos) in enumerate(pickletools.genops(job.data)):
            if isinstance(arg, str) and "UNICODE" in op.name:
                return arg[:200]  # the payload is (func_name, instance, args, kwargs): the first string
            if index > 8:
                break
    except Exception:  # an unreadable payload still lists the job
        pass
    return None
