"""Imports: uploads, jobs and their life cycle (stage → chunks → finished), cancel, retry and the sweeper.

An import is a `sync_jobs` row plus one `import_rows` row per source row; the database is the truth and only ids
cross Redis. It runs in two steps (rq entry points in collectz.jobs.imports):

1. `stage(job_id)`: the parser streams the uploaded file and every record becomes a pending import row, stored in
   batches (each streamed to the database as it is read, and committed). Nothing reaches the catalog yet, so a file
   that turns out malformed half-way fails the job with nothing half-written. Run again after a crash, it resumes
   after the last stored row.
2. `process_chunk(job_id, chunk)`: a chunk of rows (`IMPORT_CHUNK_SIZE`, or see `_sized_chunk`) in one transaction.
   The chunk first takes the library's import write lock (PostgreSQL: an advisory lock; SQLite: its first statement
   is a write, which takes the database's write lock), so two imports of overlapping files never both create an
   item. Only rows still pending are handled, so a chunk that runs twice changes nothing the second time. Each says
   which chunk runs next. While the database stores a chunk's rows, a thread reads and converts the next chunk's
   rows (`_read_ahead`; the next chunk takes them only if its pending rows are still exactly those). On PostgreSQL,
   planner statistics are taken on a thread of their own.

`sweep()` (maintenance queue) re-enqueues the step of any unfinished job that has shown no sign of life for
`IMPORT_STALE_SECONDS`: a worker killed mid-chunk, or a Redis that restarted empty, delays a job; it does not lose
or duplicate rows.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import io
import itertools
import json
import logging
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from flask import current_app
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import SingletonThreadPool, StaticPool

from collectz.extensions import db
from collectz.importers import Record, SourceError
from collectz.models import ImportRow, Media, MediaGenre, MediaPerson, MediaSource, SyncJob, User
from collectz.models.base import utcnow
from collectz.providers.http import ProviderError
from collectz.security.permissions import require_writer
from collectz.services import audit
from collectz.services.activity import safe_cell
from collectz.services.bulk_rows import Meanwhile, insert_stream, refresh_statistics, update_rows
from collectz.services.errors import Conflict, Forbidden, InvalidInput, NotFound
from collectz.services.import_writer import (
    BatchContext,
    Incoming,
    Outcome,
    RowError,
    convert,
    with_title_keys,
    write_batch,
)
from collectz.services.integrations import IntegrationProblem
from collectz.services.pagination import Page
from collectz.services.users import ensure_default_library

log = logging.getLogger("collectz.imports")

KINDS: dict[str, str] = {"csv": "CSV", "delicious": "Delicious Library", "barcode": "Barcodes", "plex": "Plex"}
# media_sources.source for each kind's entries (barcode rows have no entry ids: they match, never map back).
SOURCES: dict[str, str | None] = {"csv": "csv", "delicious": "delicious", "barcode": None, "plex": "plex"}
# Kinds that read an uploaded file (the others read their job's options or a provider).
FILE_KINDS = ("csv", "delicious")
OUTCOMES = ("pending", "created", "updated", "skipped", "failed", "cancelled")
# Rows a stage stores per transaction (a run after a crash resumes after the last one): a chunk's worth, at least
# this many. Each costs a commit and a heartbeat: a 100,000-row stage 1,000 rows at a time took a tenth longer than
# 5,000 at a time. A chunk's size is bounded by its records' bytes (_sized_chunk), and so is what a batch holds where
# the database takes it whole (SQLite).
STAGE_BATCH = 1000
_LOCK_BASE = 0x0C011EC7 << 8  # PostgreSQL advisory lock keys: this + library id
_PER_PAGE = 50
_SNIFF = 8192


@dataclass
class Upload:
    """A file a user sent, kept until an import of it starts (the CSV column mapping comes in between)."""

    token: str
    kind: str
    filename: str
    size: int
    sha256: str
    owner_id: int
    path: Path


@dataclass
class Summary:
    job_id: int | None
    status: str
    total: int
    created: int
    updated: int
    skipped: int
    failed: int
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "status": self.status, "total": self.total, "created": self.created,
                "updated": self.updated, "skipped": self.skipped, "failed": self.failed, "error": self.error}


def settings() -> Any:
    return current_app.config["COLLECTZ"]


# Rows per chunk when IMPORT_CHUNK_SIZE is not set: a file import's stage chooses from its first rows' size (see
# _sized_chunk), between DEFAULT_CHUNK_ROWS and LARGEST_CHUNK_ROWS; the other kinds take DEFAULT_CHUNK_ROWS.
DEFAULT_CHUNK_ROWS = 1000
LARGEST_CHUNK_ROWS = 5000
CHUNK_SOURCE_BYTES = 1536 * 1024
# A Delicious Library export's entries are the largest records an import reads (about 850 bytes each), and a worker
# importing a 100 MB export keeps within 150 MiB: 139 MiB at 1,000 rows a chunk, 149 MiB at 1,500 (measured).
KIND_CHUNK_SOURCE_BYTES = {"delicious": 768 * 1024}


def chunk_size() -> int:
    """Rows per chunk: IMPORT_CHUNK_SIZE, or DEFAULT_CHUNK_ROWS when it is not set."""
    return settings().IMPORT_CHUNK_SIZE or DEFAULT_CHUNK_ROWS


def _rows_per_chunk(job: SyncJob) -> int:
    """The job's chunk size (fixed when it was made, or by its stage: see _sized_chunk)."""
    return job.options.get("chunk_size") or chunk_size()


def _sized_chunk(records: list[Record], kind: str) -> int:
    """Rows per chunk for an upload's import whose first records these are (IMPORT_CHUNK_SIZE not set; the other
    kinds fix theirs when they are made): as many as hold about CHUNK_SOURCE_BYTES of records (the kind's own
    bound, if it has one), between DEFAULT_CHUNK_ROWS and LARGEST_CHUNK_ROWS.

    Each chunk has costs of its own, whatever its size: its lookups ask again for the people, genres and titles its
    rows share with the other chunks', its statements and commit wait for the database, and its commit writes out
    again the index pages they share. Small rows (a spreadsheet's) import faster in fewer, larger chunks: 100,000
    rows of 300 bytes took 14 % less time on PostgreSQL in chunks of 5,000 than of 2,500. A chunk's memory grows
    with its rows (about 10 KB each while it runs: the 5,000-row chunks took 25 MiB more), which this bounds."""
    average = sum(len(json.dumps(record, default=str)) for record in records) / max(len(records), 1)
    budget = KIND_CHUNK_SOURCE_BYTES.get(kind, CHUNK_SOURCE_BYTES)
    return max(DEFAULT_CHUNK_ROWS, min(LARGEST_CHUNK_ROWS, int(budget / max(average, 1.0))))


def max_bytes() -> int:
    return settings().IMPORT_MAX_MB * 1024 * 1024


# --- uploads ---------------------------------------------------------------------------------------------------


def upload_dir() -> Path:
    path = Path(current_app.config["UPLOAD_PATH"]) / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_upload(actor: User, kind: str, filename: str, stream: IO[bytes]) -> Upload:
    """Store an uploaded file (streamed, hashed, size-capped); InvalidInput for an empty or too large file."""
    require_writer(actor, "import items")
    if kind not in FILE_KINDS:
        raise InvalidInput("Unknown import kind.", fields={"kind": "Choose CSV or Delicious Library."})
    token = secrets.token_urlsafe(18)
    path = upload_dir() / f"{token}.upload"
    digest = hashlib.sha256()
    size = 0
    limit = max_bytes()
    try:
        with path.open("wb") as out:
            while block := stream.read(1024 * 1024):
                size += len(block)
                if size > limit:
                    raise InvalidInput(
                        f"The file is larger than the {settings().IMPORT_MAX_MB} MB import limit.",
                        fields={"file": f"At most {settings().IMPORT_MAX_MB} MB."})
                digest.update(block)
                out.write(block)
        if size == 0:
            raise InvalidInput("The file is empty.", fields={"file": "The file is empty."})
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    upload = Upload(token, kind, _safe_name(filename), size, digest.hexdigest(), actor.id, path)
    meta = {k: v for k, v in upload.__dict__.items() if k != "path"}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return upload


def save_upload_from_path(actor: User, kind: str, source: Path) -> Upload:
    with source.open("rb") as stream:
        return save_upload(actor, kind, source.name, stream)


def load_upload(actor: User, token: str) -> Upload:
    """An upload of the actor's that has not started yet, or NotFound."""
    if not re.fullmatch(r"[A-Za-z0-9_-]{10,64}", token or ""):
        raise NotFound("No such upload.")
    meta_path = upload_dir() / f"{token}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        raise NotFound("This upload is no longer here: upload the file again.") from None
    if meta["owner_id"] != actor.id:
        raise NotFound("No such upload.")
    return Upload(path=meta_path.with_suffix(".upload"), **meta)


def discard_upload(upload: Upload) -> None:
    upload.path.unlink(missing_ok=True)
    upload.path.with_suffix(".json").unlink(missing_ok=True)


def _safe_name(filename: str) -> str:
    name = Path(filename or "upload").name
    return re.sub(r"[\x00-\x1f]", "", name)[:255] or "upload"


# --- starting a job --------------------------------------------------------------------------------------------


def running_job_for(actor: User, kind: str, sha256: str) -> SyncJob | None:
    """The actor's unfinished import of the same file, if any."""
    return db.session.scalar(select(SyncJob).where(
        SyncJob.kind == kind, SyncJob.source_hash == sha256, SyncJob.created_by == actor.id,
        SyncJob.status.in_(("queued", "running"))).order_by(SyncJob.id).limit(1))


def start_import(actor: User, upload: Upload, options: dict[str, Any] | None = None) -> tuple[SyncJob, bool]:
    """Create the job for an upload and hand it to the stage step. Uploading the same file again while its import
    still runs returns that job: (job, False). The enqueueing is the caller's (see jobs.imports.enqueue_stage)."""
    require_writer(actor, "import items")
    existing = running_job_for(actor, upload.kind, upload.sha256)
    if existing is not None:
        discard_upload(upload)
        return existing, False
    job = SyncJob(kind=upload.kind, status="queued", source_name=upload.filename, source_hash=upload.sha256,
                  options={**(options or {}), "upload": upload.token,
                           "chunk_size": settings().IMPORT_CHUNK_SIZE or None, "size": upload.size},
                  created_by=actor.id, heartbeat_at=utcnow())
    db.session.add(job)
    db.session.flush()
    audit.record("import.started", actor=actor, entity_type="sync_job", entity_id=job.id,
                 details={"kind": upload.kind, "file": upload.filename, "size": upload.size})
    db.session.commit()
    return job, True


def start_barcodes(actor: User, codes: list[tuple[int, str]]) -> SyncJob:
    """A barcode batch: (line, code) pairs as typed or scanned; each becomes one row."""
    require_writer(actor, "import items")
    if not codes:
        raise InvalidInput("Enter at least one barcode or ISBN.", fields={"codes": "Enter at least one code."})
    if len(codes) > 5000:
        raise InvalidInput("At most 5,000 codes in one batch.", fields={"codes": "At most 5,000 codes."})
    digest = hashlib.sha256("\n".join(c for _l, c in codes).encode()).hexdigest()
    existing = running_job_for(actor, "barcode", digest)
    if existing is not None:
        return existing
    job = SyncJob(kind="barcode", status="queued", source_name=f"{len(codes)} codes", source_hash=digest,
                  options={"codes": codes, "chunk_size": chunk_size()}, created_by=actor.id, heartbeat_at=utcnow())
    db.session.add(job)
    db.session.flush()
    audit.record("import.started", actor=actor, entity_type="sync_job", entity_id=job.id,
                 details={"kind": "barcode", "codes": len(codes)})
    db.session.commit()
    return job


def plex_sections() -> list[dict[str, str]]:
    """The Plex sections an admin selected under Admin → Integrations ([] when Plex is off or has none)."""
    from collectz.services import integrations

    if not integrations.is_enabled("plex"):
        return []
    return list(integrations.get("plex").values.get("sections") or [])


def start_plex(actor: User) -> tuple[SyncJob, bool]:
    """Import the selected Plex sections: (job, True), or the actor's unfinished Plex import: (job, False).
    Conflict when Plex is not set up. The enqueueing is the caller's."""
    require_writer(actor, "import items")
    sections = plex_sections()
    if not sections:
        raise Conflict("Plex is not set up: an admin turns it on and chooses its sections under "
                       "Admin → Integrations.")
    digest = hashlib.sha256(json.dumps(sections, sort_keys=True).encode()).hexdigest()
    existing = running_job_for(actor, "plex", digest)
    if existing is not None:
        return existing, False
    names = ", ".join(str(s.get("title") or s.get("key")) for s in sections)
    job = SyncJob(kind="plex", provider="plex", status="queued", source_name=f"Plex: {names}"[:255],
                  source_hash=digest, options={"sections": sections, "chunk_size": chunk_size()},
                  created_by=actor.id, heartbeat_at=utcnow())
    db.session.add(job)
    db.session.flush()
    audit.record("import.started", actor=actor, entity_type="sync_job", entity_id=job.id,
                 details={"kind": "plex", "sections": [s.get("title") for s in sections]})
    db.session.commit()
    return job, True


# --- reading a job's source ------------------------------------------------------------------------------------


def _upload_path(job: SyncJob) -> Path:
    return upload_dir() / f"{job.options.get('upload')}.upload"


def source_records(job: SyncJob) -> Iterator[Record]:
    """The job's records, streamed from its file (or its options, for barcodes)."""
    if job.kind == "barcode":
        from collectz.importers import barcode

        yield from barcode.records(job.options.get("codes") or [])
        return
    if job.kind == "plex":
        yield from _plex_records(job)
        return
    path = _upload_path(job)
    if not path.exists():
        raise SourceError("The uploaded file is gone (it is removed once read): upload it again.")
    if job.kind == "csv":
        from collectz.importers import csv_generic

        yield from _with_content_ids(csv_generic.iter_records(path, job.options.get("mapping") or {}), "csv")
    elif job.kind == "delicious":
        from collectz.importers import delicious

        yield from _with_content_ids(delicious.iter_records(path), "delicious")
    else:
        raise SourceError(f"Unknown import kind {job.kind!r}.")


def _plex_records(job: SyncJob) -> Iterator[Record]:
    """The job's Plex sections, read from the server page by page (every entry has its own id)."""
    from collectz.importers import plex
    from collectz.providers.plex import PlexClient
    from collectz.providers.throttle import throttle_for
    from collectz.services import integrations

    client = PlexClient.from_config(integrations.config_for("plex"), throttle=throttle_for("plex"))
    yield from plex.iter_records(client, job.options.get("sections") or [])


_CONTENT_KEYS = ("media_type", "title", "year", "isbn", "ean", "upc", "asin", "tmdb_id", "release_date", "people",
                 "formats", "location")
# json.dumps(..., sort_keys=True, default=str), made once: a call with options builds a new encoder every time.
_CONTENT_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def _with_content_ids(records: Iterator[Record], prefix: str) -> Iterator[Record]:
    """Give each record without an entry id a stable one (a hash of what it says + which occurrence of it in the
    file), so re-importing the same file maps every row back to its item."""
    seen: dict[str, int] = {}
    for record in records:
        if not record.get("source_id"):
            basis = _CONTENT_ENCODER.encode([record.get(k) for k in _CONTENT_KEYS])
            digest = hashlib.sha1(basis.casefold().encode(), usedforsecurity=False).hexdigest()[:20]
            seen[digest] = seen.get(digest, 0) + 1
            record["source_id"] = f"{prefix}:{digest}#{seen[digest]}"
        yield record


# --- the steps (run by rq, by the CLI inline, or by tests) ----------------------------------------------------


def _job(job_id: int) -> SyncJob | None:
    return db.session.get(SyncJob, job_id, populate_existing=True)


def _actor(job: SyncJob) -> User | None:
    return db.session.get(User, job.created_by) if job.created_by else None


def stage(job_id: int) -> int | None:
    """Read the job's source into pending import rows; returns the first chunk to run, or None when done."""
    job = _job(job_id)
    if job is None or job.is_terminal:
        return None
    if job.staged_at is not None:
        return _next_chunk(job)
    if job.cancel_requested:
        _finish(job, "cancelled")
        db.session.commit()
        return None
    if job.status == "queued":
        job.status, job.started_at = "running", utcnow()
    job.heartbeat_at = utcnow()
    db.session.commit()
    size: int = job.options.get("chunk_size") or 0  # 0: chosen from the first rows (stored with them)
    done = db.session.scalar(select(func.max(ImportRow.row_number)).where(ImportRow.job_id == job.id)) or 0
    number = done  # the last row read (rows up to `done` were stored by an earlier run)

    def pending(source: Iterator[tuple[int, Record]]) -> Iterator[dict[str, Any]]:
        nonlocal number
        for number, record in source:
            yield {"job_id": job_id, "row_number": number, "chunk": (number - 1) // size, "outcome": "pending",
                   "raw": record}

    try:
        source = ((n, record) for n, record in enumerate(source_records(job), start=1) if n > done)
        if not size:
            first = list(itertools.islice(source, STAGE_BATCH))
            if first:  # stored with them
                size = _sized_chunk([record for _n, record in first], job.kind)
                db.session.execute(update(SyncJob).where(SyncJob.id == job_id).values(
                    options={**job.options, "chunk_size": size}))
            source = itertools.chain(first, source)
        while True:  # a batch at a time, each committed: a run after a crash resumes after the last one
            before = number
            # Streamed: the database stores a batch's first rows while the parser reads the rest.
            insert_stream(ImportRow.__table__, pending(itertools.islice(source, max(STAGE_BATCH, size))))
            db.session.execute(update(SyncJob).where(SyncJob.id == job_id).values(heartbeat_at=utcnow()))
            db.session.commit()
            if number == before:
                break
    except IntegrityError:
        # Another run of this step (the sweeper revived a job whose first stage was only slow) stored some of the
        # same rows first: it is alive and stages the rest. This run leaves the job to it.
        db.session.rollback()
        log.info("import stage left to another run", extra={"fields": {"job_id": job_id}})
        return None
    except SourceError as exc:
        db.session.rollback()
        staged = _job(job_id)
        if staged is not None and staged.staged_at is not None:
            # Another run of this step (the sweeper revived a job whose first stage was only slow) finished the
            # staging and removed the file meanwhile: the job is fine, and its rows must not be failed away.
            return None if staged.is_terminal else _next_chunk(staged)
        fail(job_id, str(exc))
        return None
    except (ProviderError, IntegrationProblem) as exc:  # the provider said no or is down: say so, the user retries
        fail(job_id, _provider_failure(exc))
        return None
    except SQLAlchemyError:  # the database, not the file: leave the job to the sweeper's retry
        db.session.rollback()
        raise
    except Exception as exc:  # an unexpected parser error: say so, do not retry the same file for ever
        log.exception("import source could not be read", extra={"fields": {"job_id": job_id}})
        fail(job_id, f"The file could not be read ({exc.__class__.__name__}). Check that it is the right kind "
                     "of file for this import.")
        return None
    job = _job(job_id)
    if job is None:
        return None
    if number == 0:
        fail(job_id, "The Plex sections have nothing to import." if job.kind == "plex"
             else "The file has no rows to import.")
        return None
    job.total = number
    job.staged_at = job.heartbeat_at = utcnow()
    db.session.commit()
    if job.options.get("upload"):
        _upload_path(job).unlink(missing_ok=True)
        _upload_path(job).with_suffix(".json").unlink(missing_ok=True)
    _refresh_statistics(job_id, wait=True)  # the chunks read the staged rows by their index
    return _next_chunk(job)


def _provider_failure(exc: Exception) -> str:
    """A provider problem in words for the job page (messages of ours: they never hold a secret)."""
    if isinstance(exc, ProviderError):
        return f"{exc}. Nothing was imported; check the server under Admin → Integrations and try again."
    return str(getattr(exc, "message", "") or exc)


def fail(job_id: int, error: str) -> None:
    """The job as a whole failed (unreadable file, unsafe XML...): nothing of it stays in the catalog."""
    db.session.rollback()
    job = _job(job_id)
    if job is None or job.is_terminal:
        return
    db.session.execute(delete(ImportRow).where(ImportRow.job_id == job_id))
    job.error = error[:2000]
    job.total = job.processed = job.created = job.updated = job.skipped = job.failed = 0
    _finish(job, "failed")
    db.session.commit()
    if job.options.get("upload"):
        _upload_path(job).unlink(missing_ok=True)
        _upload_path(job).with_suffix(".json").unlink(missing_ok=True)


def _lock_for_writes(job_id: int, library_id: int) -> None:
    """Serialise import writes to a library: see the module docstring."""
    db.session.execute(update(SyncJob).where(SyncJob.id == job_id).values(heartbeat_at=utcnow()))
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_BASE + library_id})


def _context(job: SyncJob, library_id: int, while_writing: Meanwhile | None = None) -> BatchContext:
    return BatchContext(library_id=library_id, source=SOURCES.get(job.kind), added_by=job.created_by,
                        import_source=job.kind, match_is_skip=job.kind == "barcode", while_writing=while_writing)


@dataclass
class ChunkDone:
    """What one chunk step did: the next chunk to run (None: nothing left), and whether this very step finished the
    job with success. Only that step starts the job's follow-ups (enrichment, covers): a job the sweeper revived
    while its first chain was only slow runs two chains of steps, and both reach the end."""

    next_chunk: int | None
    succeeded_here: bool = False


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Run a chunk without the garbage collector's cycle passes; reference counting still frees every object that
    is not in a cycle. A chunk holds its rows, their items and the candidates they match (tens of thousands of
    objects) until it ends, and the collector walked them again and again: a tenth of a 100,000-row import. The
    few cycles a chunk leaves (SQLAlchemy statement parts, about a hundred objects) wait for the next pass.

    The switch is the process's: where the worker is a thread of the web process (the embedded default), the web's
    threads also go without cycle passes while a chunk runs (about a second), and their cycles are collected after."""
    if not gc.isenabled():  # paused already (by another chunk's thread, or a caller): whoever paused it resumes it
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@_cycle_collector_paused()
def process_chunk(job_id: int, chunk: int) -> ChunkDone:
    """Import the pending rows of one chunk in one transaction; says which chunk runs next."""
    library_id = ensure_default_library().id
    db.session.commit()
    _lock_for_writes(job_id, library_id)
    job = _job(job_id)
    if job is None or job.is_terminal or job.staged_at is None:
        db.session.commit()
        return ChunkDone(None)
    if job.cancel_requested:
        _cancel_pending(job)
        db.session.commit()
        return ChunkDone(None)
    size = _rows_per_chunk(job)
    ids, items = _chunk_items(job, chunk, size)
    if ids:
        next_unread = _reads_ahead() and (chunk + 1) * size < (job.total or 0)
        postgresql = db.session.get_bind().dialect.name == "postgresql"

        def read_next() -> Callable[[], None] | None:
            """Start reading the next chunk on a thread of its own (once), while the database stores this chunk's
            new items. PostgreSQL: the server goes on with the rest of the chunk's rows meanwhile, and the next chunk
            takes what the thread read. SQLite: called during the one long statement that stores the items, which
            SQLite runs without Python's lock; returns a wait for the thread, for the end of that statement (SQLite's
            many short statements after it would hand Python's lock back and forth with the thread)."""
            nonlocal next_unread
            if not next_unread:
                return None
            next_unread = False
            _read_ahead(job, chunk + 1, size)
            return None if postgresql else _wait_for_ahead

        try:
            with db.session.begin_nested():
                outcomes = write_batch(_context(job, library_id, while_writing=read_next), items)
        except Exception as exc:  # one bad row must not sink its chunk: find it row by row
            log.warning("import chunk failed as a whole, retrying row by row",
                        extra={"fields": {"job_id": job_id, "chunk": chunk, "error": repr(exc)[:300]}})
            outcomes = _write_rows_one_by_one(job, library_id, items)
        if postgresql:
            read_next()  # a chunk that created few or no items: while the server records its outcomes
        _record(job, ids, outcomes)
    next_chunk = _next_chunk(job, after=chunk * size)
    if next_chunk is None:
        _finish(job, "succeeded")
    db.session.commit()
    done = ChunkDone(next_chunk, succeeded_here=job.status == "succeeded")  # _finish ran here: it was running
    # Waited for after the first chunk too: the tables it filled from empty would otherwise still look empty to the
    # planner when the next chunk looks its keys up, and it may then walk a whole (library, …) index for every key
    # (seconds, not milliseconds, for a chunk of 5,000 rows).
    _refresh_statistics(job_id, wait=next_chunk is None or chunk == 0)
    return done


# The tables an import grows and its chunks' lookups read (by identifier, item and entry), and the rows it stages.
_LOOKUP_TABLES = (Media.__table__, MediaSource.__table__, MediaPerson.__table__, MediaGenre.__table__,
                  ImportRow.__table__)


def _refresh_statistics(job_id: int, *, wait: bool = False) -> None:
    """After a step has committed: fresh planner statistics for the tables the import has grown (see
    bulk_rows.refresh_statistics), taken on a thread with a connection of its own, so that the database analyses on
    one core while the next chunk runs on the other (the next chunk's lookups may still be planned with the
    statistics of one chunk before: they are taken each time a table doubles, and its lookups probe an index per
    key whatever they say). One at a time: the next refresh waits for this one. `wait`: taken here, before this
    returns (a job's last step leaves its tables analysed; the stage, its staged rows for the chunks to read). A
    failure costs speed, never rows: the step's work is already committed."""
    global _statistics
    if db.session.get_bind().dialect.name != "postgresql":
        return
    wait_for_statistics()
    engine = db.engine
    if wait:
        _take_statistics(engine, job_id)
        return
    _statistics = threading.Thread(name=f"import-{job_id}-statistics", daemon=True,
                                   target=lambda: _take_statistics(engine, job_id))
    _statistics.start()


_statistics: threading.Thread | None = None


def wait_for_statistics() -> None:
    """Until the statistics a step started taking are taken (the next refresh, a job's last step, tests)."""
    global _statistics
    running, _statistics = _statistics, None
    if running is not None:
        running.join()


def _take_statistics(engine: Any, job_id: int) -> None:
    try:
        with engine.connect() as connection:
            analysed = refresh_statistics(_LOOKUP_TABLES, connection=connection)
            connection.commit()
    except SQLAlchemyError as exc:
        log.warning("could not refresh table statistics", extra={"fields": {"job_id": job_id, "error": repr(exc)}})
        return
    if analysed:
        log.info("table statistics refreshed", extra={"fields": {"job_id": job_id, "tables": analysed}})


def _pending(job_id: int, chunk: int, size: int, *columns: Any) -> Any:
    return select(ImportRow.id, *columns).where(
        ImportRow.job_id == job_id, ImportRow.row_number.between(chunk * size + 1, (chunk + 1) * size),
        ImportRow.outcome == "pending").order_by(ImportRow.row_number)


def _chunk_items(job: SyncJob, chunk: int, size: int) -> tuple[list[int], list[Incoming | RowError]]:
    """The ids of the chunk's pending rows and their records, validated: read ahead (while the chunk before wrote)
    when nothing has changed since, else read now."""
    ahead = _take_ahead(job.id, chunk)
    if ahead is not None and ahead.items is not None:
        now = [tuple(row) for row in db.session.execute(_pending(job.id, chunk, size, ImportRow.updated_at))]
        if now == ahead.rows:  # the same pending rows, none of them changed (a fix of a failed row changes it)
            return [row_id for row_id, _at in now], ahead.items
    # (id, raw) rows, not ORM objects: a chunk reads them once and writes their outcomes with one statement.
    rows = list(db.session.execute(_pending(job.id, chunk, size, ImportRow.raw)))
    # The records go once converted (the largest part of a chunk's memory); write_batch only reads its items, so a
    # retry row by row writes the same ones again.
    return [row.id for row in rows], _converted(_default_type(job), rows)


@dataclass
class _Ahead:
    """A chunk's pending rows read and converted by a thread of their own while the chunk before them writes: the
    database works on one chunk's rows while this process works on the next one's (each would otherwise wait for
    the other). One per process at most."""

    job_id: int
    chunk: int
    thread: threading.Thread
    rows: list[tuple[int, Any]] | None = None  # (id, updated_at) of the rows it read
    items: list[Incoming | RowError] | None = None
    forget: threading.Timer | None = None  # lets go of them if no chunk takes them


_ahead: _Ahead | None = None
# Rows read ahead between two chances for the chunk's own thread to run: Python lets one thread run at a time, and
# a thread that waited for the database would otherwise wait up to the interpreter's switch interval (5 ms) more
# each time, dozens of times per chunk.
_AHEAD_STEP = 32
_AHEAD_WAIT = 60  # seconds a chunk waits for its rows read ahead (a read of a few thousand rows takes milliseconds)
_AHEAD_KEEP = 120  # seconds rows read ahead are kept for their chunk (which normally runs at once, in the same step)
_ahead_lock = threading.Lock()


def _reads_ahead() -> bool:
    """Unless every connection of the engine is the same one (an in-memory SQLite database): the thread reads with
    a connection of its own, outside the chunk's transaction."""
    return not isinstance(db.engine.pool, (StaticPool, SingletonThreadPool))


def _wait_for_ahead() -> None:
    """Until the rows being read ahead are ready (at most _AHEAD_WAIT); they stay for their chunk to take."""
    with _ahead_lock:
        ahead = _ahead
    if ahead is not None:
        ahead.thread.join(_AHEAD_WAIT)


def _read_ahead(job: SyncJob, chunk: int, size: int) -> None:
    """Start reading and converting `chunk` on a thread, with a connection of its own (it reads only rows that no
    chunk has written yet); process_chunk takes the result if its rows are still the same when it runs."""
    global _ahead
    _claim_ahead()  # one at a time: an unclaimed one (another job ran meanwhile) is dropped
    engine, default_type = db.engine, _default_type(job)
    ahead = _Ahead(job.id, chunk, threading.Thread(name=f"import-{job.id}-ahead-{chunk}", daemon=True,
                                                   target=lambda: _read_chunk(ahead, engine, size, default_type)))
    with _ahead_lock:
        _ahead = ahead
    ahead.thread.start()
    # The timer holds it weakly: `ahead` → timer → `ahead` would be a cycle, and chunks run with the cycle collector
    # paused (_cycle_collector_paused), so each chunk's records would stay until a full pass (+15 MiB a chunk).
    ahead.forget = threading.Timer(_AHEAD_KEEP, _forget_ahead, args=(weakref.ref(ahead),))
    ahead.forget.daemon = True
    ahead.forget.start()


def _forget_ahead(ahead: weakref.ref[_Ahead]) -> None:
    """Let go of rows read ahead that no chunk of this process took (another worker ran the chunk, or the job was
    cancelled): an idle worker does not hold a chunk's records."""
    global _ahead
    with _ahead_lock:
        if _ahead is not None and _ahead is ahead():
            _ahead = None


def _read_chunk(ahead: _Ahead, engine: Any, size: int, default_type: str) -> None:
    try:
        rows: list[Any] = []
        items: list[Incoming | RowError] = []
        with engine.connect() as connection:
            result = connection.execute(_pending(ahead.job_id, ahead.chunk, size, ImportRow.updated_at,
                                                 ImportRow.raw))
            for part in result.partitions(_AHEAD_STEP):
                rows += [(row.id, row.updated_at) for row in part]
                items += with_title_keys(_converted(default_type, part))
                time.sleep(0)  # hand the interpreter back to the chunk's thread if it waits for it
        ahead.rows, ahead.items = rows, items
    except Exception as exc:  # the chunk reads its rows itself when it runs
        ahead.items = None
        log.warning("could not read an import chunk ahead", extra={"fields": {
            "job_id": ahead.job_id, "chunk": ahead.chunk, "error": repr(exc)[:300]}})


def _claim_ahead() -> _Ahead | None:
    """This process's rows read ahead, whichever chunk they are for, once they are ready (None when there are none
    or their thread is stuck); nobody else can take them after this."""
    global _ahead
    with _ahead_lock:
        ahead, _ahead = _ahead, None
    if ahead is None:
        return None
    if ahead.forget is not None:
        ahead.forget.cancel()
    ahead.thread.join(_AHEAD_WAIT)
    if ahead.thread.is_alive():  # stuck on its connection: the chunk reads its rows itself (the thread's are dropped)
        log.warning("an import chunk read ahead did not finish in time", extra={"fields": {
            "job_id": ahead.job_id, "chunk": ahead.chunk}})
        return None
    return ahead


def _take_ahead(job_id: int, chunk: int) -> _Ahead | None:
    """The rows read ahead for this chunk, once they are ready (None when there are none); any other is dropped."""
    ahead = _claim_ahead()
    return ahead if ahead is not None and (ahead.job_id, ahead.chunk) == (job_id, chunk) else None


def _default_type(job: SyncJob) -> str:
    return job.options.get("default_type") or "other"


def _converted(default_type: str, rows: list[Any]) -> list[Incoming | RowError]:
    """Each (id, raw) row's record, validated."""
    items: list[Incoming | RowError] = []
    for row in rows:
        try:
            items.append(convert(row.raw, default_type))
        except RowError as exc:
            items.append(_line_error(row, exc))
    return items


def _line_error(row: Any, exc: RowError) -> RowError:
    line = (row.raw or {}).get("line")
    return RowError(f"Line {line}: {exc}" if line else str(exc))


def _write_rows_one_by_one(job: SyncJob, library_id: int, items: list[Incoming | RowError]) -> list[Outcome]:
    """Each row of a failed chunk in a transaction of its own."""
    outcomes: list[Outcome] = []
    for item in items:
        try:
            with db.session.begin_nested():
                outcomes.extend(write_batch(_context(job, library_id), [item]))
        except Exception as exc:
            outcomes.append(Outcome("failed", message=f"Could not be written: {exc.__class__.__name__}: "
                                                      f"{str(exc).splitlines()[0][:300] if str(exc) else ''}"))
    return outcomes


def _record(job: SyncJob, ids: list[int], outcomes: list[Outcome]) -> None:
    counts = {name: 0 for name in ("created", "updated", "skipped", "failed")}
    for outcome in outcomes:
        counts[outcome.outcome] += 1
    now = utcnow()
    update_rows(ImportRow.__table__, "id", [
        {"id": row_id, "outcome": o.outcome, "match_mode": o.match_mode, "matched_by": o.matched_by,
         "message": (o.message or "")[:2000] or None, "media_id": o.media_id, "updated_at": now}
        for row_id, o in zip(ids, outcomes, strict=True)])
    db.session.execute(update(SyncJob).where(SyncJob.id == job.id).values(
        processed=SyncJob.processed + len(ids), created=SyncJob.created + counts["created"],
        updated=SyncJob.updated + counts["updated"], skipped=SyncJob.skipped + counts["skipped"],
        failed=SyncJob.failed + counts["failed"], heartbeat_at=utcnow()))
    db.session.refresh(job)


def _next_chunk(job: SyncJob, after: int = 0) -> int | None:
    """The chunk of the first pending row: looked for after row `after` first (the chunk that just ran), then from
    the start. (From the start only, PostgreSQL walks the index entries every done row left behind, and the query
    slows with each chunk.)"""
    size = _rows_per_chunk(job)
    pending = select(func.min(ImportRow.row_number)).where(ImportRow.job_id == job.id, ImportRow.outcome == "pending")
    first = db.session.scalar(pending.where(ImportRow.row_number > after)) if after else None
    if first is None:
        first = db.session.scalar(pending)
    return None if first is None else (first - 1) // size


def _cancel_pending(job: SyncJob) -> None:
    db.session.execute(update(ImportRow).where(ImportRow.job_id == job.id, ImportRow.outcome == "pending")
                       .values(outcome="cancelled", message="cancelled before this row was read"))
    _finish(job, "cancelled")


def _finish(job: SyncJob, status: str) -> None:
    if status == "succeeded" and job.total and job.failed == job.total:
        status = "failed"
        job.error = job.error or "No row could be imported: every row failed (see the rows below)."
    job.status = status
    job.finished_at = utcnow()
    job.summary = {"total": job.total, "processed": job.processed, "created": job.created, "updated": job.updated,
                   "skipped": job.skipped, "failed": job.failed}
    action = {"succeeded": "import.finished", "failed": "import.failed", "cancelled": "import.cancelled"}[status]
    audit.record(action, actor=_actor(job), entity_type="sync_job", entity_id=job.id,
                 status="ok" if status != "failed" else "failed", reason=job.error if status == "failed" else None,
                 details={"kind": job.kind, "file": job.source_name, **job.summary})


def run_inline(job_id: int) -> SyncJob:
    """Run every step of a job in this process (the CLI; tests): same code as the workers, no queue."""
    next_chunk = stage(job_id)
    while next_chunk is not None:
        next_chunk = process_chunk(job_id, next_chunk).next_chunk
    job = _job(job_id)
    assert job is not None
    return job


# --- dry runs (preview; CLI --dry-run) -------------------------------------------------------------------------


@dataclass
class PreviewRow:
    line: int | None
    record: Record
    outcome: str
    match_mode: str | None
    message: str | None


def dry_run(actor: User, kind: str, records: Iterable[Record], options: dict[str, Any] | None = None,
            keep: int | None = None) -> list[PreviewRow]:
    """What importing these records would do, row by row; nothing is written. The rows go through the same writer
    a chunk at a time in one transaction (so later rows see earlier ones), which is rolled back at the end.
    `keep` limits how many rows are returned (the counts of the rest are still computed by the caller's loop)."""
    require_writer(actor, "import items")
    options = options or {}
    job = SyncJob(kind=kind, options=options, created_by=actor.id)
    library_id = ensure_default_library().id
    db.session.commit()
    context = _context(job, library_id)
    kinds = {"csv", "delicious"}
    records_iter = _with_content_ids(iter(records), kind) if kind in kinds else iter(records)
    result: list[PreviewRow] = []
    try:
        while True:
            batch = list(itertools.islice(records_iter, chunk_size()))
            if not batch:
                break
            items: list[Incoming | RowError] = []
            for record in batch:
                try:
                    items.append(convert(record, options.get("default_type") or "other"))
                except RowError as exc:
                    line = record.get("line")
                    items.append(RowError(f"Line {line}: {exc}" if line else str(exc)))
            outcomes = write_batch(context, items)
            for record, outcome in zip(batch, outcomes, strict=True):
                if keep is None or len(result) < keep:
                    result.append(PreviewRow(record.get("line"), record, outcome.outcome, outcome.match_mode,
                                             outcome.message))
                else:
                    message = outcome.message if outcome.outcome == "failed" else None
                    result.append(PreviewRow(record.get("line"), {}, outcome.outcome, None, message))
    finally:
        db.session.rollback()
    return result


# --- reading jobs (views) --------------------------------------------------------------------------------------


def _visible(actor: User) -> Any:
    return True if actor.role == "admin" else SyncJob.created_by == actor.id


def get_job(actor: User, job_id: int) -> SyncJob:
    """A job the actor may see: admins see all, others their own."""
    job = db.session.get(SyncJob, job_id)
    if job is None or (actor.role != "admin" and job.created_by != actor.id):
        raise NotFound("No such import.")
    return job


def list_jobs(actor: User, page: int = 1, per_page: int = 20) -> Page[SyncJob]:
    query = select(SyncJob).where(_visible(actor))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.order_by(SyncJob.id.desc()).offset((page - 1) * per_page)
                                    .limit(per_page)))
    return Page(items, page, per_page, total)


def running_count(actor: User) -> int:
    """Unfinished imports the actor can see (the nav badge)."""
    return db.session.scalar(select(func.count(SyncJob.id)).where(
        _visible(actor), SyncJob.status.in_(("queued", "running")))) or 0


def owners(jobs: list[SyncJob]) -> dict[int, User]:
    ids = {j.created_by for j in jobs if j.created_by}
    return {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}


def _rows_query(job: SyncJob, outcome: str | None, match_mode: str | None) -> Any:
    query = select(ImportRow).where(ImportRow.job_id == job.id)
    if outcome:
        query = query.where(ImportRow.outcome == outcome)
    if match_mode:
        query = query.where(ImportRow.match_mode == match_mode)
    return query


def job_rows(actor: User, job_id: int, outcome: str | None = None, match_mode: str | None = None,
             page: int = 1, per_page: int = _PER_PAGE) -> Page[ImportRow]:
    job = get_job(actor, job_id)
    query = _rows_query(job, outcome if outcome in OUTCOMES else None, match_mode)
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    items = list(db.session.scalars(query.order_by(ImportRow.row_number).offset((page - 1) * per_page)
                                    .limit(per_page)))
    return Page(items, page, per_page, total)


def deleted_items(rows: Iterable[ImportRow]) -> set[int]:
    """The items these rows made or matched that have been deleted since (a row keeps its item's id)."""
    ids = {row.media_id for row in rows if row.media_id is not None}
    if not ids:
        return set()
    return ids - set(db.session.scalars(select(Media.id).where(Media.id.in_(ids))))


def outcome_counts(job: SyncJob) -> dict[str, int]:
    rows = db.session.execute(select(ImportRow.outcome, func.count()).where(ImportRow.job_id == job.id)
                              .group_by(ImportRow.outcome)).all()
    return {outcome: count for outcome, count in rows}


AUDIT_CSV_COLUMNS = ("row", "line", "outcome", "match_mode", "matched_by", "message", "enrichment", "item_id",
                     "title", "media_type", "source_id")


def rows_csv(actor: User, job_id: int, outcome: str | None = None) -> Iterator[str]:
    """The per-row audit as CSV lines, streamed in pages (formula-looking cells escaped)."""
    job = get_job(actor, job_id)
    # Built before the first line goes out: the response's own commits (audit) may detach the job meanwhile.
    query = _rows_query(job, outcome if outcome in OUTCOMES else None, None)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(AUDIT_CSV_COLUMNS)
    yield buffer.getvalue()
    last = 0
    while True:
        rows = list(db.session.scalars(query.where(ImportRow.row_number > last)
                                       .order_by(ImportRow.row_number).limit(1000)))
        if not rows:
            break
        buffer.seek(0)
        buffer.truncate()
        for row in rows:
            raw = row.raw or {}
            writer.writerow([safe_cell(v) for v in (
                row.row_number, raw.get("line"), row.outcome, row.match_mode, row.matched_by, row.message,
                row.enrichment, row.media_id, raw.get("title"), raw.get("media_type"), raw.get("source_id"))])
        last = rows[-1].row_number
        yield buffer.getvalue()


# --- cancel, retry ---------------------------------------------------------------------------------------------


def can_act(actor: User, job: SyncJob) -> bool:
    """Whether the actor may cancel, retry or fix a job: a writer who is admin or started it."""
    return actor.can_write and (actor.role == "admin" or job.created_by == actor.id)


def _require_owner(actor: User, job: SyncJob, what: str) -> None:
    if actor.role != "admin" and job.created_by != actor.id:
        raise Forbidden(f"Only the admin or whoever started an import can {what} it.")


def cancel(actor: User, job_id: int) -> SyncJob:
    """Stop a job after its current chunk (at once if it has not started reading)."""
    job = get_job(actor, job_id)
    _require_owner(actor, job, "cancel")
    if job.is_terminal:
        raise Conflict("This import has already finished.")
    job.cancel_requested = True
    audit.record("import.cancel_requested", actor=actor, entity_type="sync_job", entity_id=job.id,
                 details={"kind": job.kind, "processed": job.processed, "total": job.total})
    if job.status == "queued" and job.staged_at is None:
        _finish(job, "cancelled")
    db.session.commit()
    return job


RETRY_FIELDS = ("title", "media_type", "year", "isbn", "ean", "asin", "rating", "release_date")


def failed_row(actor: User, job_id: int, row_id: int) -> tuple[SyncJob, ImportRow]:
    """A failed row of a job the actor can see, or NotFound / Conflict."""
    job = get_job(actor, job_id)
    row = db.session.get(ImportRow, row_id)
    if row is None or row.job_id != job.id:
        raise NotFound("No such row.")
    if row.outcome != "failed":
        raise Conflict("Only a failed row can be fixed.")
    return job, row


def fix_row(actor: User, job_id: int, row_id: int, values: dict[str, str]) -> ImportRow:
    """Correct a failed row's values (before retrying it); the change is audited. InvalidInput says what the
    import's own checks would still find wrong with the row, and nothing is saved then."""
    job, row = failed_row(actor, job_id, row_id)
    _require_owner(actor, job, "fix rows of")
    try:
        convert({**(row.raw or {}), **{k: v.strip() for k, v in values.items()}},
                job.options.get("default_type") or "other")
    except RowError as exc:
        raise InvalidInput(str(exc)) from None
    raw = dict(row.raw or {})
    changed = {}
    for key in RETRY_FIELDS:
        if key in values and (values[key] or "").strip() != str(raw.get(key) or ""):
            changed[key] = {"from": raw.get(key), "to": values[key].strip()}
            raw[key] = values[key].strip()
    row.raw = raw
    audit.record("import.row_fixed", actor=actor, entity_type="sync_job", entity_id=job.id,
                 details={"row": row.row_number, "changed": changed})
    db.session.commit()
    return row


def retry_failed(actor: User, job_id: int) -> tuple[SyncJob, int | None]:
    """Put a finished job's failed rows back to pending; returns the job and the first chunk to run."""
    job = get_job(actor, job_id)
    _require_owner(actor, job, "retry")
    if not job.is_terminal:
        raise Conflict("Wait until the import has finished, then retry its failed rows.")
    if job.staged_at is None:
        raise Conflict("This import never read its file: start a new import.")
    count = db.session.execute(update(ImportRow).where(ImportRow.job_id == job.id, ImportRow.outcome == "failed")
                               .values(outcome="pending", message=None)).rowcount or 0
    if not count:
        raise Conflict("There are no failed rows to retry.")
    job.failed -= count
    job.processed -= count
    job.status, job.finished_at, job.error, job.cancel_requested = "running", None, None, False
    job.heartbeat_at = utcnow()
    audit.record("import.retried", actor=actor, entity_type="sync_job", entity_id=job.id, details={"rows": count})
    db.session.commit()
    return job, _next_chunk(job)


# --- the sweeper -----------------------------------------------------------------------------------------------


@dataclass
class Revival:
    job_id: int
    step: str  # "stage" or "chunk"
    chunk: int | None
    status: str  # the job's: queued or running


def sweep(stale_seconds: int | None = None) -> list[Revival]:
    """Unfinished jobs with no sign of life for stale_seconds: the step each should run again. The caller
    enqueues those that are not still waiting in the queue (and logs them); every stale job's heartbeat is reset,
    so none is looked at twice in one interval."""
    stale = stale_seconds if stale_seconds is not None else settings().IMPORT_STALE_SECONDS
    cutoff = utcnow() - timedelta(seconds=stale)
    jobs = list(db.session.scalars(select(SyncJob).where(
        SyncJob.status.in_(("queued", "running")),
        func.coalesce(SyncJob.heartbeat_at, SyncJob.created_at) < cutoff).order_by(SyncJob.id)))
    revived: list[Revival] = []
    for job in jobs:
        job.heartbeat_at = utcnow()
        if job.staged_at is None:
            revived.append(Revival(job.id, "stage", None, job.status))
        else:
            revived.append(Revival(job.id, "chunk", _next_chunk(job) or 0, job.status))
    db.session.commit()
    return revived


def summary(job: SyncJob) -> Summary:
    return Summary(job.id, job.status, job.total, job.created, job.updated, job.skipped, job.failed, job.error)

