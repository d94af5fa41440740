"""Sweep and sensitivity specifications: typed YAML whose parameters name scenario key paths.

A parameter names a place in the scenario by a key path (:mod:`credsim.scenario.keypath`):
``behaviours["traffic.violation"].rate``, ``scoring.points.rules[court.judgment_default]``
or a list ``[behaviours, traffic.violation, rate]``. Every path is checked against the
scenario before anything runs (a typo is an error naming the spec file, its line, the
parameter and the closest real keys); each varied scenario is built from overrides that
remember the spec file and line, so a value the schema refuses is reported there. The spec
file is read with the scenario loader's guards. Nothing is evaluated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from credsim.scenario import keypath
from credsim.scenario.keypath import KeyPathError, Keys
from credsim.scenario.load import ScenarioError, read_yaml
from credsim.scenario.overrides import Override


@dataclass
class SpecError(Exception):
    """A sweep or sensitivity spec that cannot be used, with every problem found."""

    file: str
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join([f"invalid spec {self.file} ({len(self.problems)} problem(s))"]
                         + [f"  {self.file}: {p}" for p in self.problems])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Parameter(_Strict):
    """One varied value: a list of ``values`` (grid), or a ``range`` (sampled designs, sensitivity)."""

    path: str | list[str | int]
    values: list[Any] | None = None
    range: tuple[float, float] | None = None
    levels: int | None = Field(None, ge=2, le=1000, description="grid points over a range")
    log: bool = False
    integer: bool = False

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | list[str | int]) -> str | list[str | int]:
        keypath.parse(v)
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
    def keys(self) -> Keys:
        return keypath.parse(self.path)


class _Located(_Strict):
    """A spec that knows its file and the line of each key, so an override can say where it was written."""

    base: dict[str, Any] = Field(default_factory=dict, description="overrides applied first (key path -> value)")
    parameters: dict[str, Parameter]
    _file: str = PrivateAttr(default="<dict>")
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    def where(self, key: str) -> str:
        """``file:line key`` (``file key`` when the line is unknown) for errors."""
        line = self._lines.get(key)
        return f"{self._file}:{line} {key}" if line else f"{self._file} {key}"

    def base_overrides(self) -> list[Override]:
        return [Override(keypath.parse(k), v, self.where(f"base.{k}")) for k, v in self.base.items()]

    def override(self, name: str, value: Any) -> Override:
        """Parameter ``name`` set to ``value``, named by the spec line that declares it."""
        return Override(self.parameters[name].keys, value, f"{self.where(f'parameters.{name}')} = {value!r}")


class SweepSpec(_Located):
    name: str = "sweep"
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


class SensitivitySpec(_Located):
    name: str = "sensitivity"
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


SpecT = TypeVar("SpecT", bound=_Located)


def _locate(err: dict[str, Any]) -> str:
    loc = ".".join(str(x) for x in err["loc"] if not (isinstance(x, str) and x[:1].isupper())) or "<top>"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "no such key (unknown keys are errors)"
    elif err["type"] == "missing":
        msg = "this key is required"
    return f"at '{loc}': {msg}"


def load_spec(source: str | Path | dict[str, Any], kind: type[SpecT]) -> SpecT:
    """Read a spec (YAML path or dict) with the scenario loader's guards and validate it; raise :class:`SpecError`."""
    file = "<dict>" if isinstance(source, dict) else str(source)
    lines: dict[str, int] = {}
    if isinstance(source, dict):
        data: Any = source
    else:
        try:
            text = Path(source).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(file, [f"a readable UTF-8 YAML file ({exc})"]) from None
        try:
            data, lines = read_yaml(text, file)
        except ScenarioError as exc:
            raise SpecError(file, [p.render(file).removeprefix(file + ": ") for p in exc.problems]) from None
    if not isinstance(data, dict):
        raise SpecError(file, ["a mapping with 'parameters' (and design, replicates, ...)"])
    try:
        spec = kind.model_validate(data)
    except ValidationError as exc:
        raise SpecError(file, [_locate(dict(e)) for e in exc.errors()]) from None
    spec._file, spec._lines = file, lines
    return spec


def check_paths(spec: SweepSpec | SensitivitySpec, scen_data: dict[str, Any], file: str) -> None:
    """Every base and parameter path must lead to a place of the scenario (before anything runs)."""
    probs: list[str] = []
    for key in spec.base:
        try:
            keypath.check_settable(scen_data, key)
        except KeyPathError as exc:
            probs.append(f"{_line(spec, f'base.{key}')}at 'base.{key}': {exc}")
    for name, p in spec.parameters.items():
        try:
            keypath.check_settable(scen_data, p.keys)
        except KeyPathError as exc:
            probs.append(f"{_line(spec, f'parameters.{name}.path')}at 'parameters.{name}.path' "
                         f"({keypath.show(p.keys)}): {exc}")
    if probs:
        raise SpecError(file, probs)


def _line(spec: _Located, key: str) -> str:
    line = spec._lines.get(key)
    return f"line {line}: " if line else ""
