"""Mutations of valid scenarios, for the loader's fuzz test and ``python -m benchmarks.fuzz``.

A case starts from a valid scenario (every built-in one and a tiny one) and applies one to
four mutations, either to the parsed tree (delete a key, replace a value by junk of
another type, insert junk keys, rename keys, wrap values, point ``extends`` anywhere) or to
the YAML text (insert bytes, cut, duplicate lines, splice in alias bombs, Python tags,
deep nesting, huge or odd strings). The property: :func:`credsim.load_scenario` returns
a Scenario or raises :class:`ScenarioError` -- never another exception, a hang or a crash
-- and a scenario it accepts compiles into a plan.

Choices go through a small :class:`Chooser`, so Hypothesis can drive them in the tests
(shrinking failures to a minimal case) and a plain seeded RNG can drive the long run.
"""

from __future__ import annotations

import copy
import math
import random
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

import credsim
from credsim.plan import compile_plan
from credsim.scenario.load import ScenarioError, builtin_dir, builtin_names, scenario_hash
from tests.conftest import tiny


class Chooser(Protocol):
    def choice(self, options: list[Any]) -> Any: ...
    def integer(self, lo: int, hi: int) -> int: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def choice(self, options: list[Any]) -> Any:
        return options[self.rng.randrange(len(options))]

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


class Hang(Exception):
    """A case took longer than its time limit: treated as a failure, never waited out."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Turn a hang into a :class:`Hang` exception (SIGALRM timer; main thread, POSIX)."""

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def bases() -> dict[str, str]:
    out = {name: (builtin_dir() / f"{name}.yaml").read_text() for name in builtin_names()}
    out["tiny"] = yaml.safe_dump(tiny(), sort_keys=False)
    return out


BILLION_LAUGHS = "\n".join(
    ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"lol{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
) + "\n"
QUADRATIC = "x: &x " + "y" * 5000 + "\nbig: [" + ", ".join(["*x"] * 2000) + "]\n"
# a 100,000-character key repeated by an alias 20,000 times: 140 KB of YAML, 2 GB of key paths if unguarded
KEY_BOMB = "? &k " + "k" * 100_000 + "\n: 1\nlist: [" + ", ".join(["{*k: 1}"] * 20_000) + "]\n"
# a deep chain of long keys repeated by an alias: few characters, but every repetition keeps key paths of
# up to 28 x 151 characters for error messages -- the key-path budget, not the other limits, must stop it
PATH_BOMB = ("a: &a " + "".join("{" + f"k{i:02d}" + "p" * 147 + ": " for i in range(28)) + "1" + "}" * 28 + "\n"
             + "b: [" + ", ".join(["*a"] * 1000) + "]\n")
TEXT_SNIPPETS = [
    BILLION_LAUGHS,
    QUADRATIC,
    KEY_BOMB,
    PATH_BOMB,
    "days: " + "9" * 5000 + "\n",
    "wide: [" + "1, " * 150_000 + "1]\n",
    "wide: {" + ", ".join(f"k{i}: {i}" for i in range(40_000)) + "}\n",
    "evil: !!python/object/apply:os.system ['touch /tmp/credsim-fuzz-pwned']\n",
    "evil: !!python/object:builtins.dict {}\n",
    "evil: !!python/name:os.system\n",
    "evil: !!binary aGVsbG8=\n",
    "evil: !!set {a, b}\n",
    "evil: !custom thing\n",
    "<<: *undefined\n",
    "deep: " + "[" * 5000 + "]" * 5000 + "\n",
    "deep: " + "{a: " * 500 + "1" + "}" * 500 + "\n",
    "".join("  " * i + f"k{i}:\n" for i in range(60)) + "  " * 60 + "v\n",
    "rec: &r [*r]\n",
    "long: " + "x" * 200_000 + "\n",
    "name: \"\\u202e\\u0000\\ud800 evil\"\n",
    "名前: 人口\n",
    "\ufeffname: bom\n",
    "---\nname: second\n---\nname: third\n",
    "%YAML 1.1\n---\n",
    "? [complex, key]\n: value\n",
    "\t\tname: tabs\n",
    "size: 1e308\n",
    "size: .nan\n",
    "rate: -.inf\n",
    "days: 99999999999999999999999999999\n",
    "key: value\nkey: again\n",
    "\x00\x01\x02\x7f",
    "extends: ../../etc/passwd\n",
    "extends: /etc/passwd.yaml\n",
]
JUNK: list[Any] = [
    None, True, False, 0, -1, -(2**70), 2**63, 10**400, 1.5, -0.0, math.nan, math.inf, -math.inf, 1e308, 5e-324,
    "", " ", "x" * 100_000, "../../etc/passwd", "名前", "\u202eevil", "a\x00b", "1; DROP TABLE citizens",
    "!!python/object:os.system", [], [None], [[[[[]]]]], {}, {"a": {"b": {"c": {}}}}, {"": 1}, {"1.5": "x"},
    {1: 2}, ["court.default"] * 50, {"min": None}, "city-points", "0.5", "1e308", "nan",
]
EXTENDS = ["city-points", "baseline", "nope", "../scenario.yaml", "/etc/passwd.yaml", "sibling.yaml",
           "scenario.yaml", "./sibling.yaml", "sub/../sibling.yaml", "sibling", 42, None, ["city-points"]]


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, prefix + (i,))
    return out


def _parent(tree: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    cur = tree
    for k in path[:-1]:
        cur = cur[k]
    return cur, path[-1]


def mutate_tree(tree: Any, ch: Chooser) -> tuple[Any, str]:
    tree = copy.deepcopy(tree)
    paths = [p for p in _paths(tree) if p]
    op = ch.choice(["delete", "junk", "insert", "rename", "wrap", "extends", "swap_names"])
    if not paths or not isinstance(tree, dict):
        return ch.choice(JUNK), "replace-all"
    path = ch.choice(paths)
    parent, key = _parent(tree, path)
    if op == "delete":
        del parent[key]
    elif op == "junk":
        parent[key] = copy.deepcopy(ch.choice(JUNK))
    elif op == "insert":
        maps = [p for p in _paths(tree) if isinstance(_get(tree, p), dict)]
        target = _get(tree, ch.choice(maps))
        target[ch.choice(["junk", "extends", "population", "size", "rate", "", "名前", "x" * 200])] = \
            copy.deepcopy(ch.choice(JUNK))
    elif op == "rename" and isinstance(parent, dict):
        parent[ch.choice([str(key) + "s", str(key).upper(), str(key)[:-1], "x"])] = parent.pop(key)
    elif op == "wrap":
        parent[key] = ch.choice([[parent[key]], {"value": parent[key]}, [parent[key], parent[key]]])
    elif op == "extends":
        tree["extends"] = ch.choice(EXTENDS)
    elif op == "swap_names":
        names = [p[-1] for p in paths if isinstance(p[-1], str)]
        if isinstance(parent, dict) and names:
            parent[ch.choice(names)] = parent.pop(key)
    return tree, f"tree:{op}:{'.'.join(map(str, path))}"


def _get(tree: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        tree = tree[k]
    return tree


def mutate_text(text: str, ch: Chooser) -> tuple[str, str]:
    op = ch.choice(["snippet", "insert", "cut", "duplicate", "swap", "truncate", "replace"])
    n = len(text)
    pos = ch.integer(0, n)
    lines = text.splitlines(keepends=True)
    if op == "snippet":
        return text[:pos] + ch.choice(TEXT_SNIPPETS) + text[pos:], "text:snippet"
    if op == "insert":
        junk = ch.choice([":", "- ", "{", "]", "&a ", "*a", "!!", "\t", "\n  ", "'", '"', "\\", "#", "|", ">",
                          "%", "@", "`", "\u00e9", "\U0001f600", "\x85", "\u2028", "\x1b[31m", "  " * 40])
        return text[:pos] + junk + text[pos:], "text:insert"
    if op == "cut":
        end = min(n, pos + ch.integer(1, 400))
        return text[:pos] + text[end:], "text:cut"
    if op == "duplicate" and lines:
        i = ch.integer(0, len(lines) - 1)
        return "".join(lines[:i + 1] + [lines[i]] * ch.integer(1, 3) + lines[i + 1:]), "text:duplicate"
    if op == "swap" and len(lines) > 1:
        i, j = ch.integer(0, len(lines) - 1), ch.integer(0, len(lines) - 1)
        lines[i], lines[j] = lines[j], lines[i]
        return "".join(lines), "text:swap"
    if op == "truncate":
        return text[:pos], "text:truncate"
    old = ch.choice(["0.", "1", ": ", "days", "rate", "- ", "true", "name"])
    return text.replace(old, ch.choice(["-1e308", ".nan", "[", "{}", "~", "!!str", "*x", "1" * 40]), 1), "text:replace"


@dataclass
class Tally:
    """What the fuzzing tried and how the loader answered."""

    tried: int = 0
    accepted: int = 0
    refused: int = 0
    other: int = 0  # any other exception: a bug (the tests fail on the first one)
    kinds: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return (f"malformed inputs tried: {self.tried} (clean ScenarioError: {self.refused}, "
                f"accepted as valid: {self.accepted}, other outcomes: {self.other})")


def load_case(text_or_tree: Any, folder: Path) -> credsim.Scenario | None:
    """Load one case from a file in ``folder`` (or as a dict); None when refused with ScenarioError."""
    if isinstance(text_or_tree, str):
        path = folder / "scenario.yaml"
        path.write_text(text_or_tree, encoding="utf-8", errors="surrogatepass")
        source: Any = path
    else:
        source = text_or_tree
    try:
        scen = credsim.load_scenario(source)
    except ScenarioError as exc:
        str(exc)  # the message itself must render
        return None
    compile_plan(scen)  # what the loader accepts, the engine can compile
    scenario_hash(scen)  # ... and the manifest can record (canonical JSON, UTF-8)
    return scen


def one_case(ch: Chooser, folder: Path, tally: Tally) -> None:
    """Draw and check one mutated scenario; any exception but ScenarioError propagates."""
    texts = bases()
    name = ch.choice(sorted(texts))
    (folder / "sibling.yaml").write_text(texts[ch.choice(sorted(texts))])
    mode = ch.choice(["tree-yaml", "tree-dict", "text"])
    case: Any
    if mode == "text":
        case = texts[name]
        for _ in range(ch.integer(1, 4)):
            case, kind = mutate_text(case, ch)
            tally.kinds[kind] += 1
    else:
        case = yaml.safe_load(texts[name])
        for _ in range(ch.integer(1, 4)):
            case, kind = mutate_tree(case, ch)
            tally.kinds[kind.split(":")[0] + ":" + kind.split(":")[1]] += 1
        if mode == "tree-yaml":
            try:
                case = yaml.safe_dump(case, sort_keys=False, allow_unicode=True)
            except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
                case = yaml.safe_dump(case, sort_keys=False)  # values YAML can only write escaped
    tally.tried += 1
    if load_case(case, folder) is None:
        tally.refused += 1
    else:
        tally.accepted += 1
