"""A real S3 API on loopback: moto's server in a subprocess, started and stopped by the tests.

A subprocess (not moto's in-process thread) keeps moto's botocore hooks out of the code under test and
makes an outage real: stopping it closes the port. The `s3_server` fixture is session-scoped, and each
pytest-xdist worker is its own process, so every worker runs its own server on its own free port.
Tests that stop a server start their own with `moto_server()`.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

HOST = "127.0.0.1"
REGION = "us-east-1"
# moto accepts any credentials; the secret is distinctive so tests can prove it never leaks into a message.
ACCESS_KEY_ID = "collectz-test-key-id"
SECRET_ACCESS_KEY = "collectz-test-SECRET-must-not-leak-7d1f"


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MotoServer:
    """`python -m moto.server` on a free loopback port; `url` is its endpoint while it runs."""

    def __init__(self, host: str = HOST) -> None:
        self.host = host
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> MotoServer:
        """Start on a free port (a port taken between the probe and the bind is retried on another)."""
        for _attempt in range(3):
            self.port = free_port(self.host)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if self._wait_ready(timeout):
                return self
            self.stop()
        raise RuntimeError("moto's S3 server did not start on 127.0.0.1")

    def _wait_ready(self, timeout: float) -> bool:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the server; its port is closed when this returns."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def client(self) -> Any:
        """A plain boto3 client on this server for set-up and inspection (made once: clients are slow to build)."""
        import boto3

        if self._client is None:
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.url, region_name=REGION,
                aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY,
            )
        return self._client

    def create_bucket(self, name: str | None = None) -> str:
        """A new, empty bucket with a unique name."""
        name = name or f"collectz-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def settings_env(self, bucket: str) -> dict[str, str]:
        """The environment that points collectZ's S3 storage at this server."""
        return {
            "STORAGE_PROVIDER": "s3", "S3_BUCKET": bucket, "S3_REGION": REGION, "S3_ENDPOINT_URL": self.url,
            "S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "S3_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "S3_FORCE_PATH_STYLE": "true",
        }


@contextmanager
def moto_server() -> Iterator[MotoServer]:
    """A server of the test's own (for tests that stop it)."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[MotoServer]:
    """One moto S3 server per test process (so one per xdist worker), stopped at the end of the session."""
    with moto_server() as server:
        yield server
