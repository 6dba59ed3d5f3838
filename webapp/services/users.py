"""Creating users, the one-time first admin, and checking sign-ins."""

from __future__ import annotations

from sqlalchemy import func, select, text

from webapp.extensions import db
from webapp.models import User, ValidationError
from webapp.models.users import password_errors
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


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None (same answer for either mistake)."""
    user = db.session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.check_password(password):
        return None
    return user
