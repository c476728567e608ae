"""The protocol-sensitivity table: one run's predictions scored several ways, side by side.

`marigold-bench rescore` with lists of protocols and alignments scores a finished run under every
combination (:mod:`marigold_bench.eval.rescore`); this module only turns those records into the
table of headline means with their bootstrap 95 % intervals, and writes it. Nothing here scores.
"""

from __future__ import annotations

import math
import os

from marigold_bench.eval.rundir import OK, atomic_write, recorded_choices

#: the headline metrics of the sensitivity table
SENSITIVITY_METRICS = ("abs_rel", "delta1")


def sensitivity_frame(rows: list[dict], n_total: int, n_resamples: int = 10_000, seed: int = 0):
    """The table as a frame, one row per entry of ``rows`` in order.

    Args:
        rows: dicts with ``protocol``, ``alignment``, ``fit_space`` and either ``records`` (the
            per-sample records of that scoring) or ``note`` (why the protocol does not define it).
        n_total: the run's sample count (the ``n_total`` of an undefined row).

    Columns are the headline means with the bootstrap 95 % interval of
    `marigold_bench.report.stats.bootstrap_ci` over the ok samples; an undefined row has no
    numbers and says why in ``note``.
    """
    import pandas as pd

    from marigold_bench.report.stats import bootstrap_ci

    out = []
    for entry in rows:
        if entry.get("records") is None:
            out.append({"protocol": entry["protocol"], "alignment": entry["alignment"] or "default", "fit_space": "",
                        "n": 0, "n_total": n_total,
                        **{f"{m}{end}": math.nan for m in SENSITIVITY_METRICS for end in ("", "_low", "_high")},
                        "note": entry["note"]})
            continue
        records = entry["records"]
        ok = [r for r in records if r["status"] == OK]
        row = {"protocol": entry["protocol"], "alignment": entry["alignment"], "fit_space": entry["fit_space"],
               "n": len(ok), "n_total": len(records)}
        for metric in SENSITIVITY_METRICS:
            iv = bootstrap_ci([r[metric] for r in ok], n_resamples=n_resamples, seed=seed)
            row.update({metric: iv.mean, f"{metric}_low": iv.low, f"{metric}_high": iv.high})
        out.append({**row, "note": ""})
    return pd.DataFrame(out)


def render_sensitivity(frame, run=None) -> str:
    """The table as GitHub Markdown, metrics ×100 as papers print them; rows a protocol does
    not define are listed under the table with the reason. ``run`` (anything with ``path`` and
    ``summary``) adds a heading naming it."""
    from tabulate import tabulate

    def cell(row, metric):
        if row.get("note"):
            return "not defined"
        mean, low, high = (100 * row[metric], 100 * row[f"{metric}_low"], 100 * row[f"{metric}_high"])
        return f"{mean:.2f}" if math.isnan(low) else f"{mean:.2f} [{low:.2f}, {high:.2f}]"

    body = [[r["protocol"], r["alignment"], r["fit_space"], f"{r['n']}/{r['n_total']}",
             cell(r, "abs_rel"), cell(r, "delta1")] for _, r in frame.iterrows()]
    table = tabulate(body, headers=["protocol", "alignment", "fit space", "n", "AbsRel↓ ×100 [95% CI]",
                                    "δ1↑ ×100 [95% CI]"], tablefmt="github", disable_numparse=True)
    notes = [f"\n{r['protocol']} / {r['alignment']}: {r['note']}" for _, r in frame.iterrows() if r.get("note")]
    table += "\n" + "".join(notes) if notes else ""
    if run is None:
        return table
    head = (f"Protocol sensitivity of {run.path} ({run.summary['dataset']}, "
            f"{recorded_choices(run.summary)['output_space']}); bootstrap 95% intervals over samples.\n\n")
    return head + table


def write_sensitivity(frame, out: str, run=None) -> None:
    """``sensitivity.csv`` and ``sensitivity.md`` in ``out``, each written atomically."""
    os.makedirs(out, exist_ok=True)
    atomic_write(os.path.join(out, "sensitivity.csv"), frame.to_csv(index=False, float_format="%.8g"))
    atomic_write(os.path.join(out, "sensitivity.md"), render_sensitivity(frame, run) + "\n")
