"""The HTML renderer: a :class:`~trustbench.report.document.Doc` as one self-contained page.

Inline CSS, plots embedded as base64 PNG data URIs, no external resource, no script. Every
string is escaped with :func:`html.escape`.
"""

from __future__ import annotations

import base64
import html

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

_CSS = """
body{font-family:-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1f24;line-height:1.45}
h1{font-size:1.6em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}
h2{font-size:1.3em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
h3{font-size:1.05em;margin-top:1.4em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}
th{background:#f6f8fa}
tr:nth-child(even) td{background:#fbfcfd}
code{background:#f3f4f6;padding:.1em .3em;border-radius:3px;font-size:.9em}
.good{color:#1a7f37}.bad{color:#cf222e}
.callout{padding:.7em 1em;border-radius:6px;margin:1em 0;border:1px solid}
.callout.bad{background:#ffebe9;border-color:#ff8182;color:#82071e;font-size:1.1em}
.callout.warn{background:#fff8c5;border-color:#d4a72c;color:#4d2d00}
.callout.good{background:#dafbe1;border-color:#4ac26b;color:#0f5323}
figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:.88em;color:#57606a}
"""


def _html_inline(text: Inline) -> str:
    out = []
    for s in spans(text):
        t = html.escape(s.text, quote=True)
        if s.style == "b":
            out.append(f"<strong>{t}</strong>")
        elif s.style == "code":
            out.append(f"<code>{t}</code>")
        elif s.style in ("good", "bad"):
            out.append(f'<strong class="{s.style}">{t}</strong>')
        else:
            out.append(t)
    return "".join(out)


def to_html(doc: Doc) -> str:
    """The whole document as one HTML page."""
    esc = html.escape
    body = [f"<h1>{esc(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            anchor = f' id="{esc(b.anchor)}"' if b.anchor else ""
            body.append(f"<h{b.level}{anchor}>{_html_inline(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_html_inline(b.text)}</p>")
        elif isinstance(b, Callout):
            body.append(f'<div class="callout {b.kind}">{_html_inline(b.text)}</div>')
        elif isinstance(b, BulletList):
            items = "".join(f"<li>{_html_inline(i)}</li>" for i in b.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(b, Table):
            head = "".join(f"<th>{esc(h)}</th>" for h in b.headers)
            rows = "".join(
                "<tr>" + "".join(f"<td>{_html_inline(c)}</td>" for c in row) + "</tr>"
                for row in b.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif isinstance(b, Image):
            data = base64.b64encode(b.png).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{esc(b.alt, quote=True)}">'
                f"<figcaption>{_html_inline(b.caption)}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(doc.title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
