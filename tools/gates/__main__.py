"""Run the release gates (all, or those named) and fail when any fails: `python -m tools.gates [NAME ...]`.

Every gate runs even after one has failed, so one run shows every problem; the summary lists each result."""

from __future__ import annotations

import subprocess  # nosec B404 - runs the gates, our own modules
import sys
import time
from collections.abc import Sequence

from tools.gates.common import ROOT, parser

GATES = ("parity", "compose", "lint", "sast", "secretscan", "audit", "sbom", "rehearsal")


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser("__main__", __doc__ or "")
    ap.prog = "python -m tools.gates"
    ap.add_argument("gates", nargs="*", metavar="NAME", help=f"gates to run (default: all): {', '.join(GATES)}")
    args = ap.parse_args(argv)
    if unknown := [name for name in args.gates if name not in GATES]:
        ap.error(f"no such gate: {', '.join(unknown)} (gates: {', '.join(GATES)})")
    results = []
    for name in args.gates or GATES:
        print(f"== {name}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, "-m", f"tools.gates.{name}"], cwd=ROOT)  # nosec B603
        results.append((name, code, time.monotonic() - start))
    print("== release gates", flush=True)
    for name, code, seconds in results:
        print(f"   {name:<11} {'passed' if code == 0 else f'FAILED (exit {code})':<18} {seconds:6.1f}s", flush=True)
    failed = [name for name, code, _ in results if code != 0]
    if failed:
        print(f"release gates failed: {', '.join(failed)}", file=sys.stderr, flush=True)
        return 1
    print("release gates passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
