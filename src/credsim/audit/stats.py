"""Small statistics the audit needs, written out so that each figure can be checked by hand.

- :func:`interval`: mean and a Student-t confidence interval across replicates (each
  replicate is an independent seed, so the replicate values are i.i.d.). The interval is
  never clipped: a count whose interval reaches below 0 says so (the t interval is a
  statement about the mean's uncertainty, and cutting it would hide how little k replicates
  pin it down); with k = 2 it carries a warning (t(1) = 12.7);
- :func:`gini`: the Gini coefficient of non-negative values;
- :func:`kaplan_meier`: survival curve of durations with right-censoring (citizens still
  on a list at the end of the run have not recovered *yet*; dropping them would bias the
  recovery time down).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import stdtrit  # not scipy.stats: importing it costs every command ~1 s


@dataclass
class Interval:
    """Mean of replicate values with a 95% t interval (``lo == hi == mean`` for one replicate)."""

    mean: float
    lo: float
    hi: float
    k: int
    sd: float

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    @property
    def warning(self) -> str:
        """Plain words when k is too small for the interval to mean much ('' otherwise)."""
        if self.k == 1:
            return "one replicate: no interval"
        if self.k == 2:
            return "2 replicates: the 95% t interval uses t(1) = 12.7 and is very wide; use k >= 5"
        return ""

    def as_dict(self) -> dict[str, float | str]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "k": self.k, "sd": self.sd,
                "warning": self.warning}


def interval(values: list[float] | np.ndarray, level: float = 0.95) -> Interval:
    """Mean and t interval, never clipped (a count's interval may reach below 0: it is shown as it is)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    k = int(x.shape[0])
    if k == 0:
        return Interval(math.nan, math.nan, math.nan, 0, math.nan)
    m = float(x.mean())
    if k == 1:
        return Interval(m, m, m, 1, math.nan)
    sd = float(x.std(ddof=1))
    h = float(stdtrit(k - 1, 0.5 + level / 2)) * sd / math.sqrt(k)
    return Interval(m, m - h, m + h, k, sd)


def gini(values: np.ndarray) -> float:
    """Gini coefficient (0 = all equal, 1 = one holds all) of values shifted to be >= 0."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.shape[0] == 0:
        return math.nan
    if x[0] < 0:
        x = x - x[0]
    total = x.sum()
    if total <= 0:
        return 0.0
    n = x.shape[0]
    ranks = np.arange(1, n + 1)
    return float((2 * (ranks * x).sum()) / (n * total) - (n + 1) / n)


def kaplan_meier(durations: np.ndarray, observed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times and survival S(t) just after each distinct event time (censored when observed == 0)."""
    d = np.asarray(durations, dtype=np.float64)
    e = np.asarray(observed, dtype=bool)
    if d.shape[0] == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(d, kind="stable")
    d, e = d[order], e[order]
    times = np.sort(np.asarray(list({float(t) for t in d[e]})))
    surv = np.empty(times.shape[0])
    s = 1.0
    for j, t in enumerate(times):
        at_risk = d.shape[0] - np.searchsorted(d, t, side="left")
        events = int(np.count_nonzero((d == t) & e))
        s *= 1.0 - events / at_risk
        surv[j] = s
    return times, surv


def km_quantile(times: np.ndarray, surv: np.ndarray, q: float) -> float:
    """First time at which S(t) <= 1 - q (nan when the curve never gets there: too much censoring)."""
    hit = np.flatnonzero(surv <= 1.0 - q + 1e-12)
    return float(times[hit[0]]) if hit.shape[0] else math.nan
