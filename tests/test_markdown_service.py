"""Model output as HTML: Markdown with raw HTML off, then an allow-list sanitizer."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from webapp.services.markdown import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    render_markdown,
    sanitize_html,
)

LINK_REL = 'rel="noopener noreferrer nofollow"'


def test_markdown_becomes_html() -> None:
    html = render_markdown("# Title\n\n**bold** _em_ `code` ~~gone~~\n\n- one\n- two\n\n> quoted")

    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<em>em</em>" in html
    assert "<code>code</code>" in html
    assert "<s>gone</s>" in html
    assert "<li>one</li>" in html
    assert "<blockquote>" in html


def test_single_newlines_are_line_breaks_and_code_blocks_keep_their_language() -> None:
    assert "line one<br>" in render_markdown("line one\nline two")
    html = render_markdown("```pseudocode\nprint('<hi>')\n```")
    assert "<pre><code class=\"language-pseudocode\">print('&lt;hi&gt;')" in html


def test_tables_render() -> None:
    html = render_markdown("| a | b |\n|---|--:|\n| 1 | 2 |")
    assert "<table>" in html and "<th>a</th>" in html and "<td>2</td>" in html
    assert "style" not in html


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        '<div hx-get="/c/1/delete" hx-trigger="load">x</div>',
        '<p style="position:fixed">x</p>',
        "<iframe src=https://evil.example></iframe>",
    ],
)
def test_raw_html_from_the_model_is_shown_as_text(text: str) -> None:
    html = render_markdown(text)

    assert "<" + text[1:] not in html
    assert re.fullmatch(r"<p>[^<]*</p>\n?", html), html


@pytest.mark.parametrize(
    "text",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](java&#x09;script:alert(1))",
        "[x](vbscript:msgbox(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[x](/c/1/delete)",
        "[x](file:///etc/passwd)",
    ],
)
def test_only_http_https_and_mailto_links_survive(text: str) -> None:
    html = render_markdown(text)

    assert "href" not in html


def test_safe_links_get_rel_and_open_in_a_new_tab() -> None:
    html = render_markdown("[docs](https://example.com/a?b=1) <mailto:me@example.com>")

    assert '<a href="https://example.com/a?b=1" target="_blank" ' + LINK_REL in html
    assert 'href="mailto:me@example.com"' in html


def test_images_become_links_and_never_load() -> None:
    html = render_markdown("![a chart](https://tracker.example/pixel.png?secret=1)")

    assert "<img" not in html
    assert '<a href="https://tracker.example/pixel.png?secret=1"' in html
    assert "Image: a chart" in html


def test_the_sanitizer_drops_everything_not_on_the_allow_list() -> None:
    dirty = (
        '<p onclick="x()" style="color:red" class="evil" hx-get="/x" data-hx-post="/y" '
        'hx-on:click="z()" id="p1">text</p>'
        '<a href="https://ok.example" onmouseover="x()" hx-boost="true">ok</a>'
        '<a href="javascript:alert(1)">bad</a>'
        "<script>alert(1)</script><style>p{}</style>"
        '<code class="language-js evil">x</code><code class="evil">y</code>'
        '<svg><circle onload="x()"/></svg><form action="/c/1/delete"><button>go</button></form>'
    )

    clean = sanitize_html(dirty)

    assert set(re.findall(r"\s([a-z:-]+)=", clean)) == {"href", "target", "rel"}
    for forbidden in ("onclick", "style", "hx-", "data-", "script", "svg", "form", "javascript"):
        assert forbidden not in clean
    assert "<p>text</p>" in clean
    assert '<a href="https://ok.example" target="_blank" ' + LINK_REL + ">ok</a>" in clean
    assert "<code>x</code><code>y</code>" in clean


def test_allow_list_is_small_and_has_no_dangerous_entries() -> None:
    assert not {"script", "style", "iframe", "img", "form", "input", "svg"} & ALLOWED_TAGS
    attributes = set().union(*ALLOWED_ATTRIBUTES.values())
    assert attributes <= {"href", "title", "start", "class"}


@given(st.text(alphabet=st.sampled_from(list("<>\"'=/ :;&#xa-zA-Z0-9()[]!`*_\n")), max_size=200))
def test_no_input_produces_a_handler_a_script_or_an_htmx_attribute(text: str) -> None:
    html = render_markdown(text)

    tags = re.findall(r"<([a-zA-Z0-9]+)([^>]*)>", html)
    for name, attributes in tags:
        assert name.lower() in ALLOWED_TAGS
        for attribute in re.findall(r"([^\s=]+)=", attributes):
            assert attribute in {"href", "title", "start", "class", "target", "rel"}
    assert not re.search(r"href=\"(?!https?:|mailto:)", html)
