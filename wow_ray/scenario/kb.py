"""Knowledge articles (``kb/*.md``) and a deterministic BM25 search over them.

An article is Markdown with an optional YAML front matter::

    ---
    title: How long refunds take
    tags: [refund, payment]
    ---
    Refunds to a card take 1-3 business days...

The id is the file name without ``.md``. Search is plain BM25 over title (counted twice),
tags and body: no model, same answer every time, good enough for a few hundred articles.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from wow_ray.scenario.errors import PackIssue

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "has", "have", "how", "i", "if", "in", "is", "it", "my", "of", "on", "or", "our", "the", "this", "to", "was", "we", "what", "when", "where", "which", "will", "with", "you", "your"]
)


def tokens(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


@dataclass
class Article:
    id: str
    title: str
    body: str
    tags: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "tags": self.tags, "body": self.body}


def read_article(path: Path, rel: str) -> tuple[Article | None, list[PackIssue]]:
    """Parse one article; a bad front matter is an issue naming the file."""
    text = path.read_text(encoding="utf-8")
    meta: dict = {}
    body = text
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) < 3:
            return None, [PackIssue(rel, "front matter opened with '---' is never closed", line=1)]
        try:
            meta = yaml.safe_load(parts[1]) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            return None, [PackIssue(rel, f"invalid front matter: {exc}", line=mark.line + 2 if mark else 1)]
        if not isinstance(meta, dict):
            return None, [PackIssue(rel, "front matter must be a mapping", line=2)]
        body = parts[2]
    unknown = sorted(set(meta) - {"title", "tags"})
    if unknown:
        return None, [PackIssue(rel, "unknown field", field=unknown[0], line=2)]
    title = str(meta.get("title") or _first_heading(body) or path.stem)
    tags = meta.get("tags") or []
    if not isinstance(tags, list):
        return None, [PackIssue(rel, "must be a list", field="tags", line=2)]
    if not body.strip():
        return None, [PackIssue(rel, "article is empty")]
    return Article(path.stem, title, body.strip(), [str(t) for t in tags]), []


def _first_heading(body: str) -> str | None:
    for line in body.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return None


class KnowledgeBase:
    """Articles with BM25 search."""

    def __init__(self, articles: list[Article], k1: float = 1.5, b: float = 0.75) -> None:
        self.articles = {a.id: a for a in articles}
        self._k1, self._b = k1, b
        self._docs = {a.id: Counter(tokens(f"{a.title} {a.title} {' '.join(a.tags)} {a.body}")) for a in articles}
        self._lengths = {i: sum(c.values()) for i, c in self._docs.items()}
        self._avg = (sum(self._lengths.values()) / len(self._docs)) if self._docs else 1.0
        df = Counter(term for c in self._docs.values() for term in c)
        n = len(self._docs)
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def get(self, article_id: str) -> Article | None:
        return self.articles.get(article_id)

    def search(self, query: str, k: int = 3) -> list[tuple[Article, float]]:
        """The ``k`` best articles for ``query`` with their scores (ties broken by id)."""
        terms = tokens(query)
        scored = []
        for doc_id, counts in self._docs.items():
            score = 0.0
            norm = self._k1 * (1 - self._b + self._b * self._lengths[doc_id] / self._avg)
            for term in terms:
                tf = counts.get(term, 0)
                if tf:
                    score += self._idf[term] * tf * (self._k1 + 1) / (tf + norm)
            if score > 0:
                scored.append((-score, doc_id))
        scored.sort()
        return [(self.articles[d], round(-s, 4)) for s, d in scored[:k]]
