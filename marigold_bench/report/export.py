"""Results in the formats other people read: Hugging Face eval results, model-index, CSV rows.

* ``.eval_results/<benchmark>[_<subset>][_<protocol>].yaml``: Hugging Face's per-repository
  evaluation results, one file per benchmark and variant, one entry per metric
  (``dataset: {id, task_id}``, ``value``, ``date``, ``source: {url, name}``, ``notes``), built
  with ``huggingface_hub``'s own `EvalResultEntry` so the files are what the Hub parses.
  ``notes`` carry the protocol id and hash (marked when computed for a run written before
  0.4), the alignment and, for a number that does not cover the whole benchmark, ``partial:``
  and why: samples that failed (``n/N samples scored``), a ``--max-samples`` prefix (``first n
  of N samples``) or another split than the benchmark's test list.
* the legacy ``model-index`` block for a model card's YAML header (``huggingface_hub``'s
  `ModelCardData`), for boards that still read it;
* ``results.csv``: one row per (model, benchmark, variant, metric) with the exact value.

Values are printed as papers print them: metrics shown in percent are multiplied by 100 and,
like normals' degrees, rounded to ``digits`` decimals; other units (metres, log errors, AUSE)
get two more, as `table` shows them. Nothing is uploaded. A run that scored no sample is refused;
a run that scored some is exported and marked partial (documented choice), in all three
outputs (the model-index's dataset name says it too).
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import dataclass

from marigold_bench.errors import BenchError
from marigold_bench.eval.identity import hash_label, identity
from marigold_bench.report.tables import csv_text
from marigold_bench.tasks import METRICS

#: the metrics exported by default (the field's headline pair)
DEFAULT_METRICS = ("abs_rel", "delta1")

#: the model-index task type of each task: the Hub's ``depth-estimation``; the Hub has no task for
#: surface normals, so normals get a descriptive one
TASK_TYPES = {"depth": "depth-estimation", "normals": "surface-normal-estimation"}


@dataclass(frozen=True)
class Result:
    """One number to export, with everything needed to cite it."""

    model: str
    benchmark: str
    variant: str | None       # a subset (DIODE indoor/outdoor) or None for the whole benchmark
    protocol: str
    metric: str
    value: float              # the fraction as recorded in summary.json
    display: float            # as papers print it (x100 where the metric is shown in percent)
    protocol_id: str
    protocol_hash: str
    alignment: str
    n: int
    n_total: int
    date: str | None
    run_dir: str
    task: str = "depth"
    #: why the number does not cover the whole benchmark ("" when it does)
    coverage: str = ""
    #: ``hash <h>``, marked when the hash was computed for a run written before 0.4
    hash_text: str = ""

    @property
    def partial(self) -> bool:
        return bool(self.coverage)


def metric_spec(metric: str):
    """The metric's spec (title, display); a BenchError names the known metrics."""
    try:
        return METRICS[metric]
    except KeyError:
        raise BenchError(f"unknown metric {metric!r}; known: {', '.join(METRICS)}") from None


def _metric_display(metric: str, value: float, digits: int) -> float:
    """As papers print it: ``digits`` decimals for what is shown in percent or degrees (AbsRel
    x100, normals' angles and shares), two more for values near zero in other units (metres,
    log errors, AUSE/AURG), as `table` gives them."""
    from marigold_bench.report.tables import metric_digits

    spec = metric_spec(metric)
    decimals = digits if spec.task == "normals" else metric_digits(metric, digits)
    return round(value * spec.display_scale, decimals)


def results_of(run, metrics=DEFAULT_METRICS, digits: int = 2, model: str | None = None) -> list[Result]:
    """The exportable numbers of one loaded run directory (`marigold_bench.report.rundir.RunDir`).

    Raises:
        BenchError: the run scored no sample, or lacks a requested metric.
    """
    summary = run.summary
    if int(summary.get("n", 0)) <= 0:
        raise BenchError(f"{run.path}: the run scored no sample (n = 0); nothing to export")
    ident = identity(summary)
    scoring = summary.get("scoring") or {}
    name = model or str((summary.get("settings") or {}).get("model", "model"))
    name = os.path.basename(os.path.normpath(name)) if os.path.isdir(name) else name
    date = _date_of(run.path)
    variants = [(None, summary)]
    for subset, part in (summary.get("subsets") or {}).items():
        if subset != "all":
            variants.append((subset, {**summary, "n": part.get("n", 0), "n_total": part.get("n_total", 0),
                                      "metrics": part.get("metrics") or {}}))
    for metric in metrics:
        metric_spec(metric)  # an unknown key is refused, whatever the run's task
    # a run exports the asked metrics of its own task, else its task's defaults (as `table` shows
    # it): a normals run exports angles under the default --metrics abs_rel,delta1
    from marigold_bench.report.tables import metrics_for_task, run_task

    metrics = metrics_for_task(run_task(run), metrics)
    alignment = scoring.get("alignment", "affine")
    if alignment != "none":
        alignment += f" in {scoring.get('fit_space') or 'depth'}"
    out = []
    split_note = _split_note(summary)
    for variant, part in variants:
        if int(part.get("n", 0)) <= 0:
            continue  # a subset the run has no sample of (an indoor-only DIODE run's outdoor half)
        coverage = _coverage(part, summary.get("subset"), split_note)
        for metric in metrics:
            value = (part.get("metrics") or {}).get(metric)
            if value is None:
                raise BenchError(f"{run.path}: no {metric} in its metrics (it has "
                                 f"{', '.join(sorted(summary.get('metrics') or {}))})")
            out.append(Result(
                model=name, benchmark=summary["dataset"], variant=variant,
                protocol=scoring.get("protocol", "marigold"), metric=metric, value=float(value),
                display=_metric_display(metric, float(value), digits), protocol_id=ident["protocol_id"],
                protocol_hash=ident["protocol_hash"], alignment=alignment,
                n=int(part.get("n", 0)), n_total=int(part.get("n_total", part.get("n", 0))),
                date=date, run_dir=run.path, task=run_task(run), coverage=coverage,
                hash_text=hash_label(ident)))
    return out


def _split_note(summary: dict) -> str:
    """Why the run's sample list is not the benchmark's test list ("" when it is)."""
    facts = summary.get("protocol") or {}
    split_file, default = facts.get("split_file"), facts.get("default_split")
    if not split_file or not default:   # the procedural set, or a run recorded before 0.3
        return ""
    if facts.get("split_official") is False:
        return f"split {os.path.basename(split_file)} (not an official list)"
    if not str(split_file).replace(os.sep, "/").endswith(default):
        return f"split {os.path.basename(split_file)} (not the benchmark's test list)"
    return ""


def _coverage(part: dict, subset: dict | None, split_note: str) -> str:
    """What a number leaves out of the benchmark, for ``notes``: failures, a prefix, a split."""
    n, n_total = int(part.get("n", 0)), int(part.get("n_total", part.get("n", 0)))
    reasons = []
    if n < n_total:
        reasons.append(f"{n}/{n_total} samples scored")
    if subset:
        reasons.append(f"first {subset.get('n')} of {subset.get('of')} samples (--max-samples)")
    if split_note:
        reasons.append(split_note)
    return ", ".join(reasons)


def _date_of(path: str) -> str | None:
    import datetime
    try:
        stamp = os.path.getmtime(os.path.join(path, "summary.json"))
    except OSError:
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime("%Y-%m-%d")


def file_name(result: Result) -> str:
    """``nyu.yaml``, ``diode_indoor.yaml``, ``nyu_moge.yaml``: one file per benchmark and variant
    (the suite's default protocol, the first registered, gets no suffix)."""
    from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS

    parts = [result.benchmark] + ([result.variant] if result.variant else [])
    if result.protocol != next(iter(EVALUATION_PROTOCOLS)):  # the suite's default protocol: no suffix
        parts.append(result.protocol)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", "_".join(parts)) + ".yaml"


def notes_of(result: Result) -> str:
    """The ``notes`` field: how the number was computed, in one line."""
    text = (f"marigold-bench protocol {result.protocol_id} ({result.hash_text or 'hash ' + result.protocol_hash}); "
            f"{metric_spec(result.metric).title}; alignment {result.alignment}")
    if result.partial:
        text += f"; partial: {result.coverage}"
    return text


def eval_results_files(results: list[Result], dataset_ids: dict[str, str], source_url: str,
                       source_name: str = "marigold-bench protocol card") -> dict[str, str]:
    """``{file name: YAML text}`` of the ``.eval_results`` folder.

    ``dataset_ids`` maps a benchmark to its Hub dataset id (a benchmark without one keeps its
    name as the id, which the Hub will not link until such a dataset exists).

    Raises:
        BenchError: two runs give the same (benchmark, variant, protocol, metric).
    """
    import yaml
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    grouped: dict[str, list[Result]] = {}
    seen: dict[tuple, str] = {}
    for result in results:
        key = (result.benchmark, result.variant, result.protocol, result.metric)
        if key in seen:
            raise BenchError(f"{seen[key]} and {result.run_dir} both give {result.metric} on "
                             f"{file_name(result)}: export one run per benchmark and protocol at a time")
        seen[key] = result.run_dir
        grouped.setdefault(file_name(result), []).append(result)
    files = {}
    for name, group in sorted(grouped.items()):
        entries = [EvalResultEntry(
            dataset_id=dataset_ids.get(r.benchmark, r.benchmark),
            task_id=r.metric if r.variant is None else f"{r.variant}_{r.metric}",
            value=r.display, date=r.date, source_url=source_url.format(protocol=r.protocol, hash=r.protocol_hash),
            source_name=source_name, notes=notes_of(r)) for r in group]
        files[name] = yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False, allow_unicode=True)
    return files


def model_index(results: list[Result], model_name: str) -> str:
    """The legacy ``model-index`` YAML block (the front matter of a model card's README)."""
    from huggingface_hub import EvalResult, ModelCardData

    evals = [EvalResult(task_type=TASK_TYPES.get(r.task, r.task), dataset_type=r.benchmark,
                        dataset_name=r.benchmark + (f" ({r.variant})" if r.variant else "")
                        + (f" [partial: {r.coverage}]" if r.partial else ""),
                        dataset_split=r.variant, metric_type=r.metric, metric_value=r.display,
                        metric_name=metric_spec(r.metric).title,
                        source_name=None, source_url=None)
             for r in results]
    return ModelCardData(model_name=model_name, eval_results=evals).to_yaml() + "\n"


CSV_COLUMNS = ("model", "benchmark", "variant", "protocol_id", "protocol_hash", "metric", "value",
               "display", "n", "n_total", "partial", "run_dir")


def csv_rows(results: list[Result]) -> str:
    """One CSV row per (model, benchmark, variant, metric), the recorded value unrounded."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for r in results:
        writer.writerow([csv_text(r.model), r.benchmark, r.variant or "", r.protocol_id, r.protocol_hash,
                         r.metric, repr(r.value), r.display, r.n, r.n_total, r.partial, csv_text(r.run_dir)])
    return buffer.getvalue()


__all__ = ["CSV_COLUMNS", "DEFAULT_METRICS", "Result", "csv_rows", "eval_results_files", "file_name",
           "model_index", "notes_of", "results_of"]
