"""flask commands: invitations and maintenance (more arrive with their issues)."""

from __future__ import annotations

import click
from flask import Flask, url_for
from sqlalchemy import select

from collectz.extensions import db
from collectz.models import User


def init_app(app: Flask) -> None:
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
            raise click.ClickException("No admin account: register the first account in the browser first.")
        _invite, token = invites.create_invite(admin, email, role)
        with app.test_request_context():
            path = url_for("auth.register", invite=token)
        public = app.config["COLLECTZ"].PUBLIC_URL.rstrip("/")
        if not public:
            click.echo("PUBLIC_URL is not set: put this instance's address in front of the path.", err=True)
        click.echo(f"{public}{path}")

    @app.cli.group("maintenance")
    def maintenance_group() -> None:
        """Maintenance tasks (the worker also runs them on a schedule)."""

    @maintenance_group.command("cleanup-sessions")
    def cleanup_sessions() -> None:
        """Delete expired login sessions now."""
        from collectz.services.sessions import cleanup_expired

        click.echo(f"removed {cleanup_expired()} expired sessions")
