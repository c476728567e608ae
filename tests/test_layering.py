"""Imports run one way: data -> model -> inference/eval -> train/report -> ablation -> commands.

Every module under ``marigold_bench`` is parsed (``ast``, nothing is imported) and each of its
``import`` statements is resolved to a module of the package. Imports inside functions count the
same as those at the top: a lazy import still ties the lower layer to the upper one (it only
moves the failure to run time), so none is allowed upwards. Modules of one layer may import each
other, but never in a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "marigold_bench"

#: Sub-packages (and top-level modules) by layer, lowest first. A module may import its own layer
#: and any lower one. The bottom layer is the shared vocabulary everything may use.
LAYERS = (
    {"", "errors", "frames", "output_spaces", "plugins", "tasks"},
    {"data"},
    {"model"},
    {"inference", "eval"},
    {"train", "report"},
    {"ablation"},
    {"commands"},
    {"cli"},
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``path`` imports anywhere in its body (lazy imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # "from pkg import sub" imports the sub-module when one exists by that name
            targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else origin for a in node.names]
        else:
            continue
        for target in targets:
            # "import a.b.c" needs a.b.c; a name that is no module of ours is an outside package
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("marigold_bench") or target == "marigold_bench":
                found.add(target)
    found.discard(name)
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else ""
    for index, members in enumerate(LAYERS):
        if key in members:
            return index
    raise AssertionError(f"{module} belongs to no layer: add its package {key!r} to LAYERS")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = all_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def test_the_resolver_sees_relative_lazy_and_submodule_imports(tmp_path):
    # the checks below are only as good as the resolver: prove it on the forms the package uses
    known = {"marigold_bench", "marigold_bench.model", "marigold_bench.model.noise",
             "marigold_bench.inference", "marigold_bench.inference.images", "marigold_bench.errors"}
    module = tmp_path / "predictor.py"
    module.write_text("from ..errors import BenchError\nfrom . import images\nimport os\n"
                      "def f():\n    from ..model import noise\n    import marigold_bench.model.x\n")
    assert imported_modules("marigold_bench.inference.predictor", module, known) == {
        "marigold_bench.errors", "marigold_bench.inference.images", "marigold_bench.model.noise",
        "marigold_bench.model"}


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_module_imports_a_later_layer(graph):
    upward = sorted(f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
                    for module, targets in graph.items() for target in targets
                    if layer_of(target) > layer_of(module))
    assert not upward, "imports against the layer order:\n  " + "\n  ".join(upward)


def test_no_import_cycles(graph):
    # Depth-first search for a back edge; a package importing its own sub-modules is fine, a
    # sub-module importing its package (its __init__) back is part of a cycle like any other.
    state, cycles = {}, []

    def visit(node, path):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[node] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles:\n  " + "\n  ".join(cycles)


def test_the_two_old_tangles_are_gone(graph):
    # the review's findings by name, so a regression says what came back
    assert "marigold_bench.train.export" not in graph["marigold_bench.model.convert"]
    tiny, sd2 = "marigold_bench.model.tiny", "marigold_bench.model.sd2_configs"
    assert not (sd2 in graph[tiny] and tiny in graph[sd2])
    assert tiny not in graph[sd2]


#: the modules that run a model or a scoring loop: the report layer reads run directories and
#: makes tables and figures from them, so none of these may be reachable from it (a leaderboard
#: asks the loop to run its cells through ``commands/``)
RUNNING = ("marigold_bench.eval.loop", "marigold_bench.eval.evaluator", "marigold_bench.eval.rescore",
           "marigold_bench.eval.distributed", "marigold_bench.inference", "marigold_bench.model",
           "marigold_bench.train")


def _reachable(graph: dict[str, set[str]], start: str) -> dict[str, str]:
    """Every module ``start`` imports directly or through others, with one module that imports it."""
    seen, todo = {}, [start]
    while todo:
        node = todo.pop()
        for target in graph[node]:
            if target not in seen and target != start:
                seen[target] = node
                todo.append(target)
    return seen


def _runs(module: str) -> bool:
    return any(module == r or module.startswith(r + ".") for r in RUNNING)


def test_report_imports_no_run_loop(graph):
    report = [m for m in graph if m == "marigold_bench.report" or m.startswith("marigold_bench.report.")]
    assert "marigold_bench.report.leaderboard" in report  # the check sees the package
    found = sorted(f"{module} reaches {target} (imported by {via})"
                   for module in report for target, via in _reachable(graph, module).items() if _runs(target))
    assert not found, "report/ only reads run directories; it must not run models or scoring:\n  " + "\n  ".join(found)


def test_the_run_loop_check_would_catch_a_lazy_import(tmp_path):
    # prove the check on the form it forbids: a function-level import of the loop, one hop away
    known = {"marigold_bench", "marigold_bench.eval", "marigold_bench.eval.loop", "marigold_bench.eval.rundir",
             "marigold_bench.report", "marigold_bench.report.sneaky", "marigold_bench.report.helper"}
    sneaky, helper = tmp_path / "sneaky.py", tmp_path / "helper.py"
    sneaky.write_text("from marigold_bench.report import helper\n")
    helper.write_text("def f():\n    from marigold_bench.eval.loop import run_predictor\n")
    graph = {"marigold_bench.report.sneaky": imported_modules("marigold_bench.report.sneaky", sneaky, known),
             "marigold_bench.report.helper": imported_modules("marigold_bench.report.helper", helper, known),
             "marigold_bench.eval.loop": set()}
    reached = _reachable(graph, "marigold_bench.report.sneaky")
    assert [t for t in reached if _runs(t)] == ["marigold_bench.eval.loop"]


# --- names: what a benchmark, family or protocol is lives in its definition -------------------

def _module_of(target: str) -> str:
    """``"marigold_bench.data.nyu:SPEC"`` -> ``"data/nyu.py"``."""
    return target.split(":")[0].removeprefix("marigold_bench.").replace(".", "/") + ".py"


def registered_names() -> dict[str, str]:
    """Every built-in benchmark, family and protocol name -> which kind it is."""
    from marigold_bench.data.registry import BUILTINS as BENCHMARKS, GROUPS
    from marigold_bench.eval.protocols import BUILT_INS as PROTOCOLS
    from marigold_bench.inference.families import family_names

    names = {n: "benchmark" for n in (*BENCHMARKS, *GROUPS)}
    names.update({n: "family" for n in family_names()})
    names.update({n: "protocol" for n in PROTOCOLS})
    return names


def definition_modules() -> set[str]:
    """The registries and the modules that define a built-in (where its name belongs)."""
    from marigold_bench.data.registry import BUILTINS as BENCHMARKS
    from marigold_bench.eval.protocols import BUILT_INS as PROTOCOLS
    from marigold_bench.inference.families import BUILT_IN as FAMILIES

    modules = {_module_of(t) for t in (*BENCHMARKS.values(), *FAMILIES.values(), *PROTOCOLS.values())}
    return modules | {
        "data/registry.py", "inference/families.py", "inference/registry.py", "eval/protocols/__init__.py",
        "eval/protocols/base.py",
        # the Marigold family's predictor: "marigold" there is the name of its default recipe
        "inference/predictor.py",
    }


def compared_strings(node: ast.Compare) -> list[str]:
    """The string constants a comparison compares against (``x == "a"``, ``x in ("a", "b")``)."""
    found = []
    for operand in [node.left, *node.comparators]:
        items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
        found += [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return found


def name_comparisons(source: str, names) -> list[tuple[int, str]]:
    """(line, source) of each comparison with a string constant that is one of ``names``."""
    return [(node.lineno, ast.get_source_segment(source, node)) for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Compare) and set(compared_strings(node)) & set(names)]


def test_no_module_outside_the_registries_compares_a_benchmark_family_or_protocol_name():
    """A benchmark, family or protocol is one file plus one registry line: code elsewhere asks
    the registry or reads the object's fields (``spec.padding``, ``protocol.score``,
    ``family.settings``), never ``if name == "kitti"``."""
    names, inside = registered_names(), definition_modules()
    offending = []
    for name, path in sorted(all_modules().items()):
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        if rel in inside:
            continue
        for line, text in name_comparisons(path.read_text(encoding="utf-8"), names):
            offending.append(f"{rel}:{line}: {text}")
    assert not offending, "names compared outside the registries:\n  " + "\n  ".join(offending)


def test_the_name_check_sees_each_kind_of_comparison():
    source = ('if args.dataset == "kitti": pass\n'
              'ok = protocol in ("moge", "other")\n'
              'x = settings["family"] != "transformers"\n'
              'y = name == "kittiish"\n')
    found = name_comparisons(source, registered_names())
    assert [line for line, _ in found] == [1, 2, 3]


def test_the_padding_fix_keeps_its_meaning():
    """default_padding no longer compares "marigold": ETH3D's own padding (the official
    evaluation's, none) still holds under Marigold's protocol and not under MoGe's."""
    from argparse import Namespace

    from marigold_bench.commands.common import default_padding

    assert default_padding(Namespace(dataset="eth3d", protocol="marigold")) == "none"
    assert default_padding(Namespace(dataset="eth3d")) == "none"
    assert default_padding(Namespace(dataset="eth3d", protocol="moge")) is None
