"""The load benchmark: a mixed workload against gunicorn (3 workers) over loopback, for a bounded time.

Seeds the standard data set (bench/seed.py, as the library benchmark does) into a fresh database, starts gunicorn
(3 gthread workers × 4 threads, like a small production deployment), and drives it from `--connections`
keep-alive clients with a fixed mix: 60 % list and filter fragments, 20 % searches, 15 % item pages, 5 % writes (a
member's own rating and status, POSTed with the CSRF token of the client's session, as htmx sends them). Every
answer must be a 200; anything else, a timeout or a dropped connection counts as an error. The clients all act as
one member, so the app's rate limits (which would rightly refuse one member at this rate) are switched off.

Memory: after a warm-up of the same mix, the resident memory of the gunicorn workers is read (from /proc), and
again at the end; `worker_rss_growth` is the relative growth of their sum (the issue's limit: 10 %).
`worker_rss_mib_samples` is that sum read ten times during the run, to tell bounded caches filling up (a plateau)
from a leak (a steady climb).

CPU: over the measured run, the CPU seconds of gunicorn (master and workers), the PostgreSQL server and this load
generator, per request, and the cores the target's rate would take at that cost (bench/cpu.py).

Writes bench/results/load-<db>.json (format: ../shared/BENCH.md; `--out DIR` elsewhere) and prints a line per
class. Defaults are the full size (100,000 items, 300 s); `make test` runs a reduced size
(tests/test_bench_load_smoke.py). Targets are reported, never enforced here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import cpu
from bench.library import (
    OWNER_EMAIL,
    add_bench_users,
    build_app,
    case_info,
    cases,
    databases,
    percentile,
    postgres_url,
    report,
    sqlite_url,
    start_server,
    stop_server,
)
from bench.seed import ITEMS, analyze, seed

RESULTS = Path(__file__).resolve().parent / "results"
MIX = (("list", 60), ("search", 20), ("detail", 15), ("write", 5))
TARGETS = {"req_per_s": 300.0, "errors": 0, "worker_rss_growth": 0.10}
HX = {"HX-Request": "true"}
WORKERS = 3
THREADS = 4


@dataclass
class Plan:
    """What the clients request: URLs per class, item ids, the session cookie."""

    lists: list[str]
    searches: list[str]
    item_ids: list[int]
    token: str


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind, _ in MIX})
    errors: dict[str, int] = field(default_factory=lambda: {kind: 0 for kind, _ in MIX})
    samples: list[str] = field(default_factory=list)  # a few error descriptions


def prepare(app: Any, items: int) -> Plan:
    """Migrate, add the member the clients act as, seed, analyze; the URLs of the mix."""
    from sqlalchemy import select

    from collectz.extensions import db
    from collectz.models import Media, User
    from collectz.schema import upgrade
    from collectz.services.sessions import create_session

    upgrade(app)
    with app.app_context():
        users = add_bench_users()
        owner = db.session.get(User, users[OWNER_EMAIL])
        db.session.commit()  # no transaction of ours stays open across the seed and VACUUM (see seed.analyze)
        with db.engine.begin() as conn:
            summary = seed(conn, items, users={OWNER_EMAIL: users[OWNER_EMAIL]})  # the clients act as the owner
        analyze(db.engine)
        info = case_info(summary)
        with app.test_request_context():
            token, _row = create_session(owner, remember=True, ip="127.0.0.1", user_agent="bench-load")
        db.session.commit()
        ids = list(db.session.scalars(select(Media.id)))
        db.session.remove()
    every = cases(info)
    lists = [c.path for c in every if c.kind in ("list", "rows") and c.fragment]
    searches = [c.path for c in every if c.kind == "search"]
    searches += ["/library/?" + urlencode({"q": word}) for word in ("river", "dark", "love", "star", "blue")]
    return Plan(lists=lists, searches=searches, item_ids=ids, token=token)


def worker_rss_kib(master_pid: int) -> dict[int, int]:
    """Resident memory (KiB) of each gunicorn worker: the master's children, read from /proc."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("PPid", "").strip() == str(master_pid) and "VmRSS" in fields:
            found[int(entry.name)] = int(fields["VmRSS"].split()[0])
    return found


class RssSampler:
    """Reads the workers' summed resident memory every `every` seconds while the run goes on (MiB, in order)."""

    def __init__(self, master_pid: int, every: float) -> None:
        self.master_pid = master_pid
        self.every = every
        self.mib: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.mib.append(round(sum(worker_rss_kib(self.master_pid).values()) / 1024, 1))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Client:
    """One keep-alive connection acting as the bench member; its own session cookie jar and CSRF token."""

    def __init__(self, port: int, plan: Plan, seed_value: int) -> None:
        self.port = port
        self.plan = plan
        self.rng = random.Random(seed_value)
        self.cookies = {"collectz_session": plan.token}
        self.conn = HTTPConnection("127.0.0.1", port, timeout=30)
        self.csrf = ""

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()), **HX, **(extra or {})}

    def _send(self, method: str, path: str, body: str | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        try:
            self.conn.request(method, path, body=body, headers=self._headers(headers))
            resp = self.conn.getresponse()
            data = resp.read()
        except (OSError, HTTPException):
            self.conn.close()
            self.conn = HTTPConnection("127.0.0.1", self.port, timeout=30)
            raise
        for header, value in resp.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name.strip()] = rest.split(";", 1)[0]
        return resp.status, data

    def login_csrf(self) -> None:
        status, data = self._send("GET", "/auth/csrf")
        if status != 200:
            raise SystemExit(f"could not get a CSRF token: HTTP {status}")
        self.csrf = json.loads(data)["token"]

    def pick(self) -> str:
        roll = self.rng.randrange(100)
        for kind, share in MIX:
            if roll < share:
                return kind
            roll -= share
        return MIX[-1][0]

    def one(self, kind: str) -> tuple[int, bytes]:
        if kind == "list":
            return self._send("GET", self.rng.choice(self.plan.lists))
        if kind == "search":
            return self._send("GET", self.rng.choice(self.plan.searches))
        media_id = self.rng.choice(self.plan.item_ids)
        if kind == "detail":
            return self._send("GET", f"/library/media/{media_id}")
        body = urlencode({"rating": self.rng.randint(0, 10), "status": "", "csrf_token": self.csrf})
        return self._send("POST", f"/library/media/{media_id}/state", body,
                          {"Content-Type": "application/x-www-form-urlencoded", "X-CSRFToken": self.csrf})


def drive(port: int, plan: Plan, connections: int, seconds: float, tally: Tally | None,
          seed_value: int = 7) -> float:
    """Run `connections` clients for `seconds`; returns the elapsed time (tally None: a warm-up)."""
    stop = threading.Event()
    clients = [Client(port, plan, seed_value * 1000 + i) for i in range(connections)]
    for client in clients:
        client.login_csrf()
    lock = threading.Lock()

    def run(client: Client) -> None:
        while not stop.is_set():
            kind = client.pick()
            started = time.perf_counter()
            try:
                status, data = client.one(kind)
                problem = None if status == 200 else f"{kind}: HTTP {status} {data[:120]!r}"
            except (OSError, HTTPException) as exc:
                problem = f"{kind}: {type(exc).__name__}: {exc}"
            elapsed = (time.perf_counter() - started) * 1000
            if tally is None:
                continue
            with lock:
                tally.latencies[kind].append(elapsed)
                if problem:
                    tally.errors[kind] += 1
                    if len(tally.samples) < 5:
                        tally.samples.append(problem)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.conn.close()
    return time.perf_counter() - began


def summarise(tally: Tally, elapsed: float) -> dict[str, Any]:
    every = [v for values in tally.latencies.values() for v in values]
    row: dict[str, Any] = {
        "name": "mixed_load", "seconds": round(elapsed, 1), "requests": len(every),
        "req_per_s": round(len(every) / max(elapsed, 0.001), 1), "errors": sum(tally.errors.values()),
        "p50_ms": round(statistics.median(every), 2) if every else None,
        "p95_ms": round(percentile(every, 95), 2) if every else None,
        "p99_ms": round(percentile(every, 99), 2) if every else None,
        "mix": {kind: share for kind, share in MIX},
        "by_class": {kind: {"n": len(values), "errors": tally.errors[kind],
                            "p50_ms": round(statistics.median(values), 2) if values else None,
                            "p95_ms": round(percentile(values, 95), 2) if values else None}
                     for kind, values in tally.latencies.items()},
    }
    if tally.samples:
        row["error_samples"] = tally.samples
    return row


def run_db(db_name: str, database_url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from collectz.extensions import db

    instance = work / f"instance-load-{db_name}"
    instance.mkdir(parents=True, exist_ok=True)
    app = build_app(database_url, instance)
    print(f"[{db_name}] seeding {args.items:,} items …", flush=True)
    plan = prepare(app, args.items)
    with app.app_context():
        db.engine.dispose()
    server, port = start_server(database_url, instance, WORKERS, THREADS)
    try:
        drive(port, plan, args.connections, args.warmup, None)
        before = worker_rss_kib(server.pid)
        tally = Tally()
        print(f"[{db_name}] {args.connections} connections for {args.seconds:g} s …", flush=True)
        meter = cpu.Meter(app=server.pid, db_server=cpu.postgres_pid(database_url)).start()
        with RssSampler(server.pid, every=args.seconds / 10) as samples:
            elapsed = drive(port, plan, args.connections, args.seconds, tally)
        used = meter.stop()
        after = worker_rss_kib(server.pid)
    finally:
        stop_server(server)
    row = summarise(tally, elapsed)
    same = sorted(set(before) & set(after))
    base = sum(before[p] for p in same)
    row["workers"] = WORKERS
    row["threads_per_worker"] = THREADS
    row["connections"] = args.connections
    row["worker_rss_mib_before"] = round(base / 1024, 1)
    row["worker_rss_mib_after"] = round(sum(after[p] for p in same) / 1024, 1)
    row["worker_rss_growth"] = round(sum(after[p] for p in same) / base - 1, 3) if base else None
    row["worker_rss_mib_samples"] = samples.mib  # during the run, a tenth of it apart: a plateau, or a climb
    row["workers_restarted"] = len(set(before) ^ set(after))
    row.update(cpu_budget(used, row["requests"], elapsed))
    row["target_req_per_s"] = TARGETS["req_per_s"]
    row["meets_target"] = (row["req_per_s"] >= TARGETS["req_per_s"] and row["errors"] == 0
                           and row["worker_rss_growth"] is not None
                           and row["worker_rss_growth"] <= TARGETS["worker_rss_growth"])
    document = report("load", db_name, args.items, [row])
    print(f"[{db_name}] {row['req_per_s']} req/s, {row['requests']} requests, errors {row['errors']}, "
          f"p95 {row['p95_ms']} ms, worker RSS {row['worker_rss_mib_before']} → {row['worker_rss_mib_after']} MiB "
          f"(growth {row['worker_rss_growth']})", flush=True)
    print(f"[{db_name}] CPU seconds {row['cpu_seconds']}: {row['cpu_cores_busy']} cores busy, "
          f"{row['cpu_ms_per_request']} ms per request; {TARGETS['req_per_s']:g} req/s would take "
          f"{row['cores_for_target']} cores", flush=True)
    for kind, stats in row["by_class"].items():
        print(f"    {kind:7s} n {stats['n']:6d}  p50 {stats['p50_ms']}  p95 {stats['p95_ms']}  "
              f"errors {stats['errors']}")
    out = Path(args.out) if args.out else RESULTS
    if args.out or (args.items == ITEMS and args.seconds >= 300):
        out.mkdir(parents=True, exist_ok=True)
        (out / f"load-{db_name}.json").write_text(json.dumps(document, indent=2) + "\n")
    return document


def cpu_budget(used: dict[str, float | None], requests: int, elapsed: float) -> dict[str, Any]:
    """Where the run's CPU went (seconds: gunicorn, the database server, this load generator), per request, and
    how many cores the target's rate would take at that cost."""
    known = [v for v in (used.get("app"), used.get("db_server"), used.get("self")) if v is not None]
    per_request = sum(known) / requests if requests else None
    return {
        "cpu_seconds": {"gunicorn": used.get("app"), "db_server": used.get("db_server"),
                        "load_generator": used.get("self")},
        "cpu_cores_busy": round(sum(known) / elapsed, 2) if elapsed else None,
        "cpu_ms_per_request": round(per_request * 1000, 2) if per_request is not None else None,
        "cores_for_target": round(per_request * TARGETS["req_per_s"], 1) if per_request is not None else None,
    }


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench load", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--warmup", type=float, default=20.0, help="seconds of the same mix before measuring")
    parser.add_argument("--connections", type=int, default=12)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="postgresql")
    parser.add_argument("--out", help="write the JSON here instead of bench/results/ (always written)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    names, pg_admin = databases(args.db)
    work = Path(tempfile.mkdtemp(prefix="collectz-load-"))
    urls: dict[str, Callable[[], str]] = {
        "sqlite": lambda: sqlite_url(work),
        "postgresql": lambda: postgres_url(pg_admin, os.environ.get("BENCH_PG_LOAD_DATABASE", "collectz_bench_load"))}
    runners = [(name, urls[name]) for name in names]
    try:
        for db_name, url in runners:
            run_db(db_name, url(), args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
