"""The conversation rename form (the chat pages wire it in)."""

from __future__ import annotations

from wtforms.validators import Length, ValidationError

from webapp.forms.base import Form
from webapp.forms.fields import Storable, TextField
from webapp.models import Conversation

MAX_TITLE_CHARS: int = Conversation.__table__.c.title.type.length


class RenameForm(Form):
    """A conversation's new title: spaces collapsed, not blank, short enough for the column."""

    title = TextField(
        "Title",
        [
            Storable(),
            Length(
                max=MAX_TITLE_CHARS, message=f"is too long (at most {MAX_TITLE_CHARS} characters)"
            ),
        ],
        filters=[lambda text: " ".join(text.split()) if isinstance(text, str) else text],
    )

    def validate_title(self, field: TextField) -> None:
        if not field.data:
            raise ValidationError("can't be blank")
