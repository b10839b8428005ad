"""The runtime dependency closure: requirements.txt's pins plus everything they pull in, as installed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

from tools.gates.common import GateError


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Package:
    name: str
    version: str
    requires: set[str] = field(default_factory=set)


@dataclass
class Closure:
    direct: dict[str, Requirement]
    packages: dict[str, Package]

    def pinned(self) -> str:
        """The closure as a requirements file, every line pinned (what pip-audit audits)."""
        return "".join(f"{p.name}=={p.version}\n" for _, p in sorted(self.packages.items()))


def read_requirements(path: Path) -> dict[str, Requirement]:
    reqs: dict[str, Requirement] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise GateError(f"{path}:{number}: options ({line.split()[0]}) are not expected in {path.name}")
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            raise GateError(f"{path}:{number}: {exc}") from None
        reqs[canonical(req.name)] = req
    return reqs


def closure(requirements: Path) -> Closure:
    """Walk the installed distributions from the pinned requirements; a pin the environment does not have
    (missing or another version) is a GateError: the SBOM and the audit would describe something else."""
    direct = read_requirements(requirements)
    drift = []
    for req in direct.values():
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if len(pins) != 1:
            raise GateError(f"{requirements.name}: {req} must be pinned with ==")
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            drift.append(f"{req.name}=={pins[0]} is not installed")
            continue
        if canonical(installed) != canonical(pins[0]):
            drift.append(f"{req.name}: {requirements.name} pins {pins[0]}, the environment has {installed}")
    if drift:
        raise GateError("the environment does not match " + requirements.name + " (run `make install-dev`): "
                        + "; ".join(drift))
    packages: dict[str, Package] = {}
    todo: list[tuple[str, frozenset[str]]] = [(key, frozenset(req.extras)) for key, req in direct.items()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        key, extras = todo.pop()
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        try:
            dist = metadata.distribution(key)
        except metadata.PackageNotFoundError:
            raise GateError(f"{key} is required at run time but not installed (run `make install-dev`)") from None
        package = packages.setdefault(key, Package(dist.metadata["Name"], dist.version))
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(
                    req.marker.evaluate({**default_environment(), "extra": extra}) for extra in (extras or {""})):
                continue
            dep = canonical(req.name)
            package.requires.add(dep)
            todo.append((dep, frozenset(req.extras)))
    return Closure(direct, packages)
