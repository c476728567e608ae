"""``marigold-bench export``: run directories as Hugging Face eval results, model-index and CSV.

See :mod:`marigold_bench.report.export` for the formats. Nothing is uploaded: the files are
written under ``--out`` for the user to add to a model repository (``hf upload``).
"""

from __future__ import annotations

import json
import os

from marigold_bench.errors import BenchError


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="write runs as Hugging Face .eval_results YAML, a model-index block and CSV rows",
        description="One .eval_results/<benchmark>[_<subset>][_<protocol>].yaml per benchmark and variant "
                    "(values as papers print them, the protocol id and hash in notes), model-index.yaml "
                    "for a model card, results.csv with one row per (model, benchmark, metric), and the "
                    "protocol cards the entries point at. Nothing is uploaded.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, help="folder to write into (created)")
    p.add_argument("--model", default=None,
                   help="the model's name or Hub id (default: the model the runs recorded); a Hub id "
                        "makes the sources point at the cards inside that repository")
    p.add_argument("--metrics", "--metric", default="abs_rel,delta1",
                   help="comma-separated metric keys; a run of another task (normals) exports that task's keys "
                        "from this list, else its defaults (mean_angle, median_angle, pct_11_25, pct_30)")
    p.add_argument("--digits", type=int, default=2, help="decimals of values shown in percent or degrees (default 2); metres, log errors and AUSE get two more")
    p.add_argument("--dataset-id", action="append", default=[], metavar="BENCHMARK=HUB_ID",
                   help="the Hub dataset id of a benchmark (repeatable); default: the benchmark's name")
    p.add_argument("--source-url", default=None,
                   help="where the protocol card is published ({protocol} and {hash} are filled in)")
    p.set_defaults(func=run)


def _dataset_ids(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, hub_id = pair.partition("=")
        if not sep or not name.strip() or not hub_id.strip():
            raise BenchError(f"--dataset-id {pair!r}: write BENCHMARK=HUB_ID, e.g. nyu=sayakpaul/nyu_depth_v2")
        out[name.strip()] = hub_id.strip()
    return out


def _check_source_url(template: str) -> str:
    """``--source-url`` with only the {protocol} and {hash} fields, checked before any run is read."""
    import string

    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise BenchError(f"--source-url {template!r}: {exc} (write literal braces as {{{{ and }}}})") from None
    unknown = fields - {"protocol", "hash"}
    if unknown:
        raise BenchError(f"--source-url {template!r}: unknown field(s) {', '.join(sorted(unknown))}; "
                         "it may use {protocol} and {hash}")
    return template


def _unused_ids(ids: dict[str, str], results) -> None:
    exported = {r.benchmark for r in results}
    unused = sorted(set(ids) - exported)
    if unused:
        raise BenchError(f"--dataset-id names {', '.join(unused)}, which none of the runs scored "
                         f"(they scored {', '.join(sorted(exported))})")


#: what export writes under --out: folders, then files
EXPORT_FOLDERS, EXPORT_FILES = (".eval_results", "protocol-cards"), ("model-index.yaml", "results.csv")


def check_export_paths(out: str) -> None:
    """Refuse, before anything is written, an --out where one of export's folders or files
    cannot go, so that no half export is left (the YAML files written, results.csv not)."""
    from marigold_bench.eval.outdir import check_writable, file_problem, folder_problem

    check_writable(out)
    checks = [(folder_problem, folder) for folder in EXPORT_FOLDERS] + [(file_problem, name) for name in EXPORT_FILES]
    for problem_of, name in checks:
        path = os.path.join(out, name)
        problem = problem_of(path)
        if problem:
            raise BenchError(f"--out {out} cannot take the export: {path} {problem}; move it away or choose "
                             "another folder")


def run(args) -> int:
    import yaml
    from huggingface_hub import parse_eval_result_entries

    from marigold_bench.commands.table import parse_metrics_and_digits
    from marigold_bench.eval.identity import hash_inputs, identity
    from marigold_bench.report.export import csv_rows, eval_results_files, model_index, results_of
    from marigold_bench.report.rundir import load_run

    metrics = parse_metrics_and_digits(args)
    if args.source_url is not None:
        _check_source_url(args.source_url)
    dataset_ids = _dataset_ids(args.dataset_id)
    check_export_paths(args.out)
    runs = [load_run(path) for path in args.runs]
    results = [r for run in runs for r in results_of(run, metrics, args.digits, args.model)]
    _unused_ids(dataset_ids, results)   # a typo in a benchmark name would be silently dropped
    model = args.model or results[0].model
    source = args.source_url or (f"https://huggingface.co/{model}/blob/main/protocol-cards/{{protocol}}-{{hash}}.json"
                                 if "/" in model and not os.path.exists(model) else "protocol-cards/{protocol}-{hash}.json")
    files = eval_results_files(results, dataset_ids, source)
    folder = os.path.join(args.out, ".eval_results")
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        parse_eval_result_entries(yaml.safe_load(text))  # what the Hub reads must parse back
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            f.write(text)
    cards = os.path.join(args.out, "protocol-cards")
    os.makedirs(cards, exist_ok=True)
    for run in runs:
        ident = identity(run.summary)
        card = {**ident, "inputs": hash_inputs(run.summary)}
        name = f"{card['inputs']['scoring'].get('protocol', 'marigold')}-{ident['protocol_hash']}.json"
        with open(os.path.join(cards, name), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2, ensure_ascii=False)
            f.write("\n")
    with open(os.path.join(args.out, "model-index.yaml"), "w", encoding="utf-8") as f:
        f.write(model_index(results, model))
    with open(os.path.join(args.out, "results.csv"), "w", encoding="utf-8", newline="") as f:
        f.write(csv_rows(results))
    partial = sorted({r.run_dir for r in results if r.partial})
    print(f"wrote {len(files)} eval-results file(s), model-index.yaml and results.csv under {args.out}")
    if partial:
        print("marked partial (not every sample scored): " + ", ".join(partial))
    return 0
