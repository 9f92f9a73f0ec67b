"""YAML of our own config files, read as `yaml.safe_load` reads it, but refusing a key
given twice in one mapping (PyYAML keeps the last one silently, so a second `glance:` list
or an `api_key` pasted twice would drop half a file with no word) and a string that is not
text (a `"\\ud800"` escape loaded, then every page showing it failed to encode), and an
unquoted number in another base than ten.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from . import scrub
from .sanitize import clean_text

KEY_SHOWN = 60  # characters of a repeated key in the error; a config key, never a secret


class FieldError(yaml.YAMLError):
    """What is wrong with the field at `path` (dotted), found at `line`."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.line = line
        self.problem = problem


class DuplicateKeyError(FieldError):
    """A mapping lists one key twice; `path` is the dotted path of the second."""

    def __init__(self, path: str, line: int) -> None:
        super().__init__(path, line, f"given twice (again at line {line})")


def _refuse_non_text(node: yaml.Node, path: str) -> None:
    # `clean_text` replaces lone surrogates: a value it changes is not text.
    if isinstance(node, yaml.ScalarNode) and clean_text(node.value) != node.value:
        line = node.start_mark.line + 1
        raise FieldError(path, line, f"not text: a lone surrogate escape (line {line})")


_INT_TAG = "tag:yaml.org,2002:int"
# An integer as it reads in decimal, digit groups (`1_000`) allowed.
_DECIMAL = re.compile(r"[-+]?(?:0|[1-9][0-9_]*)")


def _refuse_other_bases(node: yaml.Node, path: str) -> None:
    # YAML 1.1 reads an unquoted 012345 as octal, 0x1F as hex and 190:20:30 in base 60:
    # an id or key written so became another number, or as text another string
    # ("012345" -> "5349"), with nothing said (found by a probe).
    if (
        isinstance(node, yaml.ScalarNode)
        and node.tag == _INT_TAG
        and node.style is None
        and _DECIMAL.fullmatch(node.value) is None
    ):
        line = node.start_mark.line + 1
        raise FieldError(
            path,
            line,
            f"a number YAML reads in another base (octal, hex or base 60; line {line}): "
            "quote it if it is text, or write it in decimal",
        )


def load_yaml(text: str) -> Any:
    """The document in `text`, as `yaml.safe_load` gives it; raises `yaml.YAMLError`
    (`FieldError` for a repeated key or a string that is not text), and RecursionError
    for nesting too deep."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_repeated_keys(node, "", set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_repeated_keys(node: yaml.Node, path: str, seen: set[int]) -> None:
    # An alias is the same node again: walked once, so `&a [*a]` ends and a thousand
    # aliases of one big mapping cost one walk.
    if id(node) in seen:
        return
    seen.add(id(node))
    _refuse_non_text(node, path or "(document)")
    _refuse_other_bases(node, path or "(document)")
    if isinstance(node, yaml.MappingNode):
        keys: set[tuple[str, str]] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                _refuse_non_text(key, f"{path}.?" if path else "?")
                name = key.value[:KEY_SHOWN]
                child = f"{path}.{name}" if path else name
                # `<<` merges are PyYAML's to flatten; a merged key may override.
                if key.tag != "tag:yaml.org,2002:merge":
                    if (key.tag, key.value) in keys:
                        raise DuplicateKeyError(child, key.start_mark.line + 1)
                    keys.add((key.tag, key.value))
            else:
                child = f"{path}.?" if path else "?"
            _refuse_repeated_keys(value, child, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_repeated_keys(item, f"{path}[{i}]", seen)


# Characters of PyYAML's own words on what is wrong ("found character '\t' that cannot
# start any token"): its problem text, never the snippet of the line it also prints, which
# may hold a secret pasted into the file.
PROBLEM_SHOWN = 120


def where_and_why(exc: yaml.YAMLError) -> str:
    """ " at line L, column C: what PyYAML found wrong", as much of it as it says."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    words = [getattr(exc, name, None) for name in ("context", "problem")]
    said = ", ".join(w.strip() for w in words if isinstance(w, str) and w.strip())
    if not said:
        return where
    return f"{where}: {scrub.SCRUBBER.excerpt(clean_text(said), PROBLEM_SHOWN)}"
