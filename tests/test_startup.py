"""Serving processes start safely: concurrent migrations, clear refusals with exit code 3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rq import Queue
from sqlalchemy import create_engine, text

from collectz.config import normalise_database_url
from collectz.schema import current_revisions, script_directory
from tests.conftest import PROJECT_ROOT, Backend, pg_database_url
from tests.imports_procs import make_stack, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def database_url(backend: Backend, tmp_path: Path) -> str:
    if backend.name == "sqlite":
        return "sqlite:///" + str(tmp_path / "startup.db")
    return pg_database_url("startup")


def start_wsgi(database_url: str, instance: Path, code: str = "import wsgi", **env: str) -> subprocess.Popen:
    full_env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "COLLECTZ_ENV")}
    full_env.update(DATABASE_URL=database_url, INSTANCE_PATH=str(instance), RUN_MIGRATIONS_ON_START="true",
                    LOG_LEVEL="WARNING", **env)
    return subprocess.Popen([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_processes_starting_together_migrate_once(database_url: str, tmp_path: Path):
    procs = [start_wsgi(database_url, tmp_path) for _ in range(3)]
    results = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0, 0], [err for _out, err in results]
    engine = create_engine(normalise_database_url(database_url))
    assert current_revisions(engine) == (script_directory().get_current_head(),)
    engine.dispose()


def test_schema_newer_than_code_refuses_with_exit_3(database_url: str, tmp_path: Path):
    first = start_wsgi(database_url, tmp_path)
    assert first.wait(timeout=60) == 0
    engine = create_engine(normalise_database_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'abcdef999'"))
    engine.dispose()

    proc = start_wsgi(database_url, tmp_path)
    _out, err = proc.communicate(timeout=60)

    assert proc.returncode == 3
    assert "collectZ refuses to start" in err and "abcdef999" in err and "newer" in err
    assert "Traceback" not in err


def test_unreachable_database_refuses_with_exit_3(tmp_path: Path):
    proc = start_wsgi("postgresql://postgres@127.0.0.1:1/nowhere", tmp_path)
    _out, err = proc.communicate(timeout=60)

    assert proc.returncode == 3
    assert "collectZ refuses to start" in err and "could not apply migrations" in err
    assert "Traceback" not in err


# What a process has made by the time it serves or works (modules, the app, SQLAlchemy's metadata): far more than this.
START_UP_OBJECTS = 20_000


def test_a_serving_process_leaves_its_start_up_objects_out_of_garbage_collection(database_url: str, tmp_path: Path):
    # Every full collection walked them all again: a quarter of a large import's time
    # (collectz.startup.freeze_start_up_objects). The CLI's imports (`flask --app wsgi import`) start the same way.
    proc = start_wsgi(database_url, tmp_path, code="import gc, wsgi; print(gc.get_freeze_count())")
    out, err = proc.communicate(timeout=60)

    assert proc.returncode == 0, err
    assert int(out.split()[-1]) > START_UP_OBJECTS


def test_a_worker_leaves_its_start_up_objects_out_of_garbage_collection(backend: Backend, tmp_path: Path):
    if backend.name != "sqlite":
        pytest.skip("a worker starts the same way on either database")
    with make_stack(backend, tmp_path) as stack:
        stack.start_worker()
        stack.wait_ready(1)
        job = Queue("maintenance", connection=stack.redis).enqueue("gc.get_freeze_count")
        wait_for("the worker to run a job", lambda: job.get_status(refresh=True) in ("finished", "failed"), 30, stack)

        assert job.get_status() == "finished", job.latest_result()
        assert job.return_value() > START_UP_OBJECTS
