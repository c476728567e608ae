"""The learning-rate schedule of Marigold's trainer, as a factor of the base rate per iteration.

The official trainer (``IterExponential`` in prs-eth/Marigold, ``src/util/lr_scheduler.py``) is
wrapped in ``torch.optim.lr_scheduler.LambdaLR`` and recomputed from the iteration number each
step (no accumulated rounding):

* warm-up: the factor rises linearly from 0 at iteration 0 to 1 at ``warmup_steps``, so the very
  first optimiser step runs at a learning rate of 0;
* decay: from ``warmup_steps`` to ``total_iter`` the factor falls exponentially from 1 to
  ``final_ratio``, i.e. ``final_ratio ** ((n - warmup_steps) / (total_iter - warmup_steps))``;
  the decay spans ``total_iter - warmup_steps`` iterations, not ``total_iter``;
* after ``total_iter`` the factor stays at ``final_ratio``.

Marigold: 100 warm-up iterations, ``total_iter`` 25K, ``final_ratio`` 0.01, Adam at 3e-5.
"""

from __future__ import annotations

import math


class IterExponential:
    """Factor of the base learning rate at iteration ``n`` (a callable for ``LambdaLR``).

    Args:
        total_iter: the iteration at which the factor reaches ``final_ratio`` (warm-up included).
        final_ratio: the factor from ``total_iter`` on.
        warmup_steps: iterations of linear warm-up from 0 (0: none).
        decay: ``True`` for the exponential decay, ``False`` to hold 1 after the warm-up
            (the ``constant`` schedule).
    """

    def __init__(self, total_iter: int, final_ratio: float, warmup_steps: int = 0, decay: bool = True):
        if warmup_steps < 0 or total_iter < warmup_steps:
            raise ValueError(f"need 0 <= warmup_steps <= total_iter, got {warmup_steps} and {total_iter}")
        if not final_ratio > 0:
            raise ValueError(f"final_ratio must be > 0, got {final_ratio}")
        self.total_iter, self.final_ratio = int(total_iter), float(final_ratio)
        self.warmup_steps, self.decay = int(warmup_steps), bool(decay)

    def __call__(self, n: int) -> float:
        if n < self.warmup_steps:
            return n / self.warmup_steps
        if not self.decay:
            return 1.0
        if n >= self.total_iter:
            return self.final_ratio
        progress = (n - self.warmup_steps) / (self.total_iter - self.warmup_steps)
        return math.exp(progress * math.log(self.final_ratio))


def lr_factor(optim_cfg) -> IterExponential:
    """The schedule an :class:`~marigold_bench.train.config.OptimConfig` describes
    (``decay_steps`` is the official ``total_iter``)."""
    return IterExponential(optim_cfg.decay_steps, optim_cfg.final_ratio, optim_cfg.warmup_steps,
                           decay=optim_cfg.lr_schedule != "constant")


__all__ = ["IterExponential", "lr_factor"]
