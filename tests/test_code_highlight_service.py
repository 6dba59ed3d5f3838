"""Fenced code in model output, highlighted by Pygments with token classes only."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import pytest

from webapp.services.code_highlight import (
    MAX_BLOCK_CHARS,
    MAX_CHARS_PER_TEXT,
    REGENERATE,
    TOKEN_CLASSES,
    stylesheet,
)
from webapp.services.markdown import render_markdown, sanitize_html

STATIC = Path(__file__).resolve().parent.parent / "static"
PYTHON = "def greet(name):\n\n    return f'<b>{name}</b>'  # hi\n"


def code_text(html: str) -> str:
    """The text a browser shows inside the first <code> of `html`."""
    inner = re.search(r"<code[^>]*>(.*?)</code>", html, re.DOTALL)
    assert inner, html
    return html_lib.unescape(re.sub(r"<[^>]+>", "", inner.group(1)))


def span_classes(html: str) -> list[str]:
    return re.findall(r'<span class="([^"]*)">', html)


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", PYTHON),
        ("Python", PYTHON),
        ("js", "const x = { a: 1 };\nconsole.log(`${x.a}`);\n"),
        ("bash", 'for f in *.txt; do echo "$f"; done\n'),
    ],
)
def test_known_languages_become_token_spans_with_the_code_unchanged(
    language: str, code: str
) -> None:
    html = render_markdown(f"```{language}\n{code}```")

    assert f'<pre><code class="language-{language}">' in html
    classes = span_classes(html)
    assert len(set(classes)) >= 3, html
    assert set(classes) <= TOKEN_CLASSES
    assert code_text(html) == code
    # Nothing but a class on the spans, and nothing inline.
    assert set(re.findall(r"<span([^>]*)>", html)) == {f' class="{c}"' for c in classes}
    assert "style" not in html


@pytest.mark.parametrize("fence", ["```no-such-language", "```", "```text"])
def test_unknown_missing_or_plain_languages_stay_plain_and_escaped(fence: str) -> None:
    html = render_markdown(f"{fence}\n<b>bold?</b> & more\n```")

    assert "<span" not in html
    assert "&lt;b&gt;bold?&lt;/b&gt; &amp; more\n</code></pre>" in html


def test_html_in_highlighted_code_stays_text() -> None:
    code = '<script>alert(1)</script>\n<p style="color:red" onclick="x()">x</p>\n'

    html = render_markdown(f"```html\n{code}```")

    assert span_classes(html), "the html lexer should have highlighted it"
    assert code_text(html) == code
    assert set(re.findall(r"<([a-z]+)", html)) == {"pre", "code", "span"}
    assert not re.search(r"\s(style|onclick)=", html)


def test_the_sanitizer_keeps_only_one_token_class_on_a_span() -> None:
    dirty = (
        '<pre><code class="language-python"><span class="hl-k">a</span>'
        '<span class="visually-hidden">b</span><span class="hl-k stop">c</span>'
        '<span class="hl-k" style="color:red" onclick="x()" id="s">d</span>'
        '<p class="hl-k">e</p></code></pre>'
    )

    clean = sanitize_html(dirty)

    assert clean == (
        '<pre><code class="language-python"><span class="hl-k">a</span>'
        '<span>b</span><span>c</span><span class="hl-k">d</span><p>e</p></code></pre>'
    )


def test_a_span_the_model_writes_is_text() -> None:
    html = render_markdown('<span class="hl-k" style="color:red">x</span>')

    assert "<span" not in html
    assert "&lt;span class=" in html


def test_a_block_past_the_size_limit_stays_plain() -> None:
    code = "x = 1\n" * (MAX_BLOCK_CHARS // 6 + 1)

    html = render_markdown(f"```python\n{code}```")

    assert "<span" not in html
    assert code_text(html) == code


def test_one_text_highlights_at_most_its_allowance_of_code() -> None:
    block = "x = 1\n" * ((MAX_BLOCK_CHARS - 100) // 6)
    blocks = MAX_CHARS_PER_TEXT // len(block) + 2
    text = "\n\n".join(f"```python\n{block}```" for _ in range(blocks))

    html = render_markdown(text)

    highlighted = [part for part in html.split("<pre>")[1:] if "<span" in part]
    assert len(highlighted) == MAX_CHARS_PER_TEXT // len(block)
    # The allowance is per text: the next one starts afresh.
    assert "<span" in render_markdown(f"```python\n{block}```")


def test_the_committed_stylesheet_is_what_pygments_generates() -> None:
    committed = (STATIC / "highlight.css").read_text()

    assert committed == stylesheet(), f"static/highlight.css is stale: {REGENERATE}"
    # It colours the token classes the highlighter emits, in both colour schemes.
    assert committed.count(".markdown pre .hl-k {") == 2
    assert "prefers-color-scheme: dark" in committed
