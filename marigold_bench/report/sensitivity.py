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

#: ... by task (normals: mean angle and the share under 11.25 degrees)
METRICS_BY_TASK = {"depth": SENSITIVITY_METRICS, "normals": ("mean_angle", "pct_11_25")}


def sensitivity_frame(rows: list[dict], n_total: int, n_resamples: int = 10_000, seed: int = 0,
                      metrics=SENSITIVITY_METRICS):
    """The table as a frame, one row per entry of ``rows`` in order.

    Args:
        rows: dicts with ``protocol``, ``alignment``, ``fit_space`` and either ``records`` (the
            per-sample records of that scoring) or ``note`` (why the protocol does not define it);
            ``pooled``: the protocol's pooling (DSINE), whose dataset value replaces the mean of
            the records (and has no per-sample interval: its bounds are NaN).
        n_total: the run's sample count (the ``n_total`` of an undefined row).
        metrics: the headline metric keys (`METRICS_BY_TASK`).

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
                        **{f"{m}{end}": math.nan for m in metrics for end in ("", "_low", "_high")},
                        "note": entry["note"]})
            continue
        records = entry["records"]
        ok = [r for r in records if r["status"] == OK]
        row = {"protocol": entry["protocol"], "alignment": entry["alignment"], "fit_space": entry["fit_space"],
               "n": len(ok), "n_total": len(records)}
        pooled = entry.get("pooled")
        values = pooled([r["_pool"] for r in ok]) if pooled is not None and ok else None
        for metric in metrics:
            if values is not None:  # one number over every pixel: no per-sample spread to resample
                row.update({metric: values[metric], f"{metric}_low": math.nan, f"{metric}_high": math.nan})
                continue
            iv = bootstrap_ci([r[metric] for r in ok], n_resamples=n_resamples, seed=seed)
            row.update({metric: iv.mean, f"{metric}_low": iv.low, f"{metric}_high": iv.high})
        out.append({**row, "note": ""})
    return pd.DataFrame(out)


def render_sensitivity(frame, run=None) -> str:
    """The table as GitHub Markdown, metrics ×100 as papers print them; rows a protocol does
    not define are listed under the table with the reason. ``run`` (anything with ``path`` and
    ``summary``) adds a heading naming it."""
    from tabulate import tabulate

    from marigold_bench.tasks import METRICS

    metrics = next((m for m in METRICS_BY_TASK.values() if m[0] in frame.columns), SENSITIVITY_METRICS)

    def cell(row, metric):
        if row.get("note"):
            return "not defined"
        scale = METRICS[metric].display_scale
        mean, low, high = (scale * row[metric], scale * row[f"{metric}_low"], scale * row[f"{metric}_high"])
        return f"{mean:.2f}" if math.isnan(low) else f"{mean:.2f} [{low:.2f}, {high:.2f}]"

    def heading(metric):
        scale = " ×100" if METRICS[metric].display_scale != 1 else ""
        return f"{METRICS[metric].heading()}{scale} [95% CI]"

    body = [[r["protocol"], r["alignment"], r["fit_space"], f"{r['n']}/{r['n_total']}",
             *(cell(r, m) for m in metrics)] for _, r in frame.iterrows()]
    table = tabulate(body, headers=["protocol", "alignment", "fit space", "n", *(heading(m) for m in metrics)],
                     tablefmt="github", disable_numparse=True)
    if any(math.isnan(r[f"{m}_low"]) and not r.get("note") for _, r in frame.iterrows() for m in metrics):
        table += ("\n\nA value without an interval is pooled over every pixel of the dataset (dsine) or "
                  "rests on one sample: there is no per-sample mean to resample.")
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
