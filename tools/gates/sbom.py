"""Gate: a CycloneDX JSON SBOM of collectZ's runtime dependencies, written to build/sbom.cdx.json.

cyclonedx-py reads the installed environment (licences, hashes, URLs); the gate keeps only the runtime closure
of requirements.txt (no test or lint tools), rewrites the dependency graph from the packages' own requirements
(markers and extras applied), and validates the result against the CycloneDX schema. Fails when the
environment differs from requirements.txt, when a runtime package is missing from the SBOM, or when the SBOM
does not validate."""

from __future__ import annotations

import ast
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.gates.common import BUILD_DIR, ROOT, GateError, fail, parser, passed, run, tool_module_available
from tools.gates.deps import Closure, canonical, closure

NAME = "sbom"
SPEC = "1.6"


def project_version(root: Path) -> str:
    """collectz.version.__version__, read without importing the app."""
    tree = ast.parse((root / "collectz" / "version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__version__" for t in node.targets):
            if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                return node.value.value
    raise GateError("collectz/version.py has no literal __version__ = \"X.Y.Z\"")


def environment_bom(version: str, requirements: Sequence[str]) -> dict[str, Any]:
    tool_module_available("cyclonedx_py")
    with tempfile.TemporaryDirectory() as tmp:
        pyproject = Path(tmp) / "pyproject.toml"
        deps = ", ".join(json.dumps(r) for r in requirements)
        pyproject.write_text(f'[project]\nname = "collectz"\nversion = "{version}"\n'
                             f'description = "A self-hosted household media catalog"\ndependencies = [{deps}]\n')
        out = Path(tmp) / "env.cdx.json"
        result = run([sys.executable, "-m", "cyclonedx_py", "environment", "--pyproject", str(pyproject),
                      "--spec-version", SPEC, "--output-reproducible", "--output-format", "JSON",
                      "-o", str(out), sys.executable])
        if result.returncode != 0 or not out.exists():
            raise GateError(f"cyclonedx-py failed (exit {result.returncode}): {result.stderr.strip()[-500:]}")
        return json.loads(out.read_text())


def runtime_only(bom: dict[str, Any], deps: Closure) -> dict[str, Any]:
    """Keep the runtime closure's components; the graph comes from the closure (root → direct pins)."""
    refs: dict[str, str] = {}
    kept = []
    for component in bom.get("components", []):
        key = canonical(component["name"])
        package = deps.packages.get(key)
        if package and component.get("version") == package.version:
            kept.append(component)
            refs[key] = component["bom-ref"]
    missing = sorted(set(deps.packages) - set(refs))
    if missing:
        raise GateError(f"cyclonedx-py did not list these runtime packages: {', '.join(missing)}")
    root_ref = bom["metadata"]["component"]["bom-ref"]
    graph = [{"ref": root_ref, "dependsOn": sorted(refs[k] for k in deps.direct)}]
    graph += [{"ref": refs[k], "dependsOn": sorted(refs[d] for d in p.requires if d in refs)}
              for k, p in sorted(deps.packages.items())]
    return {**bom, "components": sorted(kept, key=lambda c: canonical(c["name"])), "dependencies": graph}


def validate(bom: dict[str, Any]) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.from_version(SPEC)).validate_str(json.dumps(bom))
    if error is not None:
        raise GateError(f"the SBOM does not validate against CycloneDX {SPEC}: {error}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("--requirements", type=Path, default=ROOT / "requirements.txt", help="the runtime pins")
    ap.add_argument("--root", type=Path, default=ROOT, help="the project (for its version)")
    ap.add_argument("-o", "--output", type=Path, default=BUILD_DIR / "sbom.cdx.json", help="where to write it")
    args = ap.parse_args(argv)
    try:
        deps = closure(args.requirements)  # fails fast when the environment is not what requirements.txt says
        version = project_version(args.root)
        bom = runtime_only(environment_bom(version, [str(r) for r in deps.direct.values()]), deps)
        validate(bom)
    except GateError as exc:
        return fail(NAME, str(exc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(bom, indent=2, sort_keys=True) + "\n")
    shown = args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output
    return passed(NAME, f"{shown}: collectZ {version}, {len(bom['components'])} runtime components "
                        f"({len(deps.direct)} pinned directly), CycloneDX {SPEC}")


if __name__ == "__main__":
    sys.exit(main())
