"""The fault benchmark: the fault scenarios of the test suite, run at full size with real processes on loopback.

The scenarios are the tests themselves (one definition, two sizes): `make test` runs them reduced (3,000-row
imports, 8 covers); this runs them through pytest with FAULT_ROWS, FAULT_CHUNK_SIZE and FAULT_COVERS set to the full
size, and each scenario appends what it measured to FAULT_RESULTS once all its assertions held (nothing lost,
nothing duplicated, 503s and no traceback during an outage):
- worker_sigkill_mid_import: a real worker killed with SIGKILL a third of the way through an import, another started;
- redis_restart_mid_import: Redis emptied before the import started and again mid-run (with the worker killed);
- postgresql_restart_during_page_loads: PostgreSQL cut (a TCP proxy in front of it stopped) under page loads,
  then back: sign-in works without restarting the app;
- postgresql_restart_mid_import: PostgreSQL cut while a chunk is in flight, with the web answering 503 meanwhile;
- s3_stopped_during_cover_downloads: the S3 store (moto's server) cut half-way through an import's covers;
- upload_submitted_twice: the same upload posted twice at once to two gunicorn workers (a tenth of the rows).

Sizes: `--rows` (default 100,000), `--chunk-size` (default 1,000, the app's default), `--covers` (default 200).
Databases: SQLite, and PostgreSQL when BENCH_DATABASE_URL names a server (the scenarios make databases of their own
on it); Redis from BENCH_REDIS_URL (default redis://127.0.0.1:6379/0; the scenarios claim databases 9-15 on it).
Writes bench/results/faults-<db>.json (format: ../shared/BENCH.md; `--out DIR` elsewhere) when every scenario
passed at full size (or with `--write`), and prints a line per scenario. A failing scenario is a failure: the
exit status is pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.library import databases, report

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
ROWS = 100_000
CHUNK_SIZE = 1000
COVERS = 200
SCENARIOS = (
    "tests/test_imports_crash.py::test_worker_killed_mid_import_is_revived_and_completes_exactly",
    "tests/test_imports_crash.py::test_redis_restarting_empty_loses_no_import",
    "tests/test_faults.py::test_postgresql_outage_during_page_loads_is_a_503_and_sign_in_works_after",
    "tests/test_faults_jobs.py::test_postgresql_restart_during_an_import_loses_and_duplicates_nothing",
    "tests/test_faults_jobs.py::test_s3_stopped_during_cover_downloads_stores_every_cover_once_after",
    "tests/test_faults.py::test_an_upload_submitted_twice_at_once_imports_each_entry_once",
)
# Settings of the suite's own that a developer's shell may hold: the scenarios get only what this run says.
_SUITE_ENV = ("CI", "TEST_DATABASE_URL", "TEST_REDIS_URL", "FAULT_ROWS", "FAULT_CHUNK_SIZE", "FAULT_COVERS",
              "FAULT_RESULTS", "PYTEST_ADDOPTS")


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench faults", description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--rows", type=int, default=ROWS, help="rows of each import")
    parser.add_argument("--chunk-size", type=int, default=CHUNK_SIZE, help="the workers' import chunk size")
    parser.add_argument("--covers", type=int, default=COVERS, help="covers downloaded in the S3 scenario")
    parser.add_argument("-k", dest="select", default="", help="only the scenarios pytest -k selects")
    parser.add_argument("--out", type=Path, default=None, help="where the result files go (default bench/results)")
    parser.add_argument("--write", action="store_true", help="write results even for a reduced or partial run")
    return parser.parse_args(argv)


def scenario_env(args: argparse.Namespace, names: list[str], pg_admin: str, results: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SUITE_ENV}
    env.update(FAULT_ROWS=str(args.rows), FAULT_CHUNK_SIZE=str(args.chunk_size), FAULT_COVERS=str(args.covers),
               FAULT_RESULTS=str(results),
               TEST_REDIS_URL=os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/0")
    if "postgresql" in names:
        env["TEST_DATABASE_URL"] = pg_admin
    return env


def selection(args: argparse.Namespace, names: list[str]) -> str:
    """The -k expression: the chosen databases' scenarios (the PostgreSQL-only ones carry the word in their names)."""
    parts = [] if len(names) == 2 else [names[0]]
    if args.select:
        parts.append(f"({args.select})")
    return " and ".join(parts)


def run(args: argparse.Namespace) -> tuple[int, list[dict[str, Any]], float]:
    """Run the scenarios under pytest; (its exit status, what the scenarios reported, seconds)."""
    names, pg_admin = databases(args.db)
    with tempfile.TemporaryDirectory(prefix="collectz-bench-faults-") as work:
        results = Path(work) / "faults.jsonl"
        command = [sys.executable, "-m", "pytest", "-c", "tests/pytest.ini", "--rootdir", ".", "-q", *SCENARIOS]
        expression = selection(args, names)
        if expression:
            command += ["-k", expression]
        started = time.perf_counter()
        status = subprocess.call(command, cwd=ROOT, env=scenario_env(args, names, pg_admin, results))
        seconds = time.perf_counter() - started
        found = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    return status, found, seconds


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    status, found, seconds = run(args)
    print(f"\nfault scenarios: pytest exit status {status}, {len(found)} reported, {seconds:.0f} s")
    for case in found:
        numbers = ", ".join(f"{k} {v}" for k, v in case.items() if k not in ("scenario", "db"))
        print(f"  [{case['db']}] {case['scenario']}: {numbers}")
    full = (args.rows, args.chunk_size, args.covers) == (ROWS, CHUNK_SIZE, COVERS) and not args.select
    if status == 0 and (full or args.write):
        out = args.out or RESULTS
        out.mkdir(parents=True, exist_ok=True)
        for db_name in sorted({case["db"] for case in found}):
            cases = [{"name": case["scenario"], **{k: v for k, v in case.items() if k not in ("scenario", "db")}}
                     for case in found if case["db"] == db_name]
            path = out / f"faults-{db_name}.json"
            path.write_text(json.dumps(report("faults", db_name, args.rows, cases), indent=2) + "\n")
            print(f"wrote {path}")
    elif status == 0:
        print("reduced or partial run (--rows, --chunk-size, --covers or -k): results not written (add --write)")
    return status


if __name__ == "__main__":
    sys.exit(main())
