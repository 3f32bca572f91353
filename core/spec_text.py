"""Spec text to plain data, within bounds: what a coordinator may parse from any caller.

PyYAML's safe loader builds only plain data, but on its own it expands aliases without limit (a
few hundred bytes can grow to gigabytes) and recurses as deep as the text nests. The loader here
refuses more than :data:`MAX_YAML_ALIASES` aliases and :data:`MAX_SPEC_DEPTH` levels while it
composes, and measures the alias-expanded tree (:data:`MAX_SPEC_NODES`) before any object is
built, so a hostile spec fails in milliseconds. Text over :data:`MAX_SPEC_BYTES` is refused
before parsing. Only :func:`read_spec_file` (the SDK and CLI) opens a file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from faultlab.errors import ResourceExhaustedError, SpecError

MAX_SPEC_BYTES = 1 << 20
"""Largest spec text accepted (UTF-8 bytes); larger ones are RESOURCE_EXHAUSTED."""
MAX_YAML_ALIASES = 64
"""YAML alias references allowed in one spec (an alias bomb fails while composing)."""
MAX_SPEC_DEPTH = 32
"""Deepest nesting of mappings and sequences in a spec."""
MAX_SPEC_NODES = 100_000
"""Nodes of a spec's YAML tree with every alias expanded."""
MAX_ECHO = 60
"""Characters of an offending value an error message repeats."""


def short(value: Any) -> str:
    """``repr(value)`` cut to :data:`MAX_ECHO` characters: errors never echo a whole input."""
    text = repr(value)
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 3] + "..."


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, refusing alias bombs and deep nesting while it composes (before a
    single alias is expanded or an object built)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise SpecError("spec", f"too many YAML aliases (at most {MAX_YAML_ALIASES})")
        self.depth += 1
        try:
            if self.depth > MAX_SPEC_DEPTH:
                raise SpecError("spec", f"nested deeper than {MAX_SPEC_DEPTH} levels")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node) -> None:
    """Counts the nodes of the document with aliases expanded, without expanding them
    (memoised post-order walk, no recursion), refusing recursive aliases."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_SPEC_NODES:
                raise SpecError("spec", f"more than {MAX_SPEC_NODES} values once YAML aliases "
                                "are expanded")
        elif key in open_nodes:
            raise SpecError("spec", "recursive YAML alias")
        elif key not in sizes:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def load_spec_text(text: str) -> dict[str, Any]:
    """Reads YAML/JSON spec text into a plain dict (no validation yet), within the bounds of
    this module; never reads a file. This is all the coordinator uses."""
    if not isinstance(text, str):
        raise SpecError("spec", f"must be YAML/JSON text, got {type(text).__name__}")
    size = len(text) if len(text) > MAX_SPEC_BYTES else len(text.encode("utf-8", "replace"))
    if size > MAX_SPEC_BYTES:
        raise ResourceExhaustedError(
            f"spec: {size} bytes exceeds the limit of {MAX_SPEC_BYTES} bytes"
        )
    if max(text.count(","), text.count("\n")) > MAX_SPEC_NODES:  # before a slow parse
        raise SpecError("spec", f"more than {MAX_SPEC_NODES} values")
    try:
        loader = _BoundedLoader(text)  # its reader refuses unprintable characters here
    except yaml.YAMLError as exc:
        raise SpecError("spec", f"malformed YAML: {str(exc).splitlines()[0][:100]}") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_expanded_size(node)
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", None) or exc)[:100]
        raise SpecError("spec", f"malformed YAML{where}: {problem}") from None
    except (ValueError, OverflowError) as exc:  # a scalar PyYAML cannot convert (a huge int)
        raise SpecError("spec", f"invalid value: {str(exc)[:100]}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        problem = f"must be a mapping of fields, got {type(data).__name__}"
        if isinstance(data, str) and data.endswith((".yaml", ".yml", ".json")):
            problem += " (spec text is never read as a path: the SDK and CLI read files)"
        raise SpecError("spec", problem)
    return data


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """Reads a spec file into a plain dict: for the SDK and CLI, on the client's disk."""
    path = Path(path)
    if not path.is_file():
        raise SpecError("spec", f"file {short(str(path))} does not exist")
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise ResourceExhaustedError(
            f"spec: file {short(str(path))} exceeds the limit of {MAX_SPEC_BYTES} bytes"
        )
    return load_spec_text(path.read_text())
