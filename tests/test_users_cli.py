"""`flask users …`: list, set-role, disable, enable, reset-password, with the same rules as
the Users page."""

from __future__ import annotations

import json
import re

from flask.testing import FlaskCliRunner

from tests.support.users import ADMIN_EMAIL, MEMBER_EMAIL, PASSWORD
from webapp.extensions import db
from webapp.models import User
from webapp.services.users import authenticate, find_user


def test_users_list_as_table_and_json(runner: FlaskCliRunner, admin: User, member: User) -> None:
    table = runner.invoke(args=["users", "list"])
    assert table.exit_code == 0, table.output
    assert table.output.splitlines()[0].split() == [
        "EMAIL", "ROLE", "CREATED", "LAST", "SIGN-IN", "DISABLED"
    ]  # fmt: skip
    assert re.search(rf"^{re.escape(MEMBER_EMAIL)}\s+member\s+.*\s-\s+no$", table.output, re.M)
    listed = json.loads(runner.invoke(args=["users", "list", "--json"]).output)
    assert [(u["email"], u["role"], u["disabled"]) for u in listed] == [
        (ADMIN_EMAIL, "admin", False),
        (MEMBER_EMAIL, "member", False),
    ]
    assert listed[0]["last_sign_in_at"] is None


def test_set_role_keeps_the_last_admin(runner: FlaskCliRunner, admin: User, member: User) -> None:
    refused = runner.invoke(args=["users", "set-role", ADMIN_EMAIL, "member"])
    assert refused.exit_code == 1
    assert "last active admin" in refused.output
    promoted = runner.invoke(args=["users", "set-role", MEMBER_EMAIL, "admin"])
    assert promoted.exit_code == 0, promoted.output
    assert "is now admin" in promoted.output
    demoted = runner.invoke(args=["users", "set-role", ADMIN_EMAIL, "member"])
    assert demoted.exit_code == 0, demoted.output
    assert runner.invoke(args=["users", "set-role", MEMBER_EMAIL, "boss"]).exit_code == 2


def test_disable_and_enable(runner: FlaskCliRunner, admin: User, member: User) -> None:
    assert runner.invoke(args=["users", "disable", ADMIN_EMAIL]).exit_code == 1
    done = runner.invoke(args=["users", "disable", MEMBER_EMAIL])
    assert done.exit_code == 0, done.output
    db.session.expire_all()
    assert find_user(MEMBER_EMAIL).disabled
    assert runner.invoke(args=["users", "enable", MEMBER_EMAIL]).exit_code == 0
    db.session.expire_all()
    assert not find_user(MEMBER_EMAIL).disabled
    missing = runner.invoke(args=["users", "disable", "nobody@example.com"])
    assert missing.exit_code == 1
    assert "no user has the email nobody@example.com" in missing.output


def test_reset_password_prompts_or_generates(runner: FlaskCliRunner, member: User) -> None:
    new = "a typed new password"
    typed = runner.invoke(args=["users", "reset-password", MEMBER_EMAIL], input=f"{new}\n{new}\n")
    assert typed.exit_code == 0, typed.output
    assert authenticate(MEMBER_EMAIL, new) is not None
    generated = runner.invoke(args=["users", "reset-password", "--generate", MEMBER_EMAIL])
    assert generated.exit_code == 0, generated.output
    shown = re.search(r"\(shown once\): (\S+)", generated.output)
    assert shown is not None
    assert authenticate(MEMBER_EMAIL, shown.group(1)) is not None
    assert authenticate(MEMBER_EMAIL, new) is None
    assert authenticate(MEMBER_EMAIL, PASSWORD) is None


def test_every_users_command_has_an_example(runner: FlaskCliRunner) -> None:
    for command in ("list", "create", "set-password", "set-role", "disable", "enable",
                    "reset-password"):  # fmt: skip
        helped = runner.invoke(args=["users", command, "--help"])
        assert helped.exit_code == 0, helped.output
        assert "Example:" in helped.output, command
