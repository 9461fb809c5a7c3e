"""An Optuna study's search space from Hydra's override grammar (hydra.sweeper.params and the command line).

`choice(10,25,50)` and `a,b,c` -> categorical; `interval(0.0,8.0)` -> float; `int(interval(10,100))` -> int;
`tag(log, interval(1e-4,1e-1))` -> log scale; `range(10,100,10)` -> int (or float) with that step, the stop
excluded as in Hydra; `shuffle(range(...))` -> categorical. Every other override is fixed: it applies to every
trial. A key typed on the command line wins over the same key in hydra.sweeper.params.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from omegaconf import DictConfig, OmegaConf

from src.errors import ConfigError, first_line

GRAMMAR = ("choice(a,b,...), interval(low,high), int(interval(low,high)), tag(log,interval(low,high)) "
           "or range(start,stop[,step])")
_ABSENT = object()


@dataclass
class SearchSpace:
    """Optuna distributions by config key, the overrides every trial gets, and where each key was given."""

    distributions: dict[str, Any] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)
    source: dict[str, str] = field(default_factory=dict)  # key -> the override as typed, for messages

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """A trial's overrides: the fixed ones, then its parameters."""
        return [*self.fixed, *(as_override(key, params[key]) for key in self.distributions)]

    def describe(self) -> str:
        return " ".join(self.source[key] for key in self.distributions)


def parse_search_space(params: Mapping[str, Any], arguments: Sequence[str], parser) -> SearchSpace:
    """hydra.sweeper.params, then the command line's overrides, as a SearchSpace (`parser`: Hydra's
    OverridesParser); ConfigError names an entry that is not a search space Optuna can draw from."""
    space = SearchSpace()
    for key, value in params.items():
        line = f"{key}={value}"
        override = parse(parser, line, f"hydra.sweeper.params.{key}={value}")
        if not override.is_sweep_override() or override.is_add() or override.is_delete():
            raise ConfigError(f"hydra.sweeper.params.{key}={value}: expected a search space over an existing key: "
                              f"{GRAMMAR}")
        space.distributions[override.key_or_group] = distribution(override, f"hydra.sweeper.params.{line}")
        space.source[override.key_or_group] = line
    for line in arguments:
        override = parse(parser, line, line)
        key = override.key_or_group
        if override.is_sweep_override():
            if override.is_add():
                raise ConfigError(f"{line}: a search space needs a key the config has; expected it without '+'")
            space.distributions[key] = distribution(override, line)
            space.source[key] = line
        else:
            space.distributions.pop(key, None)
            space.fixed.append(line)
    return space


def parse(parser, line: str, where: str):
    from hydra.errors import HydraException

    try:
        return parser.parse_override(line)
    except HydraException as err:
        raise ConfigError(f"{where}: {first_line(err)}; expected {GRAMMAR}") from None


def distribution(override, where: str):
    """The Optuna distribution of one sweep override."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    sweep = override.value()
    try:
        if isinstance(sweep, ChoiceSweep) or isinstance(sweep, RangeSweep) and sweep.shuffle:
            values = list(override.sweep_iterator())
            values = sorted(values) if isinstance(sweep, RangeSweep) else values  # shuffle(range): as a choice
            if not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
                raise ValueError("choices must be numbers, strings, booleans or null")
            return CategoricalDistribution(values)
        if isinstance(sweep, RangeSweep):
            values = list(override.sweep_iterator())
            if not values:
                raise ValueError("the range is empty")
            numbers = (sweep.start, sweep.stop, sweep.step)
            kind = FloatDistribution if any(isinstance(v, float) for v in numbers) else IntDistribution
            return kind(min(values), max(values), step=abs(sweep.step))
        if isinstance(sweep, IntervalSweep):
            log = "log" in sweep.tags
            if isinstance(sweep.start, int) and isinstance(sweep.end, int):
                return IntDistribution(sweep.start, sweep.end, log=log)
            return FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    except ValueError as err:  # Optuna's own checks: low > high, log scale with low <= 0, ...
        raise ConfigError(f"{where}: {first_line(err)}; expected {GRAMMAR}") from None
    raise ConfigError(f"{where}: {type(sweep).__name__} is not a search space Optuna can draw from; expected {GRAMMAR}")


def as_override(key: str, value: Any) -> str:
    """`key=value` in Hydra's grammar (strings quoted unless plain)."""
    if value is None:
        return f"{key}=null"
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"{key}={value!r}"
    if re.fullmatch(r"[A-Za-z_][\w./-]*", value) and value.lower() not in ("null", "true", "false"):
        return f"{key}={value}"
    return f"{key}='" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def check_keys(space: SearchSpace, config: DictConfig) -> None:
    """Every searched key exists in the composed config (not Hydra's own); ConfigError names the first that
    does not."""
    task = OmegaConf.select(config, "task.name", default="?")
    for key in space.distributions:
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise ConfigError(f"{space.source[key]}: Hydra's own config cannot be searched; expected a key of the "
                              f"task's config")
        if OmegaConf.select(config, key, default=_ABSENT) is _ABSENT:
            raise ConfigError(f"{space.source[key]}: {key} is not a key of the task={task} config; "
                              "expected an existing key (python -m src.run task=... --cfg job lists them)")


def corners(space: SearchSpace) -> list[dict[str, Any]]:
    """The search space's two corners (every low end, every high end): checked like a trial before any
    starts, so that a range the config refuses fails at once."""
    from optuna.distributions import CategoricalDistribution

    def end(dist, high: bool):
        if isinstance(dist, CategoricalDistribution):
            return dist.choices[-1 if high else 0]
        return dist.high if high else dist.low

    return [{k: end(d, high) for k, d in space.distributions.items()} for high in (False, True)]


def is_number(value: Any) -> bool:
    """A trial's value: a finite number (a bool is not)."""
    try:
        return not isinstance(value, bool) and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
