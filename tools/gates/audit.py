"""Gate: pip-audit of the runtime dependencies (requirements.txt and everything it pulls in, as installed).

Fails on a known vulnerability that pip-audit.toml does not accept, on an accepted entry past its expiry date,
and when the vulnerability database cannot be asked: then nothing was audited, which is never a pass. The one
exception is an [unreachable] waiver in pip-audit.toml, itself owned and expiring, under which the gate says so
in a banner and passes (for a CI without a route to the database)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.gates.common import (
    BUILD_DIR,
    GATES_DIR,
    ROOT,
    GateError,
    check_expiry,
    entries,
    fail,
    load_toml,
    missing_keys,
    parser,
    passed,
    run,
    say,
    tool_module_available,
)
from tools.gates.deps import canonical, closure

NAME = "audit"
CONFIG = GATES_DIR / "pip-audit.toml"
NETWORK_ERRORS = ("ConnectionError", "ProxyError", "MaxRetryError", "NameResolutionError", "ConnectTimeout",
                  "ReadTimeout", "SSLError", "Temporary failure in name resolution")


@dataclass
class Policy:
    accepted: list[dict[str, Any]]
    waiver: dict[str, Any] | None


def load(config: Path) -> Policy:
    """Read the allow-list; a malformed or expired entry is a failure of its own."""
    data = load_toml(config)
    accepted = entries(data, "accept", ("id", "package", "owner", "expires", "reason"), config)
    problems = [p for item in accepted
                if (p := check_expiry(item, f"accepted {item['id']} in {item['package']}", config))]
    waiver = data.get("unreachable")
    if waiver is not None:
        if missing := missing_keys(waiver, ("owner", "expires", "reason")):
            problems.append(f"{config}: [unreachable] lacks {', '.join(missing)}")
        elif p := check_expiry(waiver, "the [unreachable] waiver", config):
            problems.append(p)
    if problems:
        raise GateError("; ".join(problems))
    return Policy(accepted, waiver)


class Unreachable(Exception):
    """The vulnerability database could not be asked; nothing was audited."""


def audit(requirements: Path, service: str) -> dict[str, Any]:
    """Run pip-audit on the pinned runtime closure (written to build/) and return its JSON report."""
    tool_module_available("pip_audit")
    pinned = BUILD_DIR / "runtime-requirements.txt"
    BUILD_DIR.mkdir(exist_ok=True)
    pinned.write_text(closure(requirements).pinned())
    result = run([sys.executable, "-m", "pip_audit", "--disable-pip", "--no-deps", "-r", str(pinned),
                  "--format", "json", "--progress-spinner", "off", "--vulnerability-service", service])
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        tail = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
        if any(marker in result.stderr for marker in NETWORK_ERRORS):
            raise Unreachable(f"pip-audit could not reach the {service} vulnerability service: {tail[0]}") from None
        raise GateError(f"pip-audit failed (exit {result.returncode}): {tail[0]}") from None


def judge(report: dict[str, Any], policy: Policy) -> tuple[list[str], list[str]]:
    """(failures, notes) for a pip-audit JSON report. Raises Unreachable when nothing could be audited."""
    deps = report.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    if deps and len(skipped) == len(deps):
        raise Unreachable(f"every one of {len(deps)} packages was skipped, e.g. {skipped[0]['skip_reason']!r}: "
                          "the vulnerability service does not answer from here")
    failures = [f"{d['name']}: not audited: {d['skip_reason']}" for d in skipped]
    used: set[int] = set()
    for dep in deps:
        for vuln in dep.get("vulns", []):
            ids = {vuln["id"], *vuln.get("aliases", [])}
            match = next((a for a in policy.accepted
                          if a["id"] in ids and canonical(a["package"]) == canonical(dep["name"])), None)
            if match is None:
                fixes = ", ".join(vuln.get("fix_versions", [])) or "none yet"
                failures.append(f"{dep['name']} {dep.get('version', '')}: {vuln['id']} "
                                f"({', '.join(sorted(ids - {vuln['id']})) or 'no aliases'}); fixed in {fixes}")
            else:
                used.add(id(match))
                say(NAME, f"accepted: {dep['name']} {vuln['id']} until {match['expires']} "
                          f"(owner {match['owner']}): {match['reason']}")
    notes = [f"pip-audit.toml accepts {a['id']} in {a['package']}, which is no longer reported: remove it"
             for a in policy.accepted if id(a) not in used]
    return failures, notes


def banner(reason: str, waiver: dict[str, Any]) -> None:
    line = "!" * 100
    print("\n".join([line, "!! DEPENDENCY AUDIT NOT DONE: " + reason,
                     f"!! Passing only under the [unreachable] waiver in pip-audit.toml (owner {waiver['owner']}, "
                     f"expires {waiver['expires']}):", f"!! {waiver['reason'].strip()}",
                     "!! Run `python -m tools.gates.audit` where the database is reachable.", line]),
          file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("--config", type=Path, default=CONFIG, help="accepted findings and waiver (TOML)")
    ap.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt", help="the runtime pins")
    ap.add_argument("--service", choices=("pypi", "osv"), default="pypi", help="vulnerability database to ask")
    ap.add_argument("--report", type=Path, help="judge this pip-audit JSON report instead of running pip-audit")
    args = ap.parse_args(argv)
    try:
        policy = load(args.config)
        report = json.loads(args.report.read_text()) if args.report else audit(args.requirements, args.service)
        failures, notes = judge(report, policy)
    except Unreachable as exc:
        if policy.waiver is None:
            return fail(NAME, f"{exc}. Nothing was audited, so the gate fails (an [unreachable] waiver in "
                              f"{args.config.name}, owned and expiring, is the only way past this)")
        banner(str(exc), policy.waiver)
        return 0
    except GateError as exc:
        return fail(NAME, str(exc))
    for note in notes:
        say(NAME, f"note: {note}")
    if failures:
        return fail(NAME, f"{len(failures)} problem(s): upgrade the package, or accept a finding in "
                          f"{args.config.name} with an owner, an expiry date and a reason", failures)
    count = len(report.get("dependencies", []))
    return passed(NAME, f"{count} runtime packages audited, no unaccepted vulnerabilities")


if __name__ == "__main__":
    sys.exit(main())
