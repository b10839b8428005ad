"""Imports survive crashes and run side by side: real `python worker.py` processes on a real Redis.

- A worker killed with SIGKILL mid-import: another worker's sweeper revives the job, which completes with every
  row imported exactly once.
- Redis restarting empty (FLUSHDB of the test's own Redis database) loses the queued steps, not the job: the
  sweeper revives it, at the stage step (not yet read) and mid-run.
- Two imports of overlapping files on two workers at once make no duplicate item; importing a file again
  creates nothing.

Each test has a fresh database on its backend (SQLite file / PostgreSQL database) and a Redis database number
of its own (tests.imports_procs.claim_redis_db). Without TEST_REDIS_URL they are skipped (in CI they fail).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rq import Queue

from tests.conftest import Backend
from tests.imports_procs import (
    CHUNK_SIZE,
    FAULT_ROWS,
    KILL_AT,
    assert_complete,
    book,
    census,
    chunk_span,
    job_row,
    make_stack,
    movie,
    report_import,
    scaled,
    start_csv_import,
    wait_finished,
    wait_mid_chunk,
    wait_stale,
    write_csv,
)

pytestmark = pytest.mark.slow

ROWS = FAULT_ROWS  # 3,000 here; python -m bench faults runs the scenarios at full size


def collection(numbers: range, location: str = "") -> list[dict[str, str]]:
    """Half books with an ISBN, half films matched by title + year only; every row a distinct item."""
    return [book(n, location) if n % 2 else movie(n, location) for n in numbers]


def interleave(*groups: list[dict[str, str]]) -> list[dict[str, str]]:
    """The groups' rows mixed evenly (each group's own order kept)."""
    keyed = [(i / len(group), g, row) for g, group in enumerate(groups) for i, row in enumerate(group)]
    return [row for _pos, _g, row in sorted(keyed, key=lambda k: (k[0], k[1]))]


def imports_queued(stack) -> int:
    return Queue("imports", connection=stack.redis).count


def test_worker_killed_mid_import_is_revived_and_completes_exactly(backend: Backend, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "collection.csv", collection(range(ROWS)))
    with make_stack(backend, tmp_path) as stack:
        started = time.monotonic()
        job_id = start_csv_import(stack, "bob@example.org", path)
        first = stack.start_worker()
        wait_mid_chunk(stack, job_id)
        stack.crash(first)

        killed = job_row(stack, job_id)
        assert killed.status == "running" and killed.staged_at is not None
        assert KILL_AT <= killed.processed < ROWS
        # Chunks are all-or-nothing: what the kill cut short left no trace.
        assert killed.processed % CHUNK_SIZE == 0
        progress = census(stack)
        assert progress.media == killed.created == killed.processed
        lost_step = imports_queued(stack) == 0  # the kill took the job's only step with it (the usual case)

        # Nothing moves without a worker; a worker restarted once the job looks dead picks it up.
        wait_stale(stack, job_id)
        assert job_row(stack, job_id).processed == killed.processed
        restarted = time.monotonic()
        stack.start_worker()
        [job] = wait_finished(stack, [job_id], timeout=scaled(35))
        finished = time.monotonic()

        after = census(stack)
        assert_complete(job, ROWS, after)
        assert job.created == ROWS
        assert after.media == ROWS and after.copies == ROWS
        assert after.sources == ROWS
        assert after.duplicate_isbns == [] and after.duplicate_titles == []
        assert after.duplicate_row_numbers == 0
        if lost_step:
            assert (job_id, "running") in stack.revivals(), "the job finished although nothing revived it?"
        report_import("worker_sigkill_mid_import", stack, job, after, ROWS, started=started, recovering=restarted,
                      finished=finished, killed_after_rows=killed.processed)


def test_redis_restarting_empty_loses_no_import(backend: Backend, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "collection.csv", collection(range(ROWS)))
    with make_stack(backend, tmp_path) as stack:
        # 1. Redis empties before any worker took the job: its stage step is gone.
        started = time.monotonic()
        job_id = start_csv_import(stack, "bob@example.org", path)
        assert imports_queued(stack) == 1
        stack.flush_redis()
        assert imports_queued(stack) == 0 and stack.redis.dbsize() == 1  # only the test's claim on the db
        wait_stale(stack, job_id)
        first = stack.start_worker()
        wait_mid_chunk(stack, job_id, at_least=2 * CHUNK_SIZE)
        assert stack.revivals()[:1] == [(job_id, "queued")]  # revived at the stage step

        # 2. Mid-run: the worker dies and Redis comes back empty (its registries, queues, periodic keys).
        stack.crash(first)
        stack.flush_redis()
        killed = job_row(stack, job_id)
        assert killed.status == "running" and 0 < killed.processed < ROWS
        wait_stale(stack, job_id)
        restarted = time.monotonic()
        second = stack.start_worker()
        [job] = wait_finished(stack, [job_id], timeout=scaled(35))
        finished = time.monotonic()
        assert (job_id, "running") in stack.revivals()[1:]  # and mid-run

        after = census(stack)
        assert_complete(job, ROWS, after)
        assert job.created == ROWS
        assert after.media == ROWS and after.copies == ROWS and after.sources == ROWS
        assert after.duplicate_isbns == [] and after.duplicate_titles == []
        assert after.duplicate_row_numbers == 0
        assert second.poll() is None
        report_import("redis_restart_mid_import", stack, job, after, ROWS, started=started, recovering=restarted,
                      finished=finished, flushed_after_rows=killed.processed)


def test_overlapping_imports_on_two_workers_make_no_duplicates(backend: Backend, tmp_path: Path) -> None:
    # Both files hold the same 1,200 rows (the same entries: they map to one item), 300 rows of the same items
    # written differently (another entry of each item: one item, two copies), and 600 rows of their own.
    shared = collection(range(0, 1200))
    same_items_a = collection(range(2000, 2300), location="Shelf A")
    same_items_b = collection(range(2000, 2300), location="Shelf B")
    only_a = collection(range(10_000, 10_600))
    only_b = collection(range(20_000, 20_600))
    # Both jobs start with the items written differently, mixed with rows of their own (no entry in common: only
    # the import write lock stops both from creating the same item), then the shared rows.
    rows_a = interleave(same_items_a, only_a[:300]) + interleave(shared, only_a[300:])
    rows_b = interleave(same_items_b, only_b[:300]) + interleave(shared, only_b[300:])
    assert len(rows_a) == len(rows_b) == 2100
    file_a = write_csv(tmp_path / "a.csv", rows_a)
    file_b = write_csv(tmp_path / "b.csv", rows_b)
    union = len(shared) + len(same_items_a) + len(only_a) + len(only_b)

    with make_stack(backend, tmp_path) as stack:
        stack.start_worker()
        stack.start_worker()
        stack.wait_ready(2)
        stack.wait_idle()  # both take a job at once, neither is held by a start-up clean-up
        # The jobs are made only now: a queued job that waits longer than IMPORT_STALE_SECONDS is the sweeper's to
        # start (as after a Redis restart), and on a slow machine it would start them while the workers start.
        job_a = start_csv_import(stack, "bob@example.org", file_a, enqueue=False)
        job_b = start_csv_import(stack, "carol@example.org", file_b, enqueue=False)
        from collectz.jobs import imports as import_jobs

        with stack.ctx():
            assert import_jobs.enqueue_stage(job_a) and import_jobs.enqueue_stage(job_b)
        a, b = wait_finished(stack, [job_a, job_b], timeout=60)

        after = census(stack)
        assert_complete(a, len(rows_a), after)
        assert_complete(b, len(rows_b), after)
        # The two jobs really ran side by side.
        assert a.started_at < b.finished_at and b.started_at < a.finished_at
        if backend.name == "postgresql":  # the advisory lock queues chunks fairly: they take turns
            (a_first, a_last), (b_first, b_last) = chunk_span(stack, job_a), chunk_span(stack, job_b)
            assert a_first < b_last and b_first < a_last
        assert after.duplicate_isbns == [] and after.duplicate_titles == []
        assert after.media == union
        assert a.created + b.created == union
        # Each shared entry once; each differently-written row another entry (and copy) of its item.
        assert after.sources == len(shared) + 2 * len(same_items_a) + len(only_a) + len(only_b)
        assert after.copies == union + len(same_items_a)
        assert a.updated + b.updated == len(same_items_a)
        assert a.skipped + b.skipped == len(shared)

        # Importing a file again creates nothing (same user, after the first import finished).
        again = start_csv_import(stack, "bob@example.org", file_a)
        [rerun] = wait_finished(stack, [again], timeout=30)
        final = census(stack)
        assert_complete(rerun, len(rows_a), final)
        assert rerun.created == 0
        assert rerun.skipped == len(rows_a)
        assert (final.media, final.copies, final.sources) == (after.media, after.copies, after.sources)
        assert final.duplicate_isbns == [] and final.duplicate_titles == []

