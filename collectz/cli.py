"""flask commands: accounts (break-glass), sessions, invitations, maintenance, imports, integration keys, backups.

Account commands act as nobody: their activity events have no actor and `details.via = "cli"`. Whoever can run
them can read the database anyway; they exist for when no admin can sign in.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask, url_for
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import User
from collectz.models.user import ROLES
from collectz.services.errors import DomainError


def _public_link(app: Flask, endpoint: str, **values: Any) -> str:
    """PUBLIC_URL + the path; without PUBLIC_URL the bare path, with a warning on stderr."""
    with app.test_request_context():
        path = url_for(endpoint, **values)
    public = app.config["COLLECTZ"].PUBLIC_URL.rstrip("/")
    if not public:
        click.echo("PUBLIC_URL is not set: put this instance's address in front of the path.", err=True)
    return f"{public}{path}"


def _fail(exc: DomainError) -> click.ClickException:
    """A domain error as a one-line command error (exit status 1)."""
    message = "; ".join(exc.fields.values()) if exc.fields else exc.message
    return click.ClickException(message)


def _account(email: str) -> User:
    from collectz.services import users

    try:
        return users.find_by_email(email)
    except DomainError as exc:
        raise _fail(exc) from None


def init_app(app: Flask) -> None:
    @app.cli.group("users")
    def users_group() -> None:
        """Accounts: list them, create an admin, change a role, make a password reset link."""

    @users_group.command("list")
    def users_list() -> None:
        """Every account: email, name, role, last login (UTC)."""
        from collectz.services import users

        accounts = users.list_accounts()
        if not accounts:
            click.echo("No accounts yet: create one with `flask users create-admin EMAIL`.")
            return
        rows = [("EMAIL", "NAME", "ROLE", "LAST LOGIN")] + [
            (u.email, u.name, u.role + (" (must reset)" if u.must_reset else ""),
             u.last_login_at.strftime("%Y-%m-%d %H:%M") if u.last_login_at else "never")
            for u in accounts
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])

    @users_group.command("create-admin")
    @click.argument("email")
    @click.option("--name", help="Display name (default: the part of EMAIL before the @).")
    @click.option("--password-stdin", is_flag=True,
                  help="Read the password from the first line of standard input instead of prompting.")
    def users_create_admin(email: str, name: str | None, password_stdin: bool) -> None:
        """Create an admin account; refuses an email that already has one (see set-role and reset-password)."""
        from collectz.services import users

        existing = db.session.scalar(select(User).where(User.email == users.normalise_email(email)))
        if existing is not None:
            raise click.ClickException(
                f"An account with the email {existing.email} already exists (role: {existing.role}). "
                f"To make it an admin: flask users set-role {existing.email} admin. "
                f"To give it a new password: flask users reset-password {existing.email}.")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        try:
            user = users.create_admin(email, name or email.split("@")[0], password, via="cli")
        except DomainError as exc:
            raise _fail(exc) from None
        click.echo(f"Created admin {user.email}.")

    @users_group.command("set-role")
    @click.argument("email")
    @click.argument("role", type=click.Choice(ROLES))
    def users_set_role(email: str, role: str) -> None:
        """Change an account's role; the last admin cannot be demoted."""
        from collectz.services import users

        user = _account(email)
        try:
            changed = users.set_role(None, user, role, via="cli")
        except DomainError as exc:
            raise _fail(exc) from None
        click.echo(f"{user.email} is now {role}." if changed else f"{user.email} is already {role}.")

    @users_group.command("reset-password")
    @click.argument("email")
    def users_reset_password(email: str) -> None:
        """Print a one-time password reset link for an account (older links stop working)."""
        from collectz.services import resets

        user = _account(email)
        reset, token = resets.create_link(None, user, via="cli")
        click.echo(_public_link(app, "auth.reset", token=token))
        click.echo(f"Works once, until {reset.expires_at:%Y-%m-%d %H:%M} UTC. It is not shown again.", err=True)

    @app.cli.group("sessions")
    def sessions_group() -> None:
        """Login sessions."""

    @sessions_group.command("revoke")
    @click.argument("email")
    def sessions_revoke(email: str) -> None:
        """Sign an account out everywhere; prints how many sessions ended."""
        from collectz.services import users

        user = _account(email)
        count = users.revoke_all_sessions(None, user, via="cli")
        click.echo(f"Revoked {count} session{'' if count == 1 else 's'} of {user.email}.")

    @app.cli.group("invites")
    def invites_group() -> None:
        """Invitations."""

    @invites_group.command("create")
    @click.argument("email")
    @click.option("--role", type=click.Choice(["user", "viewer"]), default="user")
    @click.option("--by", "by_email", help="Email of the admin creating it (default: the first admin).")
    def invites_create(email: str, role: str, by_email: str | None) -> None:
        """Create an invitation and print its link (shown once)."""
        from collectz.services import invites

        query = select(User).where(User.role == "admin")
        if by_email:
            query = query.where(User.email == by_email.strip().lower())
        admin = db.session.scalars(query.order_by(User.id)).first()
        if admin is None:
            raise click.ClickException("No admin account: register the first account in the browser, "
                                       "or create one with `flask users create-admin EMAIL`.")
        try:
            _invite, token = invites.create_invite(admin, email, role)
        except DomainError as exc:
            raise _fail(exc) from None
        click.echo(_public_link(app, "auth.register", invite=token))

    @app.cli.group("maintenance")
    def maintenance_group() -> None:
        """Maintenance tasks (the worker also runs them on a schedule)."""

    @maintenance_group.command("cleanup-sessions")
    def cleanup_sessions() -> None:
        """Delete expired login sessions now."""
        from collectz.services.sessions import cleanup_expired

        click.echo(f"removed {cleanup_expired()} expired sessions")

    @maintenance_group.command("sweep-imports")
    def sweep_imports() -> None:
        """Re-enqueue the steps of imports that have shown no sign of life (the worker does this on a schedule)."""
        from collectz.jobs.imports import sweep_imports as sweep

        click.echo(f"revived {sweep()} stalled imports")

    @app.cli.group("keys")
    def keys_group() -> None:
        """Keys that encrypt integration secrets (INTEGRATION_ENCRYPTION_KEY)."""

    @keys_group.command("generate")
    def keys_generate() -> None:
        """Print a new random key entry for INTEGRATION_ENCRYPTION_KEY (put it first, keep the old ones after it)."""
        from collectz.security.secrets import generate_key

        click.echo(generate_key())

    @keys_group.command("rotate")
    def keys_rotate() -> None:
        """Re-encrypt every stored integration secret under the first key; exits 1 if any cannot be decrypted."""
        from collectz.config import ConfigError
        from collectz.services import keys

        try:
            report = keys.rotate()
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"Re-encrypted {report.rotated} secret{'' if report.rotated == 1 else 's'}; "
                   f"{report.already_current} already under the current key.")
        if report.failed:
            click.echo(f"{len(report.failed)} could not be decrypted with any key in INTEGRATION_ENCRYPTION_KEY "
                       f"and were left unchanged: {', '.join(report.failed)}. Add the key they were saved with, "
                       "or enter them again in Admin → Integrations.", err=True)
            sys.exit(1)

    @app.cli.command("import")
    @click.argument("kind", type=click.Choice(["csv", "delicious"]))
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--owner", "owner_email", required=True, help="Email of the member the items are imported for.")
    @click.option("--dry-run", is_flag=True, help="Read and check every row and say what would happen; write nothing.")
    @click.option("--default-type", default="other", show_default=True,
                  help="Media type for CSV rows without one.")
    def import_command(kind: str, path: Path, owner_email: str, dry_run: bool, default_type: str) -> None:
        """Import a CSV or Delicious Library file with the same importer the web page uses; waits for it and prints a
        JSON summary. Exits 1 when the import fails."""
        owner = _account(owner_email)
        try:
            result = _run_import(kind, path, owner, dry_run, default_type)
        except DomainError as exc:
            raise _fail(exc) from None
        click.echo(json.dumps(result, indent=2))
        if result["status"] == "failed":
            sys.exit(1)

    @app.cli.group("backup")
    def backup_group() -> None:
        """Backups: one archive with every table and every stored file; restore into an empty instance."""

    @backup_group.command("create")
    @click.argument("target")
    def backup_create(target: str) -> None:
        """Write a backup archive to TARGET: a new file, or a folder (existing, or ending in /) to put
        collectz-backup-<time>.tar in."""
        from collectz.services import audit, backup

        path = Path(target)
        if target.endswith(("/", os.sep)) or path.is_dir():
            path = path / backup.download_name(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if path.exists():
            raise click.ClickException(f"{path} already exists: choose a new file name (nothing was overwritten).")
        try:
            summary = backup.create_backup(path)
        except backup.BackupError as exc:
            audit.record_failure("backup.create_failed", reason=exc.message[:255], details={"via": "cli"})
            raise click.ClickException(exc.message) from None
        m = summary.manifest
        audit.record("backup.created", entity_type="backup", details={
            "via": "cli", "file": path.name, "bytes": summary.size, "rows": m.rows, "objects": len(m.objects)},
            commit=True)
        click.echo(f"Wrote {path} ({summary.size / 1048576:.1f} MiB in {summary.seconds:.1f} s): {m.rows} rows in "
                   f"{len(m.tables)} tables and {len(m.objects)} stored files, schema revision {m.schema_revision}.")

    @backup_group.command("verify")
    @click.argument("path", type=click.Path(path_type=Path))
    def backup_verify(path: Path) -> None:
        """Check a backup archive (manifest, every checksum, schema revision) without changing anything."""
        from collectz.services import backup

        try:
            m = backup.verify_backup(path)
        except backup.BackupError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"{path.name} is intact: {m.rows} rows in {len(m.tables)} tables and {len(m.objects)} stored "
                   f"files, made {m.created_at} by collectZ {m.app_version} on {m.source_dialect}, schema revision "
                   f"{m.schema_revision}.")

    @backup_group.command("restore")
    @click.argument("path", type=click.Path(path_type=Path))
    def backup_restore(path: Path) -> None:
        """Restore a backup into this instance, which must be empty (a new database and file store); verifies every
        checksum first and upgrades the schema to this release's afterwards. Stop the web and worker first."""
        from collectz.services import backup

        try:
            summary = backup.restore_backup(path)
        except backup.BackupError as exc:
            raise click.ClickException(exc.message) from None
        m = summary.manifest
        upgraded = f"; schema upgraded to {summary.upgraded_to}" if summary.upgraded_to else ""
        click.echo(f"Restored {m.rows} rows in {len(m.tables)} tables and {len(m.objects)} stored files from "
                   f"{path.name} (made {m.created_at} on {m.source_dialect}, schema revision {m.schema_revision})"
                   f"{upgraded} in {summary.seconds:.1f} s.")

    @app.cli.group("storage")
    def storage_group() -> None:
        """The file store of covers and proof photos (local disk or S3)."""

    @storage_group.command("check")
    @click.option("--delete-orphans", is_flag=True,
                  help="Delete the stored files no item points at (each checked against the database again first).")
    def storage_check(delete_orphans: bool) -> None:
        """Compare the file store with the database: files no item points at (orphans) and items pointing at files
        that are not there (missing). Exits 1 when it finds either."""
        from collectz.services import covers
        from collectz.services.storage import StorageError

        try:
            report = covers.check_storage(delete_orphans=delete_orphans)
        except StorageError as exc:
            raise click.ClickException(exc.message) from None
        click.echo(f"Checked {report.objects} stored files and {report.recorded} recorded keys "
                   f"(file store: {report.backend}).")
        if report.orphans:
            click.echo(f"{len(report.orphans)} orphan(s): stored, but no item points at them"
                       + (f"; {len(report.deleted)} deleted:" if delete_orphans else
                          " (delete them with --delete-orphans):"))
            for key in report.orphans:
                click.echo(f"  {key}" + (" (deleted)" if key in report.deleted else ""))
        if report.missing:
            click.echo(f"{len(report.missing)} missing: an item points at a file the store does not have "
                       "(upload the image again, or restore the file from a backup):")
            for media_id, column, key in report.missing:
                click.echo(f"  item {media_id} {column}: {key}")
        if report.clean:
            click.echo("Everything matches.")
        else:
            sys.exit(1)


def _run_import(kind: str, path: Path, owner: User, dry_run: bool, default_type: str) -> dict[str, Any]:
    from collectz.importers import SourceError
    from collectz.services import imports

    options: dict[str, Any] = {"default_type": default_type}
    try:
        if kind == "csv":
            from collectz.importers import csv_generic

            options["mapping"] = csv_generic.auto_mapping(csv_generic.inspect(path).columns)
            records = csv_generic.iter_records(path, options["mapping"])
        else:
            from collectz.importers import delicious

            records = delicious.iter_records(path)
        if dry_run:
            return _dry_run_summary(imports.dry_run(owner, kind, records, options, keep=0))
    except SourceError as exc:
        return {"job_id": None, "status": "failed", "total": 0, "created": 0, "updated": 0, "skipped": 0,
                "failed": 0, "error": str(exc)}
    upload = imports.save_upload_from_path(owner, kind, path)
    job, _new = imports.start_import(owner, upload, options)
    job = imports.run_inline(job.id)
    return imports.summary(job).as_dict()


def _dry_run_summary(rows: list[Any]) -> dict[str, Any]:
    counts = {name: 0 for name in ("created", "updated", "skipped", "failed")}
    for row in rows:
        counts[row.outcome] += 1
    failures = [{"line": r.line, "message": r.message} for r in rows if r.outcome == "failed"]
    return {"job_id": None, "status": "dry-run", "total": len(rows), **counts, "error": None,
            "failures": failures[:100]}
