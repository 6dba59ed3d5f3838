"""The preset form."""

from __future__ import annotations

from typing import Any

from webapp.forms.base import RecordForm
from webapp.forms.fields import JSONObjectField, Storable, TextField, blank_to_none
from webapp.models import LLMPreset
from webapp.services.presets import PresetFields


class PresetForm(RecordForm[PresetFields]):
    noun = "preset"
    name = TextField("Name", [Storable()])
    key = TextField("Key", [Storable()])
    llm_options_overrides = JSONObjectField("Option overrides (JSON)")
    comment = TextField("Comment", [Storable()])

    def __init__(self, preset: LLMPreset | None = None, **kwargs: Any) -> None:
        """The form of `preset`; a new one may start with a suggested key (`key=`)."""
        if preset is not None:
            kwargs.setdefault("obj", preset)
        super().__init__(**kwargs)

    def values(self) -> PresetFields:
        return PresetFields(
            name=self.valid_data("name", ""),
            key=self.valid_data("key", None),
            comment=blank_to_none(self.valid_data("comment", "")),
            llm_options_overrides=self.valid_data("llm_options_overrides", {}),
        )
