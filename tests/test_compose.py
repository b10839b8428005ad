"""Deployment files: .env.example documents every setting the app reads (and nothing else), the Compose files keep
their shape (see tools/gates/compose.py, which CI runs), the systemd units in docs/install.md are the shipped ones,
and the image runs as a non-root user with a health check."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from collectz.config import ConfigError, Settings, fields_of
from tests.conftest import PROJECT_ROOT
from tools.gates.compose import DOCUMENTED, FILES, VARIABLE, check_structure

ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
# Documented in .env.example but not Settings fields: read by Flask's CLI, services.flags and collectz.version.
OTHER_READERS = {"FLASK_APP", "FEATURE_FLAGS_READ_ONLY", "GIT_SHA"}


def settings_read() -> set[str]:
    """Every environment variable Settings.from_env reads (COLLECTZ_ENV is the ENV field)."""
    return {"COLLECTZ_ENV"} | set(fields_of(Settings)) - {"ENV", "extra", "TESTING"}


def documented() -> dict[str, str]:
    """NAME → example value, for `NAME=value` and `# NAME=value` lines of .env.example."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if DOCUMENTED.match(line):
            name, _, value = line.lstrip("#").strip().partition("=")
            found[name] = value.strip()
    return found


def compose_variables() -> set[str]:
    return {m.group(1) or m.group(4) for name in FILES for m in VARIABLE.finditer((PROJECT_ROOT / name).read_text())}


def test_env_example_documents_every_setting() -> None:
    missing = settings_read() - set(documented())
    assert not missing, f".env.example does not document {sorted(missing)} (add a commented line with the default)"


def test_env_example_names_nothing_the_app_or_compose_does_not_read() -> None:
    stale = set(documented()) - settings_read() - compose_variables() - OTHER_READERS
    assert not stale, f".env.example documents {sorted(stale)}, which nothing reads"


@pytest.mark.parametrize("name", sorted(n for n, v in documented().items() if v and n in settings_read()
                                         and n != "COLLECTZ_ENV"))
def test_env_example_values_are_accepted(name: str) -> None:
    value = documented()[name]
    try:
        Settings.from_env({"COLLECTZ_ENV": "development", name: value})
    except ConfigError as exc:
        pytest.fail(f".env.example's {name}={value} is refused: {exc}")


def test_env_example_mode_is_production() -> None:
    assert documented()["COLLECTZ_ENV"] == "production"


# -- Compose --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", FILES)
def test_compose_files_pass_the_structural_check(name: str) -> None:
    assert check_structure(PROJECT_ROOT / name, set(documented())) == []


def variant(tmp_path: Path, edit: Callable[[dict[str, Any]], Any]) -> list[str]:
    doc = yaml.safe_load((PROJECT_ROOT / "docker" / "compose.yml").read_text())
    edit(doc)
    path = tmp_path / "compose.yml"
    path.write_text(yaml.safe_dump(doc))
    return check_structure(path, set(documented()))


def test_compose_check_catches_a_missing_health_check(tmp_path: Path) -> None:
    problems = variant(tmp_path, lambda d: d["services"]["worker"].pop("healthcheck"))
    assert "service worker has no health check" in problems


def test_compose_check_catches_a_port_open_to_every_interface(tmp_path: Path) -> None:
    problems = variant(tmp_path, lambda d: d["services"]["web"].update(ports=["8000:8000"]))
    assert any("beyond loopback" in p for p in problems)


def test_compose_check_catches_minio_without_its_profile(tmp_path: Path) -> None:
    problems = variant(tmp_path, lambda d: d["services"]["minio"].pop("profiles"))
    assert "service minio must exist behind the `minio` profile" in problems


def test_compose_check_catches_an_undeclared_volume(tmp_path: Path) -> None:
    problems = variant(tmp_path, lambda d: d["volumes"].pop("redis-data"))
    assert any("redis-data, which `volumes:` does not declare" in p for p in problems)


def test_compose_check_catches_an_undocumented_variable(tmp_path: Path) -> None:
    problems = variant(tmp_path, lambda d: d["services"]["redis"].update(command=["redis-server", "${REDIS_ARGS}"]))
    assert "${REDIS_ARGS} is not documented in .env.example" in problems


def test_compose_check_catches_a_nested_container_name(tmp_path: Path) -> None:
    problems = variant(tmp_path, lambda d: d["services"]["redis"].update(container_name="redis"))
    assert any("container_name" in p for p in problems)


# -- bare metal and the image ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", ["collectz-web.service", "collectz-worker.service"])
def test_install_guide_shows_the_shipped_systemd_units(unit: str) -> None:
    shipped = (PROJECT_ROOT / "docker" / "systemd" / unit).read_text().splitlines()
    while shipped and shipped[0].startswith("#"):
        shipped.pop(0)
    guide = (PROJECT_ROOT / "docs" / "install.md").read_text()
    blocks = [textwrap.dedent(b) for b in re.findall(r"```ini\n(.*?)```", guide, re.S)]
    assert "\n".join(shipped).strip() in [b.strip() for b in blocks], f"docs/install.md's {unit} differs"
    assert f"docker/systemd/{unit}" in guide


def test_units_run_gunicorn_and_the_worker_unprivileged() -> None:
    web = (PROJECT_ROOT / "docker" / "systemd" / "collectz-web.service").read_text()
    worker = (PROJECT_ROOT / "docker" / "systemd" / "collectz-worker.service").read_text()
    assert re.search(r"^ExecStart=\S+/gunicorn .*-b 127\.0\.0\.1:\d+ wsgi:app$", web, re.M)
    assert re.search(r"^ExecStart=\S+/python worker\.py$", worker, re.M)
    for unit in (web, worker):
        assert "User=collectz" in unit and "NoNewPrivileges=true" in unit and "ProtectSystem=strict" in unit


def test_image_is_slim_non_root_with_a_health_check() -> None:
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:[\d.]+-slim", dockerfile, re.M)
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", dockerfile, re.M)
    assert re.search(r'^CMD \["gunicorn"', dockerfile, re.M)
    compose = yaml.safe_load((PROJECT_ROOT / "docker" / "compose.yml").read_text())
    assert compose["services"]["worker"]["command"] == ["python", "worker.py"]


def test_image_build_context_is_only_what_the_image_copies() -> None:
    ignore = (PROJECT_ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in ignore if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "start from nothing, then allow what the Dockerfile copies"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    dockerfile = (PROJECT_ROOT / "docker" / "Dockerfile").read_text()
    copied = {part.rstrip("/") for line in re.findall(r"^COPY (.+)$", dockerfile, re.M) for part in line.split()[:-1]}
    assert copied == allowed
