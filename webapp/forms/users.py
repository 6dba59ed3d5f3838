"""The Users page's forms (admin) and the Account page's password form (everyone)."""

from __future__ import annotations

from webapp.forms.base import Form
from webapp.forms.fields import Storable, TextField


class NewUserForm(Form):
    """A new account; the rules (email, role, password strength) are the model's."""

    email = TextField("Email", [Storable()])
    role = TextField("Role", [Storable()], default="member")
    password = TextField("Password", [Storable()])


class RoleForm(Form):
    role = TextField("Role", [Storable()])


class ResetPasswordForm(Form):
    password = TextField("New password", [Storable()])


class AccountPasswordForm(Form):
    current_password = TextField("Current password", [Storable()])
    password = TextField("New password", [Storable()])
    password_confirmation = TextField("Confirm new password", [Storable()])
