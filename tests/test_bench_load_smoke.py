"""The load benchmark at reduced size (the full run is `make bench`): gunicorn with 3 workers and the mixed workload
of list/filter fragments, searches, item pages and CSRF-protected writes, on each database. Every request answers
200, every class of the mix is exercised, and the workers' memory does not run away."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bench import load
from collectz.config import normalise_database_url
from tests.conftest import BACKENDS, pg_database_url

ITEMS = 1500


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_load_answers_every_request(backend: str, tmp_path: Path) -> None:
    url = pg_database_url("load_smoke") if backend == "postgresql" else f"sqlite:///{tmp_path / 'load.db'}"
    args = load.options(["--items", str(ITEMS), "--seconds", "4", "--warmup", "2", "--connections", "6",
                         "--out", str(tmp_path)])
    load.run_db(backend, url, args, tmp_path)
    report = json.loads((tmp_path / f"load-{backend}.json").read_text())
    assert report["benchmark"] == "load" and report["items"] == ITEMS and report["db"] == backend
    row = report["cases"][0]
    assert row["errors"] == 0, row.get("error_samples")
    assert row["requests"] > 50
    for kind in ("list", "search", "detail", "write"):
        assert row["by_class"][kind]["n"] > 0, kind
    assert row["workers_restarted"] == 0
    # A short run after a warm-up: a leak of the size that would matter shows up even here.
    assert row["worker_rss_growth"] is not None and row["worker_rss_growth"] < 0.25
    # Read during the run as well: ten samples, a tenth of the run apart (the last may fall after its end).
    assert 8 <= len(row["worker_rss_mib_samples"]) <= 10
    assert all(0.5 * row["worker_rss_mib_before"] < mib < 2 * row["worker_rss_mib_after"]
               for mib in row["worker_rss_mib_samples"])
    # Where the CPU went: gunicorn, the load generator and (PostgreSQL) the database server all did work.
    used = row["cpu_seconds"]
    assert used["gunicorn"] > 0 and used["load_generator"] > 0
    assert (used["db_server"] > 0) if backend == "postgresql" else used["db_server"] is None
    assert row["cpu_ms_per_request"] > 0 and row["cores_for_target"] > 0
    if backend == "postgresql":  # the seed's VACUUM marked every page all-visible (counts read the index only)
        engine = create_engine(normalise_database_url(url))
        with engine.connect() as conn:
            pages, visible = conn.execute(text(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = 'media'")).one()
        engine.dispose()
        assert pages > 0 and visible == pages
