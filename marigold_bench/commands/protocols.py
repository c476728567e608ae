"""``marigold-bench protocols``: the evaluation protocols, their sources and what each output space gets."""

from __future__ import annotations

from tabulate import tabulate


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "protocols", help="list the evaluation protocols (--protocol) with their sources",
        description="Each protocol is one small definition (marigold_bench/eval/protocols/<name>.py, "
                    "or a plugin's, see --include): the alignment per output space, fit resolution "
                    "and weights, clipping, metric definitions and extra metrics, with the code it "
                    "was read from and where the definition came from (built-in or plugin).")
    p.add_argument("--format", choices=("text", "md", "json", "yaml"), default=None,
                   help="text (tables for the terminal) or md (GitHub Markdown); with --card: json (default) or yaml")
    p.add_argument("--card", default=None, metavar="NAME",
                   help="print the protocol card of NAME (its id, rules, metrics and the protocol hash on each "
                        "benchmark), for a paper to cite")
    p.add_argument("--task", default=None, choices=("depth", "normals"),
                   help="only the protocols of this task (default: both); with --card: the task of NAME "
                        "(default: depth, else the task that has it)")
    p.set_defaults(func=run)


def describe_normals(spec, fmt: str = "text") -> str:
    """The block of one surface-normals protocol (no fit, no crop: its metrics and notes)."""
    head = [f"{'## ' if fmt == 'md' else ''}{spec.name} (normals): {spec.description}", "",
            f"source: {spec.source}",
            f"origin: {spec.origin}",
            "fit: none (angles); predictions converted to the benchmark's camera frame",
            "dataset metrics: " + ("pooled over every scored pixel of the dataset" if spec.pooled
                                   else "mean of the per-image records"),
            f"metrics ({spec.metric_definitions or spec.name} definitions): {', '.join(spec.metric_keys)}"]
    return "\n".join(head + [f"note: {n}" for n in spec.notes])


def describe(fmt: str = "text", task: str | None = None) -> str:
    """The listing: one block per protocol, depth's then normals' (``task``: only that task's)."""
    from marigold_bench.eval.protocols import EVALUATION_PROTOCOLS, NORMALS_PROTOCOLS
    from marigold_bench.eval.protocols.base import never
    from marigold_bench.output_spaces import OUTPUT_SPACES, POINT_OUTPUT_SPACES

    tablefmt = "github" if fmt == "md" else "simple"
    blocks = []
    for spec in (EVALUATION_PROTOCOLS.values() if task in (None, "depth") else ()):
        rows = []
        # point maps only where the protocol scores them (its z's alignment is shown)
        for space in OUTPUT_SPACES + tuple(s for s in POINT_OUTPUT_SPACES if s in spec.default_alignment):
            if space not in spec.default_alignment:  # e.g. a metric protocol: only an explicit fit
                rows.append([space, "none by default", "refused unless --alignment is given"])
                continue
            alignment, fit_space = spec.default_alignment[space]
            rows.append([space, f"{alignment} in {fit_space}" if alignment != "none" else "none",
                         spec.realisations[(alignment, fit_space)]])
        others = ", ".join(f"{a} in {s}" for a, s in spec.realisations)
        head = [f"{'## ' if fmt == 'md' else ''}{spec.name}: {spec.description}", "",
                f"source: {spec.source}",
                f"origin: {spec.origin}",
                "fit resolution: " + ("the benchmark's (full; ETH3D: longer side <= 1024, the official "
                                      "width-only nearest downsample)" if spec.fit_resolution == "dataset"
                                      else spec.fit_resolution)
                + ("; weights 1/g on the subsampled fits" if spec.subsampled_fits else "; unweighted"),
                f"clip to the dataset's depth range: {'yes, then >= 1e-6' if spec.clip_to_range else 'no'}",
                f"disparity floor before inversion: {spec.disparity_floor:g}",
                "crop: " + (spec.crop or "the benchmark's own"),
                f"metrics ({spec.metric_definitions or spec.name} definitions): {', '.join(spec.metric_keys)}",
                "boundary F1: " + (f"radius {spec.boundary_f1_radius} where the benchmark's ground truth has "
                                   "sharp edges" if spec.boundary_f1_on is not never
                                   else "only with --boundary-f1 R"),
                f"--alignment choices: {others}", ""]
        notes = [f"note: {n}" for n in spec.notes]
        blocks.append("\n".join(head) + tabulate(rows, headers=["output space", "default alignment", "fit"],
                                                 tablefmt=tablefmt) + ("\n" + "\n".join(notes) if notes else ""))
    if task in (None, "normals"):
        blocks += [describe_normals(spec, fmt) for spec in NORMALS_PROTOCOLS.values()]
    return "\n\n".join(blocks) + "\n"


def run(args) -> int:
    from marigold_bench.errors import BenchError

    if args.card is not None and not args.card.strip():
        raise BenchError("--card needs a protocol name (`marigold-bench protocols` lists them)")
    if args.card:
        import json

        from marigold_bench.eval.identity import protocol_card

        card = protocol_card(args.card, args.task)
        if args.format in (None, "json"):
            print(json.dumps(card, indent=2, ensure_ascii=False))
        elif args.format == "yaml":
            import yaml
            print(yaml.safe_dump(card, sort_keys=False, allow_unicode=True), end="")
        else:
            raise BenchError(f"--card prints json or yaml, not {args.format}")
        return 0
    if args.format in ("json", "yaml"):
        raise BenchError(f"--format {args.format} goes with --card NAME")
    print(describe(args.format or "text", args.task), end="")
    return 0
