"""Limits on what a YAML document may cost, checked while it is parsed and while it is walked.

Why here, apart from the loader: these are the hostile-input guards SECURITY.md promises
(nesting, tags, node counts, key length, characters after alias expansion, key paths), and
each reads best next to the others. The loader (:mod:`credsim.scenario.load`) turns a
:class:`Refused` into a :class:`~credsim.scenario.load.ScenarioError` naming the file.

- Nesting is refused while composing, before PyYAML's recursive composer can go deep;
  only the standard tags may be written explicitly; a long key is refused as soon as the
  parser meets it; the nodes written are counted.
- :class:`Budget` counts what the walk from nodes to Python values builds, aliases
  expanded: nodes (keys included), characters of keys and values, characters of key paths.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

try:
    from yaml.cyaml import CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None  # type: ignore[assignment,misc]

MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_EXPANDED_CHARS = 8_000_000
MAX_KEY_CHARS = 200  # scenario names are at most 80 characters; no key needs more
MAX_PATH_CHARS = 16_000_000  # key paths kept for error messages, all together
ALLOWED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


class Refused(Exception):
    """A document over a limit: what was expected, where (key path, line when known)."""

    def __init__(self, expected: str, mark: Any = None, path: str = "", line: int | None = None) -> None:
        super().__init__(expected)
        self.expected, self.path = expected, path[:200]
        self.line = mark.line + 1 if mark is not None else line


class _Guards:
    """Checks made while composing, before PyYAML's recursive composer can go deep: nesting, tags, long
    keys and the number of nodes written (a 1 MB file can hold 500,000; composing is the slow part)."""

    _depth: int
    _written: int

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in ALLOWED_TAGS:
            raise Refused(f"plain YAML values (the tag {tag[:60]!r} is not allowed)", event.start_mark)
        if isinstance(parent, yaml.MappingNode) and index is None:  # a key: refuse a long one before it is used
            _check_key_event(event)
        self._written += 1
        if self._written > MAX_NODES:
            raise Refused(f"at most {MAX_NODES} YAML nodes", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise Refused(f"nesting at most {MAX_DEPTH} deep", event.start_mark)
            return Composer.compose_node(self, parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


if CParser is not None:
    class GuardedLoader(_Guards, Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml scans and parses (five times faster than PyYAML's Python scanner on a 1 MB file, and
        iterative, so deep flow nesting costs nothing); Python composes, so the guards above run."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._depth = self._written = 0
else:  # pragma: no cover - PyYAML without libyaml: the same guards over the pure-Python parser
    class GuardedLoader(_Guards, yaml.SafeLoader):  # type: ignore[no-redef]
        """The safe loader, refusing deep nesting, non-standard tags and long keys as it composes."""

        def __init__(self, stream: str) -> None:
            yaml.SafeLoader.__init__(self, stream)
            self._depth = self._written = 0


def _check_key_event(event: Any) -> None:
    """Refuse a long mapping key as soon as the parser meets it (an alias can repeat it thousands of times)."""
    value = getattr(event, "value", None)
    if isinstance(event, yaml.ScalarEvent) and isinstance(value, str) and len(value) > MAX_KEY_CHARS:
        raise Refused(f"keys of at most {MAX_KEY_CHARS} characters (one has {len(value)})", event.start_mark)


class Budget:
    """What one document may cost once aliases are expanded: nodes (keys included), characters of
    values and keys, and characters of the key paths kept for error messages.

    Why keys count: an alias can repeat a 100,000-character key 20,000 times from 140 KB of
    YAML, and every repetition becomes a string and a key path in memory (2 GB). A key is
    measured on its YAML node, before any Python string is built from it.
    """

    def __init__(self) -> None:
        self.nodes = 0
        self.value_chars = 0
        self.path_chars = 0

    def _refuse(self, path: str, expected: str, line: int | None = None) -> None:
        raise Refused(expected, path=path, line=line)

    def node(self, path: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self._refuse(path, f"at most {MAX_NODES} YAML nodes (aliases count each time)")

    def chars(self, n: int, path: str) -> None:
        self.value_chars += n
        if self.value_chars > MAX_EXPANDED_CHARS:
            self._refuse(path, f"at most {MAX_EXPANDED_CHARS} characters of keys and values once aliases are expanded")

    def key(self, k: yaml.Node, path: str) -> None:
        self.node(path)
        if isinstance(k, yaml.ScalarNode):
            if len(k.value) > MAX_KEY_CHARS:
                self._refuse(path, f"keys of at most {MAX_KEY_CHARS} characters (one has {len(k.value)})",
                             k.start_mark.line + 1)
            self.chars(len(k.value), path)

    def path(self, sub: str) -> None:
        self.path_chars += len(sub)
        if self.path_chars > MAX_PATH_CHARS:
            self._refuse(sub, "a smaller document: its key paths add up to more than "
                              f"{MAX_PATH_CHARS} characters once aliases are expanded")
