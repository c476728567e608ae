"""``marigold-bench --include PATH``: spec folders added before the parser is built, anywhere on
the command line; a path that is no folder is one line and exit 2."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from marigold_bench import plugins
from marigold_bench.cli import build_parser, included_paths, main

FAMILY_FOLDER = Path(__file__).resolve().parent / "include_family"


@pytest.fixture(autouse=True)
def _no_includes(monkeypatch):
    # set, then delete: monkeypatch restores the variable although include() writes os.environ
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    monkeypatch.delenv(plugins.INCLUDE_ENV)


TINY = '''
from marigold_bench.data.synthetic import SPEC as _SYNTHETIC
import dataclasses
SPEC = dataclasses.replace(_SYNTHETIC, name="{name}", title="{name} copy")
'''


def _spec_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(TINY.format(name=name))
    return folder


def test_included_paths_reads_both_spellings_anywhere_and_stops_at_a_bare_double_dash():
    argv = ["--include", "a", "run", "--dataset", "x", "--include=b", "--", "--include", "c"]
    assert included_paths(argv) == ["a", "b"]
    assert included_paths(["run", "--include"]) == []  # argparse reports the missing value


@pytest.mark.parametrize("where", ["before", "after"])
def test_an_included_benchmark_is_a_dataset_choice_before_or_after_the_sub_command(tmp_path, capsys, where):
    folder = _spec_folder(tmp_path, "copyset")
    flag = ["--include", str(folder)]
    argv = [*flag, "benchmarks", "--json"] if where == "before" else ["benchmarks", "--json", *flag]
    assert main(argv) == 0
    names = [row["name"] for row in json.loads(capsys.readouterr().out)]
    assert names[-1] == "copyset" and "synthetic" in names
    # the folder reaches child processes (torchrun ranks, leaderboard cells) through the environment
    assert os.environ[plugins.INCLUDE_ENV] == str(folder.resolve())


def test_run_with_an_included_benchmark_and_family_named_after_the_sub_command(tmp_path):
    """The dataset choice is checked before --include is reached by argparse: main applies the
    folders first, so the order on the line does not matter."""
    bench = _spec_folder(tmp_path, "copyset")
    out = tmp_path / "run"
    code = main(["run", "--dataset", "copyset", "--model", "plane:2", "--max-samples", "1", "--out", str(out),
                 "--include", str(bench), f"--include={FAMILY_FOLDER}"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["model"] == "plane:2" and summary["dataset"] == "copyset"


def test_without_include_the_entry_is_unknown(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "--dataset", "copyset"])
    assert exit_.value.code == 2


@pytest.mark.parametrize("argv", [["--include", "{missing}", "benchmarks"],
                                  ["benchmarks", "--include={missing}"],
                                  ["data", "verify", "--dataset", "nyu", "--include", "{file}"]])
def test_a_path_that_is_no_folder_is_one_line_and_exit_2(tmp_path, capsys, argv):
    (tmp_path / "a.py").write_text("SPEC = 1\n")
    values = {"missing": str(tmp_path / "missing"), "file": str(tmp_path / "a.py")}
    assert main([a.format(**values) for a in argv]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and captured.out == ""
    assert err.startswith("marigold-bench: error: --include ") and err.endswith("not a folder of spec files")
    assert plugins.INCLUDE_ENV not in os.environ  # nothing was added


def test_the_flag_is_offered_by_every_parser(tmp_path):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert "--include" in p._option_string_actions, name
    folder = _spec_folder(tmp_path, "copyset")
    args = parser.parse_args(["data", "verify", "--dataset", "nyu", "--include", str(folder)])
    assert not hasattr(args, "include")  # no run setting: leaderboard hashes what the flags hold
