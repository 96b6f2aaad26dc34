"""Reading the YAML files cryoplan takes (case files, and its own data files) strictly.

PyYAML's safe loader follows YAML 1.1, where `yes`, `no`, `on` and `off` are booleans and
`1e-3` is a string, and where a key given twice silently keeps the last value. A case file
is a clinical input: each of those has turned a mistake into a quiet wrong value. This loader
reads the YAML 1.2 core way instead:

- booleans are only `true` and `false` (`yes` stays the string "yes", which a number or a
  flag then refuses by name);
- numbers include exponents without a dot or sign (`1e-3`, `3.6e6`);
- a mapping that gives a key twice is an error naming the key and its line;
- nesting is bounded (`MAX_DEPTH`), and so is the text (`MAX_BYTES`), so that a hostile file
  is refused in one line rather than exhausting the stack or the memory.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

MAX_DEPTH = 64  # a case file nests about 6 deep
MAX_BYTES = 16 * 1024 * 1024


class YamlError(ValueError):
    """What is wrong, and where (`line L, column C` or empty)."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core booleans and floats, no duplicate keys, bounded depth."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *anchor`: the keys it brings may be overridden
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YamlError(_where(key_node), "a mapping key must be a plain value") from None
            if key in seen:
                raise YamlError(
                    _where(key_node),
                    f"duplicate key {key!r} (first given at {_where(seen[key])}); "
                    "a key may appear once",
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _where(node: yaml.Node) -> str:
    mark = node.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


# the resolvers of the YAML 1.2 core schema for booleans and floats, in place of YAML 1.1's
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _depth(node: yaml.Node, limit: int) -> None:
    """Refuse nesting deeper than `limit`, iteratively (a deep file must not recurse)."""
    stack = [(node, 1)]
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            raise YamlError(_where(current), f"nested deeper than {limit} levels")
        if isinstance(current, yaml.MappingNode):
            stack.extend((n, depth + 1) for pair in current.value for n in pair)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((n, depth + 1) for n in current.value)


def load_yaml(text: str) -> Any:
    """Parse YAML text strictly (module docstring); a `YamlError` says what and where."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlError("", f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    loader = None
    try:
        loader = _StrictLoader(text)  # reads the first characters: may already fail
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlError("", f"nested deeper than {MAX_DEPTH} levels") from None
        if node is None:
            return None
        _depth(node, MAX_DEPTH)
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        raise YamlError(
            f"character {exc.position + 1}", f"not YAML text: {exc.reason} (#x{exc.character:04x})"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise YamlError(where, f"malformed YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


def load_yaml_file(path: str | Path, what: str) -> Any:
    """Read and parse a user's YAML file (`what`: "case file", "sweep file"); a `CaseError`
    naming the file (and where in it) if it cannot be read or parsed."""
    from cryoplan.errors import CaseError  # noqa: PLC0415

    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CaseError(str(p), "", f"cannot read the {what} ({reason})") from None
    try:
        return load_yaml(text)
    except YamlError as exc:
        raise CaseError(str(p), exc.where or "(top level)", exc.problem) from None
