"""YAML from files a person wrote (the config, a model's label file): PyYAML's safe loader
with guards, so a slip reads as an error at its line instead of a silent guess or a
traceback.

- a key given twice in one mapping is refused (PyYAML keeps the last);
- nesting past ``MAX_YAML_DEPTH`` is refused as it is read (no RecursionError);
- a scalar Python cannot hold (``2024-02-30``, an integer of 5000 digits) is a YAML error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml

__all__ = ["MAX_YAML_DEPTH", "GuardedLoader", "load_yaml"]

MAX_YAML_DEPTH = 64
"""A real config nests about eight levels; PyYAML slows quadratically on deep flow nesting
and overflows Python's stack past ~1000 levels, so deeper is refused as it is read."""


class GuardedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, with scalars Python cannot hold (``2024-02-30``, an integer of
    5000 digits) and nesting past MAX_YAML_DEPTH turned into YAML errors at their line
    instead of a bare ValueError or RecursionError, and a key given twice in one mapping
    refused (PyYAML keeps the last: a second ``rules:`` silently dropped the first's)."""

    _depth = 0

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[tuple[str, str], yaml.Node] = {}
        for key_node, _ in node.value:  # the mapping's own keys: a ``<<`` merge may override
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            first = seen.setdefault((key_node.tag, key_node.value), key_node)
            if first is not key_node:
                shown = key_node.value if len(key_node.value) <= 40 else key_node.value[:40] + "..."
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"{shown!r} given twice in one mapping (first at line "
                    f"{first.start_mark.line + 1}); YAML would keep only the last",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_YAML_DEPTH} levels",
                    self.get_mark(),
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _guarded(
    construct: Callable[[yaml.SafeLoader, yaml.ScalarNode], object], what: str
) -> Callable[[yaml.SafeLoader, yaml.ScalarNode], object]:
    def guarded(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
        try:
            return construct(loader, node)
        except (ValueError, OverflowError) as error:
            value = str(node.value)
            shown = value if len(value) <= 40 else f"{value[:20]}... ({len(value)} characters)"
            reason = str(error).split(":")[0]
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"{shown} is not a usable {what} ({reason}); quote it if it is text",
                node.start_mark,
            ) from None

    return guarded


for _tag, _what in (("timestamp", "date"), ("int", "integer"), ("float", "number")):
    GuardedLoader.add_constructor(
        f"tag:yaml.org,2002:{_tag}",
        _guarded(yaml.SafeLoader.yaml_constructors[f"tag:yaml.org,2002:{_tag}"], _what),
    )


def load_yaml(text: str) -> object:
    """The YAML document in ``text``; ``yaml.YAMLError`` (with its line) when it cannot be
    read as one, ``RecursionError`` only if the depth guard itself was not enough."""
    return yaml.load(text, Loader=GuardedLoader)  # a SafeLoader: no arbitrary objects
