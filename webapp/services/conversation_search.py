"""Searching a user's conversations by title and message text.

The database does the matching and the ranking (SQLite: the FTS5 tables of migration 0012;
PostgreSQL: `to_tsvector('simple', …)` over the GIN indexes of the same migration); Python
cuts the snippet and marks the words, the same way for both.

What was typed is read as plain words: punctuation and search operators (`"`, `*`, `AND`,
`NEAR`, `(`, `&`, `!`) are never passed through as syntax, so no query can fail to parse.
Every word must appear; the last one may be the start of a word, so the list narrows while
the user types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import text

from webapp.extensions import db

SEARCH_LIMIT = 50
MAX_WORDS = 12
SNIPPET_BEFORE = 40
SNIPPET_CHARS = 160
# Letters and digits: both databases split words at everything else (`_` included).
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Fragment:
    """A piece of a title or snippet; `marked` when it is one of the words searched for."""

    text: str
    marked: bool = False


@dataclass(frozen=True)
class SearchHit:
    """A conversation that matched: its title and, when a message matched, a snippet of it."""

    conversation_id: int
    title: str
    title_fragments: tuple[Fragment, ...]
    snippet: tuple[Fragment, ...]


def search_words(query: str) -> list[str]:
    """The words of a query, lowercased, as the search uses them."""
    return [word.lower() for word in _WORD.findall(query)][:MAX_WORDS]


def search(user_id: int, query: str, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
    """The user's conversations whose title or one of whose messages holds every word of
    `query` (the last one as a prefix): title matches first, then the best text matches.
    A query without words finds nothing."""
    words = search_words(query)
    if not words:
        return []
    if db.session.get_bind().dialect.name == "postgresql":
        rows = db.session.execute(
            text(_POSTGRES_SEARCH),
            {"user_id": user_id, "query": _tsquery(words), "limit": limit},
        )
    else:
        rows = db.session.execute(
            text(_SQLITE_SEARCH),
            {"user_id": user_id, "query": _fts5_query(words), "limit": limit},
        )
    return [
        SearchHit(
            conversation_id=row.id,
            title=row.title,
            title_fragments=tuple(highlight(row.title, words)),
            snippet=tuple(snippet(row.content, words)) if row.content else (),
        )
        for row in rows
    ]


def _fts5_query(words: list[str]) -> str:
    # Quoted, a word is a string to FTS5, never an operator; `*` after the quote: a prefix.
    quoted = [f'"{word}"' for word in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _tsquery(words: list[str]) -> str:
    # The words hold letters and digits only, so quoting them is enough for to_tsquery.
    lexemes = [f"'{word}'" for word in words]
    lexemes[-1] += ":*"
    return " & ".join(lexemes)


# Each conversation once: whether its title matched, and its best-matching message (the
# window function picks it; of alternative replies only the shown one), ranked title first,
# then by the text's rank, then by recency.
_SQLITE_SEARCH = """
WITH title_hits AS (
    SELECT rowid AS conversation_id FROM fts_conversation_titles
    WHERE fts_conversation_titles MATCH :query
),
message_hits AS (
    SELECT m.conversation_id, m.content, bm25(fts_chat_messages) AS rank
    FROM fts_chat_messages
    JOIN chat_messages AS m ON m.id = fts_chat_messages.rowid
    JOIN conversations AS c ON c.id = m.conversation_id
    WHERE fts_chat_messages MATCH :query AND c.user_id = :user_id AND m.is_active
),
best_messages AS (
    SELECT conversation_id, content, rank,
           row_number() OVER (PARTITION BY conversation_id ORDER BY rank) AS place
    FROM message_hits
)
SELECT c.id, c.title, b.content
FROM conversations AS c
LEFT JOIN title_hits AS t ON t.conversation_id = c.id
LEFT JOIN best_messages AS b ON b.conversation_id = c.id AND b.place = 1
WHERE c.user_id = :user_id AND (t.conversation_id IS NOT NULL OR b.conversation_id IS NOT NULL)
ORDER BY t.conversation_id IS NULL, b.rank, c.updated_at DESC, c.id DESC
LIMIT :limit
"""

# The same shape; `to_tsvector('simple', …)` written as the indexes of migration 0012 are.
_POSTGRES_SEARCH = """
WITH q AS (SELECT to_tsquery('simple', :query) AS query),
message_hits AS (
    SELECT m.conversation_id, m.content,
           ts_rank(to_tsvector('simple', m.content), q.query) AS rank
    FROM chat_messages AS m
    JOIN conversations AS c ON c.id = m.conversation_id
    CROSS JOIN q
    WHERE c.user_id = :user_id AND m.is_active
      AND to_tsvector('simple', m.content) @@ q.query
),
best_messages AS (
    SELECT conversation_id, content, rank,
           row_number() OVER (PARTITION BY conversation_id ORDER BY rank DESC) AS place
    FROM message_hits
)
SELECT c.id, c.title, b.content
FROM conversations AS c
CROSS JOIN q
LEFT JOIN best_messages AS b ON b.conversation_id = c.id AND b.place = 1
WHERE c.user_id = :user_id
  AND (to_tsvector('simple', c.title) @@ q.query OR b.conversation_id IS NOT NULL)
ORDER BY NOT to_tsvector('simple', c.title) @@ q.query, b.rank DESC NULLS LAST,
         c.updated_at DESC, c.id DESC
LIMIT :limit
"""


def highlight(text_: str, words: list[str]) -> list[Fragment]:
    """`text_` in fragments, the searched words marked (the last one also as a prefix)."""
    pattern = _marker(words)
    fragments: list[Fragment] = []
    position = 0
    for match in pattern.finditer(text_):
        if match.start() > position:
            fragments.append(Fragment(text_[position : match.start()]))
        fragments.append(Fragment(match.group(), marked=True))
        position = match.end()
    if position < len(text_):
        fragments.append(Fragment(text_[position:]))
    return fragments


def snippet(content: str, words: list[str]) -> list[Fragment]:
    """A short stretch of a message around the first searched word, marked, with an
    ellipsis where it was cut."""
    flat = " ".join(content.split())
    first = _marker(words).search(flat)
    anchor = first.start() if first else 0
    start = max(anchor - SNIPPET_BEFORE, 0)
    space = flat.find(" ", start, anchor) if start > 0 else -1
    if space >= 0:
        start = space + 1  # at a word, not inside one
    end = min(start + SNIPPET_CHARS, len(flat))
    fragments = highlight(flat[start:end], words)
    if start > 0:
        fragments.insert(0, Fragment("…"))
    if end < len(flat):
        fragments.append(Fragment("…"))
    return fragments


def _marker(words: list[str]) -> re.Pattern[str]:
    # Whole words; the last one also as the start of a longer word, marked whole.
    whole = [rf"{re.escape(word)}(?![^\W_])" for word in words[:-1]]
    alternatives = [*whole, rf"{re.escape(words[-1])}[^\W_]*"]
    return re.compile(rf"(?<![^\W_])(?:{'|'.join(alternatives)})", re.IGNORECASE)
