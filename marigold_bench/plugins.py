"""Where benchmarks, model families and protocols come from besides the package itself.

Two ways in, both without a fork:

* **Entry points** of an installed package, in the groups ``marigold_bench.benchmarks``,
  ``marigold_bench.families`` and ``marigold_bench.protocols``; each entry point names one
  object (``my_pkg.ibims:SPEC``).
* **Spec files** in a folder named with ``--include PATH`` (or ``$MARIGOLD_BENCH_INCLUDE``,
  folders joined with ``os.pathsep``): every ``*.py`` file there is imported on its own, and
  its module-level ``SPEC`` (a benchmark), ``FAMILY`` (a model family) and ``PROTOCOL`` (an
  evaluation protocol) are taken, as lm-evaluation-harness's ``--include_path`` takes task files.

This module only finds objects; each registry checks that what it is given is of its kind.
A plugin that fails to import is a warning naming it, never a crash of an unrelated command.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

#: registry -> (entry-point group, the module-level name a spec file defines)
KINDS = {
    "benchmarks": ("marigold_bench.benchmarks", "SPEC"),
    "families": ("marigold_bench.families", "FAMILY"),
    "protocols": ("marigold_bench.protocols", "PROTOCOL"),
}

#: the environment variable that carries ``--include`` folders to child processes (torchrun)
INCLUDE_ENV = "MARIGOLD_BENCH_INCLUDE"


class PluginWarning(UserWarning):
    """A plugin or spec file that could not be loaded (it is left out; the rest goes on)."""


@dataclass(frozen=True)
class Found:
    """One object a plugin or spec file provides, and where it came from (for listings)."""

    obj: Any
    origin: str  # "plugin <dist> (<entry point>)" or "include <file>"


def include(path: str | os.PathLike) -> Path:
    """Add a folder of spec files (``--include PATH``) for this process and its children.

    Raises:
        NotADirectoryError: ``path`` is not a folder.
    """
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise NotADirectoryError(f"--include {path}: not a folder of spec files")
    folders = included_folders()
    if folder not in folders:
        os.environ[INCLUDE_ENV] = os.pathsep.join(str(f) for f in (*folders, folder))
    return folder


def included_folders() -> list[Path]:
    """The ``--include`` folders in force, in the order they were given."""
    text = os.environ.get(INCLUDE_ENV, "")
    return [Path(p) for p in text.split(os.pathsep) if p]


def discover(kind: str) -> list[Found]:
    """Every object of ``kind`` (``"benchmarks"``, ``"families"`` or ``"protocols"``) that
    installed plugins and included spec files provide; a broken one is a `PluginWarning`."""
    group, attr = KINDS[kind]
    return [*_from_entry_points(group), *_from_includes(attr)]


def _from_entry_points(group: str) -> list[Found]:
    found = []
    try:
        points = metadata.entry_points(group=group)
    except Exception as exc:  # a broken installed distribution must not stop the suite
        warnings.warn(f"could not read the {group} entry points: {exc}", PluginWarning, stacklevel=3)
        return found
    for point in points:
        dist = getattr(point, "dist", None)
        origin = f"plugin {dist.name if dist else '?'} ({point.name} = {point.value})"
        try:
            found.append(Found(point.load(), origin))
        except Exception as exc:
            warnings.warn(f"{origin} failed to load and is left out: {type(exc).__name__}: {exc}",
                          PluginWarning, stacklevel=3)
    return found


def _from_includes(attr: str) -> list[Found]:
    found = []
    for folder in included_folders():
        for path in sorted(folder.glob("*.py")):
            module = _import_file(path)
            if module is not None and hasattr(module, attr):
                found.append(Found(getattr(module, attr), f"include {path}"))
    return found


_IMPORTED: dict[Path, Any] = {}


def _import_file(path: Path):
    """Import a spec file once per process under a private module name; None if it fails."""
    path = path.resolve()
    if path in _IMPORTED:
        return _IMPORTED[path]
    name = "marigold_bench_include_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module = None
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(name, None)
        module = None
        warnings.warn(f"include {path} failed to import and is left out: {type(exc).__name__}: {exc}",
                      PluginWarning, stacklevel=4)
    _IMPORTED[path] = module
    return module


__all__ = ["Found", "INCLUDE_ENV", "KINDS", "PluginWarning", "discover", "include", "included_folders"]
