"""Every release gate fails when its check fails: each runs as CI runs it (`python -m tools.gates.NAME`) against a
deliberately broken copy or fixture and must exit non-zero, and against a good one and must pass.

The gates over the real tree run in `make check` (called by .ci/run); here only parity and, as the control for the
lossy revision, the rehearsal of the newest revision run on it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT
from tools.gates.__main__ import GATES
from tools.gates.rehearsal import chain


def gate(name: str, *args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run one gate the way `make check` does."""
    return subprocess.run([sys.executable, "-m", f"tools.gates.{name}", *map(str, args)], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def output(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


# -- wiring ------------------------------------------------------------------------------------------------------

def test_ci_runs_every_gate() -> None:
    ci = [line.strip() for line in (PROJECT_ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make check" in ci and ci.index("make check") < ci.index("make test")
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert re.search(r"^check: install-dev\n\t\$\(BIN\)/python -m tools\.gates \$\(CHECK_ARGS\)$", makefile, re.M)
    modules = {p.stem for p in (PROJECT_ROOT / "tools" / "gates").glob("*.py")
               if re.search(r"^NAME = ", p.read_text(), re.M)}
    assert modules == set(GATES), "every gate module must be in tools.gates.__main__.GATES (and nothing else)"


@pytest.mark.parametrize("name", GATES)
def test_every_gate_explains_itself(name: str) -> None:
    result = gate(name, "--help")
    assert result.returncode == 0 and "usage: python -m tools.gates." in result.stdout


# -- lint -----------------------------------------------------------------------------------------------------------

def test_lint_fails_on_a_ruff_error(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import os\n")
    result = gate("lint", "--root", tmp_path, "bad.py")
    assert result.returncode == 1 and "F401" in output(result)
    (tmp_path / "bad.py").write_text("VALUE = 1\n")
    assert gate("lint", "--root", tmp_path, "bad.py").returncode == 0


# -- sast (bandit) -------------------------------------------------------------------------------------------------

RISKY = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"


def test_sast_fails_on_an_unreviewed_finding(tmp_path: Path) -> None:
    (tmp_path / "risky.py").write_text(RISKY)
    result = gate("sast", "--root", tmp_path, "risky.py")
    assert result.returncode == 1
    assert "risky.py:5: B602" in output(result)


def test_sast_passes_a_reviewed_finding_but_not_one_more(tmp_path: Path) -> None:
    config = tmp_path / "bandit.toml"
    config.write_text(textwrap.dedent("""\
        [[skip]]
        test = "B404"
        reason = "The import alone is not the finding here."

        [[accept]]
        test = "B602"
        path = "risky.py"
        max = 1
        reason = "The command is a constant of this test."
    """))
    (tmp_path / "risky.py").write_text(RISKY)
    assert gate("sast", "--root", tmp_path, "--config", config, "risky.py").returncode == 0
    (tmp_path / "risky.py").write_text(RISKY + "\n\ndef again(cmd):\n    return subprocess.call(cmd, shell=True)\n")
    result = gate("sast", "--root", tmp_path, "--config", config, "risky.py")
    assert result.returncode == 1 and "2 found, 1 reviewed" in output(result)


def test_sast_refuses_a_skip_without_a_reason(tmp_path: Path) -> None:
    config = tmp_path / "bandit.toml"
    config.write_text('[[skip]]\ntest = "B602"\n')
    (tmp_path / "fine.py").write_text("VALUE = 1\n")
    result = gate("sast", "--root", tmp_path, "--config", config, "fine.py")
    assert result.returncode == 1 and "lacks reason" in output(result)


# -- secretscan -------------------------------------------------------------------------------------------------------

def fake_aws_key() -> str:
    """AWS's documented example key id, assembled here so that this file holds no key-shaped string."""
    return "AKIA" + "IOSFODNN7" + "EXAMPLE"


def test_secretscan_fails_on_a_key_in_the_tree_and_masks_it(tmp_path: Path) -> None:
    (tmp_path / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{fake_aws_key()}"\n')
    generated = base64.urlsafe_b64encode(hashlib.sha256(b"rehearsal").digest()).decode().rstrip("=")
    (tmp_path / "deploy.env").write_text(f"SECRET_KEY={generated}\n")
    (tmp_path / "id_ed25519").write_text("-----BEGIN OPENSSH " + "PRIVATE KEY-----\nAAAA\n")
    config = tmp_path / "allow.toml"
    config.write_text("")
    result = gate("secretscan", "--root", tmp_path, "--config", config)
    text = output(result)
    assert result.returncode == 1
    assert "settings.py:1: aws-access-key-id" in text
    assert "deploy.env:1: high-entropy-assignment" in text
    assert "id_ed25519:1: private-key" in text
    assert fake_aws_key() not in text, "a finding is shown masked, never in full"


def test_secretscan_allows_a_reviewed_test_value_by_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "fake.py").write_text(f'KEY = "{fake_aws_key()}"\n')
    config = tmp_path / "allow.toml"
    config.write_text("")
    fingerprint = re.search(r"fingerprint ([0-9a-f]{16})", output(gate("secretscan", "--root", tmp_path,
                                                                        "--config", config))).group(1)
    config.write_text(f'[[allow]]\npath = "fake.py"\nfingerprint = "{fingerprint}"\nreason = "a test fake"\n')
    assert gate("secretscan", "--root", tmp_path, "--config", config).returncode == 0
    (tmp_path / "fake.py").write_text(f'KEY = "{fake_aws_key()[:-1]}Z"\n')  # another value: looked at again
    assert gate("secretscan", "--root", tmp_path, "--config", config).returncode == 1


# -- audit (pip-audit) ------------------------------------------------------------------------------------------

VULNERABLE = {"dependencies": [
    {"name": "flask", "version": "3.1.3", "vulns": []},
    {"name": "werkzeug", "version": "0.1", "vulns": [
        {"id": "PYSEC-0000-1", "aliases": ["CVE-0000-1"], "fix_versions": ["3.0.0"], "description": "test"}]},
], "fixes": []}
UNREACHABLE = {"dependencies": [
    {"name": "flask", "skip_reason": "Dependency not found on PyPI and could not be audited: flask (3.1.3)"},
    {"name": "werkzeug", "skip_reason": "Dependency not found on PyPI and could not be audited: werkzeug (3.1.9)"},
], "fixes": []}


def write(path: Path, data: dict | str) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_audit_fails_on_an_unaccepted_vulnerability(tmp_path: Path) -> None:
    report = write(tmp_path / "report.json", VULNERABLE)
    config = write(tmp_path / "pip-audit.toml", "")
    result = gate("audit", "--config", config, "--report", report)
    assert result.returncode == 1 and "werkzeug 0.1: PYSEC-0000-1" in output(result)
    write(config, textwrap.dedent("""\
        [[accept]]
        id = "CVE-0000-1"
        package = "Werkzeug"
        owner = "test"
        expires = 2999-01-01
        reason = "Not reachable in this test."
    """))
    assert gate("audit", "--config", config, "--report", report).returncode == 0


def test_audit_fails_on_an_expired_acceptance(tmp_path: Path) -> None:
    report = write(tmp_path / "report.json", VULNERABLE)
    config = write(tmp_path / "pip-audit.toml", textwrap.dedent("""\
        [[accept]]
        id = "PYSEC-0000-1"
        package = "werkzeug"
        owner = "someone"
        expires = 2026-03-01
        reason = "Was not reachable."
    """))
    assert gate("audit", "--config", config, "--report", report, env={"GATES_TODAY": "2026-03-01"}).returncode == 0
    result = gate("audit", "--config", config, "--report", report, env={"GATES_TODAY": "2026-03-02"})
    assert result.returncode == 1 and "expired on 2026-03-01" in output(result)


def test_audit_refuses_an_acceptance_without_owner(tmp_path: Path) -> None:
    config = write(tmp_path / "pip-audit.toml",
                   '[[accept]]\nid = "X"\npackage = "y"\nexpires = 2999-01-01\nreason = "r"\n')
    result = gate("audit", "--config", config, "--report", write(tmp_path / "r.json", {"dependencies": []}))
    assert result.returncode == 1 and "lacks owner" in output(result)


def test_audit_fails_loudly_when_nothing_could_be_audited(tmp_path: Path) -> None:
    report = write(tmp_path / "report.json", UNREACHABLE)
    config = write(tmp_path / "pip-audit.toml", "")
    result = gate("audit", "--config", config, "--report", report)
    assert result.returncode == 1 and "Nothing was audited" in output(result)
    # Only an owned, unexpired waiver lets it pass, and then it says so in a banner.
    write(config, '[unreachable]\nowner = "test"\nexpires = 2999-01-01\nreason = "No route from this test."\n')
    result = gate("audit", "--config", config, "--report", report)
    assert result.returncode == 0 and "DEPENDENCY AUDIT NOT DONE" in result.stderr
    write(config, '[unreachable]\nowner = "test"\nexpires = 2020-01-01\nreason = "No route from this test."\n')
    assert gate("audit", "--config", config, "--report", report).returncode == 1


def test_audit_fails_when_pip_audit_cannot_reach_its_database(tmp_path: Path) -> None:
    """The real tool, pointed at a proxy that refuses connections: the gate fails instead of passing silently."""
    config = write(tmp_path / "pip-audit.toml", "")
    proxy = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env = {"HTTPS_PROXY": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "http_proxy": proxy,
           "NO_PROXY": "", "no_proxy": "", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = gate("audit", "--config", config, env=env)
    assert result.returncode == 1, output(result)
    assert "could not reach" in output(result) or "Nothing was audited" in output(result)


# -- sbom ---------------------------------------------------------------------------------------------------------

def test_sbom_fails_when_the_environment_differs_from_the_pins(tmp_path: Path) -> None:
    requirements = write(tmp_path / "requirements.txt", "Flask==0.0.1\n")
    result = gate("sbom", "--requirements", requirements, "-o", tmp_path / "sbom.json")
    assert result.returncode == 1 and "pins 0.0.1" in output(result)
    assert not (tmp_path / "sbom.json").exists()


# -- parity -------------------------------------------------------------------------------------------------------

def release_tree(tmp_path: Path, version: str, notes: dict[str, str]) -> Path:
    (tmp_path / "collectz").mkdir()
    (tmp_path / "collectz" / "version.py").write_text(f'__version__ = "{version}"\n')
    (tmp_path / "docs" / "releases").mkdir(parents=True)
    for name, text in notes.items():
        (tmp_path / "docs" / "releases" / name).write_text(text)
    return tmp_path


def test_parity_fails_on_a_version_mismatch(tmp_path: Path) -> None:
    root = release_tree(tmp_path, "0.10.0", {"v0.9.0.md": "# collectZ 0.9.0\n", "v0.2.0.md": "# collectZ 0.2.0\n"})
    result = gate("parity", "--root", root)
    assert result.returncode == 1 and "v0.9.0.md" in output(result)
    (root / "docs" / "releases" / "v0.10.0.md").write_text("# collectZ 0.10.0\n")  # 0.10 sorts after 0.9
    assert gate("parity", "--root", root).returncode == 0


def test_parity_fails_on_release_notes_naming_another_version(tmp_path: Path) -> None:
    root = release_tree(tmp_path, "1.0.0", {"v1.0.0.md": "# collectZ 1.0.1\n"})
    result = gate("parity", "--root", root)
    assert result.returncode == 1 and "heading naming 1.0.0" in output(result)


def test_parity_passes_on_the_project() -> None:
    result = gate("parity")
    assert result.returncode == 0, output(result)


# -- compose ------------------------------------------------------------------------------------------------------

def test_compose_fails_on_container_name(tmp_path: Path) -> None:
    shutil.copy(PROJECT_ROOT / ".env.example", tmp_path / ".env.example")
    text = (PROJECT_ROOT / "docker" / "compose.yml").read_text()
    broken = tmp_path / "compose.yml"
    broken.write_text(text.replace("  web:\n", "  web:\n    container_name: collectz-web\n", 1))
    result = gate("compose", "--root", tmp_path, broken)
    assert result.returncode == 1 and "container_name" in output(result)
    good = tmp_path / "good.yml"
    good.write_text(text)
    assert gate("compose", "--root", tmp_path, "--structural-only", good).returncode == 0


# -- rehearsal ----------------------------------------------------------------------------------------------------

LOSSY = '''\
"""a revision that loses data

Revision ID: 9999lossy
Revises: {head}
"""

from alembic import op

revision = "9999lossy"
down_revision = "{head}"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("DELETE FROM media_genres")


def downgrade():
    pass
'''


def test_rehearsal_fails_on_a_migration_that_loses_rows(tmp_path: Path) -> None:
    head = chain(PROJECT_ROOT / "migrations")[-1]
    migrations = tmp_path / "migrations"
    shutil.copytree(PROJECT_ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    (migrations / "versions" / "9999_lossy.py").write_text(LOSSY.format(head=head))
    result = gate("rehearsal", "--sqlite-only", "--migrations", migrations, "--from", head)
    assert result.returncode == 1
    assert f"sqlite: {head} → head: media_genres row" in output(result) and "is gone" in output(result)


def test_rehearsal_passes_the_newest_revision() -> None:
    head = chain(PROJECT_ROOT / "migrations")[-1]
    result = gate("rehearsal", "--sqlite-only", "--from", head)
    assert result.returncode == 0, output(result)
