"""The document model: one small tree of blocks that every renderer turns into its format.

The content (:mod:`trustbench.report.content`) builds one :class:`Doc`; the renderers
(:mod:`trustbench.report.markdown`, :mod:`trustbench.report.html`) walk the same tree, so both
outputs say the same thing. Text in the tree is raw: each renderer escapes it for its format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Span:
    """Inline text; ``style``: "" (plain), "b" (bold), "code", "good"/"bad" (bold, coloured),
    "own" (text the report itself wrote, e.g. a number with its interval)."""

    text: str
    style: str = ""


#: Inline content: plain text, one span, or a run of spans.
Inline = str | Span | list[Span]


@dataclass
class Heading:
    level: int
    text: Inline
    anchor: str = ""


@dataclass
class Para:
    text: Inline


@dataclass
class Callout:
    kind: str  # "bad" | "warn" | "good"
    text: Inline


@dataclass
class BulletList:
    items: list[Inline]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[Inline]]


@dataclass
class Image:
    """A plot: PNG bytes, written next to the Markdown file or embedded in the HTML page."""

    filename: str
    png: bytes
    alt: str
    caption: Inline


@dataclass
class Doc:
    title: str
    blocks: list[Any] = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


def spans(text: Inline) -> list[Span]:
    """Any inline content as a list of spans."""
    if isinstance(text, str):
        return [Span(text)]
    return [text] if isinstance(text, Span) else text
