"""The import benchmark: a 100,000-row generic CSV (first import and re-import) and Delicious Library exports.

Every import runs end to end through the service the worker runs (save_upload_from_path → start_import → run_inline:
stage, then every chunk; no Redis, no enrichment) in a **child process** (`python -m bench.imports --child KIND PATH
DBURL --instance DIR`) that starts as worker.py does (the app built, then its start-up objects left out of garbage
collection: collectz.startup.freeze_start_up_objects), so that the worker's peak RSS is the child's own: it reads
its VmHWM after start-up, resets it (/proc/self/clear_refs), imports, and reads it again. (ru_maxrss from wait4 is
not used: it counts the parent's memory image the child had before exec.) `seconds` is the time spent in the service
inside the child; `process_seconds` adds interpreter and app start-up.

Cases, each on a fresh database (SQLite file; PostgreSQL when BENCH_DATABASE_URL is set, in a database of its
own, BENCH_PG_IMPORTS_DATABASE default `collectz_bench_imports`, created and dropped by the bench):
- csv_100k: a generated CSV (fixed seed, mixed media types as in ../shared/BENCH.md, valid ISBNs/EANs/UPCs,
  people from a pool), then csv_100k_reimport: the same file again (every row maps back: 0 created). The pair runs
  `--runs` times (default 3), each time on a fresh database; the run whose first import took the median time is
  reported, with every run's seconds beside it (`runs_seconds`).
- delicious_268: the real export at ../shared/fixtures/delicious/library-plist.xml.
- delicious_100mb: that export's entries repeated until the file is ≥ 100 MiB. The first copy is the export as is;
  every further copy gets a fresh uuidString, a title suffixed " (copy N)" and fresh valid identifiers (ISBN-10
  and its EAN for books, EAN/UPC/ASIN otherwise), so every entry is a new item (nothing dedupes across copies).
  The generated file lives in the work directory only (third-party data: never copied into the project).

CPU: `cpu_seconds` is the importing process's CPU time while it imports (on SQLite the database's work is in it);
`db_server_cpu_seconds` the PostgreSQL server's over the child's life (bench/cpu.py). On a machine of N cores, a
case cannot run faster than (cpu_seconds + db_server_cpu_seconds) / N, whatever the code does with its cores.
`python_calibration_s`: the seconds of bench.cpu's fixed piece of Python work, read in the child just before and just
after its import (their mean): machines of one size, and one machine from minute to minute, differ in speed.

Writes bench/results/import-csv-<db>.json and import-delicious-<db>.json (format: ../shared/BENCH.md) and
prints a table. Targets are reported beside the numbers; a benchmark never fails on them.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from stdnum import ean, isbn

from bench import child, cpu
from bench.library import build_app, databases, postgres_url, report, sqlite_url
from bench.seed import FORMATS, GENRES, LOCATIONS, NIGHT_SHARE, NOTES, _title, _type_sequence, _year

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
DELICIOUS_EXPORT = ROOT.parent / "shared" / "fixtures" / "delicious" / "library-plist.xml"
ROWS = 100_000
SEED = 20261126
DELICIOUS_BYTES = 100 * 1024 * 1024
OWNER = "bench@example.org"
TARGETS = {"csv_rows_per_s": 5000, "delicious_peak_rss_mib": 150, "delicious_268_seconds": 5.0}
_RESULT = "BENCH-IMPORT-RESULT "

# What a user's spreadsheet calls the columns and the types (auto-mapped like the upload page does).
CSV_HEADER = ("Type", "Title", "Year", "ISBN", "EAN", "UPC", "Authors", "Directors", "Cast", "Genres", "Format",
              "Location", "Notes", "Rating")
TYPE_WORDS = {"movie": "Movie", "book": "Book", "game": "Video game", "tv_series": "TV series", "audio": "Music"}


# --- data ------------------------------------------------------------------------------------------------------

def _people_pool(rng: random.Random, size: int = 3000) -> list[str]:
    from bench.seed import FIRST_NAMES, LAST_NAMES

    names = [f"{f} {m}{last}" for f in FIRST_NAMES for m in ("", "J. ", "M. ") for last in LAST_NAMES]
    rng.shuffle(names)
    return names[:size]


def _isbn13(n: int) -> str:
    body = f"9781{n:08d}"
    code = body + ean.calc_check_digit(body)
    isbn.validate(code)
    return code


def _ean13(n: int) -> str:
    body = f"40{n:010d}"
    return body + ean.calc_check_digit(body)


def _upc(n: int) -> str:
    body = f"7{n:010d}"
    return body + ean.calc_check_digit(body)  # UPC-A: the EAN check digit of its 11 digits


def generate_csv(path: Path, rows: int = ROWS, seed_value: int = SEED) -> dict[str, int]:
    """A deterministic generic CSV of `rows` items (shares of the standard data set); returns rows per type."""
    rng = random.Random(seed_value)
    pool = _people_pool(rng)
    counts: dict[str, int] = {}
    serial = 0
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(CSV_HEADER)
        for media_type in _type_sequence(rng, rows):
            serial += 1
            counts[media_type] = counts.get(media_type, 0) + 1
            title = _title(rng, zephyr=False, night=rng.random() < NIGHT_SHARE)
            isbn_cell = ean_cell = upc_cell = authors = directors = cast = ""
            if media_type == "book":
                code = _isbn13(serial)
                style = serial % 4  # plain ISBN-13, hyphenated ISBN-13, ISBN-10, hyphenated ISBN-10
                isbn_cell = {0: code, 1: isbn.format(code), 2: isbn.to_isbn10(code),
                             3: isbn.format(isbn.to_isbn10(code))}[style]
                authors = "; ".join(rng.sample(pool, rng.choice((1, 1, 1, 2))))
            elif media_type == "audio":
                upc_cell = _upc(serial)
            else:
                ean_cell = _ean13(serial)
            if media_type in ("movie", "tv_series"):
                directors = rng.choice(pool)
                cast = "; ".join(rng.sample(pool, rng.randint(0, 5)))
            rating = ""
            if rng.random() < 1 / 3:
                rating = str(rng.randint(1, 10)) if rng.random() < 0.8 else f"{rng.randint(1, 9)}.5"
            writer.writerow((
                TYPE_WORDS[media_type], title, _year(rng, media_type), isbn_cell, ean_cell, upc_cell, authors,
                directors, cast, "; ".join(rng.sample(GENRES[media_type], rng.randint(1, 3))),
                rng.choice(FORMATS[media_type]), rng.choice(LOCATIONS) if rng.random() < 0.7 else "",
                rng.choice(NOTES) if rng.random() < 0.2 else "", rating))
    return counts


_ENTRY = re.compile(r"\n\t<dict>\n.*?\n\t</dict>", re.S)
_VALUE = re.compile(r"(<key>(uuidString|title|isbn|ean|upc|asin)</key>\s*<string>)([^<]*)(</string>)")


def generate_delicious(path: Path, source: Path = DELICIOUS_EXPORT, target_bytes: int = DELICIOUS_BYTES,
                       seed_value: int = SEED) -> dict[str, int]:
    """Repeat the export's entries (see the module docstring) until the file has at least target_bytes."""
    text_in = source.read_text(encoding="utf-8")
    entries = _ENTRY.findall(text_in)
    if not entries:
        raise SystemExit(f"{source}: no entries found")
    head = text_in[:text_in.index(entries[0])]
    tail = text_in[text_in.index(entries[-1]) + len(entries[-1]):]
    rng = random.Random(seed_value)
    serial = 0
    written = 0
    copies = 0
    with path.open("w", encoding="utf-8") as out:
        size = out.write(head) + len(tail)
        while size < target_bytes or copies == 0:
            for entry in entries:
                if copies:
                    serial += 1
                    entry = _VALUE.sub(_fresh_values(rng, serial, copies), entry)
                size += len(entry.encode("utf-8"))
                out.write(entry)
                written += 1
            copies += 1
        out.write(tail)
    return {"entries": written, "copies": copies, "bytes": path.stat().st_size}


def _fresh_values(rng: random.Random, serial: int, copy: int) -> Callable[[re.Match[str]], str]:
    book13 = f"9785{serial:08d}"
    book13 += ean.calc_check_digit(book13)

    def replace(match: re.Match[str]) -> str:
        key, value = match.group(2), match.group(3)
        if key == "uuidString":
            value = str(uuid.UUID(int=rng.getrandbits(128), version=4)).upper()
        elif key == "title":
            value = f"{value} (copy {copy})"
        elif not value:
            return match.group(0)
        elif key == "isbn":
            value = isbn.to_isbn10(book13) if len(value) == 10 else book13
        elif key == "ean":
            value = book13 if value.startswith(("978", "979")) else _ean13(serial)
        elif key == "upc":
            value = _upc(serial)
        elif key == "asin":
            value = isbn.to_isbn10(book13) if value.isdigit() else f"B0{serial:08d}"
        return match.group(1) + value + match.group(4)

    return replace


# --- the child: one import, end to end, in its own process -----------------------------------------------------

def import_file(app: Any, kind: str, path: Path, owner_email: str = OWNER) -> dict[str, Any]:
    """Import a file as the upload page and the worker do (mapping, upload, job, stage, chunks); timed."""
    from sqlalchemy import select

    from collectz.extensions import db
    from collectz.models import User
    from collectz.services import imports

    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == owner_email))
        started = time.perf_counter()
        cpu_started = cpu.self_seconds()
        options: dict[str, Any] = {"default_type": "other"}
        if kind == "csv":
            from collectz.importers import csv_generic

            options["mapping"] = csv_generic.auto_mapping(csv_generic.inspect(path).columns)
        upload = imports.save_upload_from_path(owner, kind, path)
        job, _new = imports.start_import(owner, upload, options)
        job = imports.run_inline(job.id)
        seconds = time.perf_counter() - started
        cpu_seconds = cpu.self_seconds() - cpu_started
        result = imports.summary(job).as_dict()
        result["chunk_size"] = job.options.get("chunk_size")
        db.session.remove()
        db.engine.dispose()
    result["seconds"] = round(seconds, 3)
    result["cpu_seconds"] = round(cpu_seconds, 2)  # the importing process (SQLite's own work included)
    return result


def child_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports --child")
    parser.add_argument("kind", choices=("csv", "delicious"))
    parser.add_argument("path", type=Path)
    parser.add_argument("database_url")
    parser.add_argument("--instance", type=Path, required=True)
    args = parser.parse_args(argv)
    from collectz.startup import freeze_start_up_objects

    app = build_app(args.database_url, args.instance)
    freeze_start_up_objects()  # as worker.py does once it has started
    startup = _memory()
    before = cpu.calibrate()  # the machine's speed around the import (it changes from minute to minute)
    reset = _reset_peak()
    result = import_file(app, args.kind, args.path)
    during = _memory()
    result["python_calibration_s"] = round((before + cpu.calibrate()) / 2, 4)
    result["startup_rss_mib"] = startup["VmRSS"]
    result["startup_peak_rss_mib"] = startup["VmHWM"]
    if reset:  # the peak from here on is the import's (resident start-up memory included)
        result["import_peak_rss_mib"] = during["VmHWM"]
    child.report(_RESULT, result)
    return 0


def _memory() -> dict[str, float]:
    """VmRSS and VmHWM (peak) of this process in MiB (Linux)."""
    found = {"VmRSS": 0.0, "VmHWM": 0.0}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in found:
                found[key] = round(int(value.split()[0]) / 1024, 1)
    except OSError:
        pass
    return found


def _reset_peak() -> bool:
    """Reset this process's peak RSS (Linux clear_refs 5), so the import's own peak can be read afterwards."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def run_child(kind: str, path: Path, database_url: str, instance: Path) -> dict[str, Any]:
    """Run one import in a child process; its result plus its peak RSS over its whole life, and the CPU time the
    database server spent meanwhile (PostgreSQL on this machine; the child's start-up included)."""
    meter = cpu.Meter(db_server=cpu.postgres_pid(database_url)).start()
    result = child.run("bench.imports", [kind, str(path), database_url, "--instance", str(instance)], _RESULT,
                       f"import child ({kind} {path.name})")
    time.sleep(0.5)  # the child's database backends exit after it: let the server reap them (their CPU counts)
    result["db_server_cpu_seconds"] = meter.stop()["db_server"]
    # The worker's peak over its whole life: start-up (app, imports) or the import, whichever is higher.
    result.setdefault("import_peak_rss_mib", result["startup_peak_rss_mib"])  # no clear_refs: whole-life peak
    result["peak_rss_mib"] = max(result["startup_peak_rss_mib"], result["import_peak_rss_mib"])
    return result


# --- databases and cases ---------------------------------------------------------------------------------------

def prepare_database(database_url: str, instance: Path) -> None:
    """Migrate a fresh database and add the member the imports run as."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.schema import upgrade
    from collectz.security.passwords import hash_password
    from collectz.services.users import ensure_default_library

    app = build_app(database_url, instance)
    upgrade(app)
    with app.app_context():
        db.session.add(User(email=OWNER, name="Bench", role="admin", password_hash=hash_password("x" * 12)))
        ensure_default_library()
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def _case(name: str, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    seconds = max(result["seconds"], 0.001)
    row = {"name": name, "rows": result["total"], "seconds": result["seconds"],
           "rows_per_s": round(result["total"] / seconds), "peak_rss_mib": result["peak_rss_mib"],
           "import_peak_rss_mib": result["import_peak_rss_mib"], "startup_rss_mib": result["startup_rss_mib"],
           "startup_peak_rss_mib": result["startup_peak_rss_mib"],
           "process_seconds": result["process_seconds"], "status": result["status"],
           "created": result["created"], "updated": result["updated"], "skipped": result["skipped"],
           "failed": result["failed"], "chunk_size": result.get("chunk_size"),
           "cpu_seconds": result.get("cpu_seconds"), "db_server_cpu_seconds": result.get("db_server_cpu_seconds"),
           "python_calibration_s": result.get("python_calibration_s")}
    if result.get("error"):
        row["error"] = result["error"]
    row.update(extra)
    return row


def size_label(rows: int) -> str:
    return f"{rows // 1000}k" if rows >= 1000 and rows % 1000 == 0 else str(rows)


def csv_cases(fresh: Callable[[str], str], work: Path, csv_path: Path, rows: int,
              runs: int = 1) -> list[dict[str, Any]]:
    """The CSV's first import into an empty library, then its re-import; `runs` times, each on a fresh database.
    The cases reported are the run whose first import took the median time (of two, the slower), with every run's
    seconds beside them (`runs_seconds`): one run is at the mercy of the machine's minute (see the module)."""
    label = size_label(rows)
    instance = work / "instance-csv"
    instance.mkdir(parents=True, exist_ok=True)
    target = TARGETS["csv_rows_per_s"]
    done = []
    for _run in range(max(runs, 1)):
        url = fresh("csv")
        prepare_database(url, instance)
        first = _case(f"csv_{label}", run_child("csv", csv_path, url, instance), target_rows_per_s=target)
        first["meets_target"] = first["rows_per_s"] >= target and first["created"] == rows
        again = _case(f"csv_{label}_reimport", run_child("csv", csv_path, url, instance), target_created=0,
                      target_seconds=first["seconds"])
        again["vs_first_import"] = round(again["seconds"] / max(first["seconds"], 0.001), 2)
        again["meets_target"] = again["created"] == 0 and again["seconds"] <= first["seconds"]
        done.append((first, again))
    first, again = sorted(done, key=lambda pair: pair[0]["seconds"])[len(done) // 2]
    for index, case in enumerate((first, again)):
        case["runs"] = len(done)
        case["runs_seconds"] = [pair[index]["seconds"] for pair in done]
    return [first, again]


def delicious_cases(fresh: Callable[[str], str], work: Path, big_path: Path | None,
                    source: Path = DELICIOUS_EXPORT) -> list[dict[str, Any]]:
    results = []
    instance = work / "instance-delicious"
    instance.mkdir(parents=True, exist_ok=True)
    url = fresh("delicious")
    prepare_database(url, instance)
    small = _case("delicious_268", run_child("delicious", source, url, instance),
                  target_seconds=TARGETS["delicious_268_seconds"])
    small["meets_target"] = small["seconds"] < TARGETS["delicious_268_seconds"] and small["failed"] == 0
    results.append(small)
    if big_path is not None:
        url = fresh("delicious-big")
        prepare_database(url, instance)
        mib = big_path.stat().st_size / 1024 / 1024
        big = _case(f"delicious_{round(mib)}mb", run_child("delicious", big_path, url, instance),
                    file_mib=round(mib, 1), target_peak_rss_mib=TARGETS["delicious_peak_rss_mib"])
        big["meets_target"] = big["peak_rss_mib"] <= TARGETS["delicious_peak_rss_mib"] and big["failed"] == 0
        results.append(big)
    return results


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title} (service seconds in a child process; peak RSS of that process)")
    print(f"{'case':22s} {'rows':>8s} {'seconds':>8s} {'rows/s':>8s} {'created':>8s} {'skipped':>8s} "
          f"{'failed':>6s} {'peak MiB':>8s} {'import':>7s} {'cpu s':>6s} {'db cpu':>6s}  target")
    for row in rows:
        if "target_rows_per_s" in row:
            target = f">= {row['target_rows_per_s']} rows/s"
        elif "target_peak_rss_mib" in row:
            target = f"RSS <= {row['target_peak_rss_mib']} MiB"
        elif "target_created" in row:
            target = f"0 created, <= {row['target_seconds']} s (x{row['vs_first_import']})"
        else:
            target = f"< {row['target_seconds']} s"
        verdict = "ok" if row.get("meets_target") else "MISSED"
        print(f"{row['name']:22s} {row['rows']:8d} {row['seconds']:8.2f} {row['rows_per_s']:8d} {row['created']:8d} "
              f"{row['skipped']:8d} {row['failed']:6d} {row['peak_rss_mib']:8.1f} {row['import_peak_rss_mib']:7.1f} "
              f"{_seconds(row.get('cpu_seconds'))} {_seconds(row.get('db_server_cpu_seconds'))}  {target} {verdict}")
    print("peak MiB: the process's peak RSS (start-up included); import: its peak while importing; cpu s: that "
          "process's CPU seconds while importing; db cpu: the PostgreSQL server's, meanwhile")


def _seconds(value: float | None) -> str:
    return f"{value:6.1f}" if value is not None else f"{'-':>6s}"


def run_db(db_name: str, fresh: Callable[[str], str], work: Path, csv_path: Path, rows: int,
           big_path: Path | None, results_dir: Path | None, runs: int = 1) -> list[dict[str, Any]]:
    """Both suites on one database server; writes their JSON files into results_dir (None: not written)."""
    print(f"[{db_name}] CSV import of {rows:,} rows ({runs} run{'s' if runs > 1 else ''}) …", flush=True)
    csv_report = report("import-csv", db_name, rows, csv_cases(fresh, work, csv_path, rows, runs))
    print_table(f"import benchmark · CSV · {db_name} · {rows:,} rows", csv_report["cases"])
    print(f"\n[{db_name}] Delicious imports …", flush=True)
    cases = delicious_cases(fresh, work, big_path)
    items = cases[-1]["rows"]
    del_report = report("import-delicious", db_name, items, cases)
    print_table(f"import benchmark · Delicious · {db_name}", cases)
    reports = [csv_report, del_report]
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        for rep in reports:
            path = results_dir / f"{rep['benchmark']}-{db_name}.json"
            path.write_text(json.dumps(rep, indent=2) + "\n")
            print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return reports


def fresh_sqlite(work: Path) -> Callable[[str], str]:
    """label → the URL of an empty SQLite database under `work` (made again at each call: the CSV cases run on a
    fresh one each run)."""
    def fresh(label: str) -> str:
        (work / f"sqlite-{label}").mkdir(parents=True, exist_ok=True)
        return sqlite_url(work / f"sqlite-{label}")
    return fresh


def drop_postgres(admin_url: str, name: str) -> None:
    from collectz.config import normalise_database_url

    engine = create_engine(normalise_database_url(admin_url), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench imports", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS, help="rows in the generated CSV")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--skip-delicious-100mb", action="store_true")
    parser.add_argument("--write", action="store_true", help="write results even for a partial run")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of the CSV cases, each on a fresh database (the median run is reported)")
    args = parser.parse_args(argv)
    names, pg_admin = databases(args.db)
    pg_name = os.environ.get("BENCH_PG_IMPORTS_DATABASE", "collectz_bench_imports")
    keep = bool(os.environ.get("BENCH_WORK_DIR"))
    work = Path(os.environ.get("BENCH_WORK_DIR") or tempfile.mkdtemp(prefix="collectz-bench-imports-"))
    work.mkdir(parents=True, exist_ok=True)

    makers: dict[str, Callable[[str], str]] = {
        "sqlite": fresh_sqlite(work), "postgresql": lambda _label: postgres_url(pg_admin, pg_name)}
    runners = [(name, makers[name]) for name in names]
    full = args.rows == ROWS and not args.skip_delicious_100mb
    results_dir = RESULTS if full or args.write else None
    try:
        csv_path = work / f"bench-{size_label(args.rows)}.csv"
        started = time.perf_counter()
        counts = generate_csv(csv_path, args.rows)
        print(f"generated {csv_path.name}: {args.rows:,} rows {counts} in {time.perf_counter() - started:.1f} s")
        big_path = None
        if not args.skip_delicious_100mb:
            big_path = work / "delicious-100mb.xml"
            started = time.perf_counter()
            info = generate_delicious(big_path)
            print(f"generated {big_path.name}: {info['entries']:,} entries, {info['bytes'] / 2**20:.1f} MiB in "
                  f"{time.perf_counter() - started:.1f} s")
        for db_name, fresh in runners:
            try:
                run_db(db_name, fresh, work, csv_path, args.rows, big_path, results_dir, args.runs)
            finally:
                if db_name == "postgresql":
                    drop_postgres(pg_admin, pg_name)
        if results_dir is None:
            print("partial run (--rows or --skip-delicious-100mb): results not written (add --write)")
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
