"""`make run` really serves: the dev server migrates an empty SQLite database under the instance
directory, answers on HOST:PORT, and its embedded worker runs the periodic clean-up. And
worker.py without Redis says why it cannot run.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow

STRIP = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "INTEGRATION_ENCRYPTION_KEY", "COLLECTZ_ENV",
         "RUN_MIGRATIONS_ON_START", "INSTANCE_PATH", "PORT", "HOST", "LOG_LEVEL")


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without any collectZ setting (nor its _FILE form)."""
    env = {k: v for k, v in os.environ.items()
           if k not in STRIP and not any(k == f"{name}_FILE" for name in STRIP)
           and not k.startswith(("TEST_", "PYTEST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Output:
    """Collects a process's merged output lines in a background thread."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def json_lines(self) -> list[dict]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out


def wait_until(predicate, timeout: float, proc: subprocess.Popen[str], output: Output, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the dev server exited with {proc.returncode} while waiting for {what}:\n{output.text}")
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; output:\n{output.text}")


def test_devserver_serves_on_embedded_defaults(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    port = free_port()
    env = clean_env(INSTANCE_PATH=str(instance), PORT=str(port), HOST="127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "collectz.devserver"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = Output(proc)
    base = f"http://127.0.0.1:{port}"
    try:
        def healthy():
            try:
                resp = requests.get(base + "/healthz", timeout=2)
            except requests.ConnectionError:
                return None
            return resp if resp.status_code == 200 else None

        resp = wait_until(healthy, 20, proc, output, "GET /healthz to answer 200")
        health = resp.json()
        assert health["database"] == "ok"
        assert health["database_backend"] == "sqlite"
        assert health["queue"] == "ok"
        assert health["queue_backend"] == "embedded"
        assert health["status"] == "ok"

        home = requests.get(base + "/", allow_redirects=False, timeout=5)
        assert home.status_code in (302, 303)
        assert home.headers["Location"].split("?")[0].endswith(("/auth/register", "/auth/login"))

        register = requests.get(base + "/auth/register", timeout=5)
        assert register.status_code == 200
        assert "this first account becomes the <strong>admin</strong>" in register.text

        assert f"collectZ is running at http://127.0.0.1:{port}/" in output.text
        assert (instance / "collectz.db").is_file()

        # The ticker enqueues the clean-up at start; the in-process worker runs it and logs.
        ran = wait_until(lambda: [e for e in output.json_lines() if e.get("msg") == "sessions cleaned"],
                         10, proc, output, 'the "sessions cleaned" log line')
        assert ran[0]["job"] == "cleanup_sessions"
        assert ran[0]["removed"] == 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_worker_without_redis_exits_with_a_message(tmp_path: Path) -> None:
    env = clean_env(INSTANCE_PATH=str(tmp_path / "instance"))
    proc = subprocess.run([sys.executable, str(PROJECT_ROOT / "worker.py")], cwd=PROJECT_ROOT, env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "worker.py needs REDIS_URL" in proc.stderr
