"""The fast day kernels give exactly what their plain NumPy formulations give.

Why: the file, classify and measure stages read citizens' columns through prefetching,
one-pass kernels (:mod:`credsim.prefetch`); these tests pin them to the simple formulas
they replaced, including unsorted input, duplicates, NaN scores and grade ties.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim import rng as rng_mod
from credsim.prefetch import prefetch, prefetch2, prefetch3
from credsim.stages.classify import (
    ListColumns,
    ListRules,
    _apply_grades,
    _regrade_cand,
    _regrade_range,
    grade_of,
    unique_sorted,
)
from credsim.stages.measure import _add_fx, _group_by


@njit(cache=False)
def _hinted_sum(a: np.ndarray, b: np.ndarray, c: np.ndarray, idx: np.ndarray) -> float:
    s = 0.0
    for k in range(idx.shape[0]):
        i = idx[k]
        prefetch(a, i)
        prefetch2(b, 1, i)
        prefetch3(c, 1, 0, i)
        s += a[i] + b[1, i] + c[1, 0, i]
    return s


def test_prefetch_changes_no_value() -> None:
    rng = np.random.default_rng(3)
    a, b, c = rng.random(100), rng.random((2, 100)), rng.random((2, 1, 100))
    idx = rng.integers(0, 100, 50)
    plain = 0.0
    for i in idx:
        plain += a[i] + b[1, i] + c[1, 0, i]
    assert _hinted_sum(a, b, c, idx) == plain


def test_unique_sorted_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    for a in (rng.integers(0, 50, 200), np.sort(rng.integers(0, 50, 200)), np.arange(5), np.zeros(0, np.int64),
              np.array([7])):
        assert np.array_equal(unique_sorted(a.astype(np.int64)), np.unique(a.astype(np.int64)))


def test_regrade_kernel_matches_grade_of() -> None:
    rng = np.random.default_rng(2)
    n = 1000
    mins = np.array([990.0, 950.0, 900.0])
    score = rng.choice([1000.0, 990.0, 989.5, 950.0, 900.0, 850.0, np.nan], size=(2, n)).astype(np.float32)
    grade = rng.integers(0, 4, size=(2, n)).astype(np.int8)
    cand = np.unique(rng.integers(0, n, 300)).astype(np.int64)
    expect = []
    g2 = grade.copy()
    for m in range(2):
        newv = grade_of(score[m, cand], mins)
        sel = newv != g2[m, cand]
        idx = cand[sel]
        expect.append((idx, np.full(idx.shape[0], m), g2[m, idx].astype(np.int64), newv[sel].astype(np.int64)))
        g2[m, idx] = newv[sel]
    got = _regrade_cand(score, grade, mins, cand)
    for k in range(4):
        assert np.array_equal(got[k], np.concatenate([e[k] for e in expect]))
    assert np.array_equal(grade, g2)


def test_regrade_range_matches_the_whole_population_regrade() -> None:
    """A model-score day regrades a range without temporaries of its size: the same changes, in the same
    order (view 0, then view 1, by citizen), as ``grade_of`` over the range (NaN scores included)."""
    rng = np.random.default_rng(3)
    n, lo, hi = 2000, 150, 1900
    mins = np.array([990.0, 950.0, 900.0])
    score = rng.choice([1000.0, 990.0, 989.5, 950.0, 900.0, 850.0, np.nan], size=(2, n)).astype(np.float32)
    grade = rng.integers(0, 4, size=(2, n)).astype(np.int8)
    g2 = grade.copy()
    expect = []
    for m in range(2):
        new = grade_of(score[m, lo:hi], mins)
        idx = lo + np.flatnonzero(new != g2[m, lo:hi])
        expect.append((idx, np.full(idx.shape[0], m), g2[m, idx].astype(np.int64), new[idx - lo].astype(np.int64)))
        g2[m, idx] = new[idx - lo]
    got = _regrade_range(score, grade, mins, lo, hi)
    assert got[0].shape[0] > 0
    for k in range(4):
        assert np.array_equal(got[k], np.concatenate([e[k] for e in expect]))
    assert np.array_equal(grade, g2)


def test_grade_list_pass_matches_the_plain_formulation() -> None:
    """A grade list's entries and exits are read from the day's grade changes in place: entries of whoever moved
    into an entry grade and was off the list, in the changes' order, then exits of whoever moved out and was on
    it; the stay's first day, the list columns and the two counters as the plain NumPy formulation gives them."""
    rng = np.random.default_rng(6)
    n, L, G, li, day = 3000, 3, 5, 1, 40
    into = np.array([True, True, False, False, False])
    for exits in (True, False):
        listed = rng.integers(0, 2, size=(2, L, n)).astype(np.uint8)
        since = np.where(listed == 1, rng.integers(0, day, size=(2, L, n)), -1).astype(np.int32)
        counters = rng.integers(0, 9, size=(3, n)).astype(np.int32)
        # distinct citizens within each view, views interleaved as regrade returns them (view 0, then view 1)
        cit = np.concatenate([rng.permutation(n)[:700], rng.permutation(n)[:600]]).astype(np.int64)
        mode = np.repeat([0, 1], [700, 600]).astype(np.int64)
        new = rng.integers(0, G, cit.shape[0]).astype(np.int64)
        want_l, want_s, want_c = listed.copy(), since.copy(), counters.copy()
        rows = []
        for enter in (True, False):
            if not enter and not exits:
                break
            for i, m, g in zip(cit, mode, new, strict=True):
                if into[g] != enter or want_l[m, li, i] != (0 if enter else 1):
                    continue
                first = day if enter else int(want_s[m, li, i])
                want_l[m, li, i] = 1 if enter else 0
                if enter:
                    want_s[m, li, i] = day
                if m == 0:
                    want_c[1 if enter else 2, i] += 1 if enter else day - first
                rows.append((i, m, li, 1 if enter else -1, first))
        cols = ListColumns(listed, since, np.zeros((2, L, n), np.int32), np.full((2, L, n), -1, np.int32), counters,
                           np.zeros((1, n), np.uint8))
        rules = ListRules(np.ones(L, np.int64), np.full(L, -1, np.int64), np.zeros((L, 1), np.int64), 1, 2)
        got = _apply_grades(cit, mode, new, li, into, exits, day, rules, cols)
        expect = np.array(rows, dtype=np.int64).reshape(-1, 5)
        assert expect.shape[0] > 100
        for k in range(5):
            assert np.array_equal(got[k], expect[:, k])
        assert np.array_equal(listed, want_l) and np.array_equal(since, want_s) and np.array_equal(counters, want_c)


def test_add_fx_matches_bincount() -> None:
    rng = np.random.default_rng(4)
    cell = rng.integers(0, 6, 500).astype(np.int32)
    cit = rng.integers(0, 500, 300)
    w = rng.integers(-5, 5, 300).astype(np.int64)
    out = np.zeros((3, 6), dtype=np.int64)
    _add_fx(out, 2, cell, cit, w, 7)
    _add_fx(out, 1, cell, cit, np.zeros(0, np.int64), 7)
    assert np.array_equal(out[2], np.bincount(cell[cit], weights=w, minlength=6).astype(np.int64))
    assert np.array_equal(out[1], 7 * np.bincount(cell[cit], minlength=6))
    one = np.zeros((1, 1), dtype=np.int64)
    _add_fx(one, 0, np.zeros(0, np.int32), cit, w, 7)
    assert one[0, 0] == int(w.sum())


def test_group_by_is_the_stable_argsort() -> None:
    rng = np.random.default_rng(5)
    for key in (rng.integers(0, 4, 500), np.zeros(0, np.int64), np.full(7, 2)):
        key = key.astype(np.int64)
        order, cuts = _group_by(key, 4)
        expect = np.argsort(key, kind="stable")
        assert np.array_equal(order, expect)
        assert np.array_equal(cuts, np.searchsorted(key[expect], np.arange(5)))


def test_stream_id_cache_is_the_hash() -> None:
    assert rng_mod.stream_id("behave:civic.infraction") == rng_mod.stream_id.__wrapped__("behave:civic.infraction")
