"""Reading YAML input files: duplicate keys refused, errors as one line with file, line, column.

PyYAML's safe loader keeps the last of two equal keys silently and words its errors over
several lines with a caret drawing. `load_yaml(path)` refuses duplicate keys and raises
`YamlError` with one line: `<file>:<line>:<column>: <problem>` (1-based, as editors count).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["YamlError", "load_yaml", "parse_yaml"]


class YamlError(ValueError):
    """A YAML file that does not parse (one line: file, line, column, problem)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing a mapping that holds one key twice."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                       deep: bool = False) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: dict[Any, yaml.Node] = {}
    for key_node, _value in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            first = seen.get(key)
        except TypeError:  # an unhashable key: let the base constructor say so
            break
        if first is not None:
            raise yaml.constructor.ConstructorError(
                None, None,
                f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                key_node.start_mark)
        seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                 _construct_mapping)


def _one_line(err: yaml.YAMLError, name: str) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
    text = f"{problem} ({context})" if context and context not in problem else problem
    return f"{where}: not valid YAML: {' '.join(str(text).split())}"


def parse_yaml(text: str, name: str = "<string>") -> Any:
    """Parse YAML text (safe loader, duplicate keys refused).

    Raises:
        YamlError: one line naming `name`, line and column.
    """
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise YamlError(_one_line(err, name)) from None


def load_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file (see `parse_yaml`); OSError passes through."""
    path = Path(path)
    return parse_yaml(path.read_text(encoding="utf-8"), str(path))
