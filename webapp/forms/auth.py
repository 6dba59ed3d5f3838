"""Sign-in and the one-time set-up form."""

from __future__ import annotations

from webapp.forms.base import Form
from webapp.forms.fields import Storable, TextField


class LoginForm(Form):
    email = TextField("Email", [Storable()])
    password = TextField("Password", [Storable()])


class SetupForm(Form):
    """The first admin's account; the rules (email, password strength) are the models'."""

    email = TextField("Email", [Storable()])
    password = TextField("Password", [Storable()])
    password_confirmation = TextField("Confirm password", [Storable()])
