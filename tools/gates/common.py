"""What the gates share: the project root, reviewed-list files, output, subprocesses."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess  # nosec B404 - the gates run the project's own tools
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GATES_DIR = Path(__file__).resolve().parent
BUILD_DIR = ROOT / "build"


class GateError(Exception):
    """A reviewed-list file is malformed or a tool could not run: the gate fails with this message."""


def parser(name: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=f"python -m tools.gates.{name}", description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def say(gate: str, message: str) -> None:
    print(f"[{gate}] {message}", flush=True)


def fail(gate: str, message: str, details: Sequence[str] = ()) -> int:
    """Print a failure (and its details) and return the gate's exit code."""
    print(f"[{gate}] FAILED: {message}", file=sys.stderr, flush=True)
    for line in details:
        print(f"[{gate}]   {line}", file=sys.stderr, flush=True)
    return 1


def passed(gate: str, message: str) -> int:
    say(gate, f"ok: {message}")
    return 0


def today() -> dt.date:
    """The date expiry is judged by; GATES_TODAY=YYYY-MM-DD pins it (tests)."""
    pinned = os.environ.get("GATES_TODAY")
    return dt.date.fromisoformat(pinned) if pinned else dt.date.today()


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise GateError(f"{path} is missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{path} is not valid TOML: {exc}") from None


def entries(data: dict[str, Any], table: str, required: Sequence[str], source: Path) -> list[dict[str, Any]]:
    """The [[table]] entries of a reviewed list; each must carry every required key, non-empty."""
    items = data.get(table, [])
    if not isinstance(items, list):
        raise GateError(f"{source}: [[{table}]] must be an array of tables")
    for index, item in enumerate(items, 1):
        if missing := missing_keys(item, required):
            raise GateError(f"{source}: [[{table}]] entry {index} lacks {', '.join(missing)}")
    return items


def missing_keys(item: dict[str, Any], required: Sequence[str]) -> list[str]:
    """The required keys an entry lacks or leaves empty."""
    return [key for key in required if not str(item.get(key, "")).strip()]


def check_expiry(item: dict[str, Any], what: str, source: Path) -> str | None:
    """None while an entry's `expires` date is today or later; otherwise why it no longer counts."""
    expires = item.get("expires")
    if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
        return f"{source}: {what} needs `expires = YYYY-MM-DD` (a TOML date), not {expires!r}"
    if expires < today():
        return (f"{source}: {what} (owner {item.get('owner', '?')}) expired on {expires.isoformat()}: "
                "review it again and set a new date, or fix the cause")
    return None


def run(cmd: Sequence[str], cwd: Path = ROOT, env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a tool and capture its output; a missing tool is a GateError, never a pass."""
    try:
        return subprocess.run(list(cmd), cwd=cwd, env=env, capture_output=True, text=True,  # nosec B603
                              timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise GateError(f"cannot run {cmd[0]}: {exc.strerror} (run `make install-dev`)") from None
    except subprocess.TimeoutExpired:
        raise GateError(f"{' '.join(cmd[:3])} … did not finish within {timeout:.0f}s") from None


def tool_module_available(module: str) -> None:
    """Fail clearly when a gate's Python tool is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise GateError(f"the Python package providing `{module}` is not installed: run `make install-dev` "
                        "(tests/requirements.txt pins it)")
