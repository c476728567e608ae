"""The docs for people who extend the suite: each guide shows its example file exactly (and
tests/test_extension_e2e.py runs those files), the flag reference names every flag, and no doc
points at a design document the repository does not have."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from marigold_bench.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

GUIDES = {"adding-a-benchmark.md": "stairs.py", "adding-a-model-family.md": "flat.py",
          "adding-a-protocol.md": "median_scale.py"}


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.S)


@pytest.mark.parametrize("guide,example", sorted(GUIDES.items()))
def test_each_guide_shows_its_example_file_exactly(guide, example):
    text = (DOCS / guide).read_text(encoding="utf-8")
    source = (DOCS / "examples" / example).read_text(encoding="utf-8")
    assert f"docs/examples/{example}" in text
    assert source in _python_blocks(text), f"{guide}: no ```python block equals docs/examples/{example}"


def _parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from _parsers(sub, f"{name} {sub_name}")


def test_the_flag_reference_names_every_flag_of_every_sub_command():
    text = (DOCS / "flags.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `(marigold-bench[^`]*)`\n(.*?)(?=^## |\Z)", text, re.S | re.M))
    missing = []
    for name, parser in _parsers(build_parser(), "marigold-bench"):
        if name == "marigold-bench":
            continue
        if name not in sections:
            missing.append(f"{name}: no section")
            continue
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue  # hidden from --help on purpose (old spellings): hidden from the reference too
            for flag in action.option_strings:
                if flag in ("-h", "--help", "--include"):
                    continue  # every parser has them; the reference's header says so
                if not re.search(rf"`{re.escape(flag)}`", sections[name]):
                    missing.append(f"{name}: {flag}")
    assert "`--include PATH`" in text.split("## ")[0]
    assert not missing, "docs/flags.md lacks (rerun `python docs/make_flags.py`):\n  " + "\n  ".join(missing)



def test_the_readme_starts_with_the_two_commands_and_ci_runs_the_second():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first = re.match(r"# marigold-bench\n\n```bash\n(.*?)```", text, re.S)
    assert first, "README.md must open with its two commands"
    install_and_run, install_and_test = first.group(1).strip().splitlines()
    assert install_and_run.endswith("&& marigold-bench run --dataset synthetic")
    assert install_and_test.endswith("&& python -m pytest")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert install_and_test in ci.splitlines()


def test_every_relative_link_in_the_docs_resolves():
    broken = []
    for doc in [REPO / "README.md", *DOCS.glob("*.md"), REPO / "datasets" / "eth3d.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO)}: {target}")
    assert not broken, "broken links:\n  " + "\n  ".join(broken)


#: design documents of the project's planning that the repository does not hold
DESIGN_DOCS = re.compile(r"(?<![\w/])(DESIGN|PROTOCOLS?|TRAINING|BENCHMARKS|NORMALS)\.md")


def test_no_doc_or_module_cites_a_design_document_the_repository_lacks():
    """A reader of the repository can open what it cites: a fact is stated inline or points at
    a file here (datasets/*.md, docs/*.md); ``benchmarks/TRAINING.md`` (with its path) exists."""
    files = [REPO / "README.md", REPO / "CHANGELOG.md", *DOCS.rglob("*.md"), *DOCS.rglob("*.py"),
             *(REPO / "datasets").rglob("*.md"), *(REPO / "benchmarks").rglob("*.md"),
             *(REPO / "benchmarks").glob("*.py"),
             *(REPO / "marigold_bench").rglob("*.py"), *(REPO / "tests").glob("*.py")]
    found = [f"{f.relative_to(REPO)}:{n}: {line.strip()}" for f in files
             for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if DESIGN_DOCS.search(line)]
    assert not found, "design documents not in the repository:\n  " + "\n  ".join(found)
