"""A thread pool for numpy work on large frames.

numpy releases the GIL inside its array loops, so blocks of one frame can be processed by
threads. The pool takes torch's intra-op thread count, so ``OMP_NUM_THREADS`` (or
``torch.set_num_threads``) bounds all CPU parallelism of a process, e.g. one thread per process
under ``torchrun``. A process that never imported torch (``rescore``, ``table``) is not made to
pay for it: it reads ``OMP_NUM_THREADS``, else the CPUs it may run on, as torch would.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def thread_count() -> int:
    """torch's intra-op thread count when torch is loaded; else what it would start with."""
    torch = sys.modules.get("torch")
    if torch is not None:
        return torch.get_num_threads()
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        pass
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def map_in_threads(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]``, in order, spread over `thread_count` threads."""
    items = list(items)
    threads = min(thread_count(), len(items))
    if threads <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))
