"""CPU time of the processes a benchmark drives, read from /proc (Linux): where a speed target's time goes.

A target in rows or requests per second is a budget of CPU seconds on this machine's cores. These readings say how
the measured run spent them: the app's own process(es), the PostgreSQL server (every backend and helper process,
including the ones that exited during the run), and the load generator. Each function returns None where /proc
cannot tell (another OS, a database on another host).
"""

from __future__ import annotations

import functools
import os
import resource
import time
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[1] == str(pid):
                found.append(int(entry.name))
    return found


def tree_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of a process, the children it has reaped, and its live children (a gunicorn
    master and its workers; a PostgreSQL postmaster and its backends)."""
    fields = _stat(pid)
    if fields is None:
        return None
    ticks = sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    for child in _children(pid):
        child_fields = _stat(child)
        if child_fields is not None:
            ticks += sum(int(v) for v in child_fields[11:15])
    return ticks / _TICK


def self_seconds() -> float:
    """CPU seconds (user + system) of this process so far, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def postgres_pid(database_url: str) -> int | None:
    """The PostgreSQL server's main process, when the URL names one on this machine and /proc shows it (else None:
    SQLite, another host)."""
    from sqlalchemy import create_engine, text

    from collectz.config import normalise_database_url

    if not database_url.startswith("postgresql"):
        return None
    engine = create_engine(normalise_database_url(database_url))
    try:
        with engine.connect() as conn:
            # Read while connected: the backend process exits once the connection closes.
            fields = _stat(int(conn.scalar(text("SELECT pg_backend_pid()"))))
    finally:
        engine.dispose()
    return int(fields[1]) if fields is not None else None


class Meter:
    """CPU seconds of a set of processes between start() and stop(): `{"name": seconds}`, None where unknown."""

    def __init__(self, **pids: int | None) -> None:
        self.pids = pids
        self.before: dict[str, float | None] = {}
        self.own_before = 0.0

    def start(self) -> Meter:
        self.before = {name: tree_seconds(pid) if pid else None for name, pid in self.pids.items()}
        self.own_before = self_seconds()
        return self

    def stop(self) -> dict[str, float | None]:
        result: dict[str, float | None] = {}
        for name, pid in self.pids.items():
            after = tree_seconds(pid) if pid else None
            start = self.before.get(name)
            result[name] = round(after - start, 2) if after is not None and start is not None else None
        result["self"] = round(self_seconds() - self.own_before, 2)
        return result


# The fixed work of calibration_seconds: dictionary updates and string formatting, as an import's conversions do.
_CALIBRATION_STEPS = 400_000


@functools.cache
def calibration_seconds() -> float:
    """Seconds this machine takes for a fixed piece of pure-Python work (the best of three runs), read once per
    process: every result file records it beside its figures.

    Machines of one size differ (the same commit's import ran 1.4 times as fast on one as on the next), and one
    machine's speed changes from minute to minute (this reading has varied from 0.11 to 0.22 s within a few seconds
    on one): where a case takes long, `calibrate` read just before and after it says more."""
    return calibrate()


def calibrate() -> float:
    """calibration_seconds' work, done now."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        counts: dict[str, int] = {}
        for n in range(_CALIBRATION_STEPS):
            key = f"k{n % 997}"
            counts[key] = counts.get(key, 0) + len(key)
        best = min(best, time.perf_counter() - started)
    return round(best, 4)
