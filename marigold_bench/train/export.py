"""Export a trained model as a diffusers ``MarigoldDepthPipeline`` folder.

The definitions live in :mod:`marigold_bench.model.pipeline` (model surgery writes pipelines too,
and the model layer must not import the training layer); they are re-exported here under the
names training code and users have always imported.
"""

from __future__ import annotations

from marigold_bench.model.pipeline import (SCHEDULE_KEYS, build_pipeline, export_pipeline, inference_scheduler,
                                           training_scheduler)

__all__ = ["SCHEDULE_KEYS", "inference_scheduler", "training_scheduler", "build_pipeline", "export_pipeline"]
