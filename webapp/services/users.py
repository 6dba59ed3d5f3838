"""Creating users, the one-time first admin, and checking sign-ins."""

from __future__ import annotations

from sqlalchemy import func, select, text, update

from webapp.extensions import db
from webapp.models import User, ValidationError
from webapp.models.users import check_no_password, password_errors
from webapp.models.validation import Errors

# Any fixed number: the PostgreSQL advisory lock that lets one set-up run at a time.
FIRST_ADMIN_LOCK = 0x4D44_0001


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
    problems = password_errors(password, confirmation)
    if problems:
        errors["password"] = problems
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


def _one_at_a_time() -> None:
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
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": FIRST_ADMIN_LOCK})


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


def user_for_session(session_id: str) -> User | None:
    """The user a session's "<id>:<session_version>" names, while that version is current."""
    user_id, _, version = session_id.partition(":")
    if not (user_id.isascii() and user_id.isdigit() and version.isascii() and version.isdigit()):
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version):
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
    """Set a new password; ends the user's other sessions. Errors per field, {} when done."""
    problems = password_errors(password, confirmation)
    if problems:
        return {"password": problems}
    user.set_password(password)
    db.session.commit()
    return {}
