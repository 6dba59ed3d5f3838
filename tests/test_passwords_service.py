"""Every password hash and check takes a slot of the app's gate, and a request that finds
no slot free within the wait is refused instead of queueing without end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from tests.support.users import MEMBER_EMAIL, PASSWORD
from webapp.passwords import PasswordChecksBusy, PasswordGate
from webapp.services.users import (
    authenticate,
    change_own_password,
    create_first_admin,
    create_user,
    reset_password,
)

NEW_PASSWORD = "another horse battery"


def test_a_free_slot_is_taken_and_given_back(app: Flask, member: Any) -> None:
    gate = PasswordGate(1, 0.05)
    app.extensions["password_gate"] = gate

    assert authenticate(MEMBER_EMAIL, PASSWORD) == member
    assert authenticate(MEMBER_EMAIL, PASSWORD) == member
    with gate.slot(), pytest.raises(PasswordChecksBusy):
        authenticate(MEMBER_EMAIL, PASSWORD)


@pytest.mark.parametrize(
    "work",
    [
        pytest.param(lambda member: authenticate(MEMBER_EMAIL, PASSWORD), id="sign-in"),
        pytest.param(lambda member: authenticate("nobody@example.com", PASSWORD), id="unknown"),
        pytest.param(lambda member: create_user("new@example.com", PASSWORD), id="new user"),
        pytest.param(
            lambda member: change_own_password(member, PASSWORD, NEW_PASSWORD, NEW_PASSWORD),
            id="own password",
        ),
        pytest.param(lambda member: reset_password(member.id, NEW_PASSWORD), id="reset"),
    ],
)
def test_with_every_slot_busy_password_work_is_refused(
    member: Any, full_gate: PasswordGate, work: Callable[[Any], Any]
) -> None:
    with pytest.raises(PasswordChecksBusy):
        work(member)


def test_with_every_slot_busy_set_up_is_refused(app: Flask, full_gate: PasswordGate) -> None:
    with pytest.raises(PasswordChecksBusy):
        create_first_admin("first@example.com", PASSWORD, PASSWORD)
