"""Sharded runs on accelerate: who does what, and one launch per run directory at a time.

Launched with ``accelerate launch`` or ``torchrun``, every process predicts the samples
``index % world_size == rank`` and writes its own part of the cache
(``parts/rank<r>.h5``); the main process folds the parts into ``predictions.h5`` -- at start-up,
so that a relaunch (also with another world size) resumes from everything any earlier rank
finished, and at the end -- and writes the summary. A plain ``python``/CLI run is a world of one
that writes ``predictions.h5`` directly. Member noise depends only on (seed, sample id, member),
so a sharded run gives exactly the numbers of a single-process run.
"""

from __future__ import annotations

import glob
import json
import os
import socket
import warnings

from marigold_bench.errors import BenchError, DiskFullError


class Context:
    """The process's place in the launch, from accelerate's ``PartialState``."""

    def __init__(self):
        import torch
        from accelerate import PartialState

        # accelerate only sets up a CPU (gloo) process group when asked for the CPU explicitly
        self.state = PartialState(cpu=not torch.cuda.is_available())
        self.rank = self.state.process_index
        self.world = self.state.num_processes
        self.is_main = self.state.is_main_process
        if self.world > 1 and self.state.device.type == "cuda":
            torch.cuda.set_device(self.state.device)  # "cuda" now means this rank's GPU

    def barrier(self) -> None:
        if self.world > 1:
            self.state.wait_for_everyone()

    def gather(self, items: list) -> list:
        """Every rank's list, concatenated (on every rank)."""
        if self.world == 1:
            return items
        from accelerate.utils import gather_object
        return gather_object(items)

    def broadcast(self, value):
        """The main process's ``value`` on every rank."""
        if self.world == 1:
            return value
        from accelerate.utils import broadcast_object_list
        return broadcast_object_list([value])[0]

    def on_main(self, fn) -> None:
        """Run ``fn`` on the main process; a user error there is raised on every rank (the
        others would otherwise wait forever for it)."""
        error = None
        if self.is_main:
            try:
                fn()
            except BenchError as exc:
                error = exc
        error = self.broadcast(error)
        if error is not None:
            raise error

    def shard(self, n: int) -> list[int]:
        return list(range(self.rank, n, self.world))


class RunLock:
    """An exclusive claim on a run directory, held by the main process of one launch.

    A second launch on the same directory is refused instead of interleaving writes into the
    cache. A lock left by a process that no longer runs on this host is taken over.

    Both steps are atomic, also on NFS: the lock appears complete or not at all (its content
    is written to a file of our own and hard-linked to ``run.lock``, which fails if it exists),
    and a stale lock is removed only by the one launch that creates ``run.lock.takeover``
    (``O_EXCL``) and finds it stale again while holding that; every other relaunch is refused
    or finds the new owner's live lock. So of any number of relaunches exactly one gets in.
    """

    def __init__(self, out_dir: str, context: Context):
        self.path = os.path.join(out_dir, "run.lock")
        self.context = context
        self.held = False

    def __enter__(self):
        error = None
        if self.context.is_main:
            try:
                self._acquire()
            except BenchError as exc:
                error = exc
        error = self.context.broadcast(error)
        if error:
            raise error
        return self

    def _owner_text(self) -> str:
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid()})

    def _acquire(self):
        for _ in range(3):
            if self._link_new():
                self.held = True
                self._catch_sigterm()
                return
            if not self._stale():
                break
            self._take_over()
        raise BenchError(self._held_message())

    def _link_new(self) -> bool:
        # the whole lock, written beside it, then linked into place: True when it is ours
        mine = f"{self.path}.{socket.gethostname()}.{os.getpid()}.tmp"
        try:
            fd = os.open(mine, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644)
            try:
                os.write(fd, self._owner_text().encode())
            finally:
                os.close(fd)
            try:
                os.link(mine, self.path)
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise _lock_error(self.path, exc) from None
        finally:
            try:
                os.remove(mine)
            except OSError:
                pass

    def _take_over(self) -> None:
        """Remove the stale lock, as the only launch doing so (see the class docstring)."""
        claim = self.path + ".takeover"
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            raise BenchError(self._claim_message(claim)) from None
        except OSError as exc:
            raise _lock_error(claim, exc) from None
        try:
            try:
                os.write(fd, self._owner_text().encode())
            finally:
                os.close(fd)
            if self._stale():   # judged again while no other launch can act on it
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
        except OSError as exc:
            raise _lock_error(claim, exc) from None
        finally:
            try:
                os.remove(claim)
            except OSError:
                pass

    def _read(self, path: str) -> dict | None:
        try:
            with open(path) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            return None
        return owner if isinstance(owner, dict) else None

    def _alive(self, owner: dict) -> bool | None:
        """True/False for a process on this host; None for one on another host (unknowable)."""
        if owner.get("host") != socket.gethostname():
            return None
        try:
            os.kill(int(owner["pid"]), 0)
        except (ProcessLookupError, KeyError, ValueError, TypeError):
            return False  # gone, or no process named at all: the lock protects nothing
        except PermissionError:
            return True   # another user's process, alive
        return True

    def _held_message(self) -> str:
        folder = os.path.dirname(self.path)
        owner = self._read(self.path)
        if owner is None:
            return f"{folder} is in use by another launch (taking it over now); wait for it to finish"
        if self._alive(owner) is None:
            return (f"{folder} is in use by another launch (pid {owner.get('pid')} on {owner.get('host')}); "
                    f"wait for it to finish (only if that launch is no longer running, remove {self.path})")
        return (f"{folder} is in use by another launch (pid {owner.get('pid')} on this host, running); "
                "wait for it to finish")

    def _claim_message(self, claim: str) -> str:
        owner = self._read(claim)
        if owner is not None and self._alive(owner) is False:
            return (f"{claim} was left by an interrupted takeover (pid {owner.get('pid')}, no longer running); "
                    "no launch is using it: remove it and rerun")
        return (f"{os.path.dirname(self.path)} is in use by another launch (taking over its stale lock); "
                "wait for it to finish")

    def _catch_sigterm(self) -> None:
        # torchrun ends the surviving ranks with SIGTERM when one dies; turning it into
        # SystemExit lets __exit__ release the lock, so a relaunch on another node is not refused
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.getsignal(signal.SIGTERM)

        def stop(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, stop)

    def _stale(self) -> bool:
        """Whether the lock there protects nothing: unreadable (the lock is always linked in
        whole), or left by a process that no longer runs on this host."""
        owner = self._read(self.path)
        if owner is None:
            return True
        return self._alive(owner) is False

    def __exit__(self, *exc):
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False
            if getattr(self, "_previous", None) is not None:
                import signal
                signal.signal(signal.SIGTERM, self._previous)


def _lock_error(path: str, exc: OSError) -> BenchError:
    from marigold_bench.eval.cache import is_disk_full

    if is_disk_full(exc):
        return DiskFullError(f"disk full: cannot write the run lock {path}; free some space and rerun")
    return BenchError(f"cannot write the run lock {path}: {exc.strerror or exc}")


def part_path(out_dir: str, rank: int) -> str:
    return os.path.join(out_dir, "parts", f"rank{rank}.h5")


def fold_parts(out_dir: str, cache) -> int:
    """Copy every sample of ``parts/*.h5`` into ``cache`` (the main ``predictions.h5``) and
    delete the parts. A part that cannot be read (a rank killed mid-write) is set aside as
    ``*.damaged``, and an entry of a part that fails its checksum is left out: their samples
    are simply predicted again. Returns the number of samples folded."""
    from marigold_bench.eval.cache import PredictionCache
    from marigold_bench.eval.samples import describe, sample_differences, stored_record

    folded = 0
    for path in sorted(glob.glob(os.path.join(out_dir, "parts", "rank*.h5"))):
        try:
            part = PredictionCache(path, recompute_damaged=True)
        except BenchError as exc:
            warnings.warn(f"setting aside unreadable cache part {path} ({exc}); its samples will be redone")
            os.replace(path, path + ".damaged")
            continue
        try:
            with part:
                stored = part.file.attrs.get("settings")
                if stored is not None and json.loads(stored) not in (cache.settings, cache.legacy):
                    raise BenchError(f"{path} was made with other settings than {cache.path}")
                theirs = stored_record(part.file)  # a part of another benchmark's or split's launch
                if theirs is not None and cache.samples is not None and sample_differences(theirs, cache.samples):
                    raise BenchError(f"{path} holds predictions of {describe(theirs)}, not of "
                                     f"{describe(cache.samples)} as {cache.path}; move it away (its samples "
                                     "will be predicted again)")
                folded += cache.take_entries(part)
        except (OSError, RuntimeError, KeyError) as exc:  # metadata a killed rank left broken
            warnings.warn(f"setting aside unreadable cache part {path} ({exc}); its samples will be redone")
            os.replace(path, path + ".damaged")
            continue
        os.remove(path)
    return folded
