"""YAML documents written by people (schedules, rule packs), read safely with line numbers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from compliance.errors import Problem


def _yaml() -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="rt", pure=True)


def line_of(node: Any, key: Any = None, value: bool = False) -> int | None:
    """1-based line of a mapping key (or its value), a sequence item, or the node itself."""
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        if key is None:
            return int(lc.line) + 1
        if isinstance(key, int) and isinstance(node, list):
            return int(lc.item(key)[0]) + 1
        if value:
            return int(lc.value(key)[0]) + 1
        return int(lc.key(key)[0]) + 1
    except (KeyError, TypeError, IndexError, AttributeError):
        return int(lc.line) + 1


_MAX_NODES = 100_000
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in
                        ("str", "int", "float", "bool", "null", "map", "seq", "timestamp",
                         "merge"))


def _check_nodes(root: Any, file: str) -> list[Problem]:
    """Refuse what safe loading alone lets through: repeated keys, tags, alias bombs."""
    from ruamel.yaml.nodes import MappingNode, SequenceNode

    problems: list[Problem] = []
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = 1  # guards against recursive aliases
        total = 1
        if isinstance(node, MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, SequenceNode):
            total += sum(size(v) for v in node.value)
        sizes[id(node)] = min(total, _MAX_NODES + 1)
        return sizes[id(node)]

    if size(root) > _MAX_NODES:
        return [Problem(f"the document expands to more than {_MAX_NODES} values through its "
                        "aliases; a schedule is never that large", file=file)]

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        tag = str(getattr(node, "tag", "") or "")
        if tag and tag not in _PLAIN_TAGS:
            problems.append(Problem(f"YAML tag {tag!r} is not allowed in a schedule", file=file,
                                    line=node.start_mark.line + 1))
        if isinstance(node, MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name = str(key.value)
                line = key.start_mark.line + 1
                if name in first:
                    problems.append(Problem(
                        f"{name!r} is given twice in the same block (first at line "
                        f"{first[name]}); keep one", file=file, line=line))
                else:
                    first[name] = line
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return problems


_STR_TAG = "tag:yaml.org,2002:str"


def plain_nodes(root: Any) -> bool:
    """Whether a composed document is plain: standard tags only, no anchors or aliases,
    text keys given once each, and not too many nodes."""
    from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen or len(seen) > _MAX_NODES or getattr(node, "anchor", None):
            return False
        seen.add(id(node))
        if str(getattr(node, "tag", "") or "") not in _PLAIN_TAGS:
            return False
        if isinstance(node, MappingNode):
            keys: set[str] = set()
            for key, value in node.value:
                if not isinstance(key, ScalarNode) or key.tag != _STR_TAG or key.value in keys:
                    return False
                keys.add(key.value)
                stack.extend((key, value))
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif not isinstance(node, ScalarNode):
            return False
    return True


def read_plain(data: bytes) -> Any:
    """The plain values of a YAML text with the safe loader (its C parser where installed),
    if the text is plain (see ``plain_nodes``); else None. Nothing here knows lines: a
    caller that finds a problem reads the file again with ``read_yaml`` to place it."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    # The C parser reads YAML 1.1, where these are line breaks and a directive may change
    # the version; in YAML 1.2, as the round-trip loader reads it, they are not.
    if any(c in text for c in "\x85\u2028\u2029") or text.startswith("%") or "\n%" in text:
        return None
    loader = YAML(typ="safe")
    try:
        root = loader.compose(text)
        if root is None or not plain_nodes(root):
            return None
        return _plain(loader.constructor.construct_document(root))
    except (YAMLError, RecursionError, ValueError, TypeError):
        return None


def _plain(node: Any) -> Any:
    """Turn ruamel's round-trip containers into plain Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.date):  # an unquoted date such as 2017-04-01
        return node.isoformat()[:10]
    return str(node)


def read_yaml(path: str | Path, what: str, data: bytes | None = None
              ) -> list[Problem] | tuple[Any, Any, list[Problem], bytes]:
    """Read a YAML file safely: (round-trip tree, plain values, problems, bytes), or the
    problems that stop it being read at all. Repeated keys are problems, not failures.
    ``data`` is the file's content when the caller has read it already."""
    file = str(path)
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            return [Problem(f"cannot read the {what}: {exc.strerror or exc}", file=file)]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return [Problem(f"not UTF-8 text (byte {exc.start}); save the {what} as UTF-8",
                        file=file, line=line)]
    if not text.strip():
        return [Problem(f"the {what} is empty", file=file)]

    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        # Repeated keys are reported by _check_nodes with both lines; loading goes on so
        # that every other problem of the file is reported too.
        loader = _yaml()
        loader.allow_duplicate_keys = True
        root = loader.compose(text)
        problems: list[Problem] = _check_nodes(root, file) if root is not None else []
        if any("expands to more" in p.message or "tag" in p.message for p in problems):
            return problems
        # The values are made from the nodes already composed: the text is parsed once.
        raw = loader.constructor.construct_document(root) if root is not None else None
    except RecursionError:
        return [Problem(f"the {what} nests too deeply to be read", file=file)]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = mark.line + 1 if mark is not None else None
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        return [Problem(f"not valid YAML: {problem}", file=file, line=where)]
    except YAMLError as exc:
        return [Problem(f"not valid YAML: {exc}", file=file)]
    return raw, _plain(raw), problems, data
