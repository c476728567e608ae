"""The ``marigold-bench`` command: one thin entry, each sub-command in marigold_bench/commands/.

Every sub-command module has ``add_parser(subparsers)`` (which sets ``func``) and a
``run(args) -> int``. User errors (:class:`~marigold_bench.errors.BenchError`) print one clear
message and exit with 2; they never show a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from marigold_bench import __version__
from marigold_bench.commands.flags import unknown_flag_message
from marigold_bench.errors import BenchError
from marigold_bench.eval.progress import slow_redraws_in_logs

COMMANDS = ("run", "evaluate", "rescore", "predict", "leaderboard", "ablate", "table", "compare", "regress",
            "train", "data", "models", "protocols", "benchmarks", "gallery", "export", "reproduce")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marigold-bench",
        description="Train, run and evaluate diffusion-based monocular depth estimators.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"marigold_bench.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"marigold_bench.commands.{name}":
                raise
            continue  # a sub-command still being written is simply not offered
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    slow_redraws_in_logs()  # in a log file, a bar redraw every 0.1 s is a new line every 0.1 s
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    # an unknown flag gets one line naming the flag meant, not argparse's top-level usage
    unknown = unknown_flag_message(parser, argv)
    if unknown:  # exits as argparse's own usage errors do (SystemExit 2), just with a better line
        print(unknown, file=sys.stderr)
        raise SystemExit(2)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"marigold-bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
