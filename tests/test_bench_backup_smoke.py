"""The backup benchmark at 300 items: the same code (seeded library with covers, backup and restore in child
processes, verification by content hash, results JSON), correctness only — no timings are asserted. SQLite is
restored into PostgreSQL (into SQLite again when there is no PostgreSQL); both directions run the same code, and
test_backup_roundtrip.py covers PostgreSQL → SQLite."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import backup as bench_backup
from bench.library import sqlite_url
from tests.conftest import PG_URL, pg_database_url

ITEMS = 300
COVERS = 5
CASE_KEYS = {"name", "rows", "seconds", "rows_per_s", "peak_rss_mib", "work_peak_rss_mib", "startup_rss_mib",
             "process_seconds", "tables", "objects", "object_mib"}


@pytest.mark.slow
def test_backup_bench_runs_verifies_and_writes_results(tmp_path: Path):
    source, target = "sqlite", "postgresql" if PG_URL else "sqlite"

    def fresh(kind: str, role: str) -> str:
        if kind == "postgresql":
            return pg_database_url(f"bench_backup_{role}")
        (tmp_path / f"sqlite-{role}").mkdir(exist_ok=True)
        return sqlite_url(tmp_path / f"sqlite-{role}")

    results = tmp_path / "results"
    bench_backup.run_db(source, target, fresh, tmp_path / "work", ITEMS, COVERS, results)

    report = json.loads((results / f"backup-{source}.json").read_text())
    assert {"benchmark", "db", "items", "git_sha", "when", "machine", "cases"} <= report.keys()
    assert (report["benchmark"], report["db"], report["items"]) == ("backup", source, ITEMS)
    assert {"cpus", "python"} <= report["machine"].keys()
    made, restored = report["cases"]
    for case in (made, restored):
        assert CASE_KEYS <= case.keys(), case
        assert case["seconds"] > 0 and case["peak_rss_mib"] > 0 and case["objects"] == COVERS
    assert made["name"] == "backup_300" and made["archive_mib"] > 0 and made["items"] == ITEMS
    assert restored["name"] == f"restore_300_into_{target}" and restored["target"] == target
    assert restored["rows"] == made["rows"] > ITEMS
    assert restored["verified"] is True and restored["tables_match"] and restored["objects_match"]
