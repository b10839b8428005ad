"""Gate: bandit over the shipped code. Fails on any finding not reviewed in bandit.toml, on a parse error,
and on a reviewed entry without a reason."""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.gates.common import (
    GATES_DIR,
    ROOT,
    GateError,
    entries,
    fail,
    load_toml,
    parser,
    passed,
    run,
    say,
    tool_module_available,
)

NAME = "sast"
CONFIG = GATES_DIR / "bandit.toml"


def load(config: Path) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Paths to scan, tests to skip and accepted findings, each skip and acceptance with its reason."""
    data = load_toml(config)
    skips = [item["test"] for item in entries(data, "skip", ("test", "reason"), config)]
    accepts = entries(data, "accept", ("test", "path", "reason", "max"), config)
    for item in accepts:
        if not isinstance(item["max"], int) or item["max"] < 1:
            raise GateError(f"{config}: accept {item['test']} in {item['path']}: max must be a whole number ≥ 1")
    return list(data.get("paths", ["."])), skips, accepts


def scan(root: Path, paths: Sequence[str], skips: Sequence[str]) -> dict[str, Any]:
    tool_module_available("bandit")
    cmd = [sys.executable, "-m", "bandit", "-r", "-q", "-f", "json", *paths]
    if skips:
        cmd[3:3] = ["--skip", ",".join(skips)]
    result = run(cmd, cwd=root)
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise GateError(f"bandit gave no report (exit {result.returncode}): {result.stderr.strip()[-500:]}") from None


def judge(report: dict[str, Any], accepts: Sequence[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(failures, notes): findings beyond what is accepted, and acceptances that are now larger than needed."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for issue in report.get("results", []):
        path = Path(issue["filename"]).as_posix().removeprefix("./")
        found.setdefault((issue["test_id"], path), []).append(issue)
    allowed = Counter({(a["test"], a["path"]): int(a["max"]) for a in accepts})
    failures, notes = [], []
    for (test, path), issues in sorted(found.items()):
        if len(issues) <= allowed[(test, path)]:
            continue
        extra = "" if not allowed[(test, path)] else f" ({len(issues)} found, {allowed[(test, path)]} reviewed)"
        for issue in issues:
            failures.append(f"{path}:{issue['line_number']}: {test} {issue['issue_text']} "
                            f"[severity {issue['issue_severity']}, confidence {issue['issue_confidence']}]{extra}")
    for (test, path), limit in sorted(allowed.items()):
        count = len(found.get((test, path), []))
        if count < limit:
            notes.append(f"bandit.toml accepts {limit} × {test} in {path} but {count} remain: lower `max`")
    for error in report.get("errors", []):
        failures.append(f"{error.get('filename')}: bandit could not scan it: {error.get('reason')}")
    return failures, notes


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("paths", nargs="*", help="what to scan (default: `paths` in the config)")
    ap.add_argument("--root", type=Path, default=ROOT, help="folder the paths are relative to")
    ap.add_argument("--config", type=Path, default=CONFIG, help="reviewed skips and acceptances (TOML)")
    args = ap.parse_args(argv)
    try:
        paths, skips, accepts = load(args.config)
        report = scan(args.root, args.paths or paths, skips)
    except GateError as exc:
        return fail(NAME, str(exc))
    failures, notes = judge(report, accepts)
    for note in notes:
        say(NAME, f"note: {note}")
    if failures:
        return fail(NAME, f"{len(failures)} bandit finding(s) not reviewed: fix the code, or review them "
                          f"in {args.config.name} with a reason", failures)
    scanned = report.get("metrics", {}).get("_totals", {}).get("loc", "?")
    return passed(NAME, f"bandit clean on {', '.join(args.paths or paths)} ({scanned} lines; "
                        f"{len(skips)} tests skipped, {len(accepts)} reviewed acceptances)")


if __name__ == "__main__":
    sys.exit(main())
