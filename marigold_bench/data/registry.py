"""Which benchmarks exist: the built-ins by name, plus those plugins and ``--include`` files add.

A built-in is one line of :data:`BUILTINS` (``name -> "module:SPEC"``); its module is imported on
first use, so listing names costs nothing. Plugins come from
:func:`marigold_bench.plugins.discover` (entry-point group ``marigold_bench.benchmarks``, or a
``SPEC`` in an included spec file), looked up lazily on the first lookup or listing. A plugin
object that is not a :class:`~marigold_bench.data.spec.BenchmarkSpec`, or whose name a built-in
already has, is a :class:`~marigold_bench.plugins.PluginWarning` naming it and is left out.

>>> get_benchmark("nyu").title
'NYUv2'
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import warnings
from collections.abc import Sequence

from marigold_bench import plugins
from marigold_bench.data.spec import BenchmarkSpec, SplitFileFacts
from marigold_bench.errors import BenchError

#: built-in benchmark name -> "module:attribute" of its spec
BUILTINS = {
    "nyu": "marigold_bench.data.nyu:SPEC",
    "kitti": "marigold_bench.data.kitti:SPEC",
    "eth3d": "marigold_bench.data.eth3d:SPEC",
    "scannet": "marigold_bench.data.scannet:SPEC",
    "diode": "marigold_bench.data.diode:SPEC",
    "synthetic": "marigold_bench.data.synthetic:SPEC",
    # the metric boards' test sets (ZoeDepth's evaluation layouts and crop/range rows)
    "sunrgbd": "marigold_bench.data.sunrgbd:SPEC",
    "ibims": "marigold_bench.data.ibims:SPEC",
    "ddad": "marigold_bench.data.ddad:SPEC",
    "diml_indoor": "marigold_bench.data.diml_indoor:SPEC",
    "diml_outdoor": "marigold_bench.data.diml_outdoor:SPEC",
    "hypersim_test": "marigold_bench.data.hypersim_test:SPEC",
    "vkitti2": "marigold_bench.data.vkitti2:SPEC",
    # surface normals: each answers to its plain name with task="normals" (spec.dataset)
    "nyu-normals": "marigold_bench.data.marigold_normals:NYU",
    "scannet-normals": "marigold_bench.data.marigold_normals:SCANNET",
    "ibims-normals": "marigold_bench.data.marigold_normals:IBIMS",
    "diode-normals": "marigold_bench.data.marigold_normals:DIODE",
    "oasis-normals": "marigold_bench.data.marigold_normals:OASIS",
    "synthetic-normals": "marigold_bench.data.synthetic:NORMALS_SPEC",
    "dsine/nyu": "marigold_bench.data.dsine:NYU",
    "dsine/scannet": "marigold_bench.data.dsine:SCANNET",
    # MoGe's evaluation pack: ten benchmarks of one format, their specs made from one table
    "moge/nyu": "marigold_bench.data.moge_pack:NYU",
    "moge/kitti": "marigold_bench.data.moge_pack:KITTI",
    "moge/eth3d": "marigold_bench.data.moge_pack:ETH3D",
    "moge/ibims": "marigold_bench.data.moge_pack:IBIMS",
    "moge/gso": "marigold_bench.data.moge_pack:GSO",
    "moge/sintel": "marigold_bench.data.moge_pack:SINTEL",
    "moge/ddad": "marigold_bench.data.moge_pack:DDAD",
    "moge/diode": "marigold_bench.data.moge_pack:DIODE",
    "moge/spring": "marigold_bench.data.moge_pack:SPRING",
    "moge/hammer": "marigold_bench.data.moge_pack:HAMMER",
    # depth order on annotated pairs (Depth Anything V2); scored only by the da2k protocol
    "da2k": "marigold_bench.data.da2k:SPEC",
}

#: MoGe's ten-benchmark table, in its order (the ``moge-all`` leaderboard preset)
MOGE_ALL = ("moge/nyu", "moge/kitti", "moge/eth3d", "moge/ibims", "moge/gso", "moge/sintel", "moge/ddad",
            "moge/diode", "moge/spring", "moge/hammer")

#: ZoeDepth's evaluation sets (config.py ALL_INDOOR + ALL_OUTDOOR, in its order; DIODE once: the
#: zoedepth protocol scores its indoor and outdoor samples by their own rows)
METRIC_BOARDS = ("nyu", "ibims", "sunrgbd", "diode", "hypersim_test", "kitti", "diml_outdoor", "vkitti2", "ddad")

#: names that stand for several benchmarks (``--datasets moge-all``, ``--datasets metric-boards``)
GROUPS = {"moge-all": MOGE_ALL, "metric-boards": METRIC_BOARDS}

#: groups whose papers report the mean over their benchmarks (MoGe's tables: per benchmark, then
#: the mean of those means): group -> the title of that column
MEAN_GROUPS = {"moge-all": "Mean (MoGe pack)"}


def mean_group_of(names) -> tuple[str, tuple[str, ...]] | None:
    """The :data:`MEAN_GROUPS` group that at least two of ``names`` belong to, as ``(group,
    its members among names in group order)``; None when there is none."""
    for group in MEAN_GROUPS:
        members = tuple(m for m in GROUPS[group] if m in names)
        if len(members) >= 2:
            return group, members
    return None

#: training sets: not benchmarks (no ``--dataset``), but their official split files are
#: downloaded and checked like the benchmarks'
TRAINING = {
    "hypersim": "marigold_bench.data.hypersim:PROTOCOL",
    "vkitti": "marigold_bench.data.vkitti:PROTOCOL",
}


class UnknownBenchmarkError(BenchError, ValueError):
    """A benchmark name no built-in or plugin provides (ValueError for 0.3's callers)."""


class MissingTaskError(UnknownBenchmarkError):
    """A benchmark asked for a task its ground truth does not serve (a depth-only benchmark asked
    for normals, or the reverse); the message lists the tasks it has."""


def _import(target: str):
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


@functools.lru_cache(maxsize=None)
def _builtin(name: str) -> BenchmarkSpec:
    return _import(BUILTINS[name])


@functools.lru_cache(maxsize=8)
def _plugins(folders: tuple[str, ...]) -> dict[str, BenchmarkSpec]:
    # keyed on the --include folders in force, so a folder included later is seen
    found = {}
    for item in plugins.discover("benchmarks"):
        spec = item.obj
        if not isinstance(spec, BenchmarkSpec):
            warnings.warn(f"{item.origin}: its benchmark is a {type(spec).__name__}, not a BenchmarkSpec; "
                          "left out", plugins.PluginWarning, stacklevel=4)
            continue
        if spec.name in BUILTINS or spec.name in found:
            warnings.warn(f"{item.origin}: benchmark {spec.name!r} is already "
                          f"{'built in' if spec.name in BUILTINS else 'provided by ' + found[spec.name].origin}; "
                          "this one is left out", plugins.PluginWarning, stacklevel=4)
            continue
        found[spec.name] = dataclasses.replace(spec, origin=item.origin)
    return found


def plugin_benchmarks() -> dict[str, BenchmarkSpec]:
    """The benchmarks plugins and included spec files provide, by name."""
    return _plugins(tuple(str(f) for f in plugins.included_folders()))


def benchmark_names(task: str | None = None) -> list[str]:
    """Every benchmark's name: the built-ins in their order, then plugins; with ``task``, only the
    benchmarks of that task (their specs are imported to tell)."""
    names = [*BUILTINS, *plugin_benchmarks()]
    if task is None:
        return names
    return [n for n in names if _by_name(n).task == task]


def _by_name(name: str) -> BenchmarkSpec | None:
    if name in BUILTINS:
        return _builtin(name)
    return plugin_benchmarks().get(name)


def tasks_of(name: str) -> dict[str, BenchmarkSpec]:
    """The ground truths benchmark ``name`` has, by task: the spec called ``name`` and every spec
    of the same :attr:`~marigold_bench.data.spec.BenchmarkSpec.dataset` (``"nyu"`` ->
    ``{"depth": nyu, "normals": nyu-normals}``); {} for a name nothing answers to."""
    exact = _by_name(name)
    dataset = exact.dataset if exact is not None else name
    found = {}
    if exact is not None:
        found[exact.task] = exact
    for spec in all_benchmarks():
        if spec.dataset == dataset:
            found.setdefault(spec.task, spec)
    return found


def dataset_names() -> list[str]:
    """Every name :func:`get_benchmark` answers to with some task: the benchmarks' names, then
    the plain names of benchmarks that only exist for another task (``ibims``, ``oasis``)."""
    names = benchmark_names()
    aliases = [s.dataset for s in all_benchmarks() if s.dataset not in names]
    return [*names, *dict.fromkeys(aliases)]


def _known_by_task() -> str:
    # depth benchmarks by name, then each other task's by the plain name a --task resolves
    specs = all_benchmarks()
    text = ", ".join(sorted(s.name for s in specs if s.task == "depth"))
    for task in dict.fromkeys(s.task for s in specs if s.task != "depth"):
        text += f"; for task {task}: " + ", ".join(sorted({s.dataset for s in specs if s.task == task}))
    return text


def get_benchmark(name: str, task: str | None = None) -> BenchmarkSpec:
    """The spec of benchmark ``name``, or of its ground truth for ``task``.

    Args:
        name: a benchmark's name (``"nyu"``, ``"nyu-normals"``) or the plain name several tasks'
            specs share (``"ibims"``).
        task: None: the spec called ``name`` (a plain name without one: its depth spec);
            ``"depth"``/``"normals"``: the spec of that task among those ``name`` answers to
            (``get_benchmark("nyu", task="normals")`` is ``nyu-normals``).

    Raises:
        UnknownBenchmarkError: nothing answers to ``name``; the message lists the known names.
        MissingTaskError: ``name`` exists but has no ground truth for ``task`` (e.g. KITTI asked
            for normals, iBims-1 for depth); the message lists the tasks it has.
    """
    if task is None:
        found = _by_name(name)
        if found is not None:
            return found
        task = "depth"  # a plain name that is no spec's own, e.g. "ibims"
    exact = _by_name(name)
    if exact is not None and exact.task != task and name != exact.dataset:
        # a task's own spec name (nyu-normals) asked for another task: never swapped silently
        other = tasks_of(name).get(task)
        hint = f"; for {task}, name {other.name if other.name == exact.dataset else exact.dataset}" if other else ""
        raise MissingTaskError(f"{name} is the {exact.task} ground truth of {exact.dataset}, not {task}{hint}")
    tasks = tasks_of(name)
    if not tasks:
        raise UnknownBenchmarkError(f"unknown dataset {name!r}; known datasets: {_known_by_task()} "
                                    "(see `marigold-bench benchmarks`)")
    if task not in tasks:
        offered = ", ".join(f"{t} ({s.name})" for t, s in sorted(tasks.items()))
        raise MissingTaskError(f"{name} has no {task} ground truth; its tasks: {offered}")
    return tasks[task]


def expand_groups(names) -> list[str]:
    """``names`` with each group name of :data:`GROUPS` replaced by its benchmarks (in order,
    without repeats): ``["nyu", "moge-all"]`` -> ``["nyu", "moge/nyu", ..., "moge/hammer"]``."""
    out = []
    for name in names:
        for member in GROUPS.get(name, (name,)):
            if member not in out:
                out.append(member)
    return out


def title_of(name: str) -> str:
    """How tables print benchmark ``name`` (its spec's title); an unknown name prints as itself."""
    try:
        return get_benchmark(name).title
    except UnknownBenchmarkError:
        return name


def subsets_of(name: str) -> dict:
    """The named subsets benchmark ``name`` is also reported by (subset -> predicate on the
    sample id); {} for none or an unknown name."""
    try:
        return dict(get_benchmark(name).subsets)
    except UnknownBenchmarkError:
        return {}


def all_benchmarks(task: str | None = None) -> list[BenchmarkSpec]:
    """Every benchmark's spec, built-ins first; with ``task``, only that task's."""
    specs = [_by_name(n) for n in benchmark_names()]
    return specs if task is None else [s for s in specs if s.task == task]


def training_specs() -> list[BenchmarkSpec]:
    """The training sets' specs (their split files are official files too)."""
    return [_import(t) for t in TRAINING.values()]


def official_split_files() -> dict[str, tuple[BenchmarkSpec, SplitFileFacts]]:
    """Every official split file any benchmark or training set declares: relative path ->
    (its spec, its facts)."""
    return {rel: (spec, facts) for spec in (*all_benchmarks(), *training_specs())
            for rel, facts in spec.split_files.items()}


def load_dataset(name: str, root=None, split=None, protocol: BenchmarkSpec | None = None,
                 task: str | None = None):
    """Open benchmark ``name`` (for ``task``: see :func:`get_benchmark`).

    Args:
        name: a name of :func:`benchmark_names` (or, with ``task``, of :func:`dataset_names`).
        root: base folder of the official download (holding ``nyuv2/``, ``kitti/``, ...), the
            benchmark's own folder, or its ``.tar`` archive; falls back to ``$MARIGOLD_DATA``.
            Ignored by benchmarks that read no files.
        split: None (the test split), a split name, or the path of a split file in the
            official format.
        protocol: a changed copy of the benchmark's spec (e.g. another fit space or crop).
        task: which ground truth (None: the spec called ``name``, see :func:`get_benchmark`).

    Returns:
        A :class:`~marigold_bench.data.base.DepthDataset`; depth items have ``id``, ``rgb``,
        ``depth``, ``valid`` (validity, range and the default crop) and ``mask`` (validity and
        range only); normals items follow :mod:`marigold_bench.data.normals`.
    """
    spec = protocol or get_benchmark(name, task=task)  # raises the list of known names
    return spec.open(root, split)


class BenchmarkNames(Sequence):
    """The registry's names as a live sequence (for ``argparse`` ``choices=``, membership tests
    and ordering), read at use so that plugins included after import count.

    Args:
        where: keep only the benchmarks whose spec passes this test (e.g. those with an archive).
        extra: further names after them (e.g. ``"all"``).
        aliases: also the plain names of :func:`dataset_names` (``ibims``), for a ``--dataset``
            that a ``--task`` resolves; not with ``where``.
    """

    def __init__(self, where=None, extra: tuple[str, ...] = (), aliases: bool = False):
        self.where, self.extra, self.aliases = where, tuple(extra), aliases

    def names(self) -> list[str]:
        names = dataset_names() if self.aliases and self.where is None else benchmark_names()
        if self.where is not None:
            names = [n for n in names if self.where(get_benchmark(n))]
        return [*names, *self.extra]

    def __getitem__(self, index):
        return self.names()[index]

    def __len__(self) -> int:
        return len(self.names())

    def __contains__(self, name) -> bool:
        if self.where is None and name in BUILTINS:
            return True  # the common case, without looking for plugins
        return name in self.names()

    def __iter__(self):
        return iter(self.names())

    def __repr__(self) -> str:
        return repr(tuple(self.names()))


#: live view of :func:`benchmark_names` (0.3's ``DATASETS`` tuple)
DATASETS = BenchmarkNames()

__all__ = ["BUILTINS", "DATASETS", "GROUPS", "METRIC_BOARDS", "MOGE_ALL", "TRAINING", "MissingTaskError", "UnknownBenchmarkError",
           "all_benchmarks", "benchmark_names", "dataset_names", "expand_groups", "get_benchmark", "load_dataset",
           "official_split_files", "plugin_benchmarks", "subsets_of", "tasks_of", "title_of", "training_specs"]
