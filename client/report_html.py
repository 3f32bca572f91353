"""The HTML report a researcher reads: one self-contained file (plots embedded as base64 PNG).

Layout: a headline (what was evaluated and the key rates with their CIs in words), the plots,
the definitions of every metric shown, provenance as a small table, then the tables — ranked
(most vulnerable first), numbers printed to the digits their CI supports, each table in its
own horizontally scrolling box so the page never overflows. The dashboard serves the same
page (:func:`render_report`) or embeds its body (:func:`report_body`).
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import pandas as pd

from faultlab.client import _report_format as rf
from faultlab.client._report_format import formatted
from faultlab.client._report_text import DEFINITIONS, headline
from faultlab.report import Report, ordered, readable_name

if TYPE_CHECKING:
    from faultlab.client.compare import Comparison

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1c2330;margin:0;
background:#f6f7f9}
main{max-width:1180px;margin:0 auto;padding:24px 28px;background:#fff;min-height:100vh;
box-sizing:border-box}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.8em;border-bottom:1px solid #dde;
padding-bottom:.2em}h3{margin-bottom:.3em}
.headline{font-size:1.1em;background:#eef3fb;border-left:4px solid #3a6fd0;padding:10px 16px}
.headline li{margin:.2em 0}
.plots{display:flex;flex-wrap:wrap;gap:18px}
figure{margin:0;max-width:100%;flex:1 1 520px}figure.wide{flex-basis:100%}
figure img{max-width:100%;height:auto;border:1px solid #e4e6eb}
figcaption{font-size:.85em;color:#555}
.box{max-width:100%;overflow-x:auto;border:1px solid #e4e6eb;margin:.4em 0 1em}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{padding:3px 8px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th{background:#f3f4f7;position:sticky;top:0}
td.text,th.text{text-align:left}
table.kv td{white-space:normal;word-break:break-all;text-align:left}
dl{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px}
dt{font-weight:600}dd{margin:0}
details summary{cursor:pointer;color:#3a6fd0}
.note{color:#555;font-size:.9em}
"""

#: Tables with more rows than this are folded (per-bit and layer × bit tables are long).
FOLD_ROWS = 30
#: Rows shown per table at most; the full table is in the JSON/CSV/Parquet exports.
MAX_ROWS = 400


def figure_png(fig: Any, dpi: int = 110) -> str:
    """A matplotlib figure as a base64 PNG string (the figure is closed)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        pass
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def report_figures(report: Report) -> dict[str, str]:
    """The kind's plots as base64 PNGs, by name (none when the report has no rows yet)."""
    import matplotlib

    matplotlib.use("Agg")
    from faultlab.kinds import plots_function

    return {name: figure_png(fig) for name, fig in plots_function(report.kind)(report).items()}


def _wide(png: str) -> str:
    """Figures wider than half the page take a row of their own (PNG width from IHDR)."""
    width = int.from_bytes(base64.b64decode(png[:32])[16:20], "big")
    return ' class="wide"' if width > 900 else ""


def _plots_html(figures: dict[str, str]) -> str:
    if not figures:
        return '<p class="note">No plots yet (no finished trials).</p>'
    items = [
        f'<figure id="plot-{rf.slug(name)}"{_wide(png)}><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{png}"><figcaption>{html.escape(readable_name(name))}'
        "</figcaption></figure>"
        for name, png in figures.items()
    ]
    return '<div class="plots">' + "".join(items) + "</div>"


def _definitions_html(report: Report) -> str:
    terms = DEFINITIONS.get(report.kind, {}) | DEFINITIONS["common"]
    rows = "".join(
        f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>" for term, text in terms.items()
    )
    return f'<dl id="definitions">{rows}</dl>'


def _short(value: Any) -> str:
    """Provenance values as text; 64-hex digests shortened (the full one is the tooltip)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_short(v)}" for k, v in value.items())
    text = str(value)
    if len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        return text[:12] + "…"
    return text


def _provenance_html(report: Report) -> str:
    rows = "".join(
        f'<tr><th class="text">{html.escape(readable_name(key))}</th>'
        f'<td title="{html.escape(str(value))}">{html.escape(_short(value))}</td></tr>'
        for key, value in report.provenance.items()
    )
    return f'<div class="box"><table class="kv" id="provenance">{rows}</table></div>'


def table_html(df: pd.DataFrame, table_id: str = "") -> str:
    """One table: key columns first, readable headers, formatted cells, in a scrolling box."""
    shown = ordered(df).head(MAX_ROWS)
    text = formatted(shown)
    numeric = {c for c in text.columns
               if c.removesuffix(" (CI)") in shown and pd.api.types.is_numeric_dtype(
                   shown[c.removesuffix(" (CI)")])}
    head = "".join(
        f'<th class="{"num" if c in numeric else "text"}" title="{html.escape(c)}">'
        f"{html.escape(readable_name(c))}</th>"
        for c in text.columns
    )
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"num" if c in numeric else "text"}">{html.escape(str(v))}</td>'
            for c, v in zip(text.columns, row, strict=True)
        ) + "</tr>"
        for row in text.itertuples(index=False)
    )
    ident = f' id="{html.escape(table_id)}"' if table_id else ""
    more = (f'<p class="note">first {MAX_ROWS} of {len(df)} rows; the exports hold all.</p>'
            if len(df) > MAX_ROWS else "")
    return f'<div class="box"><table{ident}><thead><tr>{head}</tr></thead>' \
           f"<tbody>{body}</tbody></table></div>{more}"


def _table_order(report: Report) -> list[str]:
    """The primary table first, short tables next, long (per-bit) tables last."""
    names = list(report.tables)
    return sorted(names, key=lambda n: (n != report.primary, len(report.tables[n]) > FOLD_ROWS))


def _tables_html(report: Report) -> str:
    parts = []
    for name in _table_order(report):
        df = report.tables[name]
        if df.empty:
            continue
        column = rf.rank_column(df)
        note = (f'<p class="note">ranked by {html.escape(readable_name(column))}, highest first'
                "</p>" if column else "")
        block = note + table_html(rf.ranked(df), f"table-{rf.slug(name)}")
        title = f"{html.escape(readable_name(name))} ({len(df)} row{'s' * (len(df) != 1)})"
        if len(df) > FOLD_ROWS:
            parts.append(f'<details id="section-{rf.slug(name)}"><summary><h3 style="display:'
                         f'inline">{title}</h3></summary>{block}</details>')
        else:
            parts.append(f'<section id="section-{rf.slug(name)}"><h3>{title}</h3>{block}'
                         "</section>")
    return "".join(parts)


def report_body(report: Report, figures: dict[str, str] | None = None) -> str:
    """The report's content (no ``<html>`` shell): what the dashboard embeds."""
    figures = report_figures(report) if figures is None else figures
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in headline(report)[1:])
    title, *_ = headline(report)
    return (
        f'<section class="headline" id="headline"><h1>{html.escape(title)}</h1>'
        f"<ul>{lines}</ul></section>"
        f'<h2>Plots</h2>{_plots_html(figures)}'
        f"<h2>Definitions</h2>{_definitions_html(report)}"
        f"<h2>Provenance</h2>{_provenance_html(report)}"
        f"<h2>Tables</h2>{_tables_html(report)}"
    )


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML page around ``body``."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def render_report(report: Report) -> str:
    """The whole report as one self-contained HTML file."""
    return page(headline(report)[0], report_body(report))


def comparison_body(comparison: Comparison) -> str:
    """A comparison's table (each campaign minus the baseline, with its interval)."""
    rows = comparison.rows
    if rows.empty:
        return '<p class="note">No common strata to compare.</p>'
    note = (f'<p class="note">{html.escape(" vs ".join(comparison.labels))} — table '
            f"{html.escape(comparison.table_name)}, aligned on "
            f"{html.escape(', '.join(comparison.strata) or 'nothing (one row each)')}; "
            "difference = other − baseline.</p>")
    return note + table_html(rows, "comparison")


def comparison_page(comparison: Comparison) -> str:
    title = "faultlab comparison: " + " vs ".join(comparison.labels)
    return page(title, f'<section class="headline" id="headline"><h1>{html.escape(title)}'
                       f"</h1></section>{comparison_body(comparison)}")
