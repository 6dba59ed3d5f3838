"""Code blocks in model output, highlighted on the server by Pygments, styled by class only.

Every span carries exactly one class, `hl-` + a standard Pygments token name (`hl-k`, `hl-s1`
…): a lexer's own sub-token types are folded to their nearest standard ancestor, so the
sanitizer can allow a closed set of class values (`TOKEN_CLASSES`) rather than a pattern.
Colours come from static/highlight.css (no inline style: the CSP allows none), the output of
`stylesheet()` committed as is; `REGENERATE` is the command that writes it.

Only a language Pygments knows by name is highlighted, looked up in its built-in table (a
miss there would scan every installed package for plugins); an unknown or missing one, or a
block past the size limits, is left to markdown-it to escape as plain text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from functools import cache
from typing import Any

import pygments
from pygments.formatters import HtmlFormatter
from pygments.lexer import Lexer
from pygments.lexers import find_lexer_class_by_name, get_all_lexers
from pygments.token import STANDARD_TYPES

CLASS_PREFIX = "hl-"
TOKEN_CLASSES = frozenset(CLASS_PREFIX + name for name in STANDARD_TYPES.values() if name)
# One block, and all the blocks of one text together: past these, code stays plain, so a long
# reply costs at most a fixed amount of lexing each time a page shows it.
MAX_BLOCK_CHARS = 20_000
MAX_CHARS_PER_TEXT = 60_000
# The styles of static/highlight.css: the page's light and dark colour schemes.
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"
STYLESHEET_SCOPE = ".markdown pre"
REGENERATE = (
    "python -c 'from webapp.services.code_highlight import stylesheet;"
    ' print(stylesheet(), end="")\' > static/highlight.css'
)

_KNOWN_LANGUAGES = frozenset(
    alias for _name, aliases, _files, _types in get_all_lexers(plugins=False) for alias in aliases
)
_formatter = HtmlFormatter(nowrap=True, classprefix=CLASS_PREFIX)
_chars_left: ContextVar[int] = ContextVar("highlight_chars_left", default=MAX_CHARS_PER_TEXT)


@cache
def _lexer_class(language: str) -> type[Lexer]:
    return find_lexer_class_by_name(language)


def _standard_tokens(tokens: Iterable[tuple[Any, str]]) -> Iterator[tuple[Any, str]]:
    for token_type, value in tokens:
        while token_type not in STANDARD_TYPES:
            token_type = token_type.parent
        yield token_type, value


def start_text() -> None:
    """Give the text about to be rendered its own character allowance (MAX_CHARS_PER_TEXT)."""
    _chars_left.set(MAX_CHARS_PER_TEXT)


def highlight_code(code: str, language: str, _attributes: str = "") -> str:
    """markdown-it's `highlight` hook: the code as token spans, or "" to leave it plain."""
    language = language.lower()
    left = _chars_left.get()
    if language not in _KNOWN_LANGUAGES or len(code) > min(MAX_BLOCK_CHARS, left):
        return ""
    _chars_left.set(left - len(code))
    # stripnl/ensurenl off: the spans hold exactly the code's text, blank lines included.
    lexer = _lexer_class(language)(stripnl=False, ensurenl=False)
    try:
        return pygments.format(_standard_tokens(lexer.get_tokens(code)), _formatter)
    except Exception:
        # A lexer bug on some odd input must not break the page showing the reply.
        return ""


def stylesheet() -> str:
    """The text of static/highlight.css: token colours for the light and the dark scheme."""
    header = (
        f"/* Token colours for highlighted code, generated with Pygments {pygments.__version__}"
        f" (styles {LIGHT_STYLE!r} and {DARK_STYLE!r}) by\n"
        f"   {REGENERATE}\n"
        f"   Do not edit: a test checks that it equals what Pygments generates now. */\n"
    )
    sections = [
        _scheme_section("light", LIGHT_STYLE),
        _scheme_section("dark", DARK_STYLE),
    ]
    return header + "\n".join(sections)


def _scheme_section(scheme: str, style: str) -> str:
    rules = HtmlFormatter(style=style, classprefix=CLASS_PREFIX).get_token_style_defs(
        STYLESHEET_SCOPE
    )
    body = "".join(f"  {rule}\n" for rule in rules)
    return f"@media (prefers-color-scheme: {scheme}) {{\n{body}}}\n"
