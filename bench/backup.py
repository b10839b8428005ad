"""The backup benchmark: back up the standard 100,000-item library and restore it into the other database.

The source is seeded with bench/seed.py (the standard data set of ../shared/BENCH.md) plus `--covers` small PNG
covers in its file store. `flask backup create` and `flask backup restore` run as **child processes** through the
service they call (`python -m bench.backup --child create|restore DBURL INSTANCE ARCHIVE`), so each peak RSS is that
process's own: it reads VmHWM after start-up, resets it (/proc/self/clear_refs), works, and reads it again.

Each source database is restored into a fresh database of the other kind (SQLite → PostgreSQL, PostgreSQL → SQLite;
SQLite → SQLite when BENCH_DATABASE_URL names no PostgreSQL server). The restore is then verified: every table's
content hash, computed from the restored database, must equal the manifest's, and every object's checksum too.

Writes bench/results/backup-<source db>.json (format: ../shared/BENCH.md) and prints a table. A benchmark reports;
it never fails on a number.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import child
from bench.imports import _memory, _reset_peak, size_label
from bench.library import add_bench_users, build_app, postgres_url, report, sqlite_url

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ITEMS = 100_000
COVERS = 1_000
_RESULT = "BENCH-BACKUP-RESULT "


# --- the child: one backup or one restore, in its own process -------------------------------------------------

def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.backup --child")
    parser.add_argument("action", choices=("create", "restore"))
    parser.add_argument("database_url")
    parser.add_argument("instance", type=Path)
    parser.add_argument("archive", type=Path)
    args = parser.parse_args(argv)
    from collectz.extensions import db
    from collectz.services import backup

    app = build_app(args.database_url, args.instance)
    startup = _memory()
    reset = _reset_peak()
    with app.app_context():
        if args.action == "create":
            summary = backup.create_backup(args.archive)
            manifest, seconds = summary.manifest, summary.seconds
            extra: dict[str, Any] = {"bytes": summary.size}
        else:
            restored = backup.restore_backup(args.archive, via="bench")
            manifest, seconds = restored.manifest, restored.seconds
            extra = {"upgraded_to": restored.upgraded_to}
        db.session.remove()
        db.engine.dispose()
    during = _memory()
    result = {"seconds": round(seconds, 3), "rows": manifest.rows, "tables": len(manifest.tables),
              "objects": len(manifest.objects), "object_bytes": manifest.object_bytes,
              "startup_rss_mib": startup["VmRSS"], "startup_peak_rss_mib": startup["VmHWM"], **extra}
    result["work_peak_rss_mib"] = during["VmHWM"] if reset else None
    result["peak_rss_mib"] = max(startup["VmHWM"], during["VmHWM"])
    child.report(_RESULT, result)
    return 0


def run_child(action: str, database_url: str, instance: Path, archive: Path) -> dict[str, Any]:
    return child.run("bench.backup", [action, database_url, str(instance), str(archive)], _RESULT,
                     f"backup child ({action})")


# --- source, verification and cases ---------------------------------------------------------------------------

def _png(index: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (16, 24), ((index * 37) % 256, (index * 91) % 256, (index * 13) % 256)).save(buffer, "PNG")
    return buffer.getvalue()


def prepare_source(database_url: str, instance: Path, items: int, covers: int) -> dict[str, Any]:
    """Migrate, add two members, seed the data set and store `covers` covers; returns what was made."""
    from sqlalchemy import bindparam, update

    from bench.seed import seed
    from collectz.extensions import db
    from collectz.models import Media
    from collectz.schema import upgrade
    from collectz.services.storage import key_for, storage

    app = build_app(database_url, instance)
    upgrade(app)
    with app.app_context():
        users = add_bench_users()
        started = time.perf_counter()
        with db.engine.begin() as conn:
            seed(conn, items, users=users)
        store = storage()
        keys = []
        for media_id in range(1, min(covers, items) + 1):
            data = _png(media_id)
            key = key_for("covers", media_id, hashlib.sha256(data).hexdigest(), "png")
            store.put(key, data, content_type="image/png")
            keys.append({"id": media_id, "key": key})
        if keys:
            table = Media.__table__
            with db.engine.begin() as conn:
                conn.execute(update(table).where(table.c.id == bindparam("mid")).values(cover_key=bindparam("ck")),
                             [{"mid": row["id"], "ck": row["key"]} for row in keys])
        seconds = time.perf_counter() - started
        db.session.remove()
        db.engine.dispose()
    return {"seed_seconds": round(seconds, 1), "covers": len(keys)}


def verify_restore(database_url: str, instance: Path, archive: Path) -> dict[str, Any]:
    """Content hashes of the restored database against the manifest (the restore's own activity event set aside),
    and every stored object's checksum."""
    from sqlalchemy import delete

    from collectz.extensions import db
    from collectz.models import ActivityLog
    from collectz.services import backup
    from collectz.services.storage import storage

    app = build_app(database_url, instance)
    with app.app_context(), backup.Archive(archive) as opened:
        manifest = opened.manifest
        with db.engine.begin() as conn:
            conn.execute(delete(ActivityLog.__table__).where(ActivityLog.__table__.c.action == "backup.restored"))
        digests = backup.table_digests()
        tables_ok = all(digests.get(t.name) == backup.TableDigest(t.rows, t.sha256) for t in manifest.tables)
        store = storage()
        objects_ok = all(hashlib.sha256(store.read(o.key)).hexdigest() == o.sha256 for o in manifest.objects)
        db.session.remove()
        db.engine.dispose()
    return {"verified": tables_ok and objects_ok, "tables_match": tables_ok, "objects_match": objects_ok}


def _case(name: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    seconds = max(result["seconds"], 0.001)
    return {"name": name, "rows": result["rows"], "seconds": result["seconds"],
            "rows_per_s": round(result["rows"] / seconds), "peak_rss_mib": result["peak_rss_mib"],
            "work_peak_rss_mib": result["work_peak_rss_mib"], "startup_rss_mib": result["startup_rss_mib"],
            "process_seconds": result["process_seconds"], "tables": result["tables"], "objects": result["objects"],
            "object_mib": round(result["object_bytes"] / 1048576, 2), **extra}


def run_db(source: str, target: str, fresh: Callable[[str, str], str], work: Path, items: int, covers: int,
           results_dir: Path | None) -> dict[str, Any]:
    """Seed `source`, back it up, restore into a fresh `target`, verify; writes backup-<source>.json."""
    label = size_label(items)
    src_instance, dst_instance = work / f"instance-{source}-src", work / f"instance-{target}-dst"
    for folder in (src_instance, dst_instance):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    archive = work / f"backup-{source}.tar"
    archive.unlink(missing_ok=True)
    source_url = fresh(source, "source")
    print(f"[{source}] seeding {items:,} items and {covers:,} covers …", flush=True)
    seeded = prepare_source(source_url, src_instance, items, covers)
    print(f"[{source}] backup …", flush=True)
    made = run_child("create", source_url, src_instance, archive)
    archive_mib = round(archive.stat().st_size / 1048576, 1)
    backup_case = _case(f"backup_{label}", made, archive_mib=archive_mib, items=items)
    target_url = fresh(target, "restore")
    print(f"[{source}] restore into {target} …", flush=True)
    restored = run_child("restore", target_url, dst_instance, archive)
    check = verify_restore(target_url, dst_instance, archive)
    restore_case = _case(f"restore_{label}_into_{target}", restored, target=target, **check)
    rep = report("backup", source, items, [backup_case, restore_case])
    rep["seed_seconds"] = seeded["seed_seconds"]
    print_table(rep)
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        path = results_dir / f"backup-{source}.json"
        path.write_text(json.dumps(rep, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return rep


def print_table(rep: dict[str, Any]) -> None:
    print(f"\nbackup benchmark · {rep['db']} · {rep['items']:,} items (seconds in a child process; its peak RSS)")
    print(f"{'case':32s} {'rows':>9s} {'seconds':>8s} {'rows/s':>8s} {'objects':>8s} {'peak MiB':>9s}  notes")
    for row in rep["cases"]:
        notes = f"archive {row['archive_mib']} MiB" if "archive_mib" in row else (
            "verified" if row.get("verified") else "NOT VERIFIED")
        print(f"{row['name']:32s} {row['rows']:9d} {row['seconds']:8.2f} {row['rows_per_s']:8d} {row['objects']:8d} "
              f"{row['peak_rss_mib']:9.1f}  {notes}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench backup", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--covers", type=int, default=COVERS, help="small PNG covers stored for the first items")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both", help="source database(s)")
    parser.add_argument("--write", action="store_true", help="write results even for a partial run")
    args = parser.parse_args(argv)
    pg_admin = os.environ.get("BENCH_DATABASE_URL", "")
    pg_name = os.environ.get("BENCH_PG_BACKUP_DATABASE", "collectz_bench_backup")
    keep = bool(os.environ.get("BENCH_WORK_DIR"))
    work = Path(os.environ.get("BENCH_WORK_DIR") or tempfile.mkdtemp(prefix="collectz-bench-backup-"))
    work.mkdir(parents=True, exist_ok=True)
    created: list[str] = []

    def fresh(kind: str, role: str) -> str:
        if kind == "sqlite":
            folder = work / f"sqlite-{role}"
            folder.mkdir(exist_ok=True)
            return sqlite_url(folder)
        name = f"{pg_name}_{role}"
        created.append(name)
        return postgres_url(pg_admin, name)

    runs: list[tuple[str, str]] = []
    if args.db in ("sqlite", "both"):
        runs.append(("sqlite", "postgresql" if pg_admin else "sqlite"))
    if args.db in ("postgresql", "both"):
        if pg_admin:
            runs.append(("postgresql", "sqlite"))
        elif args.db == "postgresql":
            sys.exit("set BENCH_DATABASE_URL (a PostgreSQL server URL) to run the PostgreSQL benchmark")
        else:
            print("BENCH_DATABASE_URL is not set: PostgreSQL skipped (SQLite is restored into SQLite)")
    results_dir = RESULTS if args.items == ITEMS or args.write else None
    try:
        for source, target in runs:
            run_db(source, target, fresh, work, args.items, args.covers, results_dir)
        if results_dir is None:
            print("partial run (--items): results not written (add --write)")
    finally:
        if created:
            from bench.imports import drop_postgres

            for name in sorted(set(created)):
                drop_postgres(pg_admin, name)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
