"""Key rotation for integration secrets: re-encrypt every stored secret under the current key.

Run after putting a new key first in INTEGRATION_ENCRYPTION_KEY (old keys still listed); once it reports no
failures, the old keys can be removed. A value that cannot be decrypted is left exactly as it was and named in the
report, so the admin can re-enter it (nothing is lost that was not lost already).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from collectz.extensions import db
from collectz.models.settings import AppIntegration
from collectz.security.secrets import CannotDecrypt, KeyRing, keyring
from collectz.services import audit


@dataclass
class RotationReport:
    """What a rotation did; `failed` holds "provider:field" names, never values."""

    rotated: int = 0
    already_current: int = 0
    failed: list[str] = field(default_factory=list)


def context_for(provider: str, field_name: str) -> str:
    """The associated data a secret is encrypted with: it binds the value to its provider and field."""
    return f"{provider}:{field_name}"


def rotate() -> RotationReport:
    """Re-encrypt every stored secret under the primary key, in one transaction, and record `keys.rotated`."""
    ring = keyring()
    report = RotationReport()
    # Locked rows: an admin saving a secret meanwhile waits rather than having it overwritten with an old value.
    rows = db.session.scalars(select(AppIntegration).order_by(AppIntegration.provider).with_for_update()).all()
    for row in rows:
        updated = _rotate_row(ring, row, report)
        if updated != (row.secrets_encrypted or {}):
            row.secrets_encrypted = updated  # a new dict, so the JSON column is seen as changed
    audit.record("keys.rotated", entity_type="integration_secrets", status="failed" if report.failed else "ok",
                 reason=f"{len(report.failed)} secret(s) could not be decrypted" if report.failed else None,
                 details={"key_id": ring.primary_id, "rotated": report.rotated,
                          "already_current": report.already_current, "failed": list(report.failed)})
    db.session.commit()
    return report


def _rotate_row(ring: KeyRing, row: AppIntegration, report: RotationReport) -> dict[str, str]:
    """The row's secrets re-encrypted; undecryptable values kept as they are and listed in the report."""
    updated = dict(row.secrets_encrypted or {})
    for field_name, token in sorted(updated.items()):
        context = context_for(row.provider, field_name)
        try:
            plaintext = ring.decrypt(token, context=context)
        except CannotDecrypt:
            report.failed.append(context)
            continue
        if ring.is_current(token):
            report.already_current += 1
        else:
            updated[field_name] = ring.encrypt(plaintext, context=context)
            report.rotated += 1
    return updated
