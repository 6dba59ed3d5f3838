"""Creating users and checking sign-ins."""

from __future__ import annotations

from sqlalchemy import func, select

from webapp.extensions import db
from webapp.models import User, ValidationError
from webapp.models.users import password_errors
from webapp.models.validation import Errors


def users_exist() -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(User)))


def create_user(
    email: str, password: str, *, role: str = "member", confirmation: str | None = None
) -> tuple[User | None, Errors]:
    """Create a user; returns (user, {}) or (None, errors per field)."""
    user = User(email=email, role=role, password_hash="")
    errors = user.validation_errors()
    errors.pop("password", None)
    problems = password_errors(password, confirmation)
    if problems:
        errors["password"] = problems
    if errors:
        return None, errors
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except ValidationError as error:  # a concurrent sign-up took the email
        db.session.rollback()
        return None, error.errors
    return user, {}


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None (same answer for either mistake)."""
    user = db.session.scalars(select(User).where(User.email == email.strip().lower())).first()
    if user is None or not user.check_password(password):
        return None
    return user
