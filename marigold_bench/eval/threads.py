"""A thread pool for numpy work on large frames.

numpy releases the GIL inside its array loops, so blocks of one frame can be processed by
threads. The pool takes torch's intra-op thread count, so ``OMP_NUM_THREADS`` (or
``torch.set_num_threads``) bounds all CPU parallelism of a process, e.g. one thread per process
under ``torchrun``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


def map_in_threads(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, in order, spread over ``torch.get_num_threads()`` threads."""
    items = list(items)
    threads = min(torch.get_num_threads(), len(items))
    if threads <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))
