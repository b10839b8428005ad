"""Optional log export besides stdout: GELF (Graylog) over UDP or TCP, and syslog (RFC 5424) over UDP or TCP.

Off by default (LOG_EXPORT empty). A log call never waits for the network: the line is formatted in the caller's
thread (so it carries that request's or job's id) and put on a bounded queue that a sender thread drains. When the
collector is down or slow the queue fills and further lines are dropped and counted
(collectz_log_export_dropped_total); stdout keeps every line. Works the same in the web and the worker processes.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from collectz.config import LOG_LEVELS, ConfigError, Settings
from collectz.web.requestlog import exception_text, log_context

EXPORTERS = ("gelf", "syslog")
QUEUE_SIZE = 10_000
CONNECT_TIMEOUT = 2.0
SEND_TIMEOUT = 5.0
MAX_BACKOFF = 30.0
GELF_CHUNK = 8154  # Graylog's recommended chunk size (fits a typical 8 KiB UDP buffer with the chunk header)
GELF_MAX_CHUNKS = 128
# Python level → syslog severity (RFC 5424 §6.2.1).
_SEVERITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}
_FACILITY_LOCAL0 = 16


@dataclass(frozen=True)
class Target:
    exporter: str  # gelf | syslog
    transport: str  # udp | tcp
    host: str
    port: int


def parse_exports(settings: Settings) -> list[Target]:
    """The configured exporters; ConfigError (at start-up) for an unknown one or a missing or malformed address."""
    names = [n.strip().lower() for n in (settings.LOG_EXPORT or "").split(",") if n.strip()]
    if names in (["off"], ["none"]):
        names = []
    if settings.LOG_EXPORT_LEVEL.upper() not in LOG_LEVELS:
        raise ConfigError(f"LOG_EXPORT_LEVEL must be one of {', '.join(LOG_LEVELS)}, not "
                          f"{settings.LOG_EXPORT_LEVEL!r}")
    targets = []
    for name in dict.fromkeys(names):
        if name not in EXPORTERS:
            raise ConfigError(f"LOG_EXPORT must be gelf, syslog or both (gelf,syslog), not {settings.LOG_EXPORT!r}")
        setting = f"LOG_EXPORT_{name.upper()}_URL"
        targets.append(_target(name, setting, getattr(settings, setting)))
    return targets


def _target(exporter: str, setting: str, raw: str) -> Target:
    example = "udp://graylog:12201" if exporter == "gelf" else "udp://logs.example.lan:514"
    if not raw:
        raise ConfigError(f"LOG_EXPORT={exporter} needs {setting} (for example {example})")
    parts = urlsplit(raw.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in ("udp", "tcp") or not parts.hostname or not port or parts.path not in ("", "/"):
        raise ConfigError(f"{setting} must be udp://host:port or tcp://host:port (for example {example}), not {raw!r}")
    return Target(exporter, parts.scheme, parts.hostname, port)


# --- formats ---------------------------------------------------------------------------------------------------


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(log_context())
    fields.update(getattr(record, "fields", None) or {})
    return fields


def gelf_payload(record: logging.LogRecord, host: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A GELF 1.1 message: additional fields are `_name` (GELF forbids `_id`)."""
    message = record.getMessage()
    payload: dict[str, Any] = {
        "version": "1.1", "host": host, "short_message": message[:250] or "-",
        "timestamp": round(record.created, 3), "level": _SEVERITY.get(record.levelno, 6),
        "_logger": record.name, "_app": "collectz",
    }
    if len(message) > 250:
        payload["full_message"] = message
    if record.exc_info:
        payload["full_message"] = message + "\n" + exception_text(record.exc_info)[1]
    for key, value in fields.items():
        name = "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in str(key))
        if name and name != "id":
            payload["_" + name] = value if isinstance(value, (int, float, str)) or value is None else str(value)
    return payload


def syslog_line(record: logging.LogRecord, host: str, fields: dict[str, Any]) -> bytes:
    """RFC 5424: <PRI>1 TIMESTAMP HOST collectz PID MSGID - MSG, the message being our JSON log line."""
    pri = _FACILITY_LOCAL0 * 8 + _SEVERITY.get(record.levelno, 6)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
    body = {"level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage(), **fields}
    if record.exc_info:
        key, text = exception_text(record.exc_info)
        body[key] = text
    msgid = record.name.replace(" ", "_")[:32] or "-"
    return f"<{pri}>1 {stamp} {host} collectz {os.getpid()} {msgid} - ".encode() + \
        json.dumps(body, default=str).encode()


def gelf_udp_datagrams(data: bytes) -> list[bytes]:
    """A compressed GELF message as UDP datagrams: one, or GELF chunks (magic, message id, number, count)."""
    packed = zlib.compress(data)
    if len(packed) <= GELF_CHUNK:
        return [packed]
    pieces = [packed[i:i + GELF_CHUNK] for i in range(0, len(packed), GELF_CHUNK)]
    if len(pieces) > GELF_MAX_CHUNKS:
        return []  # Graylog would drop it anyway
    message_id = os.urandom(8)
    return [b"\x1e\x0f" + message_id + struct.pack("BB", n, len(pieces)) + piece for n, piece in enumerate(pieces)]


# --- transport -------------------------------------------------------------------------------------------------


class Sender:
    """Delivers byte messages to one address; a failure closes the connection and backs off, never raises."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._sock: socket.socket | None = None
        self._down_until = 0.0
        self._backoff = 1.0

    def send(self, datagrams: list[bytes]) -> bool:
        if time.monotonic() < self._down_until:
            return False
        try:
            if self.target.transport == "udp":
                sock = self._sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                self._sock = sock
                address = (self.target.host, self.target.port)
                for datagram in datagrams:
                    sock.sendto(datagram, address)
            else:
                if self._sock is None:
                    self._sock = socket.create_connection((self.target.host, self.target.port),
                                                          timeout=CONNECT_TIMEOUT)
                    self._sock.settimeout(SEND_TIMEOUT)
                for datagram in datagrams:
                    self._sock.sendall(datagram)
        except OSError:
            self.close()
            self._down_until = time.monotonic() + self._backoff
            self._backoff = min(MAX_BACKOFF, self._backoff * 2)
            return False
        self._backoff = 1.0
        return True

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


class ExportHandler(logging.Handler):
    """A logging handler that queues formatted messages for a sender thread; it never blocks the caller."""

    def __init__(self, target: Target, level: int = logging.INFO, queue_size: int = QUEUE_SIZE) -> None:
        super().__init__(level)
        self.target = target
        self.host = socket.gethostname()
        self.queue: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=queue_size)
        self.sent = 0
        self.dropped = 0
        self._queue_size = queue_size
        self._start()

    def _start(self) -> None:
        self._sender = Sender(self.target)
        self._thread = threading.Thread(target=self._drain, name=f"collectz-log-{self.target.exporter}",
                                        daemon=True)
        self._thread.start()

    def restart_after_fork(self) -> None:
        """A forked child (gunicorn --preload, rq's scheduler) has the queue but not the thread: start anew."""
        self.queue = queue.Queue(maxsize=self._queue_size)
        self._start()

    def encode(self, record: logging.LogRecord) -> list[bytes]:
        fields = _fields(record)
        if self.target.exporter == "syslog":
            line = syslog_line(record, self.host, fields)
            return [line + b"\n" if self.target.transport == "tcp" else line]
        data = json.dumps(gelf_payload(record, self.host, fields), default=str).encode()
        return gelf_udp_datagrams(data) if self.target.transport == "udp" else [data + b"\0"]

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.queue.put_nowait(self.encode(record))
        except Exception:  # a full queue, or a line that cannot be encoded: lost, never an error in the caller
            self._drop()

    def _drop(self) -> None:
        self.dropped += 1
        try:
            from collectz.web.metrics import LOG_EXPORT_DROPPED

            LOG_EXPORT_DROPPED.labels(self.target.exporter).inc()
        except Exception:
            pass

    def _drain(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                break
            if item and self._sender.send(item):
                self.sent += 1
            else:
                self._drop()
        self._sender.close()

    def close(self, wait: float = 2.0) -> None:
        """Stop the sender after what is queued (waiting at most `wait` seconds for it)."""
        try:
            self.queue.put(None, timeout=wait)
        except queue.Full:
            pass
        self._thread.join(timeout=wait)
        super().close()


_installed: list[ExportHandler] = []
_lock = threading.Lock()


def configure(settings: Settings) -> list[ExportHandler]:
    """Install the exporters the settings ask for on the `collectz` logger (replacing earlier ones)."""
    targets = parse_exports(settings)
    root = logging.getLogger("collectz")
    with _lock:
        current = {h.target: h for h in _installed}
        level = logging.getLevelName(settings.LOG_EXPORT_LEVEL.upper())
        keep = [current[t] for t in targets if t in current]
        for handler in _installed:
            if handler not in keep:
                root.removeHandler(handler)
                handler.close(wait=0.2)
        _installed[:] = keep
        for target in targets:
            if target not in current:
                handler = ExportHandler(target)
                root.addHandler(handler)
                _installed.append(handler)
        for handler in _installed:
            handler.setLevel(level)
        return list(_installed)


def installed() -> list[ExportHandler]:
    return list(_installed)


def _after_fork_in_child() -> None:
    for handler in list(_installed):
        handler.restart_after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


@atexit.register
def _flush_at_exit() -> None:
    for handler in list(_installed):
        handler.close(wait=1.0)
