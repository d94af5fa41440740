"""The shadow view diverges from the official one exactly when records are false or missed.

Set-up: points only from traffic violations (-5 each), no caps, no expiry within the
run, delay 0. Then for every citizen

    official score - shadow score = -5 x (false records) + 5 x (missed detections)

so divergence must appear for exactly the citizens with a false record (false-only
run) or with a missed detection (miss-only run), and nowhere when the sensor is perfect.
"""

from __future__ import annotations

import numpy as np

from .conftest import tiny


def base(**kw):  # type: ignore[no-untyped-def]
    scen = tiny(population__size=20_000, **{
        "behaviours__court.default__rate": 0.0,
        "behaviours__traffic.violation__rate": 0.01,
        "scoring__points__expiry_days": 3650,
    })
    scen["sensors"]["cameras"].update(kw)
    return scen


def columns(run):  # type: ignore[no-untyped-def]
    t = run.citizens()
    return {k: np.asarray(t.column(k)) for k in t.column_names if k not in (
        "region", "hukou", "grade", "shadow_grade")}


def test_perfect_sensor_no_divergence(run_tiny) -> None:  # type: ignore[no-untyped-def]
    c = columns(run_tiny(base(detection=1.0, coverage=1.0, false_rate=0.0), days=60))
    assert np.array_equal(c["score"], c["shadow_score"])
    assert np.array_equal(c["on_defaulters"], c["shadow_on_defaulters"])
    assert c["n_wrongful"].sum() == 0 and c["n_missed"].sum() == 0
    assert c["n_records_false"].sum() == 0


def test_false_records_cause_divergence_exactly_where_they_fall(run_tiny) -> None:  # type: ignore[no-untyped-def]
    c = columns(run_tiny(base(detection=1.0, coverage=1.0, false_rate=0.002), days=60))
    diverged = c["score"] != c["shadow_score"]
    had_false = c["n_records_false"] > 0
    assert had_false.sum() > 100
    assert np.array_equal(diverged, had_false)
    assert np.array_equal(c["shadow_score"] - c["score"], 5 * c["n_records_false"])


def test_missed_detections_cause_divergence_exactly_where_they_fall(run_tiny) -> None:  # type: ignore[no-untyped-def]
    c = columns(run_tiny(base(detection=0.5, coverage=1.0, false_rate=0.0), days=60))
    # traffic violations are the only infraction with points; events counted per citizen
    missed = c["n_infractions"] - c["n_records_true"]
    assert (missed > 0).sum() > 100
    assert np.array_equal(c["score"] != c["shadow_score"], missed > 0)
    assert np.array_equal(c["score"] - c["shadow_score"], 5 * missed)
