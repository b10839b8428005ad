"""Gate: the Compose files. A structural check in Python always runs: no `container_name` (parallel stacks with
`-p` must work), the web, worker, postgres and redis services always on and MinIO behind the `minio` profile,
a health check on every long-running service, named volumes declared, published ports on loopback by default,
every ${VARIABLE} documented in .env.example. Then `docker compose config -q` validates each file (with and
without the minio profile) when a Compose v2 CLI is installed; without one the gate says so and relies on the
structural check."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from tools.gates.common import ROOT, GateError, fail, parser, passed, run, say

NAME = "compose"
FILES = ("docker/compose.yml", "docker/compose.registry.yml")
ALWAYS_ON = ("web", "worker", "postgres", "redis")
PROFILED = {"minio": "minio"}
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)")
DOCUMENTED = re.compile(r"^#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def keys(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) in a YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else str(key)
            yield here, value
            yield from keys(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from keys(value, f"{path}[{index}]")


def interpolate_defaults(text: str) -> str:
    """${NAME:-default} → default, ${NAME} → empty: what a port mapping means when .env leaves NAME out."""
    return VARIABLE.sub(lambda m: (m.group(3) or "") if m.group(2) in (":-", "-") else "", text)


def check_structure(path: Path, documented: set[str]) -> list[str]:
    text = path.read_text()
    problems: list[str] = []
    if re.search(r"^\s*container_name\s*:", text, re.MULTILINE):
        problems.append("container_name is set: fixed names break parallel stacks (`docker compose -p`)")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [*problems, f"not valid YAML: {exc}"]
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        return [*problems, "no `services:` mapping"]
    problems += [f"{where}: container_name is set" for where, _ in keys(doc) if where.endswith(".container_name")]
    services: dict[str, Any] = doc["services"]
    declared = set((doc.get("volumes") or {}).keys())
    used: set[str] = set()
    for name in ALWAYS_ON:
        if name not in services:
            problems.append(f"service {name} is missing")
        elif services[name].get("profiles"):
            problems.append(f"service {name} must always run, not only under a profile")
    for name, profile in PROFILED.items():
        if profile not in (services.get(name) or {}).get("profiles", []):
            problems.append(f"service {name} must exist behind the `{profile}` profile")
    for name, service in services.items():
        one_shot = str(service.get("restart", "")).strip() == "no"
        check = service.get("healthcheck") or {}
        if not one_shot and (check.get("disable") or not check.get("test")):
            problems.append(f"service {name} has no health check")
        for volume in service.get("volumes", []):
            source = (volume.get("source") if isinstance(volume, dict) else str(volume).split(":", 1)[0]) or ""
            if source and not source.startswith((".", "/", "~", "$")):
                used.add(source)
                if source not in declared:
                    problems.append(f"service {name} uses volume {source}, which `volumes:` does not declare")
        depends = service.get("depends_on") or {}
        for target in depends if isinstance(depends, (dict, list)) else []:
            if target not in services:
                problems.append(f"service {name} depends on {target}, which does not exist")
            elif services[target].get("profiles") and not service.get("profiles"):
                problems.append(f"service {name} depends on {target}, which only runs under a profile")
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host = interpolate_defaults(str(port.get("host_ip", "")))
            else:  # [HOST_IP:][HOST_PORT:]CONTAINER_PORT; without a host address Docker binds every interface
                parts = interpolate_defaults(str(port)).rsplit(":", 2)
                host = parts[0] if len(parts) == 3 else ""
            if not host.startswith(("127.", "[::1]", "::1")):
                problems.append(f"service {name} publishes {port!r} beyond loopback by default: bind 127.0.0.1 "
                                "and let the operator widen it in .env")
    problems += [f"volume {v} is declared but no service uses it" for v in sorted(declared - used)]
    variables = {m.group(1) or m.group(4) for m in VARIABLE.finditer(text)}
    problems += [f"${{{v}}} is not documented in .env.example" for v in sorted(variables - documented)]
    return problems


def compose_cli() -> list[str] | None:
    """A Compose v2 command line: $COMPOSE_CLI, `docker compose`, or a v2 `docker-compose`."""
    candidates = [os.environ["COMPOSE_CLI"].split()] if os.environ.get("COMPOSE_CLI") else []
    if shutil.which("docker"):
        candidates.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        candidates.append(["docker-compose"])
    for cmd in candidates:
        try:
            result = run([*cmd, "version", "--short"], timeout=60)
        except GateError:
            continue
        if result.returncode == 0 and re.match(r"v?2\.", result.stdout.strip()):
            return cmd
    return None


def check_with_cli(cli: list[str], root: Path, files: Sequence[Path]) -> list[str]:
    """`config -q` on copies beside a .env made from .env.example (the files read ../.env)."""
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        env = Path(tmp) / ".env"
        env.write_text((root / ".env.example").read_text() + "\nPOSTGRES_PASSWORD=compose-config-check\n"
                       "MINIO_ROOT_PASSWORD=compose-config-check\n")
        (Path(tmp) / "docker").mkdir()
        for path in files:
            copy = Path(tmp) / "docker" / path.name
            shutil.copy(path, copy)
            for profile in ([], ["--profile", "minio"]):
                result = run([*cli, "-f", str(copy), "--env-file", str(env), *profile, "config", "-q"],
                             cwd=Path(tmp), timeout=120)
                if result.returncode != 0:
                    problems.append(f"{path.name} {' '.join(profile)}: docker compose config: "
                                    f"{(result.stderr or result.stdout).strip()}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser(NAME, __doc__ or "")
    ap.add_argument("files", nargs="*", type=Path, help=f"Compose files (default: {', '.join(FILES)})")
    ap.add_argument("--root", type=Path, default=ROOT, help="the project (for .env.example)")
    ap.add_argument("--structural-only", action="store_true", help="skip `docker compose config`")
    args = ap.parse_args(argv)
    files = args.files or [args.root / name for name in FILES]
    try:
        documented = set(DOCUMENTED.findall((args.root / ".env.example").read_text()))
    except OSError as exc:
        return fail(NAME, f".env.example cannot be read: {exc.strerror}")
    problems = []
    for path in files:
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        problems += [f"{path.name}: {p}" for p in check_structure(path, documented)]
    cli = None if args.structural_only else compose_cli()
    if cli and not problems:
        problems += check_with_cli(cli, args.root, files)
    elif not cli and not args.structural_only:
        say(NAME, "note: no Compose v2 CLI here (`docker compose version` fails): structural check only")
    if problems:
        return fail(NAME, f"{len(problems)} problem(s) in the Compose files", problems)
    how = f"structure + `{' '.join(cli)} config`" if cli else "structure"
    return passed(NAME, f"{', '.join(p.name for p in files)} ({how})")


if __name__ == "__main__":
    sys.exit(main())
