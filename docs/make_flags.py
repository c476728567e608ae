"""Write docs/flags.md from the command's own parsers: ``python docs/make_flags.py``.

Every flag of every sub-command with its help text, so the reference cannot drift from
``marigold-bench COMMAND --help``; ``tests/test_docs.py`` checks that flags.md names every flag.
Rerun it after adding or changing a flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent))

from marigold_bench.cli import build_parser  # noqa: E402

HEADER = """# Flag reference

Every flag of every `marigold-bench` sub-command, as `marigold-bench COMMAND --help` prints it
(this file is written by `python docs/make_flags.py`; a test checks that it names every flag).
`--include PATH` is accepted before or after any sub-command: it adds a folder of spec files
(see [adding a benchmark](adding-a-benchmark.md)). User errors print one line and exit with 2
(missing benchmark data adds the layout expected and the download command).
"""


#: what a flag without a help text of its own does (its --help shows no text)
FALLBACK = {
    "--dataset": "benchmark name (`marigold-bench benchmarks` lists them, plugins included)",
    "--seed": "seed of the starting noise (member k of a sample: seed, sample id, k)",
    "--timestep-spacing": "DDIM timestep spacing (default: the checkpoint's scheduler)",
    "--precision": "inference precision",
    "--study": "which study: noise, ensemble, steps or spacing (see README, ablate)",
    "--format": "output format",
    "run_dir": "a finished run directory",
    "run_a": "the run compared against (A)",
    "run_b": "the run compared (B)",
    "runs": "finished run directories",
}


def _cell(text: str) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    name = ", ".join(f"`{o}`" for o in action.option_strings) if action.option_strings else f"`{action.dest.upper()}`"
    if action.choices is not None and action.option_strings and len(list(action.choices)) <= 8:
        name += " {" + ",".join(str(c) for c in action.choices) + "}"
    elif action.nargs != 0 and action.option_strings:
        name += f" {action.metavar or action.dest.upper()}"
    return name


def _default(action: argparse.Action) -> str:
    if action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0:
        return ""
    return f"`{action.default}`"


def _section(title: str, parser: argparse.ArgumentParser, summary: str = "") -> list[str]:
    lines = [f"## `{title}`", "", _cell(parser.description or summary) + "\n" if (parser.description or summary) else "",
             "| flag | default | what it does |", "|---|---|---|"]
    subs = None
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            subs = action
            continue
        if isinstance(action, argparse._HelpAction) or "--include" in action.option_strings:
            continue  # --help and --include: every command has them (see above)
        if action.help == argparse.SUPPRESS:
            continue  # hidden from --help (old spellings kept for scripts): hidden here too
        text = action.help or FALLBACK.get(next(iter(action.option_strings), action.dest), "")
        lines.append(f"| {_flag(action)} | {_default(action)} | {_cell(text)} |")
    lines.append("")
    for name, sub in (subs.choices.items() if subs else ()):
        lines += _section(f"{title} {name}", sub, _summary(subs, name))
    return lines


def _summary(subparsers: argparse._SubParsersAction, name: str) -> str:
    """The one-line help a sub-command was registered with."""
    return next((a.help for a in subparsers._choices_actions if a.dest == name), "") or ""


def render() -> str:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    lines = [HEADER]
    for name, sub in commands.choices.items():
        lines += _section(f"marigold-bench {name}", sub, _summary(commands, name))
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    (DOCS / "flags.md").write_text(render(), encoding="utf-8")
