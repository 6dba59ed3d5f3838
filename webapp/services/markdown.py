"""Model output as HTML: Markdown rendered with raw HTML off, then sanitized by an allow-list.

Two layers, so neither has to be perfect: markdown-it escapes any HTML the model writes
(html=False), and nh3 keeps only the tags and attributes listed here — no scripts, no event
handlers, no style, no htmx or data attributes, and only http, https and mailto links.
Images are rendered as links: an image URL written by a model loads the moment the page
shows it, which would let a prompt injection send data to any server.

Fenced code in a language Pygments knows is highlighted (`code_highlight`): spans whose only
attribute is one Pygments token class. The sanitizer keeps those classes on <span> and no
others; a span the model writes never gets that far, since markdown-it escapes it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

from webapp.services.code_highlight import TOKEN_CLASSES, highlight_code, start_text

ALLOWED_TAGS = frozenset(
    {
        "a",
        "blockquote",
        "br",
        "code",
        "del",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "li",
        "ol",
        "p",
        "pre",
        "s",
        "span",
        "strong",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "ul",
    }
)
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "ol": {"start"},
    "code": {"class"},
    "span": {"class"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "noopener noreferrer nofollow"
# Gone with their content: text inside these is never meant to be read.
DROPPED_WITH_CONTENT = frozenset({"script", "style", "template", "iframe", "object", "noscript"})
_LANGUAGE_CLASS = re.compile(r"language-[A-Za-z0-9_+#.-]{1,40}")


def _code_classes_only(tag: str, attribute: str, value: str) -> str | None:
    """Keep `class="language-…"` on <code> (fenced code info) and one Pygments token class
    on <span>, nothing else."""
    if attribute != "class":
        return value
    if tag == "code" and _LANGUAGE_CLASS.fullmatch(value):
        return value
    if tag == "span" and value in TOKEN_CLASSES:
        return value
    return None


_cleaner = nh3.Cleaner(
    tags=set(ALLOWED_TAGS),
    clean_content_tags=set(DROPPED_WITH_CONTENT),
    attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
    attribute_filter=_code_classes_only,
    url_schemes=set(URL_SCHEMES),
    url_relative="deny",
    link_rel=LINK_REL,
    set_tag_attribute_values={"a": {"target": "_blank"}},
    strip_comments=True,
)


def _image_as_link(
    _renderer: Any, tokens: Sequence[Token], index: int, _options: Any, _env: Any
) -> str:
    token = tokens[index]
    source = str(token.attrGet("src") or "")
    alt = "".join(child.content for child in token.children or []) or source
    return f'<a href="{escape(source)}">{escape("Image: " + alt)}</a>'


def _build_renderer() -> MarkdownIt:
    # breaks: a single newline is a line break, as people (and models) write chat text.
    md = MarkdownIt("commonmark", {"html": False, "breaks": True, "highlight": highlight_code})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image_as_link)
    return md


_markdown = _build_renderer()


def sanitize_html(html: str) -> str:
    """Keep only the allow-listed tags, attributes and URL schemes of an HTML fragment."""
    return _cleaner.clean(html)


def render_markdown(text: str | None) -> Markup:
    """Model output → safe HTML (Markup, ready for a template)."""
    if not text:
        return Markup("")
    start_text()
    return Markup(sanitize_html(_markdown.render(text)))
