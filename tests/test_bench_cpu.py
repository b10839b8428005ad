"""bench/cpu.py reads CPU time from /proc: a process tree's, including the children it has reaped."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bench import cpu

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc (Linux)")

BURN = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\n"


def test_a_tree_counts_its_live_and_its_reaped_children() -> None:
    # A parent runs one child to its end (reaped: its time is in the parent's cutime), then starts another that
    # burns and stays alive until the parent's stdin closes.
    live = BURN + "print('burnt', flush=True)\nimport sys\nsys.stdin.read()\n"
    script = (f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {BURN!r}])\n"
              f"child = subprocess.Popen([sys.executable, '-c', {live!r}], stdin=subprocess.PIPE)\n"
              "sys.stdin.read()\nchild.stdin.close()\nchild.wait()\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        meter = cpu.Meter(tree=parent.pid).start()  # the parent's own start-up only, so far
        assert parent.stdout is not None and parent.stdout.readline().strip() == "burnt"  # the live child's 0.4 s
        used = meter.stop()
    finally:
        parent.communicate("")
    assert used["tree"] is not None and used["tree"] >= 0.7  # 2 × 0.4 s of children, minus clock ticks
    assert used["self"] < 0.3  # this process only waited


def test_unknown_processes_read_as_none() -> None:
    assert cpu.tree_seconds(2**22 + 12345) is None
    assert cpu.Meter(gone=None).start().stop()["gone"] is None


def test_the_postgresql_server_is_found_every_time() -> None:
    # Its main process is the parent of the backend that answers: read while the connection is open (a backend
    # read after closing had sometimes exited, and the server's CPU went unmeasured).
    from tests.conftest import PG_URL

    if not PG_URL:
        pytest.skip("needs TEST_DATABASE_URL (a PostgreSQL server on this machine)")
    pids = {cpu.postgres_pid(PG_URL) for _ in range(30)}
    assert len(pids) == 1 and None not in pids
    (pid,) = pids
    assert b"postgres" in open(f"/proc/{pid}/cmdline", "rb").read()
    assert cpu.postgres_pid("sqlite:///x.db") is None


def test_the_calibration_is_the_time_of_its_fixed_work_taken_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu.calibration_seconds.cache_clear()
    monkeypatch.setattr(cpu, "_CALIBRATION_STEPS", 20_000)
    small = cpu.calibration_seconds()
    assert 0 < small == cpu.calibration_seconds()  # read once
    cpu.calibration_seconds.cache_clear()
    monkeypatch.setattr(cpu, "_CALIBRATION_STEPS", 400_000)
    assert cpu.calibration_seconds() > small * 5  # twenty times the work
    cpu.calibration_seconds.cache_clear()
