"""Regenerate every number the docs quote, by running the commands the docs show.

A quoted number lives in a marked span, ``<!-- num:NAME -->19.41<!-- /num -->`` (HTML comments:
invisible on GitHub), in ``README.md`` or the bundled model card
(``marigold_bench/checkpoints/tiny/README.md``). Every NAME has one generator here, which runs the
documented command in a scratch folder and formats what it produced. So a number in the docs is
never typed by hand, and a change that moves it shows up the next time this script runs.

Generators come in tiers by cost (2 CPU cores):

- ``fast``: the non-learned baselines on the synthetic set (seconds);
- ``model``: the bundled tiny checkpoint on the synthetic set, its rescore and the leaderboard
  (a few minutes);
- ``study``: the ensemble and steps ablations (tens of minutes).

Spans marked as timings (wall time of a documented command on this machine) are rewritten when
their tier runs and are never compared by ``--check``: they are measurements, not results.

Usage::

    python benchmarks/doc_numbers.py                 # rewrite the fast and model spans
    python benchmarks/doc_numbers.py --tier all      # everything, studies included
    python benchmarks/doc_numbers.py --check         # exit 1 when a span differs (nothing written)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", REPO / "marigold_bench" / "checkpoints" / "tiny" / "README.md")
TIERS = ("fast", "model", "study")

#: ``<!-- num:NAME -->TEXT<!-- /num -->``; TEXT may span lines (a whole table).
SPAN = re.compile(r"<!-- num:(?P<name>[A-Za-z0-9_.-]+) -->(?P<text>.*?)<!-- /num -->", re.S)


# --- running the documented commands -----------------------------------------------------

class Runs:
    """The documented commands, each run once into ``work`` (in this process, through the CLI),
    with its wall time."""

    def __init__(self, work: Path):
        self.work = work
        self.seconds: dict[str, float] = {}

    def cli(self, name: str, argv: list[str]) -> Path:
        """``marigold-bench ARGV --out WORK/NAME``, once; returns that folder."""
        out = self.work / name
        if name not in self.seconds:
            from marigold_bench.cli import main

            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = main([*argv, "--out", str(out)])
            self.seconds[name] = time.perf_counter() - start
            if code != 0:
                raise SystemExit(f"`marigold-bench {' '.join(argv)}` exited with {code}")
        return out

    def metrics(self, name: str, argv: list[str]) -> dict:
        """The mean metrics of a ``run``."""
        return json.loads((self.cli(name, ["run", *argv]) / "summary.json").read_text())["metrics"]

    # the runs the docs quote
    def synthetic(self, model: str, split: str = "test") -> dict:
        # README: `marigold-bench run --dataset synthetic --steps 1 --out runs/synthetic-tiny`
        argv = ["--dataset", "synthetic", "--model", model] + (["--split", split] if split != "test" else [])
        if model == "tiny":
            argv += ["--steps", "1"]
        return self.metrics(f"{split}-{model.replace(':', '-')}", argv)


def percent(value: float) -> str:
    return f"{value * 100:.2f}"


def fraction(value: float) -> str:
    return f"{value:.4f}"


def minutes(seconds: float) -> str:
    """A wall time as the docs say it: "about a minute", "about 10 minutes"."""
    if seconds < 90:
        return "about a minute"
    return f"about {round(seconds / 60)} minutes"


# --- generators --------------------------------------------------------------------------

@dataclass(frozen=True)
class Generator:
    tier: str
    make: Callable[[Runs], str]
    timing: bool = False   # a wall time: rewritten, never checked


def _card(split: str, model: str, metric: str) -> Generator:
    """One cell of the model card's score table."""
    tier = "model" if model == "tiny" else "fast"
    return Generator(tier, lambda runs: fraction(runs.synthetic(model, split)[metric]))


def _sensitivity(runs: Runs) -> str:
    # README: rescore runs/synthetic-tiny --protocol marigold,moge --alignment affine,scale,median
    runs.synthetic("tiny")
    out = runs.cli("sensitivity", ["rescore", str(runs.work / "test-tiny"), "--protocol", "marigold,moge",
                                   "--alignment", "affine,scale,median"])
    # the table alone: the file's first line names the (scratch) run folder
    table = [line for line in (out / "sensitivity.md").read_text().splitlines() if line.startswith("|")]
    return "\n```\n" + "\n".join(table) + "\n```\n"


LEADERBOARD = ["leaderboard", "--models", "tiny,baseline:ramp,baseline:constant", "--datasets", "synthetic"]


def _leaderboard(runs: Runs) -> str:
    out = runs.cli("leaderboard", LEADERBOARD)
    text = (out / "leaderboard.md").read_text().strip()
    return f"\n```\n$ marigold-bench {' '.join(LEADERBOARD)}\n{text}\n```\n"


def _study_table(runs: Runs, study: str) -> pd.DataFrame:
    out = runs.cli(f"ablate-{study}", ["ablate", "--study", study])
    return pd.read_csv(out / "table.csv")


def _ensemble_row(runs: Runs) -> str:
    table = _study_table(runs, "ensemble")
    cells = [f"{percent(r.abs_rel_mean)} ± {percent(r.abs_rel_std)}" for r in table.itertuples()]
    return "| AbsRel ×100 | " + " | ".join(cells) + " |"


def _steps_rows(runs: Runs) -> str:
    table = _study_table(runs, "steps")
    lines = []
    for spacing in ("trailing", "leading"):
        part = table[table["timestep_spacing"] == spacing].sort_values("steps")
        lines.append(f"| {spacing}, AbsRel ×100 | " + " | ".join(percent(v) for v in part["abs_rel_mean"]) + " |")
    return "\n".join(lines)


def _study_minutes(study: str) -> Generator:
    def make(runs: Runs) -> str:
        _study_table(runs, study)
        return minutes(runs.seconds[f"ablate-{study}"])
    return Generator("study", make, timing=True)


def _quickstart_minutes(runs: Runs) -> str:
    runs.synthetic("tiny")
    return minutes(runs.seconds["test-tiny"])


GENERATORS: dict[str, Generator] = {
    # the model card's score table (synthetic benchmark, val and test splits)
    **{f"card_{split}_{key}_{metric}": _card(split, model, metric)
       for split in ("val", "test")
       for key, model in (("model", "tiny"), ("ramp", "baseline:ramp"), ("constant", "baseline:constant"))
       for metric in ("abs_rel", "delta1")},
    "sensitivity_table": Generator("model", _sensitivity),
    "leaderboard_synthetic": Generator("model", _leaderboard),
    "quickstart_minutes": Generator("model", _quickstart_minutes, timing=True),
    "ensemble_study_row": Generator("study", _ensemble_row),
    "steps_study_rows": Generator("study", _steps_rows),
    "ensemble_study_minutes": _study_minutes("ensemble"),
    "steps_study_minutes": _study_minutes("steps"),
}


# --- reading and writing the spans ---------------------------------------------------------

def spans(text: str) -> list[tuple[str, str]]:
    """(name, text) of every marked span, in order."""
    return [(m["name"], m["text"]) for m in SPAN.finditer(text)]


def all_spans(docs=DOCS) -> dict[Path, list[tuple[str, str]]]:
    return {path: spans(path.read_text(encoding="utf-8")) for path in docs}


def rewrite(text: str, values: dict[str, str]) -> str:
    """``text`` with the spans named in ``values`` holding those values."""
    def replace(m: re.Match) -> str:
        name = m["name"]
        return f"<!-- num:{name} -->{values[name]}<!-- /num -->" if name in values else m.group(0)
    return SPAN.sub(replace, text)


def compute(names, work: Path) -> dict[str, str]:
    """The generated text of each span in ``names``."""
    runs = Runs(work)
    return {name: GENERATORS[name].make(runs) for name in names}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", default="model", choices=(*TIERS, "all"),
                        help="run the generators up to this tier (default: fast and model)")
    parser.add_argument("--only", default=None, help="comma-separated span names (overrides --tier)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    parser.add_argument("--skip-timings", action="store_true",
                        help="leave the wall-time spans alone (a busy or unusual machine)")
    parser.add_argument("--work", default=None, help="scratch folder for the runs (default: a temporary one)")
    args = parser.parse_args(argv)

    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in GENERATORS]
        if unknown:
            parser.error(f"no generator for {', '.join(unknown)}")
    else:
        upto = TIERS if args.tier == "all" else TIERS[:TIERS.index(args.tier) + 1]
        names = [n for n, g in GENERATORS.items() if g.tier in upto]
    if args.check or args.skip_timings:
        names = [n for n in names if not GENERATORS[n].timing]

    with contextlib.ExitStack() as stack:
        work = Path(args.work) if args.work else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        os.environ.setdefault("TQDM_DISABLE", "1")
        values = compute(names, work)

    differ = 0
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for name, old in spans(text):
            if name in values and values[name] != old:
                differ += 1
                print(f"{path.relative_to(REPO)}: {name}: {old.strip()!r} -> {values[name].strip()!r}")
        if not args.check:
            path.write_text(rewrite(text, values), encoding="utf-8")
    if args.check:
        print(f"{differ} span(s) differ" if differ else f"{len(values)} span(s) as generated")
        return 1 if differ else 0
    print(f"{len(values)} span(s) generated, {differ} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
