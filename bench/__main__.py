"""`python -m bench [suite] [options]`: run a benchmark suite (a module of this package with `main(argv)`)."""

from __future__ import annotations

import importlib
import sys

SUITES = ("library", "imports", "backup", "load", "faults")


def main(argv: list[str]) -> int:
    suite = "library"
    if argv and not argv[0].startswith("-"):
        suite, argv = argv[0], argv[1:]
    if not suite.isidentifier():
        sys.exit(f"unknown benchmark suite {suite!r}")
    try:
        module = importlib.import_module(f"bench.{suite}")
    except ModuleNotFoundError:
        sys.exit(f"unknown benchmark suite {suite!r} (known: {', '.join(SUITES)})")
    return module.main(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
