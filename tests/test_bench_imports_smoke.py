"""The import benchmark at ~1,000 CSV rows and the real 268-item Delicious export: the same code (generated CSV,
child processes through the import service, results JSON), correctness only — no timings are asserted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from stdnum import isbn

from bench import imports as bench_imports
from collectz.importers import delicious
from tests.conftest import BACKENDS, needs_shared, pg_database_url

ROWS = 1000
CASE_KEYS = {"name", "rows", "seconds", "rows_per_s", "peak_rss_mib", "import_peak_rss_mib", "created", "updated",
             "skipped", "failed", "status", "meets_target"}


def _fresh(backend: str, tmp_path: Path):
    """An empty database each call, as the bench's own (the CSV cases run on a fresh one each run)."""
    if backend == "sqlite":
        return bench_imports.fresh_sqlite(tmp_path)
    return lambda label: pg_database_url("bench_imports_" + re.sub(r"\W", "_", label))


def test_generated_csv_is_deterministic_and_valid(tmp_path: Path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    counts = bench_imports.generate_csv(first, ROWS)
    bench_imports.generate_csv(second, ROWS)
    assert first.read_bytes() == second.read_bytes()
    assert counts == {"movie": 450, "book": 200, "game": 150, "tv_series": 100, "audio": 100}
    lines = first.read_text().splitlines()
    assert lines[0].split(",")[:4] == ["Type", "Title", "Year", "ISBN"]
    assert len(lines) == ROWS + 1


def test_generated_delicious_export_repeats_with_fresh_ids(tmp_path: Path):
    source = needs_shared("fixtures", "delicious", "library-plist.xml")
    path = tmp_path / "big.xml"
    info = bench_imports.generate_delicious(path, source, target_bytes=int(2.5 * source.stat().st_size))
    assert info["copies"] == 3 and info["entries"] == 3 * 268
    records = list(delicious.iter_records(path))
    assert len(records) == 3 * 268
    assert len({r["source_id"] for r in records}) == 3 * 268  # every copy has fresh uuids
    copies = records[268:]
    assert all(r["title"].endswith((" (copy 1)", " (copy 2)")) for r in copies)
    codes = [r["isbn"] for r in copies if r.get("isbn")]
    assert codes and all(isbn.is_valid(code) for code in codes)
    assert len(set(codes)) == len(codes)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_import_bench_runs_and_writes_results(backend: str, tmp_path: Path):
    source = needs_shared("fixtures", "delicious", "library-plist.xml")
    assert source == bench_imports.DELICIOUS_EXPORT
    csv_path = tmp_path / "bench-1k.csv"
    bench_imports.generate_csv(csv_path, ROWS)
    results = tmp_path / "results"
    bench_imports.run_db(backend, _fresh(backend, tmp_path), tmp_path / "work", csv_path, ROWS, None, results, runs=2)

    csv_report = json.loads((results / f"import-csv-{backend}.json").read_text())
    del_report = json.loads((results / f"import-delicious-{backend}.json").read_text())
    for report, name in ((csv_report, "import-csv"), (del_report, "import-delicious")):
        assert {"benchmark", "db", "items", "git_sha", "when", "machine", "cases"} <= report.keys()
        assert report["benchmark"] == name and report["db"] == backend
        assert {"cpus", "python", "python_calibration_s"} <= report["machine"].keys()
        assert report["machine"]["python_calibration_s"] > 0
        for case in report["cases"]:
            assert CASE_KEYS <= case.keys(), case
            assert case["peak_rss_mib"] > 0 and case["seconds"] > 0 and case["python_calibration_s"] > 0
            assert case["cpu_seconds"] > 0  # where the time went: the importing process ...
            if backend == "postgresql":  # ... and the database server, on the same machine
                assert case["db_server_cpu_seconds"] > 0, case
            else:
                assert case["db_server_cpu_seconds"] is None
    first, again = csv_report["cases"]
    assert csv_report["items"] == ROWS
    assert (first["name"], again["name"]) == ("csv_1k", "csv_1k_reimport")
    assert (first["status"], first["rows"], first["created"], first["failed"]) == ("succeeded", ROWS, ROWS, 0)
    assert (again["status"], again["rows"], again["created"], again["failed"]) == ("succeeded", ROWS, 0, 0)
    assert again["skipped"] + again["updated"] == ROWS
    for case in (first, again):  # two runs, each on a fresh database: the slower first import's run is reported
        assert case["runs"] == 2 and len(case["runs_seconds"]) == 2 and case["seconds"] in case["runs_seconds"]
    assert first["seconds"] == max(first["runs_seconds"])
    # the re-import of that same run (two first imports may take the same milliseconds)
    assert (first["seconds"], again["seconds"]) in zip(first["runs_seconds"], again["runs_seconds"], strict=True)
    [small] = del_report["cases"]
    assert small["name"] == "delicious_268" and small["status"] == "succeeded"
    assert small["rows"] == 268 and small["failed"] == 0
    assert small["created"] + small["updated"] + small["skipped"] == 268
    assert small["created"] > 250
