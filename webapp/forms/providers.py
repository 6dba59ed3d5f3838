"""The provider form: connection, the write-only API key, JSON headers and options."""

from __future__ import annotations

from typing import Any

from wtforms import SelectMultipleField
from wtforms.validators import ValidationError

from webapp.forms.base import Form, RecordForm
from webapp.forms.fields import (
    CheckboxField,
    JSONObjectField,
    Storable,
    TextField,
    WholeNumberField,
)
from webapp.models import LLMProvider
from webapp.models.llm import API_FORMATS
from webapp.models.validation import UNSTORABLE_MESSAGE, is_storable
from webapp.services.providers import (
    KEEP_API_KEY,
    KeepStored,
    ProviderFields,
    masked_headers,
    unmask_headers,
)

MAX_API_KEY_LENGTH = 1000


class ProviderForm(RecordForm[ProviderFields]):
    noun = "provider"
    name = TextField("Name", [Storable()])
    api_format = TextField("API format", [Storable()], default=API_FORMATS[0])
    base_url = TextField("Base URL", [Storable()])
    api_prefix = TextField("API prefix", [Storable()], default="/v1")
    api_key = TextField("API key")
    remove_api_key = CheckboxField("Remove key")
    requires_api_key = CheckboxField("Needs an API key", default=True)
    headers = JSONObjectField("Headers (JSON)")
    llm_options_defaults = JSONObjectField("Default options (JSON)")
    message_overhead_tokens = WholeNumberField("Message overhead (tokens)", default=0)

    def __init__(self, provider: LLMProvider | None = None, **kwargs: Any) -> None:
        """The form of `provider` (a new one when None); the API key is never among its
        values, and every header value shows as a mask."""
        if provider is not None:
            kwargs.setdefault(
                "data",
                {
                    "name": provider.name,
                    "api_format": provider.api_format,
                    "base_url": provider.base_url,
                    "api_prefix": provider.api_prefix,
                    "headers": dict(masked_headers(provider)),
                    "llm_options_defaults": provider.llm_options_defaults,
                    "message_overhead_tokens": provider.message_overhead_tokens,
                    "requires_api_key": provider.requires_api_key,
                    "version": provider.version,
                },
            )
        super().__init__(**kwargs)
        self.provider = provider

    # A stale save's typed API key is not kept (keys are never sent back to the browser).
    api_key_not_kept = False

    def for_conflict(self, current: LLMProvider | None) -> ProviderForm:
        fresh = super().for_conflict(current)
        fresh.api_key_not_kept = bool(self.typed_api_key)
        return fresh

    @property
    def typed_key_dropped(self) -> bool:
        """A key was typed but the form failed: it is not sent back, so it must be retyped."""
        return bool(self.errors) and bool(self.typed_api_key)

    @property
    def typed_api_key(self) -> str:
        return (self.api_key.raw_data or [""])[0].strip()

    def validate_api_key(self, field: TextField) -> None:
        key = self.typed_api_key
        if key and self.remove_api_key.data:
            raise ValidationError("enter a new key or tick “Remove key”, not both")
        if not is_storable(key):
            raise ValidationError(UNSTORABLE_MESSAGE)
        if len(key) > MAX_API_KEY_LENGTH:
            raise ValidationError(f"is too long (at most {MAX_API_KEY_LENGTH} characters)")

    def validate_headers(self, field: JSONObjectField) -> None:
        """A mask sent back keeps the stored value; a mask for a header with none is an error."""
        if not isinstance(field.data, dict):
            return
        field.data, missing = unmask_headers(self.provider, field.data)
        for name in missing:
            field.errors.append(f"enter the value of {name} (it has no stored value)")

    def values(self) -> ProviderFields:
        api_key: str | KeepStored | None = KEEP_API_KEY
        if self.typed_api_key:
            api_key = self.typed_api_key
        elif self.remove_api_key.data:
            api_key = None
        return ProviderFields(
            name=self.valid_data("name", ""),
            api_format=self.valid_data("api_format", ""),
            base_url=self.valid_data("base_url", ""),
            api_prefix=self.valid_data("api_prefix", ""),
            headers=self.valid_data("headers", {}),
            llm_options_defaults=self.valid_data("llm_options_defaults", {}),
            message_overhead_tokens=self.valid_data("message_overhead_tokens", 0),
            requires_api_key=bool(self.requires_api_key.data),
            api_key=api_key if not self.api_key.errors else KEEP_API_KEY,
        )


class ImportForm(Form):
    """The model ids ticked on the import page (the service skips unusable ones)."""

    model_ids = SelectMultipleField(validate_choice=False)
