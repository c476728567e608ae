"""Reading run directories back: the reader lives with the writer in
:mod:`marigold_bench.eval.rundir` (one module knows the format); these are its names as the
report modules have always imported them."""

from __future__ import annotations

from marigold_bench.eval.rundir import (LOCATION_ONLY_PROTOCOL, RUNTIME_ONLY_SETTINGS, RunDir,  # noqa: F401
                                        differences, finished_summary, load_run, recorded_choices,
                                        result_settings, sample_set)
