"""Import jobs (queue `imports`) and the import sweeper (queue `maintenance`): ids in, a service step, the next
step enqueued. The steps themselves are in collectz.services.imports."""

from __future__ import annotations

import logging
import time

from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from collectz import queue
from collectz.jobs import app_context

log = logging.getLogger("collectz.jobs")

JOB_TIMEOUT = 3600  # a stage of a very large file; a chunk takes seconds
STEP_SECONDS = 5.0  # how long one chunk step goes on with its job's next chunks
RESULT_TTL = 3600


def step_id(job_id: int, step: str, chunk: int | None = None) -> str:
    """The rq id of an import step: the same step of the same job always has the same id, so the sweeper can tell
    a step that is only waiting its turn in the queue from one that was lost."""
    return f"import-{job_id}-stage" if step == "stage" else f"import-{job_id}-chunk-{chunk or 0}"


def enqueue_stage(job_id: int) -> bool:
    """Hand a new import to the workers; False if Redis is unreachable (the sweeper starts it later)."""
    return _enqueue(run_stage, step_id(job_id, "stage"), job_id)


def enqueue_chunk(job_id: int, chunk: int) -> bool:
    return _enqueue(run_chunk, step_id(job_id, "chunk", chunk), job_id, chunk)


def _enqueue(func: object, rq_id: str, *args: int) -> bool:
    try:
        queue.get_queue("imports").enqueue(func, *args, job_id=rq_id, job_timeout=JOB_TIMEOUT,
                                           result_ttl=RESULT_TTL, failure_ttl=7 * 86400)
        return True
    except Exception as exc:  # Redis down: the job row stays queued and the sweeper revives it
        log.warning("could not enqueue import step", extra={"fields": {"args": list(args), "error": repr(exc)}})
        return False


def run_stage(job_id: int) -> int | None:
    with app_context():
        from collectz.services import imports

        next_chunk = imports.stage(job_id)
        if next_chunk is not None:
            enqueue_chunk(job_id, next_chunk)
        return next_chunk


def run_chunk(job_id: int, chunk: int) -> int | None:
    """Run the job's chunks one after another for up to STEP_SECONDS, then hand the next one to the queue: a chunk
    uses the rows its predecessor read ahead in this process (services.imports._read_ahead), and other jobs still get
    a turn every few seconds."""
    with app_context():
        from collectz.services import imports

        until = time.monotonic() + STEP_SECONDS
        done = imports.process_chunk(job_id, chunk)
        while done.next_chunk is not None and time.monotonic() < until:
            done = imports.process_chunk(job_id, done.next_chunk)
        if done.next_chunk is not None:
            enqueue_chunk(job_id, done.next_chunk)
        elif done.succeeded_here:  # once per job, even when a revived job runs two chains of steps
            from collectz.jobs.enrichment import enqueue_for_import

            enqueue_for_import(job_id)  # metadata for what the import made, on the enrichment queue
            from collectz.jobs.covers import enqueue_for_import as enqueue_covers

            enqueue_covers(job_id)  # the covers its rows carry addresses for, fetched into storage
        return done.next_chunk


def sweep_imports() -> int:
    """Re-enqueue the step of every import that has shown no sign of life for IMPORT_STALE_SECONDS (unless that step
    is only waiting its turn in the queue); returns how many were enqueued again (none while Redis is down: the
    next sweep tries again)."""
    with app_context():
        from collectz.services import imports

        revived = 0
        for revival in imports.sweep():
            if _waiting(step_id(revival.job_id, revival.step, revival.chunk)):
                continue  # queued behind other work, not lost: enqueued again, it would run the job twice over
            if revival.step == "stage":
                enqueued = enqueue_stage(revival.job_id)
            else:
                enqueued = enqueue_chunk(revival.job_id, revival.chunk or 0)
            log.warning("import revived by the sweeper", extra={"fields": {
                "job_id": revival.job_id, "status": revival.status, "step": revival.step, "enqueued": enqueued}})
            revived += enqueued
        return revived


def _waiting(rq_id: str) -> bool:
    """Whether the step is in Redis and still to run (queued, scheduled or deferred). A step a killed worker had
    started, or one that Redis lost, is not."""
    try:
        status = Job.fetch(rq_id, connection=queue.connection()).get_status(refresh=False)
    except NoSuchJobError:
        return False
    except Exception as exc:  # Redis down: the enqueue that follows says so and the next sweep tries again
        log.warning("could not read an import step's state", extra={"fields": {"id": rq_id, "error": repr(exc)}})
        return False
    return status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)
