"""The look of every genlab page (run reports, comparisons, recommendation runs): one stylesheet, the page frame,
and small helpers that escape whatever text they are given.

Pages are self-contained: the CSS is inline, images are base64 PNG ``data:`` URIs, there is no script, and a
Content-Security-Policy lets the browser load nothing but ``data:`` images. A page opened from disk therefore makes
no network request, and text from a config file can never run as code (it is escaped as well).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable

from .. import __version__

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;line-height:1.45;color:#1d1d1f;
background:#fff;margin:0 auto;max-width:62rem;padding:1rem 1.25rem 2rem}
.brand{font-size:.78rem;letter-spacing:.06em;text-transform:uppercase;color:#6e6e73;margin:0}
h1{font-size:1.55rem;line-height:1.25;margin:.15rem 0 .5rem;overflow-wrap:anywhere}
h2{font-size:1.2rem;margin:2rem 0 .5rem;padding-top:.7rem;border-top:1px solid #e3e3e8}
h3{font-size:1rem;margin:1.2rem 0 .35rem}
p{margin:.4rem 0 .7rem}.lead{font-size:1.05rem}
a{color:#0a58ca}
nav.toc{display:flex;flex-wrap:wrap;gap:.2rem 1rem;font-size:.92rem;margin:.5rem 0 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em;background:#f2f2f5;padding:.05rem .3rem;
border-radius:.25rem;overflow-wrap:anywhere}
.wide{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;font-size:.92rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:left;vertical-align:top}
thead th{border-bottom:2px solid #c7c7cc;vertical-align:bottom}
td{overflow-wrap:break-word}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}td.n{white-space:nowrap}
tr.ref td{color:#555;font-style:italic}
table.stack{width:100%}table.stack tr>:first-child{width:15rem}
.sub{color:#555;font-size:.85rem;line-height:1.35}
table.kv th,table.kv td{padding:.18rem .7rem}table.kv th{font-weight:500}table.kv td{overflow-wrap:anywhere}
table.kv th.group{font-weight:600;padding-top:.7rem;border-bottom:1px solid #c7c7cc}
img{max-width:100%;height:auto;display:block}
figure{margin:.5rem 0 1.3rem}figcaption{color:#555;font-size:.9rem;margin-top:.3rem}
.note{color:#555;font-size:.92rem}.better{font-weight:600}.warn{color:#8a4b00}
.nowrap{white-space:nowrap}td code{overflow-wrap:break-word}
img.pixels{width:100%;image-rendering:pixelated}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(18rem,1fr));gap:1rem;margin-top:.8rem;align-items:start}
.card{border:1px solid #ddd;border-radius:.5rem;padding:.7rem;min-width:0}
.card h3{margin:0 0 .2rem;overflow-wrap:anywhere}.card p{margin:.1rem 0 .5rem}
details{margin:.5rem 0}summary{cursor:pointer;color:#0a58ca}
footer{margin-top:2.5rem}
.health{border:1px solid #ddd;border-radius:.5rem;padding:.4rem .9rem;margin:.8rem 0}.health h2{border:0;margin:.3rem 0;padding:0}
.health ul{list-style:none;padding:0;margin:.3rem 0}.health li{margin:.35rem 0;padding-left:1.6rem;text-indent:-1.6rem}
.health li::before{display:inline-block;width:1.6rem;text-indent:0;font-weight:700}
span[class^=is-]::before{font-weight:700}
.is-ok::before{content:"✓";color:#1a7f37}.is-problem::before{content:"!";color:#b3261e}.is-note::before{content:"·";color:#8a4b00}
.is-problem b,span.is-problem{color:#b3261e}.is-note b,span.is-note{color:#8a4b00}span.is-ok{color:#1a7f37}
span.is-ok::before,span.is-problem::before,span.is-note::before{margin-right:.3rem}
@media (max-width:36rem){body{padding:.6rem .7rem 1.5rem}h1{font-size:1.3rem}th,td{padding:.25rem .45rem}table{font-size:.85rem}}
@media (max-width:48rem){table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}
table.stack tr>:first-child{width:100%}table.stack thead{display:none}
table.stack tr{border-bottom:2px solid #c7c7cc;padding:.3rem 0}
table.stack td{border:0;display:flex;justify-content:space-between;gap:1rem;padding:.12rem .3rem;text-align:right;
white-space:normal}
table.stack td::before{content:attr(data-label);color:#555;text-align:left;font-style:normal}
table.stack td:first-child{display:block;text-align:left;font-weight:500}
table.stack td:not(.n){display:block;text-align:left}table.stack td:not(.n)::before{display:block;font-size:.85em}}
"""


def e(text) -> str:
    """``text`` (anything) as HTML-escaped text, quotes included, safe in content and attribute values."""
    return html.escape(str(text), quote=True)


def page(title: str, body: str, *, kind: str) -> str:
    """A complete HTML document: ``title`` (plain text) in the tab and over the page, ``body`` (HTML) under it."""
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            '<meta name=viewport content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f"<title>{e(title)}</title><style>{CSS}</style></head>\n<body>\n"
            f"<p class=brand>genlab · {e(kind)}</p>\n<h1>{e(title)}</h1>\n{body}\n"
            f"<footer class=note>Written by genlab {e(__version__)}. This page is self-contained: it loads nothing "
            "from the network.</footer>\n</body></html>\n")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def image(png: bytes, alt: str, *, css_class: str = "") -> str:
    cls = f' class="{e(css_class)}"' if css_class else ""
    return f'<img{cls} alt="{e(alt)}" src="{data_uri(png)}">'


def figure(png: bytes, alt: str, caption: str = "", *, narrow_png: bytes | None = None) -> str:
    """An inlined PNG with an optional caption (HTML). ``narrow_png``, when given, is shown instead on phone-width
    screens (a one-column version of a many-panel figure, so that its text stays legible)."""
    img = image(png, alt)
    if narrow_png is not None:
        img = f'<picture><source media="(max-width: 40rem)" srcset="{data_uri(narrow_png)}">{img}</picture>'
    return f"<figure>{img}{f'<figcaption>{caption}</figcaption>' if caption else ''}</figure>"


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{e(anchor)}">\n<h2>{e(title)}</h2>\n{body}\n</section>'


def toc(entries: Iterable[tuple[str, str]]) -> str:
    """Links to the page's sections: (anchor, title) pairs."""
    return "<nav class=toc>" + "".join(f'<a href="#{e(a)}">{e(t)}</a>' for a, t in entries) + "</nav>"


def number(value) -> str:
    """A metric or setting for a table cell (escaped): 4 significant digits, "–" for missing, "n/a" for NaN."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(number(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{e(k)}: {number(v)}" for k, v in value.items())
    return e(value)


def table(head: list[str], rows: list[list[str]], *, numeric: Iterable[int] = (), row_classes: list[str] | None = None,
          stack: bool = False) -> str:
    """A table. ``head`` is plain text; ``rows`` are cells of HTML (escape them first); the columns in ``numeric``
    are right-aligned. ``stack``: on a phone-width screen each row becomes a block of "header: value" lines (the
    first cell as its title), so that a table of many columns is read without scrolling sideways."""
    numeric = set(numeric)
    cls = lambda j: " class=n" if j in numeric else ""  # noqa: E731
    label = lambda j: f' data-label="{e(head[j])}"' if stack and j else ""  # noqa: E731
    thead = "".join(f"<th{cls(j)}>{e(h)}</th>" for j, h in enumerate(head))
    row_classes = row_classes or [""] * len(rows)
    body = "".join((f'<tr class="{e(rc)}">' if rc else "<tr>")
                   + "".join(f"<td{cls(j)}{label(j)}>{cell}</td>" for j, cell in enumerate(row)) + "</tr>"
                   for rc, row in zip(row_classes, rows))
    return f"<div class=wide><table{' class=stack' if stack else ''}><thead><tr>{thead}</tr></thead><tbody>{body}</tbody></table></div>"


def config_table(config: dict) -> str:
    """A TOML document as a two-column table: top-level keys first, then each sub-table under a ``[name]`` row."""
    def row(key, item) -> str:
        shown = ", ".join(map(str, item)) if isinstance(item, list) else str(item).lower() if isinstance(item, bool) else str(item)
        return f"<tr><th>{e(key)}</th><td>{e(shown)}</td></tr>"

    rows = [row(k, v) for k, v in config.items() if not isinstance(v, dict)]
    for name, sub in ((k, v) for k, v in config.items() if isinstance(v, dict)):
        rows.append(f"<tr><th class=group colspan=2>[{e(name)}]</th></tr>")
        rows += [row(k, v) for k, v in sub.items()]
    return f"<div class=wide><table class=kv><tbody>{''.join(rows)}</tbody></table></div>"
