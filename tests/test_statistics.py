"""Sampled counts match declared rates within binomial bounds.

Tolerances are ``Z`` standard deviations of the binomial (or sum-of-Bernoulli) count,
with ``Z = 5``: for a fixed seed the chance that a correct implementation falls outside
is below 1e-6 per check, while a wrong rate (say off by 10%) is far outside.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow.compute as pc

import credsim

from .conftest import tiny

Z = 5.0


def within(observed: float, n: float, p: float, what: str) -> None:
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    assert abs(observed - mean) <= Z * sd + 1e-9, f"{what}: observed {observed}, expected {mean:.1f} ± {Z * sd:.1f}"


def metric_total(run: credsim.Run, metric: str, dimension: str = "all", group: str = "all") -> float:
    rows = run.sql(
        "SELECT coalesce(sum(value), 0) FROM metrics WHERE metric = ? AND dimension = ? AND \"group\" = ?",
        [metric, dimension, group],
    )
    return float(rows[0][0])


def test_group_shares_match_declared(run_tiny) -> None:  # type: ignore[no-untyped-def]
    run = run_tiny(tiny(population__size=100_000), days=1)
    cit = run.citizens()
    n = cit.num_rows
    for dim, shares in {"region": {"city": 0.6, "rural": 0.4}, "hukou": {"local": 0.7, "migrant": 0.3}}.items():
        col = cit.column(dim).cast("string")
        for value, share in shares.items():
            within(pc.sum(pc.equal(col, value)).as_py(), n, share, f"{dim}={value}")


def test_event_counts_match_rates_and_multipliers(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=50_000, **{
        "behaviours__traffic.violation__rate": 0.01,
        "behaviours__traffic.violation__by": {"region": {"rural": 3.0}},
    })
    days = 10
    run = run_tiny(scen, days=days)
    cit = run.citizens()
    n_rural = pc.sum(pc.equal(cit.column("region").cast("string"), "rural")).as_py()
    n_city = cit.num_rows - n_rural
    within(metric_total(run, "events.traffic.violation", "region", "city"), n_city * days, 0.01, "city")
    within(metric_total(run, "events.traffic.violation", "region", "rural"), n_rural * days, 0.03, "rural")
    within(metric_total(run, "events.travel.flight"), cit.num_rows * days, 0.05, "flights")


def test_trait_multiplier_is_exp_beta_trait(run_tiny) -> None:  # type: ignore[no-untyped-def]
    # with beta = 0.5 and a standard normal trait, E[exp(0.5 z)] = exp(0.125)
    scen = tiny(population__size=100_000, **{"behaviours__traffic.violation__traits": {"care": 0.5}})
    run = run_tiny(scen, days=5)
    p = 0.01 * math.exp(0.125)
    n = 100_000 * 5
    # a sum of Bernoullis with varying p has variance below the binomial one at the mean p
    within(metric_total(run, "events.traffic.violation"), n, p, "trait-weighted events")


def test_detection_coverage_and_false_rates(run_tiny) -> None:  # type: ignore[no-untyped-def]
    n, days = 200_000, 1
    scen = tiny(population__size=n, **{
        "behaviours__traffic.violation__rate": 0.05,
        "behaviours__court.default__rate": 0.0,
        "sensors__cameras": {"observes": ["traffic.violation"], "coverage": 0.5, "detection": 0.4,
                             "false_rate": 0.001,
                             "surveillance": {"hukou": {"migrant": 3.0}}},
    })
    run = run_tiny(scen, days=days)
    events = metric_total(run, "events.traffic.violation")
    within(events, n * days, 0.05, "events")
    # one event per citizen at most on one day: records ~ Binomial(events, coverage x detection)
    # (migrants' detection is 0.4 x 3 = 1.0, so split by hukou)
    ev_local = metric_total(run, "events.traffic.violation", "hukou", "local")
    ev_mig = metric_total(run, "events.traffic.violation", "hukou", "migrant")
    within(metric_total(run, "observed.cameras", "hukou", "local"), ev_local, 0.5 * 0.4, "detected, local")
    within(metric_total(run, "observed.cameras", "hukou", "migrant"), ev_mig, 0.5 * 1.0, "detected, migrant")
    cit = run.citizens()
    n_mig = pc.sum(pc.equal(cit.column("hukou").cast("string"), "migrant")).as_py()
    within(metric_total(run, "false_observed.cameras", "hukou", "local"), (n - n_mig) * days, 0.5 * 0.001,
           "false, local")
    within(metric_total(run, "false_observed.cameras", "hukou", "migrant"), n_mig * days, 0.5 * 0.003,
           "false, migrant")
    # every detection by a shared sensor with no delay is filed the same day
    assert metric_total(run, "records.official_true") == metric_total(run, "observed.cameras")
    assert metric_total(run, "records.official_false") == metric_total(run, "false_observed.cameras")


def test_delay_holds_records_back(run_tiny) -> None:  # type: ignore[no-untyped-def]
    scen = tiny(population__size=20_000, **{"sensors__cameras__delay_days": 3})
    run = run_tiny(scen, days=8)
    rows = run.sql("SELECT day, value FROM metrics WHERE metric='records.official_true' AND dimension='all' "
                   "ORDER BY day")
    per_day = dict(rows)
    court_only = run.sql("SELECT sum(value) FROM metrics WHERE metric IN ('events.court.default', "
                         "'events.court.comply') AND dimension='all' AND day < 3")[0][0]
    assert sum(per_day[d] for d in range(3)) == court_only  # only court records (no delay) on days 0-2
    assert per_day[3] > court_only


def test_sampled_rates_do_not_depend_on_other_behaviours(run_tiny) -> None:  # type: ignore[no-untyped-def]
    """Named streams: adding a behaviour leaves every other behaviour's events unchanged."""
    a = run_tiny(tiny(population__size=5000), days=5)
    b = run_tiny(tiny(population__size=5000, **{"behaviours__civic.volunteer": {"kind": "good_deed", "rate": 0.1}}),
                 days=5)
    ta = a.traces().filter(pc.equal(a.traces().column("stage"), "event"))
    tb = b.traces().filter(pc.equal(b.traces().column("stage"), "event"))
    tb = tb.filter(pc.not_equal(tb.column("item"), "civic.volunteer"))
    key = ["day", "citizen", "item"]
    assert ta.select(key).to_pylist()[:50] == tb.select(key).to_pylist()[:50]
    assert np.array_equal(np.asarray(ta.column("citizen")), np.asarray(tb.column("citizen")))


def test_pooled_ratio_interval_covers_the_true_ratio_95_percent_of_the_time() -> None:
    """Coverage of the disparate-impact interval on over-dispersed synthetic counts with a known ratio.

    Each of ``SETS`` replicate sets has 3 replicates of a group (800 citizens) and a reference
    (1,600 citizens); a citizen's count is negative binomial (variance/mean 2.5, like the
    records the issue measured), with mean 0.15 in the reference and 0.3 in the group, so the
    true rate ratio is 2. If the interval's coverage is 95%, the number of sets it covers is
    Binomial(1000, 0.95): mean 950, sd 6.9. The window 930-970 (93%-97%) is mean ± 2.9 sd, so a
    correct interval fails this test with probability about 0.4%; one with Katz/Poisson width
    (too narrow for this dispersion, coverage near 80%) falls far outside.
    """
    from credsim.audit import fairness

    sets, k, n_g, n_r, ratio = 1000, 3, 800, 1600, 2.0
    rng = np.random.default_rng(20261202)
    covered = 0
    for s in range(sets):
        hists = []
        for _ in range(k):
            h: dict[tuple[str, str, str], dict[int, int]] = {}
            for g, n, mean in (("a", n_g, 0.15 * ratio), ("r", n_r, 0.15)):
                # negative binomial with mean m and variance 2.5 m: p = 1 / 2.5, size = m p / (1 - p)
                y = rng.negative_binomial(mean * 0.4 / 0.6, 0.4, size=n)
                vals, cnt = np.unique(y, return_counts=True)
                h[("d", g, "adverse_records")] = {int(v): int(c) for v, c in zip(vals, cnt, strict=True)}
            hists.append(h)
        out = fairness.pooled(hists, [s * k + j for j in range(k)], {"d": "r"}, min_events=0)
        row = out["single"][0]
        covered += int(row["lo"] <= ratio <= row["hi"])
    assert 930 <= covered <= 970, f"covered {covered} of {sets}"
