"""Lexical tool search for `<tool_search>`: IDF-weighted word overlap, no models to download."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from functools import cache

from .tools import Tool, load_tools

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "in",
        "into",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "such",
        "the",
        "their",
        "them",
        "then",
        "this",
        "to",
        "with",
        "finally",
        "all",
        "any",
        "some",
        "that",
        "tool",
        "tools",
    ]
)
#: name words count more: a query naming the tool should find it first
_NAME_WEIGHT = 1.5


def stem(word: str) -> str:
    """A crude stemmer so that `records`/`record` and `parsing`/`parse` meet."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("er", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: len(word) - len(suffix)] + keep
    return word


def terms(text: str) -> list[str]:
    """The stemmed, stopword-free words of `text` (underscores split words)."""
    words = _WORD.findall(text.lower().replace("_", " "))
    return [stem(w) for w in words if w not in _STOPWORDS]


class ToolIndex:
    """Ranks tools by the summed IDF of query terms found in their name, category or description."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools = list(tools)
        self._name_terms = [set(terms(t.name)) for t in self._tools]
        self._terms = [set(terms(f"{t.name} {t.category} {t.description}")) for t in self._tools]
        df = Counter(term for doc in self._terms for term in doc)
        n = len(self._tools)
        self._idf = {term: math.log(1 + n / count) for term, count in df.items()}

    def search(self, query: str, *, limit: int = 5) -> list[Tool]:
        """The best `limit` tools for `query`, best first; ties keep registry order."""
        query_terms = set(terms(query))
        scored: list[tuple[float, int, Tool]] = []
        for i, tool in enumerate(self._tools):
            score = sum(
                self._idf[t] * (_NAME_WEIGHT if t in self._name_terms[i] else 1.0)
                for t in query_terms & self._terms[i]
            )
            if score > 0:
                scored.append((-score, i, tool))
        scored.sort(key=lambda entry: (entry[0], entry[1]))
        return [tool for _, _, tool in scored[:limit]]


@cache
def default_index() -> ToolIndex:
    """The index over the shipped tool registry."""
    tools: Mapping[str, Tool] = load_tools()
    return ToolIndex(tools.values())
