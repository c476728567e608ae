"""Progress bars that say what they count and stay readable in a log file.

A bar redraws itself with a carriage return ten times a second. On a terminal that is one line;
in a log file (a batch job, CI) every redraw is a new line, so a run over 654 NYU samples writes
hundreds of lines. Away from a terminal the bars here redraw at most once every
``LOG_INTERVAL_S`` seconds, and every bar names what it runs (``run tiny on nyu``), so that the
bars of a leaderboard say which model they belong to.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

#: Seconds between redraws when the bar's stream is not a terminal.
LOG_INTERVAL_S = 30.0


def interactive(stream=None) -> bool:
    """Whether ``stream`` (default stderr, where bars go) is a terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def bar_label(verb: str, dataset: str, model: str | None = None) -> str:
    """``"<verb> <model> on <dataset>"`` (a model folder by its name), or ``"<verb> <dataset>"``."""
    if not model:
        return f"{verb} {dataset}"
    name = Path(model).name if Path(model).exists() else model  # a folder by its name, a hub id whole
    return f"{verb} {name} on {dataset}"


def progress(iterable=None, *, total=None, desc: str | None = None, disable: bool = False, unit: str = "it",
             file=None):
    """A tqdm bar over ``iterable`` that redraws every ``LOG_INTERVAL_S`` seconds, not ten times a
    second, when ``file`` (default stderr) is not a terminal."""
    from tqdm.auto import tqdm

    quiet = {} if interactive(file) else {"mininterval": LOG_INTERVAL_S}
    return tqdm(iterable, total=total, desc=desc, disable=disable, unit=unit, file=file, **quiet)


def slow_redraws_in_logs(stream=None) -> None:
    """Make every tqdm bar of this process (the suite's and libraries' alike) redraw at most every
    ``LOG_INTERVAL_S`` seconds when stderr is not a terminal, unless the user set
    ``TQDM_MININTERVAL`` (tqdm reads it as the default of ``mininterval``)."""
    if not interactive(stream):
        os.environ.setdefault("TQDM_MININTERVAL", str(LOG_INTERVAL_S))


__all__ = ["LOG_INTERVAL_S", "interactive", "bar_label", "progress", "slow_redraws_in_logs"]
