"""Helpers for import tests with real processes: a database of the test's own, real worker processes
(`python worker.py`) on a Redis database of the test's own, CSV files, and polling the job rows.

The crash and fault tests (tests/test_imports_crash.py, tests/test_faults*.py) use them. They run at reduced sizes in
`make test`; `python -m bench faults` runs the same scenarios at full size, through the environment: FAULT_ROWS
(rows of an import), FAULT_CHUNK_SIZE (the workers' chunk size), FAULT_COVERS (covers downloaded), and
FAULT_RESULTS, a file each scenario appends its numbers to (`report`).

Each stack has a fresh database (SQLite file or PostgreSQL database) and a Redis database number that no other xdist
worker or test run uses (see `claim_redis_db`).
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select
from stdnum import ean

from collectz import create_app
from collectz.extensions import db
from collectz.models import ImportRow, Media, MediaSource, SyncJob, User
from collectz.security import passwords
from tests.conftest import IN_CI, PROJECT_ROOT, REDIS_URL, Backend, pg_database_url

T = TypeVar("T")

# Sizes (see the module docstring): an import's rows and the workers' chunk size (small chunks, so that a kill lands
# mid-run); a short stale time, so that the sweeper revives a job within seconds.
FAULT_ROWS = int(os.environ.get("FAULT_ROWS") or 3000)
CHUNK_SIZE = int(os.environ.get("FAULT_CHUNK_SIZE") or 200)
FAULT_COVERS = int(os.environ.get("FAULT_COVERS") or 8)
KILL_AT = max(3 * CHUNK_SIZE, FAULT_ROWS // 3)  # rows imported before a scenario interrupts its import
STALE_SECONDS = 2
# Environment variables of ours a developer's shell may set: the workers get only what the stack says.
_OWN_ENV = ("DATABASE_URL", "REDIS_URL", "COLLECTZ_ENV", "UPLOAD_PATH", "INSTANCE_PATH", "IMPORT_CHUNK_SIZE",
            "IMPORT_STALE_SECONDS", "IMPORT_MAX_MB", "LOG_LEVEL", "RUN_MIGRATIONS_ON_START", "SECRET_KEY",
            "STORAGE_PROVIDER", "S3_BUCKET", "S3_REGION", "S3_ENDPOINT_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY",
            "S3_FORCE_PATH_STYLE")


def require_redis() -> None:
    """These tests need a real Redis: skipped without TEST_REDIS_URL, except in CI where that is a failure."""
    if not REDIS_URL:
        if IN_CI:
            pytest.fail("TEST_REDIS_URL is not set: the crash-safety tests need a real Redis in CI")
        pytest.skip("TEST_REDIS_URL is not set: the crash-safety tests run real workers on a real Redis")


_CLAIM_KEY = "collectz:tests:crash-db-claim"
_CLAIM_SECONDS = 600
CLAIMABLE_DBS = range(15, 8, -1)  # the backend fixtures use Redis dbs 1 + xdist index (1..8 for up to 8 workers)


def claim_redis_db(token: str, timeout: float = 120) -> str:
    """A Redis database (9..15) nobody else runs workers on: claimed with a key, as parallel xdist workers and
    other test runs on the same Redis would otherwise take each other's jobs (worker processes run whatever their
    queues hold, against their own database)."""
    base = re.sub(r"/\d+$", "", REDIS_URL.rstrip("/"))
    deadline = time.monotonic() + timeout
    while True:
        for number in CLAIMABLE_DBS:
            url = f"{base}/{number}"
            if Redis.from_url(url).set(_CLAIM_KEY, token, nx=True, ex=_CLAIM_SECONDS):
                return url
        if time.monotonic() > deadline:
            pytest.fail(f"every Redis database {CLAIMABLE_DBS.stop + 1}-{CLAIMABLE_DBS.start} is claimed by other "
                        f"test runs (key {_CLAIM_KEY})")
        time.sleep(0.5)


def release_redis_db(url: str, token: str) -> None:
    conn = Redis.from_url(url)
    if conn.get(_CLAIM_KEY) == token.encode():
        conn.flushdb()  # everything in it is this test's (the claim key included)


@dataclass
class Stack:
    """A fresh database and Redis database, the settings the test process and the workers share, and the
    worker processes started on them."""

    backend: str
    database_url: str
    redis_url: str
    root: Path
    app: Flask
    procs: list[subprocess.Popen] = field(default_factory=list)

    claim: str = ""

    @property
    def redis(self) -> Redis:
        return Redis.from_url(self.redis_url)

    def flush_redis(self) -> None:
        """Redis restarts empty (this test's database only), keeping the test's claim on it."""
        self.redis.flushdb()
        self.redis.set(_CLAIM_KEY, self.claim, ex=_CLAIM_SECONDS)

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in _OWN_ENV and not k.endswith("_FILE") and not k.startswith("FEATURE_FLAG")}
        env.update(COLLECTZ_ENV="testing", DATABASE_URL=self.database_url, REDIS_URL=self.redis_url,
                   UPLOAD_PATH=str(self.root / "uploads"), INSTANCE_PATH=str(self.root / "instance"),
                   IMPORT_CHUNK_SIZE=str(CHUNK_SIZE), IMPORT_STALE_SECONDS=str(STALE_SECONDS),
                   LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
        return env

    def start_worker(self) -> subprocess.Popen:
        """`python worker.py` in its own process group (rq forks a scheduler child that a SIGKILL of the worker
        leaves behind: the clean-up kills the whole group)."""
        number = len(self.procs) + 1
        log = (self.root / f"worker{number}.log").open("w")
        proc = subprocess.Popen([sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=self.worker_env(),
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def wait_ready(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` workers listen on the queues (each registers in Redis once its app is built)."""
        from rq import Worker

        wait_for(f"{count} workers to be ready", lambda: Worker.count(connection=self.redis) >= count, timeout, self)

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until every worker waits for work and the start-up round of periodic jobs has run: a clean-up still
        running would hold a worker (on SQLite it may wait for the write lock for as long as an import writes)."""
        from rq import Queue, Worker

        from collectz.jobs.runner import PERIODIC_KEY

        def idle() -> bool:
            workers = Worker.all(connection=self.redis)
            return (bool(workers) and self.redis.exists(PERIODIC_KEY.format(name="cleanup_sessions")) == 1
                    and Queue("maintenance", connection=self.redis).count == 0
                    and all(w.get_state() == "idle" for w in workers))

        wait_for("the workers to be idle", idle, timeout, self, every=0.1)

    def crash(self, proc: subprocess.Popen) -> None:
        """kill -9 the worker process itself (its forked rq scheduler, if any, is left as a real crash leaves it)."""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.returncode == -signal.SIGKILL

    def logs(self, tail: int | None = 3000) -> str:
        """The workers' output (each log's last `tail` characters; None: all of it)."""
        return "\n".join(f"--- {p.name} ---\n{p.read_text()[-tail if tail else 0:]}"
                         for p in sorted(self.root.glob("worker*.log")))

    def revivals(self) -> list[tuple[int, str]]:
        """(job id, status) of each revival the sweepers logged, in the order of the logs."""
        found = []
        for line in self.logs(tail=None).splitlines():
            if line.startswith("{") and '"import revived by the sweeper"' in line:
                entry = json.loads(line)
                found.append((entry["job_id"], entry["status"]))
        return found

    def diagnose(self) -> str:
        """PostgreSQL: sessions of this database still inside a transaction (a killed worker's, kept open?)."""
        if self.backend != "postgresql":
            return ""
        from sqlalchemy import create_engine, text

        from collectz.config import normalise_database_url

        engine = create_engine(normalise_database_url(self.database_url))
        try:
            with engine.connect() as conn:
                rows = conn.execute(text(
                    "SELECT pid, state, wait_event_type, now() - xact_start, left(query, 80) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
                )).all()
        finally:
            engine.dispose()
        return "PostgreSQL sessions in a transaction: " + ("; ".join(map(str, rows)) or "none")

    def assert_workers_alive(self) -> None:
        dead = [p.pid for p in self.procs if p.poll() is not None and p.returncode != -signal.SIGKILL]
        assert not dead, f"worker processes exited: {dead}\n{self.logs()}"

    def stop(self) -> None:
        for proc in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group id is the worker's pid (start_new_session)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                pass

    @contextmanager
    def ctx(self) -> Iterator[Flask]:
        with self.app.app_context():
            try:
                yield self.app
            finally:
                db.session.remove()

    def user(self, email: str) -> User:
        return db.session.scalar(select(User).where(User.email == email))


@contextmanager
def make_stack(backend: Backend, tmp_path: Path) -> Iterator[Stack]:
    """A migrated fresh database with three users, an empty Redis database; workers killed on the way out."""
    require_redis()
    from collectz.schema import upgrade

    if backend.name == "sqlite":
        database_url = "sqlite:///" + str(tmp_path / "crash.db")
    else:
        database_url = pg_database_url("crash")
    claim = f"{os.getpid()}:{uuid.uuid4().hex}"
    redis_url = claim_redis_db(claim)
    stack: Stack | None = None
    try:
        Redis.from_url(redis_url).flushdb()
        Redis.from_url(redis_url).set(_CLAIM_KEY, claim, ex=_CLAIM_SECONDS)
        settings = backend.settings(DATABASE_URL=database_url, REDIS_URL=redis_url,
                                    INSTANCE_PATH=str(tmp_path / "instance"), UPLOAD_PATH=str(tmp_path / "uploads"),
                                    IMPORT_CHUNK_SIZE=CHUNK_SIZE, IMPORT_STALE_SECONDS=STALE_SECONDS)
        app = create_app(settings=settings)
        upgrade(app)
        stack = Stack(backend.name, database_url, redis_url, tmp_path, app, claim=claim)
        with stack.ctx():
            for name in ("alice", "bob", "carol"):
                db.session.add(User(email=f"{name}@example.org", name=name.title(), role="user",
                                    password_hash=passwords.hash_password("correct horse battery")))
            db.session.commit()
        yield stack
    finally:
        if stack is not None:
            stack.stop()
            with stack.app.app_context():
                db.session.remove()
                db.engine.dispose()
        release_redis_db(redis_url, claim)


def scaled(seconds: float, rows: int = FAULT_ROWS) -> float:
    """A wait sized for the reduced run, plus what `rows` rows take to import on a slow machine (400 a second)."""
    return seconds + rows / 400


def report(scenario: str, backend: str, **numbers: Any) -> None:
    """What a scenario measured, for `python -m bench faults` (a JSON line in FAULT_RESULTS; nothing without it)."""
    target = os.environ.get("FAULT_RESULTS")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": scenario, "db": backend, **numbers}, default=str) + "\n")


def report_import(scenario: str, stack: Stack, job: SyncJob, after: Census, rows: int, *, started: float,
                  recovering: float, finished: float, **numbers: Any) -> None:
    """`report` for a scenario that interrupts an import: its size, how long the whole import took and how long it
    took from the recovery on (a worker restarted, the database back), and what the catalog holds after."""
    report(scenario, stack.backend, rows=rows, chunk_size=CHUNK_SIZE, **numbers, seconds=round(finished - started, 1),
           recovery_seconds=round(finished - recovering, 1), created=job.created, items=after.media,
           lost=rows - after.media, duplicated=after.duplicated)


# --- data -------------------------------------------------------------------------------------------------------


def isbn13(n: int) -> str:
    """A valid ISBN-13 (978 prefix, correct check digit) for any n < 10**9."""
    body = f"978{n:09d}"
    return body + ean.calc_check_digit(body)


def book(n: int, location: str = "") -> dict[str, str]:
    return {"type": "book", "title": f"Book {n:05d}", "year": str(1900 + n % 120), "isbn": isbn13(n),
            "location": location}


def movie(n: int, location: str = "") -> dict[str, str]:
    """No identifier: deduplicated by title + year."""
    return {"type": "movie", "title": f"Film number {n:05d}", "year": str(1920 + n % 100), "isbn": "",
            "location": location}


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["type", "title", "year", "isbn", "location"])
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- jobs -------------------------------------------------------------------------------------------------------


def start_csv_import(stack: Stack, email: str, path: Path, enqueue: bool = True) -> int:
    """Upload and start an import as the web does; returns the job id."""
    from collectz.importers import csv_generic
    from collectz.jobs import imports as import_jobs
    from collectz.services import imports

    with stack.ctx():
        user = stack.user(email)
        upload = imports.save_upload_from_path(user, "csv", path)
        job, created = imports.start_import(
            user, upload, {"mapping": csv_generic.auto_mapping(csv_generic.inspect(path).columns)})
        assert created
        if enqueue:
            assert import_jobs.enqueue_stage(job.id)
        return job.id


def job_row(stack: Stack, job_id: int) -> SyncJob:
    with stack.ctx():
        job = db.session.get(SyncJob, job_id)
        db.session.expunge(job)
        return job


def wait_for(what: str, check: Callable[[], T | None], timeout: float, stack: Stack, every: float = 0.05) -> T:
    """Poll until check() returns something truthy; fail with the workers' logs after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{stack.diagnose()}\n{stack.logs()}")
        stack.assert_workers_alive()
        time.sleep(every)


def wait_mid_chunk(stack: Stack, job_id: int, at_least: int = KILL_AT, timeout: float | None = None
                   ) -> SyncJob:
    """Wait until the job is mid-run and, as far as timing tells, in the middle of a chunk: a kill then cuts
    a chunk's transaction short (the hard case) rather than landing between two chunks. The time between the
    last two chunk commits is the chunk's duration; this returns about 40% of it after a commit."""
    commits: list[float] = []
    last = -1

    def check() -> SyncJob | None:
        nonlocal last
        job = job_row(stack, job_id)
        assert job.status not in ("succeeded", "failed", "cancelled"), \
            f"the job finished ({job.status}) before the test could interrupt it: make the file larger"
        if job.processed != last:
            last = job.processed
            commits.append(time.monotonic())
        ready = len(commits) >= 3 and job.total and at_least <= job.processed < job.total - CHUNK_SIZE
        return job if ready else None

    job = wait_for(f"job {job_id} to be mid-run", check, timeout or scaled(60, at_least), stack, every=0.01)
    time.sleep(max(0.02, 0.4 * (commits[-1] - commits[-2])))
    return job


def wait_finished(stack: Stack, job_ids: list[int], timeout: float | None = None) -> list[SyncJob]:
    def check() -> list[SyncJob] | None:
        jobs = [job_row(stack, i) for i in job_ids]
        return jobs if all(j.status in ("succeeded", "failed", "cancelled") for j in jobs) else None

    return wait_for(f"jobs {job_ids} to finish", check, timeout or scaled(90), stack, every=0.2)


def wait_stale(stack: Stack, job_id: int) -> None:
    """Wait until the job's last sign of life is older than IMPORT_STALE_SECONDS (what the sweeper looks for)."""
    from collectz.models.base import utcnow

    def check() -> bool:
        job = job_row(stack, job_id)
        return (utcnow() - job.heartbeat_at).total_seconds() > STALE_SECONDS + 0.3

    wait_for(f"job {job_id} to go stale", check, STALE_SECONDS + 10, stack, every=0.1)


def chunk_span(stack: Stack, job_id: int) -> tuple[Any, Any]:
    """When the job's first and last chunks were written (its rows' updated_at)."""
    with stack.ctx():
        return tuple(db.session.execute(select(func.min(ImportRow.updated_at), func.max(ImportRow.updated_at))
                                        .where(ImportRow.job_id == job_id)).one())


@dataclass
class Census:
    """What the catalog and the import rows hold."""

    media: int
    copies: int
    sources: int
    duplicate_isbns: list[tuple[str, int]]
    duplicate_titles: list[tuple[str, str, int | None, int]]
    outcomes: dict[int, dict[str, int]]
    duplicate_row_numbers: int

    @property
    def duplicated(self) -> int:
        """Items found more than once: by ISBN, or by type, title and year."""
        return len(self.duplicate_isbns) + len(self.duplicate_titles)


def census(stack: Stack) -> Census:
    with stack.ctx():
        media = db.session.scalar(select(func.count(Media.id))) or 0
        copies = db.session.scalar(select(func.sum(Media.copies))) or 0
        sources = db.session.scalar(select(func.count(MediaSource.id))) or 0
        dup_isbn = db.session.execute(select(Media.isbn13, func.count()).where(Media.isbn13.is_not(None))
                                      .group_by(Media.isbn13).having(func.count() > 1)).all()
        dup_title = db.session.execute(select(Media.media_type, Media.title, Media.year, func.count())
                                       .group_by(Media.media_type, Media.title, Media.year)
                                       .having(func.count() > 1)).all()
        outcomes: dict[int, dict[str, int]] = {}
        by_outcome = select(ImportRow.job_id, ImportRow.outcome, func.count()).group_by(ImportRow.job_id,
                                                                                       ImportRow.outcome)
        for job_id, outcome, count in db.session.execute(by_outcome):
            outcomes.setdefault(job_id, {})[outcome] = count
        dup_rows = db.session.scalar(select(func.count()).select_from(
            select(ImportRow.job_id, ImportRow.row_number).group_by(ImportRow.job_id, ImportRow.row_number)
            .having(func.count() > 1).subquery())) or 0
        return Census(media, copies, sources, [tuple(r) for r in dup_isbn], [tuple(r) for r in dup_title], outcomes,
                      dup_rows)


def assert_complete(job: SyncJob, rows: int, census_: Census) -> None:
    """A job that ran to the end with every row accounted for exactly once."""
    assert job.status == "succeeded", (job.status, job.error)
    assert job.total == rows
    assert job.processed == rows
    assert job.created + job.updated + job.skipped + job.failed == rows
    assert job.failed == 0
    counts = census_.outcomes.get(job.id, {})
    assert sum(counts.values()) == rows, counts
    assert counts.get("pending", 0) == 0, counts
    assert {k: v for k, v in counts.items() if v} == {k: v for k, v in (
        ("created", job.created), ("updated", job.updated), ("skipped", job.skipped)) if v}, counts
    assert job.summary == {"total": rows, "processed": rows, "created": job.created, "updated": job.updated,
                           "skipped": job.skipped, "failed": 0}
