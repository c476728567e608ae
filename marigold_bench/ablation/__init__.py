"""Ablation studies: specs (:mod:`.studies`), the runner (:mod:`.runner`), their tables and plots
(:mod:`.report`) and the training-noise checkpoints (:mod:`.training`).

>>> from marigold_bench.ablation import STUDIES, plan
>>> [run.key for run in plan(STUDIES["ensemble"], values=(1, 2), seeds=1)]
['ensemble-2_seed-1234', 'ensemble-1_seed-1234']
"""

from marigold_bench.ablation.studies import STUDIES, Run, Study, parse_values, plan

__all__ = ["STUDIES", "Run", "Study", "parse_values", "plan"]
