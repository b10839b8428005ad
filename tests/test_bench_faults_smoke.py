"""The fault benchmark's plumbing at a tiny size (its full run is `make bench`): the scenario runs under the size the
bench sets, and what it reports becomes a result file in the format of ../shared/BENCH.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import faults
from tests.conftest import REDIS_URL
from tests.imports_procs import require_redis

pytestmark = pytest.mark.slow


def test_a_scenario_runs_at_the_size_asked_and_its_numbers_are_written(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    require_redis()
    monkeypatch.setenv("BENCH_REDIS_URL", REDIS_URL)
    status = faults.main(["--db", "sqlite", "--rows", "450", "--chunk-size", "50", "--covers", "4",
                          "-k", "submitted_twice", "--write", "--out", str(tmp_path)])
    assert status == 0
    result = json.loads((tmp_path / "faults-sqlite.json").read_text())
    assert result["benchmark"] == "faults" and result["db"] == "sqlite" and result["items"] == 450
    [case] = result["cases"]
    # The scenario's own size follows the bench's: a tenth of the rows, in chunks of at most the chunk size.
    assert case["name"] == "upload_submitted_twice" and case["rows"] == 45
    assert case["items"] == 45 and case["lost"] == 0 and case["duplicated"] == 0
    assert 1 <= case["jobs"] <= 2 and case["seconds"] > 0


def test_a_failing_scenario_fails_the_bench_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    require_redis()
    monkeypatch.setenv("BENCH_REDIS_URL", REDIS_URL)
    # Zero rows: the scenario's file has no entries, its import fails, and the scenario's assertions with it.
    status = faults.main(["--db", "sqlite", "--rows", "5", "--chunk-size", "50", "-k", "submitted_twice", "--write",
                          "--out", str(tmp_path)])
    assert status != 0
    assert not (tmp_path / "faults-sqlite.json").exists()
