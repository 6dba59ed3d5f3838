"""`flask users`: who can sign in, with which role."""

from __future__ import annotations

from typing import Any

import click
from flask.cli import with_appcontext

from webapp.cli.output import (
    echo_json,
    errors_text,
    table,
    when,
)
from webapp.services import users as user_service
from webapp.services.users import change_password, create_user, find_user


@click.group("users")
def users_group() -> None:
    """Manage who can sign in."""


def _user(email: str) -> Any:
    user = find_user(email)
    if user is None:
        raise click.ClickException(f"no user has the email {email.strip().lower()}")
    return user


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
@with_appcontext
def list_users_command(as_json: bool) -> None:
    """List the users: email, role, created, last sign-in, disabled.

    \b
    Example:
      flask users list --json
    """
    rows = user_service.list_users()
    if as_json:
        echo_json(
            [
                {
                    "email": row.user.email,
                    "role": row.user.role,
                    "created_at": row.user.created_at.isoformat(),
                    "last_sign_in_at": (
                        row.user.last_sign_in_at.isoformat() if row.user.last_sign_in_at else None
                    ),
                    "disabled": row.user.disabled,
                    "conversations": row.conversation_count,
                }
                for row in rows
            ]
        )
        return
    if not rows:
        click.echo("no users")
        return
    click.echo(
        table(
            ["EMAIL", "ROLE", "CREATED", "LAST SIGN-IN", "DISABLED"],
            [
                [
                    row.user.email,
                    row.user.role,
                    when(row.user.created_at),
                    when(row.user.last_sign_in_at),
                    "yes" if row.user.disabled else "no",
                ]
                for row in rows
            ],
        )
    )


@users_group.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the user an admin (default: member).")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def create_user_command(email: str, admin: bool, password: str) -> None:
    """Create a user who signs in with EMAIL.

    \b
    Example:
      flask users create --admin you@example.com
    """
    user, errors = create_user(email, password, role="admin" if admin else "member")
    if user is None:
        raise click.ClickException(errors_text(errors))
    click.echo(f"created {user.role} {user.email}")


@users_group.command("set-password")
@click.argument("email")
@click.password_option(help="Prompted for when not given.")
@with_appcontext
def set_password_command(email: str, password: str) -> None:
    """Give EMAIL a new password; signs that user out everywhere.

    \b
    Example:
      flask users set-password you@example.com
    """
    user = _user(email)
    errors = change_password(user, password)
    if errors:
        raise click.ClickException(errors_text(errors))
    click.echo(f"new password set for {user.email}; their sessions are ended")


def _guarded(change: Any, email: str) -> Any:
    try:
        return change(_user(email).id)
    except user_service.LastAdminError as error:
        raise click.ClickException(f"{error}; nothing was changed") from error
    except user_service.UserGone as error:
        raise click.ClickException(f"{email} was deleted meanwhile") from error


@users_group.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["admin", "member"]))
@with_appcontext
def set_role_command(email: str, role: str) -> None:
    """Make EMAIL an admin or a member (the last active admin stays an admin).

    \b
    Example:
      flask users set-role colleague@example.com admin
    """
    user = _guarded(lambda user_id: user_service.set_role(user_id, role), email)
    click.echo(f"{user.email} is now {user.role}")


@users_group.command("disable")
@click.argument("email")
@with_appcontext
def disable_user_command(email: str) -> None:
    """Stop EMAIL signing in; ends all of that user's sessions at once.

    \b
    Example:
      flask users disable leaver@example.com
    """
    user = _guarded(lambda user_id: user_service.set_disabled(user_id, True), email)
    click.echo(f"disabled {user.email}; their sessions are ended")


@users_group.command("enable")
@click.argument("email")
@with_appcontext
def enable_user_command(email: str) -> None:
    """Let a disabled EMAIL sign in again.

    \b
    Example:
      flask users enable returner@example.com
    """
    user = _guarded(lambda user_id: user_service.set_disabled(user_id, False), email)
    click.echo(f"enabled {user.email}")


@users_group.command("reset-password")
@click.argument("email")
@click.option("--generate", is_flag=True, help="Generate a password and print it once (no prompt).")
@with_appcontext
def reset_password_command(email: str, generate: bool) -> None:
    """Give EMAIL a new password (prompted for, or generated); ends that user's sessions.

    \b
    Example:
      flask users reset-password --generate colleague@example.com
    """
    user = _user(email)
    if generate:
        password = user_service.generate_password()
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    errors = change_password(user, password)
    if errors:
        raise click.ClickException(errors_text(errors))
    if generate:
        click.echo(f"new password for {user.email} (shown once): {password}")
    click.echo(f"their sessions are ended; {user.email} signs in with the new password")
