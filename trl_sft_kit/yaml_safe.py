"""YAML read the way ``yaml.safe_load`` reads it, minus three ways a config file can go wrong unseen.

Every place the kit reads YAML (recipe files in ``config``, ``--set KEY=VALUE`` values in ``cli`` and
``distributed``) reads it here, with :class:`SafeConfigLoader`, a ``yaml.SafeLoader`` that also refuses:

- a key given twice in one mapping (``yaml.safe_load`` keeps the last value without a word); merge keys
  (``<<: *base``) still override what they merge, as YAML defines;
- aliases that expand past :data:`MAX_ALIAS_NODES` nodes (a "billion laughs" document grows a few hundred
  bytes into gigabytes once the kit copies it), or that refer to the collection they sit in;
- collections nested deeper than :data:`MAX_DEPTH` (``yaml`` itself would end in a bare ``RecursionError``).

Each refusal is a :class:`~trl_sft_kit.errors.ConfigError` that names the source, the key or alias and the
line, raised while the document is composed, before anything large is built. Malformed YAML still raises
``yaml.YAMLError``, as ``yaml.safe_load`` does, so that each caller words its own error.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from trl_sft_kit.errors import ConfigError

__all__ = ["MAX_ALIAS_NODES", "MAX_DEPTH", "SafeConfigLoader", "load_yaml_text", "yaml_value"]

MAX_ALIAS_NODES = 10_000
"""The most nodes a document may reach through aliases, all together (an alias counts all it expands to)."""

MAX_DEPTH = 100
"""The deepest nesting of lists and mappings a document may hold, aliases expanded."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class SafeConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys, alias bombs and too deep nesting (see the module).

    Args:
        stream: the YAML text.
        source: how errors name the text (a file path, ``YAML text``, ``--set lora.r=8``).
        path: the file the text came from, set as the errors' ``path``; None for text.
    """

    def __init__(self, stream: str, *, source: str = "YAML text", path: str | None = None) -> None:
        super().__init__(stream)
        self.source = source
        self.path = path
        self._alias_nodes = 0
        self._depth = 0
        self._open_anchors: set[str] = set()
        self._shapes: dict[int, tuple[int, int]] = {}  # id(node) -> (nodes, depth) once expanded
        self._checked: set[int] = set()

    # ---------------------------------------------------------------------------------- composing

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Compose one node, counting what aliases expand to and how deep collections nest."""
        if self.check_event(AliasEvent):
            event = self.peek_event()
            anchor = str(event.anchor)
            line = event.start_mark.line + 1 if event.start_mark is not None else None
            if anchor in self._open_anchors:
                raise self._error(
                    f"the alias *{anchor} on line {line} refers to the collection it sits in, which would "
                    "make the config endless; write the values out instead."
                )
            node = super().compose_node(parent, index)
            assert node is not None  # an alias always names a node composed before it
            nodes, depth = self._shape(node)
            self._alias_nodes += nodes
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise self._error(
                    f"the aliases expand to more than {MAX_ALIAS_NODES:,} values (the alias *{anchor} on "
                    f"line {line} passes the limit); a config this large through aliases is refused, since "
                    "expanding it could take all memory. Write the values out, or use fewer aliases."
                )
            if self._depth + depth > MAX_DEPTH:
                raise self._depth_error(line)
            return node
        if not self.check_event(CollectionStartEvent):
            return super().compose_node(parent, index)
        event = self.peek_event()
        anchor = event.anchor
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._depth_error(event.start_mark.line + 1 if event.start_mark is not None else None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)

    def _shape(self, root: Node) -> tuple[int, int]:
        """How many nodes ``root`` expands to and how deep it nests (1 for a scalar), without recursion."""
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, children_done = stack.pop()
            key = id(node)
            if key in self._shapes:
                continue
            children = _children(node)
            if children_done or not children:
                shapes = [self._shapes[id(child)] for child in children]
                nodes = 1 + sum(count for count, _ in shapes)
                if shapes:
                    depth = 1 + max(deep for _, deep in shapes)
                else:
                    depth = 0 if isinstance(node, ScalarNode) else 1
                self._shapes[key] = (min(nodes, MAX_ALIAS_NODES + 1), depth)
                continue
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in self._shapes)
        return self._shapes[id(root)]

    def _depth_error(self, line: int | None) -> ConfigError:
        return self._error(
            f"lists and mappings nest more than {MAX_DEPTH} deep (line {line}); a recipe config never needs "
            "that many levels. Flatten the value."
        )

    # ---------------------------------------------------------------------------------- constructing

    def flatten_mapping(self, node: MappingNode) -> None:
        """Refuse a key given twice in ``node`` before YAML's merge keys (``<<``) are folded in."""
        if id(node) not in self._checked:
            self._checked.add(id(node))
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, ScalarNode):
                    continue  # merges may override; a list or mapping as a key fails on its own later
                key = self.construct_object(key_node)
                line = key_node.start_mark.line + 1
                first = seen.get(key)
                if first is not None:
                    raise ConfigError(
                        f"{self.source} gives the key {key!r} twice in one mapping (line {first} and line "
                        f"{line}); YAML would keep only the last value. Keep one of them.",
                        key=str(key),
                        path=self.path,
                    )
                seen[key] = line
        super().flatten_mapping(node)

    def _error(self, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {message}", path=self.path)


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load_yaml_text(text: str, *, source: str = "YAML text", path: str | None = None) -> Any:
    """``yaml.safe_load(text)`` with :class:`SafeConfigLoader`'s refusals.

    Args:
        text: the YAML text.
        source: how errors name the text.
        path: the file the text came from (the errors' ``path``).

    Returns:
        The document's value, as ``yaml.safe_load`` gives it.

    Raises:
        ConfigError: a duplicate key, aliases expanding past ``MAX_ALIAS_NODES`` or referring to their own
            collection, or nesting deeper than ``MAX_DEPTH``.
        yaml.YAMLError: the text is not valid YAML.

    Example:
        >>> load_yaml_text("lora: {r: 8}")
        {'lora': {'r': 8}}
    """
    loader = SafeConfigLoader(text, source=source, path=path)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def yaml_value(text: str, *, source: str) -> Any:
    """A ``KEY=VALUE`` override's value read as YAML: empty is None, text that is not YAML stays text.

    Raises:
        ConfigError: the value is YAML the loader refuses (a duplicate key, an alias bomb, deep nesting).

    Example:
        >>> yaml_value("[q_proj, v_proj]", source="--set lora.target_modules")
        ['q_proj', 'v_proj']
        >>> yaml_value("a: b: c", source="--set x")
        'a: b: c'
    """
    if not text.strip():
        return None
    try:
        return load_yaml_text(text, source=source)
    except yaml.YAMLError:
        return text
