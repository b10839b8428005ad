"""Gate: version parity. collectz.__version__ must equal the newest docs/releases/vX.Y.Z.md, and every
release notes file must be named vX.Y.Z.md and start with a heading naming that version."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

from tools.gates.common import ROOT, GateError, fail, parser, passed
from tools.gates.sbom import project_version

NAME = "parity"
RELEASE = re.compile(r"v(\d+)\.(\d+)\.(\d+)\.md")


def releases(root: Path) -> list[tuple[tuple[int, int, int], Path]]:
    folder = root / "docs" / "releases"
    found, problems = [], []
    for path in sorted(folder.glob("*.md")) if folder.is_dir() else []:
        match = RELEASE.fullmatch(path.name)
        if not match:
            if path.name.lower() != "readme.md":
                problems.append(f"{path.name}: release notes are named vMAJOR.MINOR.PATCH.md")
            continue
        version = tuple(int(part) for part in match.groups())
        dotted = ".".join(map(str, version))
        first = next((line for line in path.read_text().splitlines() if line.strip()), "")
        if not first.startswith("#") or not re.search(rf"(?<![\d.]){re.escape(dotted)}(?![\d.])", first):
            problems.append(f"{path.name}: the first line must be a heading naming {dotted}, not {first!r}")
        found.append((version, path))
    if problems:
        raise GateError("; ".join(problems))
    if not found:
        raise GateError(f"no release notes in {folder}: add docs/releases/vX.Y.Z.md for collectz.__version__")
    return sorted(found)


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("--root", type=Path, default=ROOT, help="the project")
    args = ap.parse_args(argv)
    try:
        version = project_version(args.root)
        latest, path = releases(args.root)[-1]
    except GateError as exc:
        return fail(NAME, str(exc))
    dotted = ".".join(map(str, latest))
    if version != dotted:
        return fail(NAME, f"collectz.__version__ is {version!r} but the newest release notes are {path.name}: "
                          f"bump collectz/version.py or add docs/releases/v{version}.md")
    return passed(NAME, f"collectz.__version__ {version} = docs/releases/{path.name}")


if __name__ == "__main__":
    sys.exit(main())
