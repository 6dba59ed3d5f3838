"""User administration rules: roles, disabling, password resets, deleting, and the last
active admin who can be neither demoted, disabled nor deleted — not even by two admins at
once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from tests.support.users import PASSWORD
from webapp.extensions import db
from webapp.models import Conversation, User
from webapp.services import users


def _user(email: str, role: str = "member") -> User:
    user, errors = users.create_user(email, PASSWORD, role=role)
    assert user is not None, errors
    return user


def test_the_last_active_admin_cannot_be_demoted_disabled_or_deleted(admin: User) -> None:
    for change in (
        lambda: users.set_role(admin.id, "member"),
        lambda: users.set_disabled(admin.id, True),
        lambda: users.delete_user(admin.id),
    ):
        with pytest.raises(users.LastAdminError, match="last active admin"):
            change()
    db.session.expire_all()
    kept = db.session.get(User, admin.id)
    assert (kept.role, kept.disabled) == ("admin", False)


def test_a_disabled_admin_does_not_count_as_the_other_admin(admin: User) -> None:
    other = _user("other@example.com", role="admin")
    users.set_disabled(other.id, True)
    with pytest.raises(users.LastAdminError):
        users.set_role(admin.id, "member")
    users.set_disabled(other.id, False)
    assert users.set_role(admin.id, "member").role == "member"


def test_disabling_ends_the_users_sessions_and_enabling_lets_them_back(member: User) -> None:
    session_id = member.get_id()
    assert users.user_for_session(session_id) is not None
    users.set_disabled(member.id, True)
    assert users.user_for_session(session_id) is None
    users.set_disabled(member.id, False)
    # Enabling does not bring an ended session back: the user signs in again.
    assert users.user_for_session(session_id) is None
    assert users.user_for_session(db.session.get(User, member.id).get_id()) is not None


def test_a_password_reset_ends_the_users_sessions(member: User) -> None:
    session_id = member.get_id()
    assert users.reset_password(member.id, "short") == {
        "password": ["must be at least 8 characters"]
    }
    assert users.user_for_session(session_id) is not None
    assert users.reset_password(member.id, "a brand new password") == {}
    assert users.user_for_session(session_id) is None
    assert users.authenticate(member.email, "a brand new password") is not None


def test_deleting_a_user_deletes_their_conversations(member: User, admin: User) -> None:
    db.session.add_all([Conversation(user_id=member.id), Conversation(user_id=member.id)])
    db.session.add(Conversation(user_id=admin.id))
    db.session.commit()
    counts = {row.user.email: row.conversation_count for row in users.list_users()}
    assert counts == {admin.email: 1, member.email: 2}
    assert users.delete_user(member.id) == 2
    assert db.session.query(Conversation).count() == 1
    assert users.find_user(member.email) is None
    with pytest.raises(users.UserGone):
        users.delete_user(member.id)


def test_changing_your_own_password_needs_the_current_one(member: User) -> None:
    assert users.change_own_password(member, "wrong", "new password 1", "new password 1") == {
        "current_password": ["is not your current password"]
    }
    assert users.change_own_password(member, PASSWORD, "new password 1", "other") == {
        "password_confirmation": ["does not match the password"]
    }
    assert users.change_own_password(member, PASSWORD, "new password 1", "new password 1") == {}
    assert users.authenticate(member.email, "new password 1") is not None


def test_two_admins_demoting_each_other_at_once_leave_one_admin(app: Flask, admin: User) -> None:
    other = _user("other@example.com", role="admin")
    ids = [admin.id, other.id]
    start = threading.Barrier(2)
    outcomes: list[Any] = [None, None]

    def demote(index: int) -> None:
        with app.app_context():
            start.wait(timeout=10)
            try:
                outcomes[index] = users.set_role(ids[index], "member").role
            except users.LastAdminError:
                outcomes[index] = "refused"
            finally:
                db.session.remove()

    threads = [threading.Thread(target=demote, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["member", "refused"]
    db.session.expire_all()
    assert db.session.query(User).filter_by(role="admin").count() == 1


def test_a_sign_in_is_recorded(member: User) -> None:
    assert member.last_sign_in_at is None
    users.record_sign_in(member)
    assert db.session.get(User, member.id).last_sign_in_at is not None
