"""Loading a scenario file: safe YAML, limits, typed validation, errors that name places.

Every error a user can make in a scenario file surfaces as :class:`ScenarioError`, whose
message names the file, the line (when known), the key path and what was expected.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

try:
    from yaml.cyaml import CParser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    CParser = None  # type: ignore[assignment,misc]
from pydantic import BaseModel, ValidationError

from credsim.scenario.check import cross_check
from credsim.scenario.schema import Scenario

DEFAULT_SCENARIO = "city-points"
MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32
MAX_NODES = 200_000


@dataclass
class Problem:
    path: str
    expected: str
    line: int | None = None

    def render(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: at '{self.path or '<top>'}': {self.expected}"


@dataclass
class ScenarioError(Exception):
    """A scenario that cannot be used, with every problem found in it."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"invalid scenario {self.file} ({len(self.problems)} problem(s))"
        return "\n".join([head] + ["  " + p.render(self.file) for p in self.problems])

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.problems]


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


# -- hostile-input guards (SECURITY.md): nesting is refused while parsing, before PyYAML's
# recursive composer (and its scanner, slow on deep flow collections) can go deep; only the
# standard tags may be written explicitly; aliases may not expand the document past a size.
MAX_EXPANDED_CHARS = 8_000_000
MAX_PROBLEMS = 500  # problems listed in one error message
MAX_KEY_CHARS = 200  # scenario names are at most 80 characters; no key needs more
MAX_PATH_CHARS = 16_000_000  # key paths kept for error messages, all together
ALLOWED_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "map", "seq")}


class _Refused(Exception):
    def __init__(self, expected: str, mark: Any) -> None:
        self.expected, self.line = expected, (mark.line + 1 if mark is not None else None)


class _Guards:
    """Checks made while composing, before PyYAML's recursive composer can go deep: nesting, tags, long
    keys and the number of nodes written (a 1 MB file can hold 500,000; composing is the slow part)."""

    _depth: int
    _written: int

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[attr-defined]
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in ALLOWED_TAGS:
            raise _Refused(f"plain YAML values (the tag {tag[:60]!r} is not allowed)", event.start_mark)
        if isinstance(parent, yaml.MappingNode) and index is None:  # a key: refuse a long one before it is used
            _check_key_event(event)
        self._written += 1
        if self._written > MAX_NODES:
            raise _Refused(f"at most {MAX_NODES} YAML nodes", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise _Refused(f"nesting at most {MAX_DEPTH} deep", event.start_mark)
            return Composer.compose_node(self, parent, index)  # type: ignore[arg-type]
        finally:
            self._depth -= 1


if CParser is not None:
    class _GuardedLoader(_Guards, Composer, CParser, SafeConstructor, Resolver):  # type: ignore[misc]
        """libyaml scans and parses (five times faster than PyYAML's Python scanner on a 1 MB file, and
        iterative, so deep flow nesting costs nothing); Python composes, so the guards above run."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)
            self._depth = self._written = 0
else:  # pragma: no cover - PyYAML without libyaml: the same guards over the pure-Python parser
    class _GuardedLoader(_Guards, yaml.SafeLoader):  # type: ignore[no-redef]
        """The safe loader, refusing deep nesting, non-standard tags and long keys as it composes."""

        def __init__(self, stream: str) -> None:
            yaml.SafeLoader.__init__(self, stream)
            self._depth = self._written = 0


def _check_key_event(event: Any) -> None:
    """Refuse a long mapping key as soon as the parser meets it (an alias can repeat it thousands of times)."""
    value = getattr(event, "value", None)
    if isinstance(event, yaml.ScalarEvent) and isinstance(value, str) and len(value) > MAX_KEY_CHARS:
        raise _Refused(f"keys of at most {MAX_KEY_CHARS} characters (one has {len(value)})", event.start_mark)


def _compose(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML with the safe loader, keeping the line of every key path."""
    try:
        node = yaml.compose(text, Loader=_GuardedLoader)  # type: ignore[arg-type]
    except _Refused as exc:
        raise ScenarioError(file, [Problem("", exc.expected, exc.line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError(file, [Problem("", f"valid YAML ({exc})", line)]) from None
    lines: dict[str, int] = {}
    budget = _Budget(file)
    ctor = SafeConstructor()

    def walk(n: yaml.Node | None, path: str, depth: int) -> Any:
        budget.node(path)
        if isinstance(n, yaml.ScalarNode):
            budget.chars(len(n.value), path)
        if depth > MAX_DEPTH:
            raise ScenarioError(file, [Problem(path, f"nesting at most {MAX_DEPTH} deep")])
        if n is None:
            return None
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for k, v in n.value:
                budget.key(k, path)
                key = _scalar(k, file, path, ctor)
                sub = f"{path}.{key}" if path else str(key)
                budget.path(sub)
                if key in out:
                    line = k.start_mark.line + 1
                    raise ScenarioError(file, [Problem(sub, "each key once (duplicate key)", line)])
                lines[sub] = k.start_mark.line + 1
                out[key] = walk(v, sub, depth + 1)
            return out
        if isinstance(n, yaml.SequenceNode):
            return [walk(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(n.value)]
        return _scalar(n, file, path, ctor)

    return walk(node, "", 0), lines


class _Budget:
    """What one document may cost once aliases are expanded: nodes (keys included), characters of
    values and keys, and characters of the key paths kept for error messages.

    Why keys count: an alias can repeat a 100,000-character key 20,000 times from 140 KB of
    YAML, and every repetition becomes a string and a key path in memory (2 GB). A key is
    measured on its YAML node, before any Python string is built from it.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes = 0
        self.value_chars = 0
        self.path_chars = 0

    def _refuse(self, path: str, expected: str, line: int | None = None) -> None:
        raise ScenarioError(self.file, [Problem(path[:200], expected, line)])

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


def parse_value(text: str, where: str) -> Any:
    """One YAML value from the command line (``--set``), with the file's guards; :class:`ScenarioError` if bad."""
    return _compose(text, where)[0]


def _scalar(n: yaml.Node, file: str, path: str, loader: SafeConstructor | None = None) -> Any:
    """The Python value of a scalar node; ``loader`` is reused across a document (building one per value
    took most of the time of a large file)."""
    if not isinstance(n, yaml.ScalarNode):
        raise ScenarioError(file, [Problem(path, "a plain key (not a list or mapping)", n.start_mark.line + 1)])
    if loader is None:
        loader = SafeConstructor()
    try:
        return loader.construct_object(n, deep=True)
    except yaml.YAMLError as exc:
        raise ScenarioError(file, [Problem(path, f"a valid value ({exc})", n.start_mark.line + 1)]) from None
    except ValueError:  # Python refuses int() of more than 4300 digits: no scenario number needs that many
        shown = n.value if len(n.value) <= 40 else f"{n.value[:20]}... ({len(n.value)} characters)"
        raise ScenarioError(file, [Problem(path, f"a number of at most 4300 digits (got {shown})",
                                           n.start_mark.line + 1)]) from None
    finally:
        loader.constructed_objects.clear()  # scalars need no memo, and a document's worth would pile up


def builtin_dir() -> Path:
    return Path(str(resources.files("credsim.scenario") / "builtin"))


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.yaml"))


def resolve_path(name_or_path: str | Path) -> Path:
    """A built-in scenario name (``city-points``) or a path to a YAML file."""
    if str(name_or_path) == "default":
        name_or_path = DEFAULT_SCENARIO
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    cand = builtin_dir() / f"{name_or_path}.yaml"
    if cand.exists():
        return cand
    raise ScenarioError(
        str(name_or_path),
        [Problem("", f"a scenario file or one of the built-in names {builtin_names()}")],
    )


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating mappings on the way (for overrides)."""
    keys = dotted.split(".")
    cur: Any = data
    for k in keys[:-1]:
        if not isinstance(cur, dict):
            raise KeyError(dotted)
        cur = cur.setdefault(k, {})
    if not isinstance(cur, dict):
        raise KeyError(dotted)
    cur[keys[-1]] = value


def merge(base: Any, over: Any) -> Any:
    """Deep-merge ``over`` into ``base``: mappings merge, ``null`` deletes, the rest replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            if v is None:
                out.pop(k, None)
            elif k in out:
                out[k] = merge(out[k], v)
            else:
                out[k] = v
        return out
    return over


_BUILTIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-]{0,79}")


def _resolve_extends(data: Any, path: Path, depth: int = 0) -> Any:
    """Apply ``extends:`` (a built-in name or a file in the same folder as ``path``)."""
    if not isinstance(data, dict) or "extends" not in data:
        return data
    file = str(path)
    target = data.pop("extends")
    if depth > 4:
        raise ScenarioError(file, [Problem("extends", "at most 4 levels of extends")])
    if not isinstance(target, str) or not 0 < len(target) <= 255 or "\x00" in target:
        shown = repr(target)[:80]
        raise ScenarioError(file, [Problem("extends", f"a built-in scenario name or a file name (got {shown})")])
    folder = path.parent.resolve()
    try:
        cand = (folder / target).resolve()
    except (OSError, ValueError, RuntimeError) as exc:
        raise ScenarioError(file, [Problem("extends", f"a file inside {folder} ({exc})")]) from None
    if target.endswith((".yaml", ".yml")):
        if folder not in cand.parents:
            raise ScenarioError(file, [Problem("extends", f"a file inside {folder} (got {target!r})")])
        base_path = cand
    else:
        base_path = builtin_dir() / f"{target}.yaml"
        if not _BUILTIN_NAME.fullmatch(target) or not base_path.exists():
            expected = f"one of the built-in names {builtin_names()} (got {target!r})"
            raise ScenarioError(file, [Problem("extends", expected)])
    base, _ = _compose(_read(base_path), str(base_path))
    base = _resolve_extends(base, base_path, depth + 1)
    return merge(base, data)


def _read(path: Path) -> str:
    file = str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ScenarioError(file, [Problem("", f"a readable file ({exc.strerror})")]) from None
    if not path.is_file():
        raise ScenarioError(file, [Problem("", "a regular file (not a folder, device or pipe)")])
    if size > MAX_FILE_BYTES:
        raise ScenarioError(file, [Problem("", f"a file of at most {MAX_FILE_BYTES} bytes (it has {size})")])
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(file, [Problem("", f"a readable UTF-8 text file ({exc})")]) from None


def validate_data(data: Any, file: str, lines: dict[str, int] | None = None) -> Scenario:
    """Validate already-parsed data; raise :class:`ScenarioError` naming every problem."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise ScenarioError(file, [Problem("", "a mapping of sections (population, behaviours, ...)")])
    try:
        scen = Scenario.model_validate(data)
    except ValidationError as exc:
        probs = []
        errors = exc.errors(include_url=False, include_context=False)
        for err in errors[:MAX_PROBLEMS]:
            loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x in _UNION_TAGS))
            path = _dotted(loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "no such key (unknown keys are errors; check the spelling)" + _did_you_mean(loc)
            elif err["type"] == "missing":
                msg = "this key is required"
            got = err.get("input")
            if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
                shown = repr(got)
                msg += f" (got {shown if len(shown) <= 80 else shown[:60] + f'... ({len(shown)} characters)'})"
            probs.append(Problem(path, msg, _line_for(lines, path)))
        if len(errors) <= MAX_PROBLEMS:
            probs += _cross_problems_despite(data, [tuple(e["loc"]) for e in errors], lines)
        if len(errors) > MAX_PROBLEMS:  # a person reads the first ones; 95,000 lines help nobody
            probs.append(Problem("", f"fewer problems: {len(errors) - MAX_PROBLEMS:,} more like these are not shown"))
        raise ScenarioError(file, probs) from None
    probs = [Problem(p, e, _line_for(lines, p)) for p, e in cross_check(scen)]
    if probs:
        raise ScenarioError(file, probs)
    return scen


def _cross_problems_despite(data: dict[str, Any], locs: list[tuple[Any, ...]],
                            lines: dict[str, int]) -> list[Problem]:
    """Cross-section problems of the rest of a file that has schema errors, so one run of ``validate`` lists
    them all: every entry with an error is removed and, if what is left validates, it is cross-checked;
    problems inside a removed entry or naming a removed key are left out (they would be echoes)."""
    trimmed = copy.deepcopy(data)
    removed: list[str] = []
    names: set[str] = set()
    clean = sorted({tuple(x for x in loc if not (isinstance(x, str) and x in _UNION_TAGS)) for loc in locs},
                   key=lambda loc: [(isinstance(x, int), x if isinstance(x, int) else 0, str(x)) for x in loc],
                   reverse=True)  # later list items first, so earlier indices stay valid
    for loc in clean:
        if not loc:
            return []
        parent: Any = trimmed
        for item in loc[:-1]:
            try:
                parent = parent[item]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = loc[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
        elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
            parent.pop(last)
        removed.append(_dotted(loc))
        names |= {x for x in loc if isinstance(x, str)}
    try:
        scen = Scenario.model_validate(trimmed)
    except ValidationError:
        return []
    out = []
    for path, expected in cross_check(scen):
        if any(path == r or path.startswith((r + ".", r + "[")) for r in removed):
            continue
        if any(f"(got {n!r})" in expected for n in names):
            continue
        out.append(Problem(path, expected, _line_for(lines, path)))
    return out


def _model_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the schema allows where ``loc`` ends (field names and aliases), following dicts and lists."""
    types: list[Any] = [Scenario]
    for item in loc:
        nxt: list[Any] = []
        for t in types:
            for u in _unwrap(t):
                if isinstance(u, type) and issubclass(u, BaseModel):
                    for name, f in u.model_fields.items():
                        if item in (name, f.alias):
                            nxt.append(f.annotation)
                elif get_origin(u) is dict and isinstance(item, str):
                    nxt.append(get_args(u)[1])
                elif get_origin(u) is list and isinstance(item, int):
                    nxt.append(get_args(u)[0])
        types = nxt
    keys: list[str] = []
    for t in types:
        for u in _unwrap(t):
            if isinstance(u, type) and issubclass(u, BaseModel):
                keys += [f.alias or name for name, f in u.model_fields.items()]
    return keys


def _unwrap(t: Any) -> list[Any]:
    """The concrete types inside Optional/Union/Annotated."""
    origin = get_origin(t)
    if origin is Annotated:
        return _unwrap(get_args(t)[0])
    if origin in (Union, UnionType):
        return [u for a in get_args(t) for u in _unwrap(a)]
    return [t]


def _did_you_mean(loc: tuple[Any, ...]) -> str:
    """`` -- did you mean 'rate'?`` for a misspelt key, from the keys allowed at that place."""
    if not loc or not isinstance(loc[-1], str):
        return ""
    try:
        allowed = _model_keys(loc[:-1])
    except (TypeError, IndexError):  # an annotation this walk does not know: no suggestion
        return ""
    close = difflib.get_close_matches(loc[-1], allowed, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


_UNION_TAGS = {"float", "PointsRule", "list[str]", "constrained-str", "int", "str"}


def _line_for(lines: dict[str, int], path: str) -> int | None:
    p = path
    while p:
        if p in lines:
            return lines[p]
        p = p.rsplit(".", 1)[0] if "." in p else ""
    return None


def run_overrides(overrides: dict[str, Any] | None = None, *, population: int | None = None,
                  days: int | None = None, seed: int | None = None, trace: int | None = None) -> dict[str, Any]:
    """``overrides`` plus the common run keywords as dotted key paths (``None`` leaves a key alone)."""
    ov = dict(overrides or {})
    for key, value in (("population.size", population), ("run.days", days), ("run.seed", seed),
                       ("run.trace", trace)):
        if value is not None:
            ov[key] = value
    return ov


def load_scenario(
    source: str | Path | dict[str, Any] | Scenario | None = None,
    overrides: dict[str, Any] | None = None,
) -> Scenario:
    """Load and validate a scenario: a built-in name, a YAML path, a dict, or a loaded Scenario.

    ``overrides`` maps dotted key paths (``population.size``, ``run.seed``) to values and
    is applied before validation, so an override is checked like the file itself.
    """
    if source is None:
        source = "default"
    lines: dict[str, int] = {}
    if isinstance(source, Scenario):
        if not overrides:
            return source
        data: Any = source.model_dump(mode="json", by_alias=True)
        file = f"<scenario {source.name}>"
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
        file = "<dict>"
    else:
        path = resolve_path(source)
        file = str(path)
        data, lines = _compose(_read(path), file)
        data = _resolve_extends(data, path)
    if overrides:
        if not isinstance(data, dict):
            raise ScenarioError(file, [Problem("", "a mapping of sections")])
        for k, v in overrides.items():
            try:
                set_path(data, k, v)
            except KeyError:
                raise ScenarioError(file, [Problem(k, "an override path through mappings")]) from None
    return validate_data(data, file, lines)


def scenario_hash(scen: Scenario) -> str:
    """SHA-256 of the resolved scenario (canonical JSON), recorded in every manifest."""
    blob = json.dumps(scen.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def dump_yaml(scen: Scenario) -> str:
    return yaml.safe_dump(scen.model_dump(mode="json", exclude_none=True), sort_keys=False)
