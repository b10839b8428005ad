"""Gate: a secret scan of the tree. Fails on a known key format (AWS, private keys, GitHub, Slack, Google,
Stripe, JWTs, credentials in URLs) or a high-entropy value assigned to a secret-looking name, unless the
finding is allowed in secretscan.toml with a reason. Findings are shown masked, never in full."""

from __future__ import annotations

import fnmatch
import hashlib
import math
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.gates.common import GATES_DIR, ROOT, GateError, entries, fail, load_toml, parser, passed, run, say

NAME = "secretscan"
CONFIG = GATES_DIR / "secretscan.toml"
MAX_BYTES = 2 * 1024 * 1024
SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".pytest_cache", ".ruff_cache", "build",
             "instance", "test-results"}

# (rule, pattern): group "secret" is the part fingerprinted; without it, the whole match.
RULES: list[tuple[str, re.Pattern[str]]] = [
    ("aws-access-key-id", re.compile(r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b")),
    ("aws-secret-access-key", re.compile(
        r"(?i)aws.{0,24}?(?:secret|private).{0,24}?[\"'=:\s](?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])")),
    ("private-key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("github-token", re.compile(r"\b(?P<secret>gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("slack-token", re.compile(r"\b(?P<secret>xox[abposr]-[A-Za-z0-9-]{10,})\b")),
    ("google-api-key", re.compile(r"\b(?P<secret>AIza[0-9A-Za-z_\-]{35})\b")),
    ("stripe-live-key", re.compile(r"\b(?P<secret>[rs]k_live_[0-9A-Za-z]{16,})\b")),
    ("jwt", re.compile(r"\b(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,})")),
    ("url-credentials", re.compile(
        r"\b[a-z][a-z0-9+.-]{1,20}://[^\s/:@'\"]{1,64}:(?P<secret>[^\s/@'\"]{6,128})@[A-Za-z0-9.\[\]-]+")),
]
# A value assigned to a secret-looking name (KEY=..., key: ..., key = "...").
ASSIGNMENT = re.compile(
    r"(?i)(?P<name>[a-z0-9_.-]*(?:secret|passw(?:or)?d|token|api[_-]?key|access[_-]?key|private[_-]?key)"
    r"[a-z0-9_]*)[\"']?\s*(?::=|=|:)\s*[rbf]?[\"']?(?P<secret>[A-Za-z0-9+/=_\-.~!@#$%^&*]{20,})")
PLACEHOLDER = re.compile(r"(?i)example|change[-_]?me|placeholder|dummy|insecure|x{6,}|\*{3,}|\.\.\.|your[-_]|"
                         r"<|\$\{|\{\{|%\(|^[a-z_]+(?:\.[a-z_]+)+$|^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    secret: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.secret.encode()).hexdigest()[:16]

    def show(self) -> str:
        masked = self.secret[:4] + "…" if len(self.secret) > 8 else "…"
        return f"{self.path}:{self.line}: {self.rule} {masked} (fingerprint {self.fingerprint})"


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = {c: value.count(c) for c in set(value)}
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def looks_random(value: str) -> bool:
    """A generated secret: long, high entropy, mixing letters with digits or symbols."""
    if len(value) < 20 or PLACEHOLDER.search(value):
        return False
    classes = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"[0-9]", r"[^A-Za-z0-9]"))
    return classes >= 3 and entropy(value) >= 4.0


def scan_text(path: str, text: str) -> Iterator[Finding]:
    for number, line in enumerate(text.splitlines(), 1):
        if len(line) > 4000:  # minified or data lines: the key-format rules still run on the first part
            line = line[:4000]
        for rule, pattern in RULES:
            for match in pattern.finditer(line):
                secret = match.groupdict().get("secret") or match.group(0)
                if rule == "url-credentials" and PLACEHOLDER.search(secret):
                    continue
                yield Finding(path, number, rule, secret)
        for match in ASSIGNMENT.finditer(line):
            if looks_random(match.group("secret")):
                yield Finding(path, number, "high-entropy-assignment", match.group("secret"))


def files(root: Path) -> Iterator[Path]:
    """The files git would commit (tracked and untracked-but-not-ignored), or a walk outside a git checkout."""
    try:
        result = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root)
    except GateError:  # no git at all: walk the folder
        result = None
    if result is not None and result.returncode == 0 and (root / ".git").exists():
        for name in sorted(set(result.stdout.split("\0"))):
            if name and (root / name).is_file():
                yield root / name
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not SKIP_DIRS.intersection(path.relative_to(root).parts):
            yield path


def scan_tree(root: Path) -> tuple[list[Finding], list[str]]:
    findings, skipped = [], []
    for path in files(root):
        rel = path.relative_to(root).as_posix()
        data = path.read_bytes()
        if len(data) > MAX_BYTES:
            skipped.append(f"{rel} (over {MAX_BYTES // 1024 // 1024} MB)")
            continue
        if b"\0" in data[:8192]:
            continue  # binary
        findings.extend(scan_text(rel, data.decode("utf-8", errors="replace")))
    return findings, skipped


def allowed(finding: Finding, allows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    for item in allows:
        if not fnmatch.fnmatch(finding.path, item["path"]):
            continue
        if item.get("rule", "*") not in ("*", finding.rule):
            continue
        if item.get("fingerprint") and item["fingerprint"] != finding.fingerprint:
            continue
        return item
    return None


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("--root", type=Path, default=ROOT, help="tree to scan (default: the project)")
    ap.add_argument("--config", type=Path, default=CONFIG, help="allow-list (TOML)")
    args = ap.parse_args(argv)
    try:
        allows = entries(load_toml(args.config), "allow", ("path", "reason"), args.config)
        findings, skipped = scan_tree(args.root.resolve())
    except GateError as exc:
        return fail(NAME, str(exc))
    for note in skipped:
        say(NAME, f"note: not scanned: {note}")
    used: set[int] = set()
    open_findings = []
    for finding in findings:
        item = allowed(finding, allows)
        if item is None:
            open_findings.append(finding)
        else:
            used.add(id(item))
    for item in allows:
        if id(item) not in used and item.get("fingerprint"):
            say(NAME, f"note: allow-list entry for {item['path']} ({item['fingerprint']}) matches nothing now: "
                      "remove it")
    if open_findings:
        return fail(NAME, f"{len(open_findings)} possible secret(s) in the tree: remove them (and rotate any real "
                          f"one), or allow a test value in {args.config.name} by path and fingerprint with a reason",
                    [f.show() for f in open_findings])
    return passed(NAME, f"no secrets ({len(findings)} allowed finding(s))")


if __name__ == "__main__":
    sys.exit(main())
