"""The model form, and the models list's filters (a GET form whose bad values are dropped)."""

from __future__ import annotations

from typing import Any

from werkzeug.datastructures import MultiDict
from wtforms.validators import Optional

from webapp.forms.base import RecordForm
from webapp.forms.fields import (
    CheckboxField,
    IdChoiceField,
    Storable,
    TextField,
    WholeNumberField,
    blank_to_none,
)
from webapp.models import CAPABILITY_COLUMNS, LLMModel
from webapp.models.validation import MAX_INT, UNSTORABLE_CHARACTERS
from webapp.services.llm_models import PROVIDER_GONE, ModelFields, ModelFilters
from webapp.services.providers import provider_choices

MAX_QUERY_LENGTH = 200
ENABLED_FILTERS = {"yes": True, "no": False}


def capability_labels() -> dict[str, str]:
    """The capability columns with the labels the model form gives them."""
    return {column: getattr(ModelForm, column).args[0] for column in CAPABILITY_COLUMNS}


class ModelForm(RecordForm[ModelFields]):
    noun = "model"
    llm_provider_id = IdChoiceField("Provider", missing_message=PROVIDER_GONE)
    model = TextField("Model id", [Storable()])
    name = TextField("Name", [Storable()])
    key = TextField("Key", [Storable()])
    enabled = CheckboxField("Enabled")
    supports_streaming = CheckboxField("Streaming")
    supports_tool_calling = CheckboxField("Tool calling")
    supports_parallel_tool_calls = CheckboxField("Parallel tool calls")
    supports_response_format_json_object = CheckboxField("JSON object responses")
    supports_response_format_json_schema = CheckboxField("JSON schema responses")
    context_window_tokens = WholeNumberField("Context window (tokens)", default=0)
    message_overhead_tokens = WholeNumberField("Message overhead (tokens)", [Optional()])
    comment = TextField("Comment", [Storable()])

    def __init__(
        self, model: LLMModel | None = None, provider_id: int | None = None, **kwargs: Any
    ) -> None:
        """The form of `model`, or of a new model of `provider_id` (when given)."""
        if model is not None:
            kwargs.setdefault("obj", model)
        elif provider_id is not None:
            kwargs.setdefault("llm_provider_id", provider_id)
        super().__init__(**kwargs)
        self.llm_provider_id.choices = provider_choices()

    def values(self) -> ModelFields:
        capabilities = {name: bool(self[name].data) for name in CAPABILITY_COLUMNS}
        return ModelFields(
            llm_provider_id=self.valid_data("llm_provider_id", 0),
            model=self.valid_data("model", ""),
            name=self.valid_data("name", ""),
            key=self.valid_data("key", None),
            enabled=bool(self.enabled.data),
            comment=blank_to_none(self.valid_data("comment", "")),
            context_window_tokens=self.valid_data("context_window_tokens", 0),
            message_overhead_tokens=self.valid_data("message_overhead_tokens", None),
            **capabilities,
        )


def _positive_id(text: str) -> int | None:
    """An id-like number from a query argument, or None when it is not one."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 10):
        return None
    number = int(text)
    return number if 0 < number <= MAX_INT else None


class ModelListQuery:
    """The models list filters from the query string; values that do not parse are dropped.

    Also builds the query strings of the list's links (other pages, "show all").
    """

    def __init__(self, args: MultiDict[str, str]) -> None:
        enabled = args.get("enabled", "").strip().lower()
        self.provider_id = _positive_id(args.get("provider", ""))
        self.enabled = enabled if enabled in ENABLED_FILTERS else ""
        text = UNSTORABLE_CHARACTERS.sub("", args.get("q", ""))
        self.q = text.strip()[:MAX_QUERY_LENGTH]
        self.page = _positive_id(args.get("page", "")) or 1

    @property
    def filters(self) -> ModelFilters:
        return ModelFilters(
            provider_id=self.provider_id,
            enabled=ENABLED_FILTERS.get(self.enabled),
            text=self.q,
            page=self.page,
        )

    @property
    def active(self) -> bool:
        return bool(self.provider_id or self.enabled or self.q)

    def as_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.provider_id:
            args["provider"] = self.provider_id
        if self.enabled:
            args["enabled"] = self.enabled
        if self.q:
            args["q"] = self.q
        return args

    def page_args(self, page: int) -> dict[str, Any]:
        """The query arguments of another page of the same list."""
        return {**self.as_args(), "page": page} if page > 1 else self.as_args()
