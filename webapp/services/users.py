"""Creating users, the one-time first admin, and checking sign-ins."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, text, update

from webapp.extensions import db
from webapp.models import Conversation, User, ValidationError
from webapp.models.types import utcnow
from webapp.models.users import check_no_password, password_errors
from webapp.models.validation import Errors

# Any fixed number: the PostgreSQL advisory lock that lets one set-up run at a time.
FIRST_ADMIN_LOCK = 0x4D44_0001
# Another: changes to roles, disabling and deleting run one at a time (the last-admin rule).
ADMIN_CHANGE_LOCK = 0x4D44_0002
LAST_ADMIN = "is the last active admin: make another user an admin first"


class SetupDone(Exception):
    """The first admin exists already: set-up is closed."""


def users_exist() -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(User)))


def _new_user(
    email: str, password: str, role: str, confirmation: str | None
) -> tuple[User | None, Errors]:
    """A hashed, valid, not yet added user; or (None, errors per field)."""
    user = User(email=email, role=role, password_hash="")
    errors = user.validation_errors()
    errors.pop("password", None)
    errors.update(password_errors(password, confirmation))
    if errors:
        return None, errors
    user.set_password(password)
    return user, {}


def _commit_new(user: User) -> tuple[User | None, Errors]:
    db.session.add(user)
    try:
        db.session.commit()
    except ValidationError as error:  # a concurrent sign-up took the email
        db.session.rollback()
        return None, error.errors
    return user, {}


def create_user(
    email: str, password: str, *, role: str = "member", confirmation: str | None = None
) -> tuple[User | None, Errors]:
    """Create a user; returns (user, {}) or (None, errors per field)."""
    user, errors = _new_user(email, password, role, confirmation)
    if user is None:
        return None, errors
    return _commit_new(user)


def _one_at_a_time(key: int = FIRST_ADMIN_LOCK) -> None:
    """Hold a lock until this transaction ends, so concurrent set-ups run one after another.

    SQLite: BEGIN IMMEDIATE takes the database's write lock before the check (a deferred
    transaction would let every racer read "no users"). PostgreSQL: a transaction-scoped
    advisory lock, released by the commit or rollback; it needs no table, and serializes
    only the set-up path, not other writes to users.
    """
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        if not connection.connection.driver_connection.in_transaction:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


def create_first_admin(
    email: str, password: str, confirmation: str | None
) -> tuple[User | None, Errors]:
    """Create the first admin, only while no user exists, however many requests race.

    Returns (user, {}) or (None, errors per field); raises SetupDone when any user exists
    (checked again under the lock, so exactly one of concurrent set-ups wins).
    """
    user, errors = _new_user(email, password, "admin", confirmation)
    if user is None:
        return None, errors
    db.session.rollback()  # start the locked transaction afresh (hashing took a while)
    _one_at_a_time()
    if users_exist():
        db.session.rollback()
        raise SetupDone
    return _commit_new(user)


def find_user(email: str) -> User | None:
    """The user with this email (any case, surrounding spaces ignored), or None."""
    return db.session.scalars(select(User).where(User.email == email.strip().lower())).first()


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None.

    Same answer, and the same work (one password hash check), for an unknown email as for
    a wrong password: neither the page nor its timing tells which emails have an account.
    """
    user = find_user(email)
    if user is None:
        check_no_password(password)
        return None
    if not user.check_password(password):
        return None
    return user


@dataclass(frozen=True)
class SessionUser:
    """Who a session says it is ("<id>:<session_version>", see `User.get_id`), not yet
    checked against the users table: a session counts while its version is the user's
    current one and the user is not disabled."""

    id: int
    session_version: int

    @classmethod
    def parse(cls, session_id: object) -> SessionUser | None:
        if not isinstance(session_id, str):
            return None
        user_id, _, version = session_id.partition(":")
        if not all(part.isascii() and part.isdigit() for part in (user_id, version)):
            return None
        return cls(int(user_id), int(version))

    @classmethod
    def of(cls, user: User) -> SessionUser:
        return cls(user.id, user.session_version or 0)


def user_for_session(session_id: str) -> User | None:
    """The user a session's "<id>:<session_version>" names, while that version is current."""
    named = SessionUser.parse(session_id)
    return signed_in_user(named) if named is not None else None


def signed_in_user(named: SessionUser) -> User | None:
    """The user a session names, while the session counts."""
    user = db.session.get(User, named.id)
    if user is None or user.disabled or user.session_version != named.session_version:
        return None
    return user


def end_sessions(user: User) -> None:
    """Revoke every session of this user (the cookies stay valid signatures, but name an
    old version). One UPDATE, so two sign-outs at once both count."""
    db.session.execute(
        update(User).where(User.id == user.id).values(session_version=User.session_version + 1)
    )
    db.session.commit()


def change_password(user: User, password: str, confirmation: str | None = None) -> Errors:
    """Set a new password; ends every session of the user. Errors per field, {} when done."""
    problems = password_errors(password, confirmation)
    if problems:
        return problems
    user.set_password(password)
    db.session.commit()
    return {}


class LastAdminError(Exception):
    """The change would leave no active admin: refused, nothing changed."""

    def __init__(self, email: str) -> None:
        super().__init__(f"{email} {LAST_ADMIN}")


class UserGone(Exception):
    """The user was deleted meanwhile."""


@dataclass(frozen=True)
class UserRow:
    user: User
    conversation_count: int


def list_users() -> list[UserRow]:
    """Every user, by email, with how many conversations each has."""
    counts = (
        select(Conversation.user_id, func.count().label("n"))
        .group_by(Conversation.user_id)
        .subquery()
    )
    rows = db.session.execute(
        select(User, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.user_id == User.id)
        .order_by(User.email)
    )
    return [UserRow(user, count) for user, count in rows]


def conversation_count(user: User) -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.user_id == user.id)
        )
        or 0
    )


def _locked_user(user_id: int) -> User:
    """The user, read afresh inside a transaction that holds the admin-change lock."""
    db.session.rollback()
    _one_at_a_time(ADMIN_CHANGE_LOCK)
    user = db.session.get(User, user_id, populate_existing=True)
    if user is None:
        db.session.rollback()
        raise UserGone
    return user


def _other_active_admins(user: User) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == "admin", User.disabled.is_(False), User.id != user.id)
        )
        or 0
    )


def _guard_last_admin(user: User) -> None:
    """Refuse (rolling back, releasing the lock) when user is the only active admin."""
    if user.is_admin and not user.disabled and not _other_active_admins(user):
        db.session.rollback()
        raise LastAdminError(user.email)


def set_role(user_id: int, role: str) -> User:
    """Make the user an admin or a member. Raises LastAdminError, UserGone; ValueError for
    an unknown role. The last active admin stays an admin, however many admins race."""
    if role not in ("admin", "member"):
        raise ValueError(f"unknown role {role!r}")
    user = _locked_user(user_id)
    if role != "admin":
        _guard_last_admin(user)
    user.role = role
    db.session.commit()
    return user


def set_disabled(user_id: int, disabled: bool) -> User:
    """Disable (no sign-in; every session ends at once) or enable a user.
    Raises LastAdminError, UserGone."""
    user = _locked_user(user_id)
    if disabled:
        _guard_last_admin(user)
        if not user.disabled:
            user.session_version = (user.session_version or 0) + 1
    user.disabled = disabled
    db.session.commit()
    return user


def check_deletable(user_id: int) -> None:
    """Raise what `delete_user` would (LastAdminError, UserGone) without deleting: a check
    before the work that comes first (stopping the user's replies). `delete_user` checks
    again, under the lock."""
    user = db.session.get(User, user_id, populate_existing=True)
    if user is None:
        raise UserGone
    _guard_last_admin(user)


def delete_user(user_id: int) -> int:
    """Delete a user and (by the foreign key's cascade) their conversations; returns how
    many conversations went. Raises LastAdminError, UserGone."""
    user = _locked_user(user_id)
    _guard_last_admin(user)
    count = conversation_count(user)
    db.session.expunge(user)
    db.session.execute(delete(User).where(User.id == user_id))
    db.session.commit()
    return count


def reset_password(user_id: int, password: str) -> Errors:
    """An admin sets a user's password; every session of that user ends."""
    user = db.session.get(User, user_id)
    if user is None:
        raise UserGone
    return change_password(user, password)


def generate_password() -> str:
    """A password to hand over once (16 URL-safe characters, about 96 bits)."""
    return secrets.token_urlsafe(12)


def change_own_password(
    user: User, current: str, password: str, confirmation: str | None
) -> Errors:
    """The user changes their own password: the current one must be right. Ends every
    session of the user (the caller signs the current one in again with the new version)."""
    if not user.check_password(current):
        return {"current_password": ["is not your current password"]}
    return change_password(user, password, confirmation)


def record_sign_in(user: User, moment: datetime | None = None) -> None:
    """Remember when the user last signed in (shown on the Users page)."""
    user.last_sign_in_at = moment or utcnow()
    db.session.commit()
