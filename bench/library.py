"""The library benchmark: browse, search, filters, sorts, keyset pages and the detail view at 100,000 items.

Seeds the standard data set (bench/seed.py) into a fresh SQLite file and, when BENCH_DATABASE_URL is set, into a
fresh PostgreSQL database on that server (BENCH_PG_DATABASE, default `collectz_bench`; the database named in the
URL itself is never touched). Then, per case, times requests through the Flask test client (server-side
milliseconds after a warm-up) and counts their SQL statements; finally a throughput run: 8 concurrent
keep-alive connections against gunicorn on 127.0.0.1 for a bounded time. Writes
bench/results/library-<db>.json (format: ../shared/BENCH.md) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import create_engine, event, select, text
from stdnum import isbn

from bench import cpu
from bench.seed import ITEMS, analyze, seed

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PER_PAGE = 50
KEYSET_GROUP = ("first_page", "deep_page_1000", "last_page", "load_more_rows")  # timed taking turns
HX = {"HX-Request": "true"}
# Targets from the issue (p95 ms at 100,000 items), shown beside the results.
TARGETS = {"list": {"postgresql": 25.0, "sqlite": 35.0}, "search": 50.0, "detail": 20.0}


@dataclass
class Case:
    name: str
    path: str
    kind: str = "list"  # list | rows (load more) | search | detail | page
    fragment: bool = True

    @property
    def headers(self) -> dict[str, str]:
        return HX if self.fragment else {}


def git_sha() -> str:
    """The commit measured; "-dirty" when the working tree had uncommitted changes (other than results: a run of
    both databases writes the first one's before it measures the second)."""
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)bench/results"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def report(benchmark: str, db_name: str, items: int, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """A result file's content (../shared/BENCH.md): the suite, the database, the data set's size, the commit
    measured, when, on what machine, and the cases."""
    return {
        "benchmark": benchmark,
        "db": db_name,
        "items": items,
        "git_sha": git_sha(),
        "when": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                    "python_calibration_s": cpu.calibration_seconds()},
        "cases": cases,
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# --- databases --------------------------------------------------------------------------------------------

def sqlite_url(work: Path) -> str:
    path = work / "library-bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return "sqlite:///" + str(path)


def postgres_url(admin_url: str, name: str) -> str:
    """A fresh database `name` on the server of admin_url (which must name another database)."""
    from collectz.config import normalise_database_url

    admin = normalise_database_url(admin_url)
    base, _, current = admin.rpartition("/")
    if current.split("?")[0] == name:
        sys.exit(f"BENCH_DATABASE_URL names {name!r} itself: point it at another database on the same server")
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{base}/{name}"


def build_app(database_url: str, instance: Path) -> Any:
    from collectz import create_app
    from collectz.config import Settings

    settings = Settings.from_env({"COLLECTZ_ENV": "testing"})
    settings.DATABASE_URL = database_url
    settings.INSTANCE_PATH = str(instance)
    settings.LOG_LEVEL = "WARNING"
    settings.REDIS_URL = ""
    settings.RATELIMIT_ENABLED = False  # one member asking hundreds of pages a minute: what a bench measures
    return create_app(settings=settings)


OWNER_EMAIL = "bench@example.org"
MEMBER_EMAIL = "member@example.org"


def add_bench_users() -> dict[str, int]:
    """The benchmarks' accounts, committed (in an app context): an admin who owns the data and a member;
    email → id, as bench.seed takes them."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.security.passwords import hash_password

    owner = User(email=OWNER_EMAIL, name="Bench", role="admin", password_hash=hash_password("x" * 12))
    member = User(email=MEMBER_EMAIL, name="Member", role="user", password_hash=hash_password("x" * 12))
    db.session.add_all([owner, member])
    db.session.commit()  # no snapshot may stay open: VACUUM must see every seeded row as visible to all
    return {OWNER_EMAIL: owner.id, MEMBER_EMAIL: member.id}


def prepare(app: Any, items: int) -> dict[str, Any]:
    """Migrate, add the bench member, seed, analyze; returns what the cases need to know."""
    from collectz.extensions import db
    from collectz.models import User
    from collectz.schema import upgrade
    from collectz.services.sessions import create_session

    upgrade(app)
    with app.app_context():
        users = add_bench_users()
        owner = db.session.get(User, users[OWNER_EMAIL])
        db.session.commit()  # no transaction of ours stays open across the seed and VACUUM (see seed.analyze)
        started = time.perf_counter()
        with db.engine.begin() as conn:
            summary = seed(conn, items, users=users)
        seconds = time.perf_counter() - started
        analyze(db.engine)
        with app.test_request_context():
            token, _row = create_session(db.session.get(User, owner.id), remember=True, ip="127.0.0.1",
                                         user_agent="bench")
            db.session.commit()

        info = {"token": token, "seed_seconds": round(seconds, 1), **case_info(summary)}
        db.session.remove()
    return info


def case_info(summary: Any) -> dict[str, Any]:
    """What the cases need from a seeded database: popular people, deep cursors, an item to open."""
    from collectz.extensions import db
    from collectz.models import Media, MediaPerson, Person

    def person(role: str, rank: int) -> str:
        rows = db.session.execute(
            select(Person.name).join(MediaPerson, MediaPerson.person_id == Person.id)
            .where(MediaPerson.role == role).group_by(Person.id, Person.name)
            .order_by(db.func.count().desc(), Person.id).limit(rank + 1)).scalars().all()
        return rows[-1]

    def nth_title_cursor(position: int) -> tuple[str, int]:
        position = max(0, min(position, summary.items - 1))
        row = db.session.execute(select(Media.sort_title, Media.id).order_by(Media.sort_title, Media.id)
                                 .offset(position).limit(1)).one()
        return row.sort_title, row.id

    return {
        "summary": summary,
        "director": person("director", 0),
        "cast": person("cast", 5),
        "author": person("author", 3),
        "deep_cursor": nth_title_cursor(999 * PER_PAGE - 1),
        "last_cursor": nth_title_cursor(summary.items - PER_PAGE - 1),
        "detail_id": summary.sample_ids[1],
    }


def cursor_token(key: str, media_id: int) -> str:
    from collectz.services.queries import BrowseParams, encode_cursor

    return encode_cursor(BrowseParams(), key, media_id)


def cases(info: dict[str, Any]) -> list[Case]:
    s = info["summary"]

    def lib(path: str = "/library/", kind: str = "list", **args: Any) -> str:
        return path + ("?" + urlencode(args) if args else "")

    return [
        Case("first_page", lib()),
        Case("deep_page_1000", lib(after=cursor_token(*info["deep_cursor"]))),
        Case("last_page", lib(after=cursor_token(*info["last_cursor"]))),
        Case("load_more_rows", lib("/library/all/more", after=cursor_token(*info["deep_cursor"])), "rows"),
        Case("search_rare", lib(q="Zephyr"), "search"),
        Case("search_common", lib(q="Night"), "search"),
        Case("search_two_words", lib(q="night wolf"), "search"),
        Case("search_short", lib(q="ri"), "search"),
        Case("search_person", lib(q=info["author"].split()[-1]), "search"),
        Case("identifier_isbn10", lib(q=isbn.to_isbn10(s.sample_isbn13)), "search"),
        Case("identifier_upc", lib(q=s.sample_ean13[1:] if s.sample_ean13.startswith("0") else s.sample_ean13),
             "search"),
        Case("filter_type_book", lib("/library/books")),
        Case("filter_movies_1990s", lib("/library/movies", year_from=1990, year_to=1999)),
        Case("filter_format", lib(format="Vinyl")),
        Case("filter_year_range", lib(year_from=1980, year_to=1984)),
        Case("filter_genre", lib(genre="horror")),
        Case("filter_director", lib(director=info["director"])),
        Case("filter_cast", lib(cast=info["cast"])),
        Case("filter_author", lib(author=info["author"])),
        Case("filter_platform", lib(platform="Nintendo 64")),
        Case("filter_resolution", lib(resolution="4K")),
        Case("filter_rating", lib(rating_min=8)),
        Case("filter_my_rating", lib(my_rating_min=7)),
        Case("filter_location", lib(location="Office")),
        Case("filter_signed", lib(signed=1)),
        Case("filter_three_combined", lib("/library/movies", genre="drama", year_from=1980, year_to=1999,
                                          resolution="1080p")),
        Case("sort_title", lib(sort="title")),
        Case("sort_title_desc", lib(sort="title", dir="desc")),
        Case("sort_year_desc", lib(sort="year")),
        Case("sort_year_asc", lib(sort="year", dir="asc")),
        Case("sort_format", lib(sort="format")),
        Case("sort_added", lib(sort="added")),
        Case("sort_rating", lib(sort="rating")),
        Case("sort_my_rating", lib(sort="my_rating")),
        Case("sort_rating_books_page2", lib("/library/books", sort="rating")),
        Case("detail", f"/library/media/{info['detail_id']}", "detail"),
        Case("full_page", lib(), "page", fragment=False),
    ]


# --- measuring --------------------------------------------------------------------------------------------

@contextmanager
def counting(engine: Any) -> Any:
    counter = {"n": 0}

    def count(*_args: Any) -> None:
        counter["n"] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield counter
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _resolve(client: Any, case: Case) -> str:
    url = case.path
    if case.name == "sort_rating_books_page2":  # a second page: the cursor comes from the first
        body = client.get(url, headers=case.headers).get_data(as_text=True)
        marker = 'data-next="'
        if marker in body:
            url = body.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
    return url


def run_cases(app: Any, client: Any, group: list[Case], n: int, warmup: int) -> list[dict[str, Any]]:
    """Time each case of a group n times after a warm-up; the cases take turns, so that a change in the
    machine's load during the run weighs on each alike (the keyset depths are compared with each other).
    PostgreSQL's kept counts (services.count_cache) are forgotten before each request: these are the costs of a
    page whose total is counted; the throughput run and the load benchmark measure with them."""
    from collectz.extensions import db
    from collectz.services import count_cache

    with app.app_context():
        engine = db.engine
    urls = [_resolve(client, case) for case in group]
    times: list[list[float]] = [[] for _ in group]
    queries: list[list[int]] = [[] for _ in group]
    bodies: list[str] = [""] * len(group)
    with counting(engine) as counter:
        for i in range(warmup + n):
            for k, (case, url) in enumerate(zip(group, urls, strict=True)):
                count_cache.clear()  # every request counts its total: the cost without a kept count
                before = counter["n"]
                started = time.perf_counter()
                resp = client.get(url, headers=case.headers)
                elapsed = (time.perf_counter() - started) * 1000
                if resp.status_code != 200:
                    raise SystemExit(f"{case.name}: {url} answered {resp.status_code}: "
                                     f"{resp.get_data(as_text=True)[:300]}")
                if i >= warmup:
                    times[k].append(elapsed)
                    queries[k].append(counter["n"] - before)
                bodies[k] = resp.get_data(as_text=True) if i == warmup + n - 1 else ""
    rows = []
    for k, case in enumerate(group):
        total = None
        if 'data-total="' in bodies[k]:
            total = int(bodies[k].split('data-total="', 1)[1].split('"', 1)[0])
        rows.append({
            "name": case.name, "n": n,
            "p50_ms": round(statistics.median(times[k]), 2),
            "p95_ms": round(percentile(times[k], 95), 2),
            "p99_ms": round(percentile(times[k], 99), 2),
            # the usual count; once a minute the session's last-seen time is also written (queries_max)
            "queries": statistics.mode(queries[k]), "queries_max": max(queries[k]),
            "kind": case.kind,
            **({"matches": total} if total is not None else {}),
            "url": urls[k],
        })
    return rows


def run_case(app: Any, client: Any, case: Case, n: int, warmup: int) -> dict[str, Any]:
    return run_cases(app, client, [case], n, warmup)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(database_url: str, instance: Path, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], int]:
    """gunicorn (gthread) on a free loopback port against an already migrated database; rate limits off (the
    benchmarks' clients all act as one member)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "INSTANCE_PATH": str(instance), "LOG_LEVEL": "WARNING",
           "COLLECTZ_ENV": "development", "REDIS_URL": "", "AUDIT_LOG_MODE": "failures",
           "RATELIMIT_ENABLED": "false",
           "RUN_MIGRATIONS_ON_START": "false"}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
         "--worker-class", "gthread", "--log-level", "warning", "--keep-alive", "30", "wsgi:app"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                err = server.stderr.read().decode() if server.stderr else ""
                raise SystemExit(f"gunicorn did not start: {err[-800:]}") from None
            time.sleep(0.2)
    return server, port


def stop_server(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def throughput(database_url: str, instance: Path, token: str, seconds: float, connections: int = 8
               ) -> dict[str, Any]:
    """First page, `connections` keep-alive clients against gunicorn (2 workers × 4 threads) on loopback."""
    server, port = start_server(database_url, instance, 2, 4)
    try:
        headers = {**HX, "Cookie": f"collectz_session={token}"}
        latencies: list[list[float]] = [[] for _ in range(connections)]
        errors = [0] * connections
        stop_at = [0.0]
        ready = threading.Barrier(connections + 1)

        def client(index: int) -> None:
            conn = HTTPConnection("127.0.0.1", port, timeout=10)
            for _ in range(5):  # warm-up
                conn.request("GET", "/library/", headers=headers)
                conn.getresponse().read()
            ready.wait()
            while time.perf_counter() < stop_at[0]:
                started = time.perf_counter()
                conn.request("GET", "/library/", headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status != 200:
                    errors[index] += 1
                latencies[index].append((time.perf_counter() - started) * 1000)
            conn.close()

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(connections)]
        for thread in threads:
            thread.start()
        stop_at[0] = time.perf_counter() + 3600
        ready.wait()
        began = time.perf_counter()
        stop_at[0] = began + seconds
        for thread in threads:
            thread.join(timeout=seconds + 30)
        elapsed = time.perf_counter() - began
        every = [v for values in latencies for v in values]
        return {"name": "throughput_first_page", "connections": connections, "seconds": round(elapsed, 1),
                "requests": len(every), "req_per_s": round(len(every) / elapsed, 1),
                "p50_ms": round(statistics.median(every), 2), "p95_ms": round(percentile(every, 95), 2),
                "p99_ms": round(percentile(every, 99), 2), "errors": sum(errors),
                "server": "gunicorn gthread, 2 workers x 4 threads, 127.0.0.1"}
    finally:
        stop_server(server)


# --- the run ----------------------------------------------------------------------------------------------

def target_for(case: dict[str, Any], db_name: str) -> float | None:
    kind = case.get("kind")
    if kind in ("list", "rows"):
        return TARGETS["list"][db_name]
    if kind in ("search", "detail"):
        return TARGETS[kind]
    return None


def print_table(db_name: str, items: int, rows: list[dict[str, Any]], first_p95: float | None) -> None:
    print(f"\nlibrary benchmark · {db_name} · {items:,} items (server-side ms through the test client)")
    print(f"{'case':30s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'queries':>7s} {'matches':>8s} {'target p95':>10s}")
    for row in rows:
        if "p50_ms" not in row or "req_per_s" in row:
            continue
        target = target_for(row, db_name)
        if row["name"] in ("deep_page_1000", "last_page") and first_p95:
            target = round(1.2 * first_p95, 2)
        flag = "" if target is None else (" ok" if row["p95_ms"] <= target else " MISSED")
        print(f"{row['name']:30s} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p99_ms']:8.2f} "
              f"{row['queries']:7d} {row.get('matches', ''):>8} {'' if target is None else target:>10}{flag}")
    for row in rows:
        if "req_per_s" in row:
            print(f"{row['name']}: {row['req_per_s']} req/s over {row['seconds']} s with {row['connections']} "
                  f"connections; p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, errors {row['errors']}")


def run_db(db_name: str, database_url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from collectz.extensions import db

    instance = work / f"instance-{db_name}"
    instance.mkdir(parents=True, exist_ok=True)
    app = build_app(database_url, instance)
    print(f"[{db_name}] seeding {args.items:,} items …", flush=True)
    info = prepare(app, args.items)
    print(f"[{db_name}] seeded in {info['seed_seconds']} s", flush=True)
    client = app.test_client()
    client.set_cookie("collectz_session", info["token"])
    results: list[dict[str, Any]] = [{"name": "seed", "rows": args.items, "seconds": info["seed_seconds"],
                                      "rows_per_s": round(args.items / max(info["seed_seconds"], 0.001))}]
    selected = [c for c in cases(info) if not args.cases or c.name in args.cases]
    depth = [c for c in selected if c.name in KEYSET_GROUP]
    groups = ([depth] if depth else []) + [[c] for c in selected if c.name not in KEYSET_GROUP]
    for group in groups:
        for row in run_cases(app, client, group, args.requests, args.warmup):
            results.append(row)
            print(f"[{db_name}] {row['name']:28s} p50 {row['p50_ms']:7.2f}  p95 {row['p95_ms']:7.2f}  "
                  f"queries {row['queries']}", flush=True)
    if args.throughput_seconds > 0 and not args.cases:
        results.append(throughput(database_url, instance, info["token"], args.throughput_seconds))
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    by_name = {r["name"]: r for r in results}
    first_p95 = by_name.get("first_page", {}).get("p95_ms")
    for name in ("deep_page_1000", "last_page"):
        if name in by_name and first_p95:
            by_name[name]["vs_first_page_p95"] = round(by_name[name]["p95_ms"] / first_p95, 2)
    document = report("library", db_name, args.items, results)
    print_table(db_name, args.items, results, first_p95)
    if not args.cases and args.items == ITEMS or args.write:
        RESULTS.mkdir(parents=True, exist_ok=True)
        path = RESULTS / f"library-{db_name}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")
    return document


def databases(choice: str) -> tuple[list[str], str]:
    """The databases a run covers ("sqlite", "postgresql", in that order) for --db CHOICE, and the PostgreSQL server
    named by BENCH_DATABASE_URL. PostgreSQL alone without a server exits with the reason; with "both" it is
    skipped with a line saying so."""
    pg_admin = os.environ.get("BENCH_DATABASE_URL", "")
    names = ["sqlite"] if choice in ("sqlite", "both") else []
    if choice in ("postgresql", "both"):
        if pg_admin:
            names.append("postgresql")
        elif choice == "postgresql":
            sys.exit("set BENCH_DATABASE_URL (a PostgreSQL server URL) to run the PostgreSQL benchmark")
        else:
            print("BENCH_DATABASE_URL is not set: PostgreSQL skipped")
    return names, pg_admin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench library", description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case (after warm-up)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--cases", nargs="*", default=[], help="only these cases (results are not written)")
    parser.add_argument("--throughput-seconds", type=float, default=20.0, help="0 skips it; at most 30")
    parser.add_argument("--write", action="store_true", help="write results even for a partial run")
    args = parser.parse_args(argv)
    args.throughput_seconds = min(args.throughput_seconds, 30.0)
    names, pg_admin = databases(args.db)
    work = Path(os.environ.get("BENCH_WORK_DIR") or tempfile.mkdtemp(prefix="collectz-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    urls: dict[str, Callable[[], str]] = {
        "sqlite": lambda: sqlite_url(work),
        "postgresql": lambda: postgres_url(pg_admin, os.environ.get("BENCH_PG_DATABASE", "collectz_bench"))}
    runners = [(name, urls[name]) for name in names]
    try:
        for db_name, url in runners:
            run_db(db_name, url(), args, work)
    finally:
        if not os.environ.get("BENCH_WORK_DIR"):
            shutil.rmtree(work, ignore_errors=True)
    return 0
