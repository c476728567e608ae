"""A leaderboard as one self-contained HTML page: the table, then an inline SVG bar chart per metric.

Everything is in the file: the style sheet inline, the charts as ``<svg>`` elements, no script,
no font, image or style sheet fetched from anywhere, so the page opens from disk (or an e-mail
attachment, or an air-gapped machine) exactly as it was written. Bars are drawn from zero in
the table's display units (×100 for fractions); each dataset has its own block and scale, and
the best bar of a block is the table's bold value.
"""

from __future__ import annotations

from html import escape

from marigold_bench.report.tables import (Table, best_values, column_title, format_cells, header_cells,
                                          metric_digits, metric_title, rank_group, table_notes)
from marigold_bench.tasks import higher_is_better

#: bar colours of measured rows, in row order (Tableau 10); quoted rows are grey
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac")
QUOTED_COLOUR = "#c8c8c8"

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.quoted td { color: #666; }
tr.failed td { background: #fdecea; }
.notes { font-size: 13px; color: #555; }
figure { margin: 2em 0; }
figcaption { font-weight: 600; margin-bottom: .5em; }
svg text { font-size: 12px; font-family: inherit; }
"""

_LABEL_W, _BAR_W, _VALUE_W = 300, 360, 70
_BAR_H, _GAP, _HEAD_H = 16, 4, 24


def _colours(table: Table) -> list[str]:
    colours, k = [], 0
    for row in table.rows:
        if row.quoted:
            colours.append(QUOTED_COLOUR)
        else:
            colours.append(PALETTE[k % len(PALETTE)])
            k += 1
    return colours


def render_table_html(table: Table, digits: int = 1) -> str:
    """The table as an HTML ``<table>``: a header row of dataset groups over their columns,
    best values in ``<strong>``, quoted and failed rows marked by class."""
    width = len(table.metrics) + int(table.show_n)
    head = ["<tr><th rowspan=\"2\">Method</th><th rowspan=\"2\">Output space</th><th rowspan=\"2\">Alignment</th>"]
    head += [f"<th colspan=\"{width}\">{escape(column_title(d))}</th>" for d in table.datasets]
    head.append("</tr>")
    sub = header_cells(table, lambda d, c: c)[3:]
    head.append("<tr>" + "".join(f"<th>{escape(c)}</th>" for c in sub) + "</tr>")
    body = format_cells(table, digits, lambda t: f"<strong>{t}</strong>", lambda n, t: f" <small>({n}/{t})</small>")
    lines = ["<table>", "<thead>", *head, "</thead>", "<tbody>"]
    for row, cells in zip(table.rows, body):
        kind = "quoted" if row.quoted else ("failed" if row.failures else "ours")
        texts = [f"<td>{escape(row.label)}</td>"] + [f"<td>{escape(c)}</td>" for c in cells[:2]]
        texts += [f"<td class=\"num\">{c}</td>" for c in cells[2:]]  # numbers and our own markup only
        lines.append(f"<tr class=\"{kind}\">" + "".join(texts) + "</tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def render_chart_svg(table: Table, metric: str, digits: int = 1) -> str:
    """One ``<svg>`` of horizontal bars for ``metric``: a block per dataset, a bar per row that
    has a value there, the value printed at the bar's end (bold where it is the column's best)."""
    colours = _colours(table)
    best = best_values(table, digits)
    decimals = metric_digits(metric, digits)
    parts, y = [], 0
    for dataset in table.datasets:
        bars = [(i, row) for i, row in enumerate(table.rows) if (dataset, metric) in row.values]
        if not bars:
            continue
        top = max(row.values[(dataset, metric)] for _, row in bars) or 1.0
        parts.append(f"<text x=\"0\" y=\"{y + 16}\" font-weight=\"600\">{escape(column_title(dataset))}</text>")
        y += _HEAD_H
        for i, row in bars:
            value = row.values[(dataset, metric)]
            shown = round(value, decimals)
            length = max(0.0, value) / top * _BAR_W
            weight = " font-weight=\"700\"" if best.get((dataset, metric, rank_group(row))) == shown else ""
            label = escape(row.label if len(row.label) <= 46 else row.label[:45] + "…")
            parts.append(
                f"<g><title>{escape(row.label)}: {shown:.{decimals}f}</title>"
                f"<text x=\"{_LABEL_W - 6}\" y=\"{y + 12}\" text-anchor=\"end\">{label}</text>"
                f"<rect x=\"{_LABEL_W}\" y=\"{y}\" width=\"{length:.1f}\" height=\"{_BAR_H}\" fill=\"{colours[i]}\"/>"
                f"<text x=\"{_LABEL_W + length + 4:.1f}\" y=\"{y + 12}\"{weight}>{shown:.{decimals}f}</text></g>")
            y += _BAR_H + _GAP
        y += _GAP * 2
    width = _LABEL_W + _BAR_W + _VALUE_W
    title = escape(metric_title(metric))
    return (f"<svg width=\"{width}\" height=\"{max(y, 1)}\" "
            f"viewBox=\"0 0 {width} {max(y, 1)}\" role=\"img\" aria-label=\"{title}\">"
            + "".join(parts) + "</svg>")


def _section(table: Table, digits: int) -> list[str]:
    # one table: itself, its notes, then one figure with an inline SVG chart per metric
    notes = "".join(f"<p>{escape(n)}</p>" for n in table_notes(table))
    figures = []
    for metric in table.metrics:
        caption = escape(metric_title(metric)) + (" (higher is better)" if higher_is_better(metric)
                                                 else " (lower is better)")
        figures.append(f"<figure><figcaption>{caption}</figcaption>\n{render_chart_svg(table, metric, digits)}"
                       "\n</figure>")
    return [render_table_html(table, digits), f"<div class=\"notes\">{notes}</div>", *figures]


def render_html(table: Table | list[Table], digits: int = 1, title: str = "Leaderboard", context: str = "",
                headings: list[str] | None = None) -> str:
    """The whole page: heading, ``context`` (a line saying what was run), the table, its notes,
    then one figure with an inline SVG chart per metric. Several tables (one per task) each get
    a section under their entry of ``headings``."""
    tables = table if isinstance(table, list) else [table]
    body = []
    for k, one in enumerate(tables):
        if len(tables) > 1:
            body.append(f"<h2>{escape((headings or [])[k] if k < len(headings or []) else f'Table {k + 1}')}</h2>")
        body += _section(one, digits)
    return "\n".join([
        "<!DOCTYPE html>",
        "<html lang=\"en\">",
        "<head>",
        "<meta charset=\"utf-8\">",
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(context)}</p>" if context else "",
        *body,
        "</body>",
        "</html>",
        "",
    ])
