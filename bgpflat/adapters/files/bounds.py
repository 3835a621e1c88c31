"""Bounds on the structure of every YAML/JSON input, checked where the text is parsed.

A short hostile file must not take minutes, gigabytes or a traceback: ten lines of nested YAML
aliases (an "alias bomb") expand to a billion values for whatever walks them, an alias inside its
own anchor (``pools: &p [*p]``) makes a list that contains itself, and a few kilobytes of ``[[[[``
exhaust Python's recursion. Each is refused here, before anything walks the data, with one line
naming the file:

* nesting: at most ``MAX_DEPTH`` levels (Kubernetes objects, with managedFields, use about 20);
* aliases: the document with every alias written out may hold at most ``ALIAS_EXPANSION`` times
  the values written in the file (and ``ALIAS_ALLOWANCE`` more), so anchors and merge keys of a
  hand-written spec stay fine while an alias bomb does not;
* an alias that refers to the node containing it;
* numbers of more digits than Python converts (``sys.get_int_max_str_digits``).
"""

from __future__ import annotations

from typing import Any

import yaml

from bgpflat.errors import SpecError

MAX_DEPTH = 100
ALIAS_EXPANSION = 10
ALIAS_ALLOWANCE = 100_000

_DEPTH_FIX = f"a bgpflat input nests at most {MAX_DEPTH} levels; check the file is the one you meant"
_CONTAINERS = (dict, list)


def too_deep(file: str, line: int | None = None) -> SpecError:
    return SpecError(f"nested more than {MAX_DEPTH} levels deep", file=file, line=line, fix=_DEPTH_FIX)


def is_huge_number(exc: ValueError) -> bool:
    """Python's refusal to convert a number of more than ``sys.get_int_max_str_digits()`` digits."""
    return "integer string conversion" in str(exc)


def huge_number(file: str, line: int | None = None) -> SpecError:
    return SpecError(
        "a number with thousands of digits",
        file=file,
        line=line,
        fix="numbers in bgpflat's files are at most 20 digits long",
    )


def json_error(exc: ValueError | RecursionError, file: str) -> SpecError:
    """``json.loads``'s own failures other than bad syntax, as one line naming the file."""
    if isinstance(exc, RecursionError):
        return too_deep(file)
    if is_huge_number(exc):
        return huge_number(file)
    return SpecError(f"invalid JSON: {exc}", file=file)


def check_json_depth(value: Any, file: str) -> None:
    """Refuse JSON data nested deeper than ``MAX_DEPTH`` (one level of the tree at a time: no
    recursion, and a few hundred milliseconds for a snapshot of 50,000 Nodes)."""
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise too_deep(file)
        below: list[Any] = []
        extend = below.extend
        for item in level:
            children = item.values() if type(item) is dict else item
            extend([child for child in children if type(child) in _CONTAINERS])
        level = below


def check_yaml_node(root: yaml.Node, file: str) -> None:
    """Refuse a composed YAML document that is too deep, contains itself or expands too far.

    The composer gives every alias the node of its anchor, so the document is a graph: walked
    once per node (depth and expanded size memoised per node), never once per path through it.
    """
    done: dict[int, tuple[int, int]] = {}  # id(node) -> (values with aliases written out, depth)
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            entered.discard(key)
            size, depth = 1, 0
            for child in _children(node):
                child_size, child_depth = done[id(child)]
                size += child_size
                depth = max(depth, child_depth)
            if depth + 1 > MAX_DEPTH:
                raise too_deep(file, node.start_mark.line + 1)
            done[key] = (size, depth + 1)
            continue
        if key in done:
            continue
        if key in entered:
            raise SpecError(
                "an alias refers to the anchor that contains it (the value would contain itself)",
                file=file,
                line=node.start_mark.line + 1,
                fix="write the value out instead of the alias",
            )
        entered.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in done)
    expanded = done[id(root)][0]
    allowed = ALIAS_EXPANSION * len(done) + ALIAS_ALLOWANCE
    if expanded > allowed:
        raise SpecError(
            f"aliases expand this document to {expanded:,} values, more than {allowed:,} (an alias bomb?)",
            file=file,
            line=root.start_mark.line + 1,
            fix="write the repeated parts out, or nest fewer aliases",
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
