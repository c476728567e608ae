"""The ``marigold-bench`` command: one thin entry, each sub-command in marigold_bench/commands/.

Every sub-command module has ``add_parser(subparsers)`` (which sets ``func``) and a
``run(args) -> int``. User errors (:class:`~marigold_bench.errors.BenchError`) print one clear
message and exit with 2; they never show a traceback.

``--include PATH`` (repeatable, before or after the sub-command) adds a folder of spec files
(:mod:`marigold_bench.plugins`). :func:`main` applies it before the parser is built, so the
sub-commands' choices (``--dataset``) and lookups (``--protocol``, ``--model``) see its entries.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from marigold_bench import __version__, plugins
from marigold_bench.commands.flags import unknown_flag_message
from marigold_bench.errors import BenchError
from marigold_bench.eval.progress import slow_redraws_in_logs

COMMANDS = ("run", "evaluate", "rescore", "predict", "leaderboard", "ablate", "table", "compare", "regress",
            "train", "data", "models", "protocols", "benchmarks", "gallery", "export", "reproduce")


INCLUDE_HELP = ("a folder of spec files adding benchmarks (SPEC), model families (FAMILY) and "
                "protocols (PROTOCOL); repeatable (see docs/adding-a-benchmark.md)")


class _Include(argparse.Action):
    """``--include PATH``: add the folder at once (idempotent: `main` has usually added it).
    It stores nothing in the namespace: where spec files come from is no run setting (the
    leaderboard hashes its flags)."""

    def __call__(self, parser, namespace, value, option_string=None):
        try:
            plugins.include(value)
        except NotADirectoryError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def _add_include_flag(parser: argparse.ArgumentParser) -> None:
    """``--include`` on ``parser`` and every parser below it (``data verify``), so the flag may
    come anywhere on the line."""
    if "--include" not in parser._option_string_actions:
        parser.add_argument("--include", action=_Include, metavar="PATH", default=argparse.SUPPRESS,
                            help=INCLUDE_HELP)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _add_include_flag(sub)


def included_paths(argv: list[str]) -> list[str]:
    """The ``--include`` folders named anywhere in ``argv`` (before a bare ``--``), in order."""
    paths, tokens = [], iter(argv)
    for token in tokens:
        if token == "--":
            break
        if token == "--include":
            value = next(tokens, None)
            if value is not None:
                paths.append(value)
        elif token.startswith("--include="):
            paths.append(token.split("=", 1)[1])
    return paths


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="marigold-bench",
        description="Train, run and evaluate diffusion-based monocular depth estimators.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--include", action=_Include, metavar="PATH", default=argparse.SUPPRESS,
                        help=INCLUDE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"marigold_bench.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"marigold_bench.commands.{name}":
                raise
            continue  # a sub-command still being written is simply not offered
        module.add_parser(subparsers)
    _add_include_flag(parser)
    return parser


def _out_of_memory(exc: BaseException) -> bool:
    """A host or device allocation that failed (torch's OutOfMemoryError, its CPU allocator's
    RuntimeError, Python's MemoryError): the request was too large, not a bug to trace."""
    text = str(exc)
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "CUDA out of memory" in text)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def main(argv: list[str] | None = None) -> int:
    slow_redraws_in_logs()  # in a log file, a bar redraw every 0.1 s is a new line every 0.1 s
    argv = sys.argv[1:] if argv is None else list(argv)
    # spec folders first: the parser's choices and the registries must already see their entries
    for path in included_paths(argv):
        try:
            plugins.include(path)
        except NotADirectoryError as exc:
            print(f"marigold-bench: error: {exc}", file=sys.stderr)
            return 2
    parser = build_parser()
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
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise
        print(f"marigold-bench {args.command}: error: out of memory ({_first_line(exc)}); lower "
              "--processing-res, --batch-size or --images-per-batch (a rerun resumes from the cache)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the cache", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
