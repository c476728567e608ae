"""Unknown flags: one line naming the flag a user most likely meant, instead of argparse's usage.

argparse answers ``run --ensemble_size 3`` with the top-level usage and "unrecognized
arguments", which does not say that the flag is ``--ensemble``. Users arrive from the official
Marigold scripts (``run.py``, ``infer.py``, ``eval.py``), whose snake_case spellings are mapped
here to ours; anything else is matched by spelling (difflib) against the sub-command's flags.
"""

from __future__ import annotations

import argparse
import difflib

#: The official Marigold scripts' flags (prs-eth/Marigold run.py, infer.py, eval.py) -> ours.
OFFICIAL_SPELLINGS = {
    "--checkpoint": "--model",
    "--denoise_steps": "--steps",
    "--denoise-steps": "--steps",
    "--ensemble_size": "--ensemble",
    "--ensemble-size": "--ensemble",
    "--processing_res": "--processing-res",
    "--half_precision": "--precision fp16",
    "--fp16": "--precision fp16",
    "--batch_size": "--batch-size",
    "--input_rgb_dir": "--input",
    "--output_dir": "--out",
    "--base_data_dir": "--data-root",
    "--prediction_dir": "--predictions",
    "--timestep_spacing": "--timestep-spacing",
    "--dataset_config": "--dataset",
}


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """The long flags a parser takes (hidden aliases included: they are accepted, so valid)."""
    return [s for s in parser._option_string_actions if s.startswith("--")]


def _accepted(flag: str, options: list[str]) -> bool:
    """Whether argparse takes ``flag`` itself: exactly, or as the unique prefix of one flag."""
    return flag in options or len([o for o in options if o.startswith(flag)]) == 1


def suggest_flag(flag: str, options: list[str]) -> str | None:
    """The flag (with a value where the official flag implied one) that ``flag`` most likely
    meant among ``options``, or None when nothing is close."""
    official = OFFICIAL_SPELLINGS.get(flag)
    if official and official.split()[0] in options:
        return official
    dashed = "--" + flag[2:].replace("_", "-")
    if dashed in options:
        return dashed
    close = difflib.get_close_matches(dashed, options, n=1, cutoff=0.75)
    return close[0] if close else None


def _chosen_parser(parser: argparse.ArgumentParser, argv: list[str]):
    """The (sub-)sub-command parser that ``argv`` picks, its name and where its flags start."""
    name, start = None, 0
    while True:
        subparsers = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if subparsers is None:
            return parser, name, start
        index = next((i for i in range(start, len(argv)) if argv[i] in subparsers.choices), None)
        if index is None:
            return (parser, name, start) if name else (None, None, 0)
        parser, start = subparsers.choices[argv[index]], index + 1
        name = f"{name} {argv[index]}" if name else argv[index]


def unknown_flag_message(parser: argparse.ArgumentParser, argv: list[str]) -> str | None:
    """One line for the first flag in ``argv`` that the chosen sub-command does not take, or
    None when every flag is known (argparse then reports whatever else is wrong).

    Only tokens starting with ``--`` are looked at: values such as ``-1`` are never flags here.
    """
    chosen, command, start = _chosen_parser(parser, argv)
    if chosen is None:
        return None
    options = _option_strings(chosen)
    for token in argv[start:]:
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        flag = token.split("=", 1)[0]
        if _accepted(flag, options):
            continue
        starting = sorted(o for o in options if o.startswith(flag))
        if starting:  # argparse would take a unique prefix; several are ambiguous
            return f"marigold-bench {command}: error: flag {flag} is ambiguous: {' or '.join(starting)}?"
        hint = suggest_flag(flag, options)
        hint_text = f"; did you mean {hint}?" if hint else f"; `marigold-bench {command} --help` lists the flags"
        return f"marigold-bench {command}: error: unknown flag {flag}{hint_text}"
    return None


__all__ = ["OFFICIAL_SPELLINGS", "suggest_flag", "unknown_flag_message"]
