"""Sweep and sensitivity specifications: typed YAML, key paths that allow dots in names.

A parameter names a place in the scenario by a **key path**. Behaviour and record names
contain dots (``traffic.violation``), so a path is either

- a list of keys: ``[behaviours, traffic.violation, rate]``, or
- a string where ``[...]`` holds one key verbatim: ``behaviours[traffic.violation].rate``,
  ``scoring.points.rules[court.judgment_default]`` (plain ``a.b.c`` splits on dots).

Every path must lead to an existing value of the resolved scenario (a typo is an error
naming the spec file, the parameter and the key that is missing); the varied scenario is
validated by the scenario schema like any other. Nothing is evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_SEGMENT = re.compile(r"\[([^\]]+)\]|([^.\[\]]+)")


@dataclass
class SpecError(Exception):
    """A sweep or sensitivity spec that cannot be used, with every problem found."""

    file: str
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([f"invalid spec {self.file} ({len(self.problems)} problem(s))"]
                         + [f"  {self.file}: {p}" for p in self.problems])


def parse_path(path: str | list[str]) -> list[str]:
    """``a.b[c.d].e`` or ``[a, b, c.d]`` -> ``['a', 'b', 'c.d', 'e']`` (ValueError if malformed)."""
    if isinstance(path, list):
        if not path or not all(isinstance(k, str) and k for k in path):
            raise ValueError("a key path list holds non-empty strings")
        return list(path)
    keys: list[str] = []
    pos = 0
    s = path.strip()
    while pos < len(s):
        m = _SEGMENT.match(s, pos)
        if m is None:
            raise ValueError(f"cannot read key path {path!r} at character {pos}")
        keys.append(m.group(1) if m.group(1) is not None else m.group(2))
        pos = m.end()
        if pos < len(s) and s[pos] == ".":
            pos += 1
            if pos == len(s):
                raise ValueError(f"key path {path!r} ends with a dot")
    if not keys:
        raise ValueError("an empty key path")
    return keys


def show_path(keys: list[str]) -> str:
    return "".join(f"[{k}]" if "." in k else (f".{k}" if i else k) for i, k in enumerate(keys))


def get_path(data: Any, keys: list[str]) -> Any:
    cur = data
    for i, k in enumerate(keys):
        if not isinstance(cur, dict) or k not in cur:
            have = sorted(cur)[:12] if isinstance(cur, dict) else type(cur).__name__
            raise KeyError(f"no key {k!r} at {show_path(keys[:i]) or '<top>'} (there: {have})")
        cur = cur[k]
    return cur


def set_path(data: dict[str, Any], keys: list[str], value: Any) -> None:
    cur: Any = data
    for k in keys[:-1]:
        cur = cur[k]
    cur[keys[-1]] = value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parameter(_Strict):
    """One varied value: a list of ``values`` (grid), or a ``range`` (sampled designs, sensitivity)."""

    path: str | list[str]
    values: list[Any] | None = None
    range: tuple[float, float] | None = None
    levels: int | None = Field(None, ge=2, le=1000, description="grid points over a range")
    log: bool = False
    integer: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | list[str]) -> str | list[str]:
        parse_path(v)
        return v

    @model_validator(mode="after")
    def _one_kind(self) -> Parameter:
        if (self.values is None) == (self.range is None):
            raise ValueError("give either 'values' (a list) or 'range' ([low, high])")
        if self.values is not None and not self.values:
            raise ValueError("'values' must not be empty")
        if self.range is not None:
            lo, hi = self.range
            if not lo < hi:
                raise ValueError(f"'range' needs low < high (got {list(self.range)})")
            if self.log and lo <= 0:
                raise ValueError("a 'log' range needs low > 0")
        return self

    @property
    def keys(self) -> list[str]:
        return parse_path(self.path)


class SweepSpec(_Strict):
    name: str = "sweep"
    base: dict[str, Any] = Field(default_factory=dict, description="overrides applied first (key path -> value)")
    parameters: dict[str, Parameter]
    design: Literal["grid", "random", "lhs"] = "grid"
    samples: int = Field(16, ge=1, le=100_000)
    replicates: int = Field(1, ge=1, le=1000)
    seed: int = Field(1, ge=0)
    seeds: list[int] | None = None
    baseline: bool = Field(True, description="a paired run without responses, for compliance gained and chilling")
    disparity_dimension: str | None = None

    @field_validator("parameters")
    @classmethod
    def _names(cls, v: dict[str, Parameter]) -> dict[str, Parameter]:
        if not v:
            raise ValueError("at least one parameter")
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", name):
                raise ValueError(f"parameter name {name!r}: letters, digits and _ (a column name)")
        return v

    @model_validator(mode="after")
    def _design(self) -> SweepSpec:
        if self.seeds is not None and len(self.seeds) != self.replicates:
            raise ValueError(f"'seeds' has {len(self.seeds)} values for {self.replicates} replicates")
        for name, p in self.parameters.items():
            if self.design == "grid" and p.values is None and p.levels is None:
                raise ValueError(f"parameters.{name}: a grid needs 'values' or 'range' with 'levels'")
            if self.design != "grid" and p.range is None:
                raise ValueError(f"parameters.{name}: a {self.design} design samples a 'range'")
        return self

    def replicate_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else [self.seed + r for r in range(self.replicates)]


class SensitivitySpec(_Strict):
    name: str = "sensitivity"
    base: dict[str, Any] = Field(default_factory=dict)
    parameters: dict[str, Parameter]
    method: Literal["sobol", "morris"] = "sobol"
    samples: int = Field(16, ge=2, le=100_000, description="Sobol: base samples N (runs = N(2D+2)); Morris: r")
    levels: int = Field(4, ge=2, le=20, description="Morris grid levels")
    outputs: list[str] = Field(default_factory=lambda: ["wrongful_rate", "denied_rate", "infraction_rate"])
    seed: int = Field(1, ge=0, description="one seed for every sample: common random numbers")
    baseline: bool = False
    disparity_dimension: str | None = None

    @model_validator(mode="after")
    def _ranges(self) -> SensitivitySpec:
        for name, p in self.parameters.items():
            if p.range is None:
                raise ValueError(f"parameters.{name}: sensitivity analysis needs a 'range' ([low, high])")
        if len(self.parameters) < 2 and self.method == "sobol":
            raise ValueError("Sobol indices need at least two parameters")
        return self


def _locate(err: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in err["loc"] if not (isinstance(x, str) and x[:1].isupper())) or "<top>"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "no such key (unknown keys are errors)"
    elif err["type"] == "missing":
        msg = "this key is required"
    return f"at '{loc}': {msg}"


def load_spec(source: str | Path | dict[str, Any], kind: type[BaseModel]) -> Any:
    """Read a spec (YAML path or dict) with the safe loader and validate it; raise :class:`SpecError`."""
    file = "<dict>" if isinstance(source, dict) else str(source)
    if isinstance(source, dict):
        data: Any = source
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(file, [f"a readable UTF-8 YAML file ({exc})"]) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(file, [f"valid YAML ({exc})"]) from None
    if not isinstance(data, dict):
        raise SpecError(file, ["a mapping with 'parameters' (and design, replicates, ...)"])
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise SpecError(file, [_locate(dict(e)) for e in exc.errors()]) from None


def check_paths(spec: SweepSpec | SensitivitySpec, scen_data: dict[str, Any], file: str) -> None:
    """Every base and parameter path must exist in the scenario (before anything runs)."""
    probs: list[str] = []
    for key in spec.base:
        try:
            get_path(scen_data, parse_path(key))
        except (KeyError, ValueError) as exc:
            probs.append(f"at 'base.{key}': {exc.args[0]}")
    for name, p in spec.parameters.items():
        try:
            get_path(scen_data, p.keys)
        except KeyError as exc:
            probs.append(f"at 'parameters.{name}.path' ({show_path(p.keys)}): {exc.args[0]}")
    if probs:
        raise SpecError(file, probs)
