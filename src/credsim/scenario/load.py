"""Loading a scenario file: safe YAML, limits, typed validation, errors that name places.

Every error a user can make in a scenario file surfaces as :class:`ScenarioError`, whose
message names the file, the line (when known), the key path and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor

from credsim.scenario import keypath
from credsim.scenario.check import cross_check
from credsim.scenario.hints import cross_problems_despite
from credsim.scenario.hints import dotted as _dotted
from credsim.scenario.keypath import KeyPathError
from credsim.scenario.overrides import (
    API_ORIGIN,
    Override,
    OverrideError,
    apply_overrides,
    blame,
    normalize,
    split_assignment,
)
from credsim.scenario.schema import Scenario
from credsim.scenario.yaml_guards import (  # noqa: F401  (limits re-exported: part of the loader's interface)
    ALLOWED_TAGS,
    MAX_DEPTH,
    MAX_EXPANDED_CHARS,
    MAX_KEY_CHARS,
    MAX_NODES,
    MAX_PATH_CHARS,
    Budget,
    GuardedLoader,
    Refused,
)

DEFAULT_SCENARIO = "city-points"
MAX_FILE_BYTES = 1_000_000


@dataclass
class Problem:
    path: str
    expected: str
    line: int | None = None
    # an override's origin (``--set '...'``, the API argument, a sweep file's line): named
    # instead of the file, because that is where the user has to fix it
    origin: str | None = None

    def render(self, file: str) -> str:
        where = self.origin or (f"{file}:{self.line}" if self.line else file)
        return f"{where}: at '{self.path or '<top>'}': {self.expected}"


@dataclass
class ScenarioError(Exception):
    """A scenario that cannot be used, with every problem found in it."""

    file: str
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        head = f"invalid scenario {self.file} ({len(self.problems)} problem(s))"
        if self.problems and all(p.origin for p in self.problems):
            head = f"invalid override ({len(self.problems)} problem(s))"
        return "\n".join([head] + ["  " + p.render(self.file) for p in self.problems])

    @property
    def paths(self) -> list[str]:
        return [p.path for p in self.problems]


MAX_PROBLEMS = 500  # problems listed in one error message


def _compose(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """Parse YAML with the safe loader, keeping the line of every key path."""
    try:
        node = yaml.compose(text, Loader=GuardedLoader)  # type: ignore[arg-type]
    except Refused as exc:
        raise ScenarioError(file, [Problem(exc.path, exc.expected, exc.line)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ScenarioError(file, [Problem("", f"valid YAML ({exc})", line)]) from None
    lines: dict[str, int] = {}
    budget = Budget()
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

    try:
        return walk(node, "", 0), lines
    except Refused as exc:
        raise ScenarioError(file, [Problem(exc.path, exc.expected, exc.line)]) from None


def parse_value(text: str, where: str) -> Any:
    """One YAML value from the command line (``--set``), with the file's guards; :class:`ScenarioError` if bad."""
    return _compose(text, where)[0]


def read_yaml(text: str, file: str) -> tuple[Any, dict[str, int]]:
    """YAML text read with the scenario file's guards, and the line of every key path (sweep and targets files)."""
    return _compose(text, file)


def parse_set(items: Sequence[str] | None, option: str = "--set") -> list[Override]:
    """``KEY.PATH=VALUE`` items as typed on the command line (every command's ``--set``).

    Each override remembers the item as typed, quoted for a shell, so an error names it;
    every bad item is reported at once, as :class:`ScenarioError`.
    """
    out: list[Override] = []
    problems: list[Problem] = []
    for item in items or []:
        shown = item if len(item) <= 100 else item[:80] + f"... ({len(item)} characters)"
        origin = f"{option} {shlex.quote(shown)}"
        try:
            path, text = split_assignment(item)
            keys = keypath.parse(path)
        except KeyPathError as exc:
            problems.append(Problem(exc.path, exc.expected, origin=origin))
            continue
        try:
            value = parse_value(text, origin)
        except ScenarioError as exc:
            problems += [Problem(keypath.show(keys), f"a YAML value: {p.expected}", origin=origin)
                         for p in exc.problems]
            continue
        out.append(Override(keys, value, origin))
    if problems:
        raise ScenarioError(option, problems)
    return out


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
                known = keypath.known_keys(loc[:-1])
                hint = keypath.suggest(str(loc[-1]), known) if known else "check the spelling"
                msg = f"no such key (unknown keys are errors; {hint})"
            elif err["type"] == "missing":
                msg = "this key is required"
            got = err.get("input")
            if err["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list):
                shown = repr(got)
                msg += f" (got {shown if len(shown) <= 80 else shown[:60] + f'... ({len(shown)} characters)'})"
            probs.append(Problem(path, msg, _line_for(lines, path)))
        if len(errors) <= MAX_PROBLEMS:
            locs = [tuple(x for x in e["loc"] if not (isinstance(x, str) and x in _UNION_TAGS)) for e in errors]
            probs += [Problem(p, e, _line_for(lines, p)) for p, e in cross_problems_despite(data, locs)]
        if len(errors) > MAX_PROBLEMS:  # a person reads the first ones; 95,000 lines help nobody
            probs.append(Problem("", f"fewer problems: {len(errors) - MAX_PROBLEMS:,} more like these are not shown"))
        raise ScenarioError(file, probs) from None
    probs = [Problem(p, e, _line_for(lines, p)) for p, e in cross_check(scen)]
    if probs:
        raise ScenarioError(file, probs)
    return scen


_UNION_TAGS = {"float", "PointsRule", "list[str]", "constrained-str", "int", "str"}


def _line_for(lines: dict[str, int], path: str) -> int | None:
    p = path
    while p:
        if p in lines:
            return lines[p]
        p = p.rsplit(".", 1)[0] if "." in p else ""
    return None


Overrides = Mapping[Any, Any] | Sequence[Override]


def run_overrides(given: Overrides | None = None, *, population: int | None = None,
                  days: int | None = None, seed: int | None = None, trace: int | None = None) -> list[Override]:
    """``given`` overrides, then the common run keywords (``None`` leaves a key alone), each named in errors."""
    out = _overrides(given)
    for keys, value, name in ((("population", "size"), population, "population"), (("run", "days"), days, "days"),
                              (("run", "seed"), seed, "seed"), (("run", "trace"), trace, "trace")):
        if value is not None:
            out.append(Override(keys, value, f"the {name} argument ({value!r})"))
    return out


def _overrides(given: Overrides | None) -> list[Override]:
    """Overrides as the API takes them, as a list; a malformed key path names the argument."""
    try:
        return normalize(given)
    except OverrideError as exc:
        raise ScenarioError(API_ORIGIN, [Problem(m.path, m.expected, origin=m.origin) for m in exc.problems]) from None


def load_scenario(
    source: str | Path | dict[str, Any] | Scenario | None = None,
    overrides: Overrides | None = None,
) -> Scenario:
    """Load and validate a scenario: a built-in name, a YAML path, a dict, or a loaded Scenario.

    ``overrides`` maps key paths (``population.size``, ``behaviours["traffic.violation"].rate``,
    see :mod:`credsim.scenario.keypath`) to values, or is a list of
    :class:`~credsim.scenario.overrides.Override`. They are applied before validation, so an
    override is checked like the file itself, and a problem in what an override wrote is
    reported against the override (the ``--set`` as typed, the API argument), not the file.
    """
    ovs = _overrides(overrides)
    if source is None:
        source = "default"
    lines: dict[str, int] = {}
    if isinstance(source, Scenario):
        if not ovs:
            return source
        data: Any = keypath.dump(source)
        file = f"<scenario {source.name}>"
    elif isinstance(source, dict):
        data = copy.deepcopy(source)
        file = "<dict>"
    else:
        path = resolve_path(source)
        file = str(path)
        data, lines = _compose(_read(path), file)
        data = _resolve_extends(data, path)
    if not ovs:
        return validate_data(data, file, lines)
    if not isinstance(data, dict):
        raise ScenarioError(file, [Problem("", "a mapping of sections")])
    try:
        applied = apply_overrides(data, ovs)
    except OverrideError as exc:
        raise ScenarioError(file, [Problem(m.path, m.expected, origin=m.origin) for m in exc.problems]) from None
    try:
        return validate_data(data, file, lines)
    except ScenarioError as exc:
        for p in exc.problems:
            p.origin = p.origin or blame(p.path, applied)
            if p.origin:
                p.line = None
        raise


def scenario_hash(scen: Scenario) -> str:
    """SHA-256 of the resolved scenario (canonical JSON), recorded in every manifest."""
    blob = json.dumps(keypath.dump(scen), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def dump_yaml(scen: Scenario) -> str:
    """The scenario as a YAML file (the dashboard's download, fitted scenarios): :func:`keypath.dump`."""
    return yaml.safe_dump(keypath.dump(scen), sort_keys=False, allow_unicode=True)
