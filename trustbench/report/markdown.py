"""The Markdown renderer: a :class:`~trustbench.report.document.Doc` as CommonMark text.

Plots are linked by relative path (the caller writes the PNG files). Every string is escaped:
Markdown syntax and raw HTML in text from the scorecard never reach the output.
:func:`md_escape` and :func:`md_inline` are also used by :mod:`trustbench.compare`.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from trustbench.report.document import (
    BulletList,
    Callout,
    Doc,
    Heading,
    Image,
    Inline,
    Para,
    Table,
    spans,
)

_MD_SPECIAL = re.compile(r"([\\`*\[\]|<>#~])")


# A code span shows its text literally (safe), but a backtick or a pipe would end it or the table
# cell, and text that looks like an HTML tag is escaped anyway so that no raw tag ever appears.
_MD_UNSAFE_CODE = re.compile(r"[`|\n]|<[A-Za-z/!?]")


def md_escape(text: str, keep: str = "") -> str:
    """Escape Markdown syntax and raw HTML in text from the scorecard; one line only.

    Characters in ``keep`` are left alone (only for text the report itself formatted).
    """
    text = re.sub(r"\s+", " ", str(text)).replace("&", "&amp;")

    def sub(m: re.Match[str]) -> str:
        c = m.group(1)
        if c in keep:
            return c
        return {"<": "&lt;", ">": "&gt;"}.get(c, "\\" + c)

    return _MD_SPECIAL.sub(sub, text)


def md_inline(text: Inline) -> str:
    """Inline content as Markdown, each span escaped and styled."""
    out = []
    for s in spans(text):
        if not s.text:
            continue
        if s.style == "code" and not _MD_UNSAFE_CODE.search(s.text):
            out.append(f"`{' '.join(s.text.split())}`")
        elif s.style in ("b", "good", "bad"):
            # emphasis must not start or end with a space (CommonMark flanking rules)
            core = s.text.strip()
            lead = " " if s.text[:1].isspace() else ""
            trail = " " if s.text[-1:].isspace() else ""
            out.append(f"{lead}**{md_escape(core)}**{trail}" if core else " ")
        elif s.style == "own":  # our own text: brackets of intervals stay readable
            out.append(md_escape(s.text, keep="[]"))
        else:
            out.append(md_escape(s.text))
    return "".join(out)


def _md_table(headers: list[str], rows: list[list[Inline]]) -> str:
    lines = ["| " + " | ".join(md_escape(h, keep="[]") for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(md_inline(c) for c in row) + " |")
    return "\n".join(lines)


def to_markdown(doc: Doc, plots_rel: str) -> str:
    """The whole document; images link to ``<plots_rel>/<filename>``."""
    parts = [f"# {md_escape(doc.title)}"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            parts.append("#" * b.level + " " + md_inline(b.text))
        elif isinstance(b, Para):
            parts.append(md_inline(b.text))
        elif isinstance(b, Callout):
            mark = {"bad": "⚠ ", "warn": "⚠ ", "good": ""}[b.kind]
            parts.append("> " + mark + md_inline(b.text))
        elif isinstance(b, BulletList):
            parts.append("\n".join("- " + md_inline(i) for i in b.items))
        elif isinstance(b, Table):
            parts.append(_md_table(b.headers, b.rows))
        elif isinstance(b, Image):
            link = quote(f"{plots_rel}/{b.filename}")
            parts.append(f"![{md_escape(b.alt)}]({link})\n\n*{md_inline(b.caption)}*")
    return "\n\n".join(parts) + "\n"
