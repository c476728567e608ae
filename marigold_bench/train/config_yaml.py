"""Reading a training config file: plain YAML values only, each key once, errors in one line.

A config is data: :func:`read_config_file` builds it with PyYAML's safe constructor, so a tag
such as ``!!python/object/apply:os.system`` is an error naming the file and line, never a call.
Plain YAML keeps the last of two equal keys in a mapping without a word (``lr: 1e-3`` then
``lr: 3e-5`` trains with the second); here the duplicate is an error naming its key path and
both lines. A merge (``<<: *base``) followed by an explicit key is an override, not a duplicate.

>>> read_config_file("configs/tiny.yaml")["optim"]["lr"]     # doctest: +SKIP
0.001
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from marigold_bench.errors import TrainConfigError

_MERGE = "tag:yaml.org,2002:merge"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _where(path: Path, mark) -> str:
    return f"{path} line {mark.line + 1}" if mark is not None else str(path)


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _check_duplicate_keys(node, file: Path, path: str = "", seen: set | None = None) -> None:
    """Walk the composed node graph (before anything is constructed) and refuse a mapping that
    names one key twice. Sequence items are counted from 1 in the key path, as in the
    config's other messages (``validation.sets[1].max_samples``)."""
    seen = set() if seen is None else seen
    if id(node) in seen:  # an alias of a node already walked (anchors can even be recursive)
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first_line = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                _check_duplicate_keys(value_node, file, path, seen)
                continue
            if isinstance(key_node, yaml.ScalarNode):
                key = key_node.value
                if (key_node.tag, key) in first_line:
                    raise TrainConfigError(
                        f"{_where(file, key_node.start_mark)}: duplicate key {_child(path, key)} (first on line "
                        f"{first_line[key_node.tag, key]}); each key may appear once in a mapping")
                first_line[key_node.tag, key] = key_node.start_mark.line + 1
                _check_duplicate_keys(value_node, file, _child(path, key), seen)
            else:
                _check_duplicate_keys(value_node, file, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for number, item in enumerate(node.value, 1):
            _check_duplicate_keys(item, file, f"{path}[{number}]", seen)


def _yaml_error(file: Path, exc: yaml.YAMLError) -> TrainConfigError:
    """One line: the file, the line of the problem, what it is (and what it was inside)."""
    problem = getattr(exc, "problem", None)
    if not problem:
        return TrainConfigError(f"{file} is not valid YAML: {_one_line(exc)}")
    message = f"{_where(file, getattr(exc, 'problem_mark', None))}: {_one_line(problem)}"
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        message += f" ({_one_line(context)}" + (f" from line {context_mark.line + 1})" if context_mark else ")")
    if "python/" in problem:
        message += "; a training config holds plain values only (python tags are never run)"
    return TrainConfigError(message)


def read_config_file(path: str | os.PathLike) -> dict:
    """The mapping a YAML training config file holds (``{}`` for an empty file).

    Raises:
        TrainConfigError: the file cannot be read, is not UTF-8 YAML, uses a tag other than
        YAML's plain ones (e.g. a python tag), names a key twice in one mapping, or does not
        hold a mapping. The message is one line naming the file (and line where there is one).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TrainConfigError(f"cannot read training config {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise TrainConfigError(f"training config {path} is not UTF-8 text (byte {exc.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}
        _check_duplicate_keys(node, path)
        values = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    finally:
        loader.dispose()
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise TrainConfigError(f"training config {path} must hold a mapping of config keys, "
                               f"got a {type(values).__name__}")
    return values


__all__ = ["read_config_file"]
