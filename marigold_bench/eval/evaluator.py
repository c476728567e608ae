"""The names callers have always imported from here; the code lives where it belongs.

The run loop (predict or read predictions, score, write) is :mod:`marigold_bench.eval.loop`;
the run directory's format (``summary.json``, ``per_sample.csv``: writer and reader) is
:mod:`marigold_bench.eval.rundir`; the prediction cache's identity rules are
:mod:`marigold_bench.eval.cache`'s.
"""

from __future__ import annotations

from marigold_bench.eval.cache import (DESCRIPTIVE_SETTINGS, LOCATION_SETTINGS,  # noqa: F401
                                       MERGE_ONLY_SETTINGS, legacy_member_settings, split_settings)
from marigold_bench.eval.loop import (AUTO_GPU_MEMBERS, evaluate_source, iter_items,  # noqa: F401
                                      resolve_images_per_batch, resolve_score_device, run_predictor,
                                      score_loop, score_sample)
from marigold_bench.eval.protocols import Scoring, default_scoring  # noqa: F401
from marigold_bench.eval.rundir import (FAILED, NO_VALID, OK, SKIPPED,  # noqa: F401
                                        record_columns, subset_of, subsets, summarize, versions, write_run)
