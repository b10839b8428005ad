"""Gate: ruff over the project with its own .ruff.toml. Fails on any finding."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from tools.gates.common import ROOT, GateError, fail, parser, passed, run, say, tool_module_available

NAME = "lint"


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("paths", nargs="*", default=["."], help="files or folders to check (default: the project)")
    ap.add_argument("--root", type=Path, default=ROOT, help="folder the paths are relative to")
    ap.add_argument("--config", type=Path, default=ROOT / ".ruff.toml", help="ruff configuration file")
    args = ap.parse_args(argv)
    try:
        tool_module_available("ruff")
        result = run([sys.executable, "-m", "ruff", "check", "--no-cache", "--config", str(args.config),
                      *args.paths], cwd=args.root)
    except GateError as exc:
        return fail(NAME, str(exc))
    if result.returncode != 0:
        details = (result.stdout + result.stderr).strip().splitlines()
        return fail(NAME, "ruff reported problems (fix them; `ruff check --fix` handles many)", details)
    say(NAME, result.stdout.strip() or "no findings")
    return passed(NAME, "ruff is clean")


if __name__ == "__main__":
    sys.exit(main())
