"""The release version and the git commit it was built from."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from pathlib import Path

__version__ = "0.1.0"


@lru_cache(maxsize=1)
def git_sha() -> str:
    """GIT_SHA from the environment (set by image builds), else asked of git, else 'unknown'."""
    env = os.environ.get("GIT_SHA", "").strip()
    if env:
        return env[:40]
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return "unknown"


def short_sha() -> str:
    sha = git_sha()
    return sha[:7] if sha != "unknown" else sha
