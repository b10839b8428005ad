"""Running one measured step in a child process of its own, so that its peak memory is its own.

The child prints one line `<marker><json>` with its result; `run` starts it (`python -m <module> --child ...`),
waits, and returns that result with `process_seconds` (interpreter and app start-up included).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def report(marker: str, result: dict[str, Any]) -> None:
    """The child's side: hand the result to the parent."""
    print(marker + json.dumps(result), flush=True)


def run(module: str, args: list[str], marker: str, label: str) -> dict[str, Any]:
    """The parent's side: run `python -m module --child *args`; its result, or exit with its stderr's tail."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", module, "--child", *args], cwd=ROOT, stdout=out, stderr=err)
        proc.wait()
        process_seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        lines = [line for line in out.read().splitlines() if line.startswith(marker)]
        if proc.returncode != 0 or not lines:
            raise SystemExit(f"{label} exited {proc.returncode}:\n{err.read()[-3000:]}")
    result = json.loads(lines[-1][len(marker):])
    result["process_seconds"] = round(process_seconds, 2)
    return result
