"""The HTML shell every page shares: viewport, inline CSS, escaping helpers.

Pages are strings built in Python with `html.escape` applied to every value that did not come
from this module, so there is no template language to learn and nothing to fetch: one file can
be mailed to a client, opened offline or read on a phone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from sync.views.chart import CHART_CSS

_CSS = (
    "*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,"
    "sans-serif;margin:0;padding:12px;color:#1f2328;background:#f6f8fa}"
    "main{max-width:1100px;margin:0 auto}h1{font-size:1.4em;margin:.2em 0}"
    "h2{font-size:1.15em;margin:1.4em 0 .4em}h3{font-size:1em;margin:1em 0 .3em}"
    "section{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 12px;"
    "margin:12px 0}.muted{color:#656d76}.bad{color:#d1242f}.ok{color:#1a7f37}"
    ".scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.92em}"
    "th,td{text-align:left;padding:4px 6px;border-bottom:1px solid #eaeef2;vertical-align:top}"
    "td.num,th.num{text-align:right;white-space:nowrap}td:first-child{white-space:nowrap}"
    "dl.summary{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:6px;"
    "margin:.4em 0}dl.summary div{background:#f6f8fa;border-radius:4px;padding:6px}"
    "dl.summary dt{font-size:.8em;color:#656d76}dl.summary dd{margin:0;font-weight:600}"
    "form.inline{display:inline}button{font:inherit;padding:3px 10px;border-radius:4px;"
    "border:1px solid #8c959f;background:#f6f8fa;cursor:pointer}"
    "button.approve{border-color:#1a7f37;color:#1a7f37}button.exclude{color:#d1242f}"
    ".notice{background:#ddf4ff;border-color:#54aeff}"
    "@media (max-width:600px){body{padding:6px}th,td{padding:3px 4px}}"
    "@media print{body{background:#fff}section{border:0}}" + CHART_CSS
)


def layout(title: str, body: str) -> str:
    """A complete HTML document around `body` (already-escaped markup)."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def cell(value: object, *, num: bool = False) -> str:
    """One escaped table cell; None shows as empty."""
    text = "" if value is None else escape(str(value))
    return f'<td class="num">{text}</td>' if num else f"<td>{text}</td>"


def table(headers: Sequence[str], rows: Iterable[str], *, numeric: Sequence[str] = ()) -> str:
    """A scrollable table; `rows` are `<tr>` markup built with `cell`."""
    head = "".join(
        f'<th class="num">{escape(h)}</th>' if h in numeric else f"<th>{escape(h)}</th>"
        for h in headers
    )
    body = "".join(rows)
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def summary(items: Sequence[tuple[str, str]]) -> str:
    """A row of labelled figures."""
    inner = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in items)
    return f'<dl class="summary">{inner}</dl>'
