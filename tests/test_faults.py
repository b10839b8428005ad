"""Faults with real processes (reduced sizes): a real gunicorn serving the app.

- PostgreSQL goes away during page loads (a TCP proxy in front of the server is stopped, which drops every
  connection, then started again): every page answers 503 with a message and no traceback while it is away, and
  signing in works afterwards without restarting the app. The machine's PostgreSQL itself is never touched.
- An upload submitted twice at the same moment (a double click) on two gunicorn workers, imported by a real
  worker: every entry of the file is in the catalog exactly once.

Worker SIGKILL and a Redis restart mid-import are in tests/test_imports_crash.py. PostgreSQL tests are skipped
without TEST_DATABASE_URL (in CI it is always set); the upload test needs TEST_REDIS_URL likewise.
"""

from __future__ import annotations

import csv
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import func, select

from collectz import create_app
from collectz.extensions import db
from collectz.models import Media, MediaSource, SyncJob, User
from collectz.schema import upgrade
from collectz.security import passwords
from tests.conftest import IN_CI, PG_URL, PROJECT_ROOT, Backend, pg_database_url
from tests.imports_procs import (
    _OWN_ENV,
    CHUNK_SIZE,
    FAULT_ROWS,
    census,
    isbn13,
    make_stack,
    report,
    scaled,
    wait_finished,
)

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"
SECRET_KEY = "faults-test-secret-key-" + "k" * 24
CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TcpProxy:
    """Forwards 127.0.0.1:port to a server. stop() closes the port and every open connection (to the app this
    looks like the server going down); start() opens the same port again."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # stopped
            if self._listener is not listener:  # accepted while stopping
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                self._close(sock)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def stop(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in the other thread
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            open_sockets = list(self._sockets)
        for sock in open_sockets:
            self._close(sock)


@contextmanager
def gunicorn(env: dict[str, str], log: Path, workers: int = 2) -> Iterator[str]:
    """gunicorn wsgi:app on a free loopback port; yields its base URL once /healthz answers."""
    port = free_port()
    binary = Path(sys.executable).with_name("gunicorn")
    with log.open("w") as out:
        proc = subprocess.Popen([str(binary), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
                                 "--threads", "2", "--worker-class", "gthread", "--timeout", "60",
                                 "--graceful-timeout", "2", "wsgi:app"],
                                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=2).status_code in (200, 503):
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)


def server_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in _OWN_ENV and not k.endswith("_FILE") and not k.startswith(("FEATURE_FLAG", "LOG_EXPORT"))
           and k not in ("METRICS_TOKEN", "PROMETHEUS_MULTIPROC_DIR")}
    env.update({"COLLECTZ_ENV": "testing", "SECRET_KEY": SECRET_KEY, "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
                **settings})
    return env


def sign_in(base: str, email: str) -> requests.Session:
    session = requests.Session()
    token = CSRF.search(session.get(base + "/auth/login", timeout=10).text).group(1)
    resp = session.post(base + "/auth/login", data={"csrf_token": token, "email": email, "password": PASSWORD},
                        allow_redirects=False, timeout=10)
    assert resp.status_code == 303, (resp.status_code, resp.text[:500])
    return session


def require_postgresql() -> None:
    if not PG_URL:
        if IN_CI:
            pytest.fail("TEST_DATABASE_URL is not set: the PostgreSQL fault tests must run in CI")
        pytest.skip("TEST_DATABASE_URL is not set: the PostgreSQL outage test needs a PostgreSQL server")


# --- PostgreSQL goes away during page loads --------------------------------------------------------------------


def test_postgresql_outage_during_page_loads_is_a_503_and_sign_in_works_after(tmp_path: Path):
    require_postgresql()
    direct = pg_database_url("outage")
    parts = urlsplit(direct)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    proxied = urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{proxy.port}"))
    settings = Backend("postgresql", direct, "", tmp_path / "instance").settings()
    app = create_app(settings=settings)
    upgrade(app)
    with app.app_context():
        db.session.add(User(email="alice@example.org", name="Alice", role="admin",
                            password_hash=passwords.hash_password(PASSWORD)))
        db.session.commit()
        db.session.remove()
        db.engine.dispose()

    log = tmp_path / "gunicorn.log"
    env = server_env(DATABASE_URL=proxied, REDIS_URL="", INSTANCE_PATH=str(tmp_path / "instance"))
    try:
        with gunicorn(env, log) as base:
            alice = sign_in(base, "alice@example.org")
            assert all(alice.get(base + "/library/", timeout=10).status_code == 200 for _ in range(6))
            token = CSRF.search(alice.get(base + "/library/media/new", timeout=10).text).group(1)

            proxy.stop()  # PostgreSQL "restarts": every pooled connection is cut, new ones are refused
            during = []
            for _ in range(3):
                for path, headers in (("/library/", {}), ("/library/movies", {"HX-Request": "true"}),
                                      ("/admin/members", {}), ("/auth/login", {}), ("/healthz", {})):
                    started = time.monotonic()
                    resp = alice.get(base + path, headers=headers, timeout=15)
                    during.append((path, resp.status_code, resp.text, time.monotonic() - started, headers))
                started = time.monotonic()
                resp = alice.post(base + "/library/media/new", data={"csrf_token": token, "title": "Lost?",
                                                                      "media_type": "movie", "copies": "1"},
                                  allow_redirects=False, timeout=15)
                during.append(("POST /library/media/new", resp.status_code, resp.text, time.monotonic() - started,
                               {}))
            anonymous = requests.post(base + "/auth/login", data={"email": "alice@example.org",
                                                                  "password": PASSWORD}, timeout=15)

            proxy.start()  # back: the same gunicorn processes, not restarted
            back = time.monotonic()
            after = sign_in(base, "alice@example.org")
            signed_in_after = time.monotonic() - back
            pages = [after.get(base + "/library/", timeout=10).status_code for _ in range(6)]
            kept = alice.get(base + "/library/", timeout=10).status_code
            added = after.post(base + "/library/media/new", data={
                "csrf_token": CSRF.search(after.get(base + "/library/media/new", timeout=10).text).group(1),
                "title": "After the outage", "media_type": "movie", "copies": "1"}, allow_redirects=False, timeout=10)
    finally:
        proxy.stop()

    assert {status for _, status, *_ in during} == {503}, [(p, s) for p, s, *_ in during]
    for path, _status, body, took, headers in during:
        assert "Traceback" not in body and "psycopg" not in body, path
        assert took < 5, f"{path} took {took:.1f}s during the outage"
        if path != "/healthz":  # the health check names the error type for the operator; pages do not
            assert "OperationalError" not in body, path
            assert "The database is not reachable right now" in body, path
            assert ("<html" in body) is (not headers), path  # a page, or a fragment for htmx
    assert anonymous.status_code in (400, 403, 503)  # no CSRF token: refused before the database is needed
    assert pages == [200] * 6 and kept == 200 and added.status_code == 303
    output = log.read_text()
    assert "Traceback" not in output, output[-3000:]
    assert '"msg": "database unavailable"' in output
    with app.app_context():
        titles = db.session.scalars(select(Media.title)).all()
        db.session.remove()
        db.engine.dispose()
    assert titles == ["After the outage"]  # nothing half-written
    report("postgresql_restart_during_page_loads", "postgresql", requests_during_outage=len(during),
           answers_503=sum(status == 503 for _, status, *_ in during),
           slowest_answer_ms=round(max(took for *_, took, _headers in during) * 1000, 1),
           sign_in_after_ms=round(signed_in_after * 1000, 1), pages_after_ok=pages.count(200),
           items_written=len(titles))  # the one added after the outage: none of the POSTs during it


# --- an upload submitted twice at once -------------------------------------------------------------------------

DELICIOUS_COLUMNS = ["Item Type", "Title", "Creator", "ISBN", "EAN", "UPC", "Amazon Link", "Edition", "Format",
                     "Release Date", "Creation Date", "Purchase Date", "Price", "Rating", "Notes", "Signed By",
                     "Location", "Genres", "Publisher", "Pages", "Minutes", "Platform", "Series", "UUID"]


def delicious_csv(path: Path, count: int) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=DELICIOUS_COLUMNS)
        writer.writeheader()
        for n in range(count):
            writer.writerow({"Item Type": "Book", "Title": f"Double Book {n:04d}", "Creator": "Ada Quill",
                             "ISBN": isbn13(500_000 + n), "Release Date": "1999-01-01",
                             "UUID": f"5B0C1D3E-0000-4000-8000-{n:012d}"})
    return path


def test_an_upload_submitted_twice_at_once_imports_each_entry_once(backend: Backend, tmp_path: Path):
    rows = FAULT_ROWS // 10  # 300 here; python -m bench faults runs the scenario at full size
    with make_stack(backend, tmp_path) as stack:
        stack.start_worker()
        stack.wait_ready(1)
        env = server_env(DATABASE_URL=stack.database_url, REDIS_URL=stack.redis_url,
                         INSTANCE_PATH=str(tmp_path / "instance"), UPLOAD_PATH=str(tmp_path / "uploads"),
                         IMPORT_CHUNK_SIZE=str(min(CHUNK_SIZE, max(1, rows // 3))), LOG_LEVEL="WARNING")
        content = delicious_csv(tmp_path / "library.csv", rows).read_bytes()
        with gunicorn(env, tmp_path / "gunicorn.log") as base:
            bob = sign_in(base, "bob@example.org")
            token = CSRF.search(bob.get(base + "/imports/?tab=delicious", timeout=10).text).group(1)
            gate = threading.Barrier(2)
            answers: list[requests.Response] = []

            def submit() -> None:
                gate.wait()
                answers.append(bob.post(base + "/imports/delicious", data={"csrf_token": token},
                                        files={"file": ("library.csv", content, "text/csv")},
                                        allow_redirects=False, timeout=30))

            clicks = [threading.Thread(target=submit) for _ in range(2)]
            started = time.monotonic()
            for click in clicks:
                click.start()
            for click in clicks:
                click.join(timeout=60)

            with stack.ctx():
                job_ids = list(db.session.scalars(select(SyncJob.id).order_by(SyncJob.id)))
            jobs = wait_finished(stack, job_ids, timeout=scaled(120, rows))
            finished = time.monotonic()
            result = census(stack)
            with stack.ctx():
                titles = db.session.execute(select(Media.title, Media.copies).where(
                    Media.title.like("Double Book %"))).all()
                sources = db.session.scalar(select(func.count(MediaSource.id))) or 0

    assert [a.status_code for a in answers] == [303, 303]
    assert all(re.search(r"/imports/jobs/\d+$", a.headers["Location"]) for a in answers)
    assert 1 <= len(job_ids) <= 2 and all(j.status == "succeeded" for j in jobs), [(j.status, j.error) for j in jobs]
    assert len(titles) == rows and {copies for _title, copies in titles} == {1}  # none lost, none doubled
    assert result.duplicate_isbns == [] and result.duplicate_titles == [] and result.duplicate_row_numbers == 0
    assert sources == rows
    report("upload_submitted_twice", backend.name, rows=rows, jobs=len(job_ids), seconds=round(finished - started, 1),
           items=len(titles), lost=rows - len(titles),
           duplicated=sum(copies - 1 for _title, copies in titles) + result.duplicated)
