"""The API keys page's form: a new app key (the rules are the service's and the model's)."""

from __future__ import annotations

from typing import Any

from wtforms import SelectMultipleField
from wtforms.validators import Optional

from webapp.forms.base import Form
from webapp.forms.fields import Storable, TextField, WholeNumberField
from webapp.services.app_keys import scopable_model_keys


class NewAppKeyForm(Form):
    name = TextField("Name", [Storable()])
    # Not checked against the choices here: the service names every unknown key, and a model
    # may lose its key between the page and the post.
    model_keys = SelectMultipleField("Models", validate_choice=False)
    expires_days = WholeNumberField("Expires in (days)", [Optional()])
    rpm = WholeNumberField("Requests per minute", [Optional()])
    tpm = WholeNumberField("Tokens per minute", [Optional()])

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_keys.choices = [(key, key) for key in scopable_model_keys()]
