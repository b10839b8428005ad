"""Release gates: each module is one check that exits non-zero when it fails.

Run them all with `make check` (or `python -m tools.gates`), one with `python -m tools.gates.<name> --help`:

- lint: ruff over the project
- sast: bandit over the shipped code, with reviewed skips (bandit.toml)
- secretscan: known key formats and high-entropy secrets in the tree, with an allow-list (secretscan.toml)
- audit: pip-audit of the runtime dependencies, with reviewed, expiring acceptances (pip-audit.toml)
- sbom: a CycloneDX JSON SBOM of the runtime dependencies, written to build/
- parity: collectz.__version__ equals the latest docs/releases/vX.Y.Z.md
- compose: the Compose files (structure, no container_name, `docker compose config` when available)
- rehearsal: every schema revision, seeded, upgraded to head, checked, downgraded and upgraded again
"""
