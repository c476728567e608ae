"""marigold_bench.plugins: spec files from --include folders and entry points, broken ones warned."""

from __future__ import annotations

import pytest

from marigold_bench import plugins


@pytest.fixture(autouse=True)
def _no_includes(monkeypatch):
    # set, then delete: monkeypatch then restores the variable as it was, even though
    # plugins.include() writes os.environ itself during the test
    monkeypatch.setenv(plugins.INCLUDE_ENV, "")
    monkeypatch.delenv(plugins.INCLUDE_ENV)


def test_include_takes_each_files_module_level_names(tmp_path):
    (tmp_path / "a.py").write_text("SPEC = 'a-benchmark'\nPROTOCOL = 'a-protocol'\n")
    (tmp_path / "b.py").write_text("FAMILY = 'b-family'\n")
    (tmp_path / "notes.txt").write_text("SPEC = 'not python'\n")
    plugins.include(tmp_path)
    assert [f.obj for f in plugins.discover("benchmarks") if f.origin.startswith("include")] == ["a-benchmark"]
    assert [f.obj for f in plugins.discover("families") if f.origin.startswith("include")] == ["b-family"]
    assert [f.obj for f in plugins.discover("protocols") if f.origin.startswith("include")] == ["a-protocol"]
    found = [f for f in plugins.discover("benchmarks") if f.obj == "a-benchmark"][0]
    assert found.origin == f"include {tmp_path.resolve() / 'a.py'}"


def test_a_broken_spec_file_is_a_warning_naming_it_and_the_rest_loads(tmp_path):
    (tmp_path / "broken.py").write_text("import no_such_module_anywhere\nSPEC = 1\n")
    (tmp_path / "good.py").write_text("SPEC = 2\n")
    plugins.include(tmp_path)
    with pytest.warns(plugins.PluginWarning, match="broken.py failed to import.*no_such_module_anywhere"):
        found = [f.obj for f in plugins.discover("benchmarks") if f.origin.startswith("include")]
    assert found == [2]


def test_include_refuses_a_file_and_reaches_child_processes_through_the_environment(tmp_path, monkeypatch):
    with pytest.raises(NotADirectoryError, match="not a folder"):
        plugins.include(tmp_path / "missing")
    plugins.include(tmp_path)
    plugins.include(tmp_path)  # twice is once
    import os
    assert os.environ[plugins.INCLUDE_ENV] == str(tmp_path.resolve())
