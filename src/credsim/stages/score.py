"""Stage 4, score: the model score, recomputed on a schedule from dossier features.

The points score is kept up to date as records are filed and expire (see ``dossier``).
A model score (commercial style) is recomputed every ``every_days`` from features:

    score = clip(center + scale * sum_f w_f * x_f, low, high),  w_f = sum_d weight_d * coef_df

where a feature ``x_f`` is a count of live records of given types, a value looked up
from the citizen's groups, a trait, or the share of the citizen's contacts on a list.
Weights of real commercial scores are not public; here they are parameters.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from credsim import threads
from credsim.day import Day
from credsim.exchange import Exchange
from credsim.graph import is_cut
from credsim.plan import Plan
from credsim.state import State

BLOCK = 1 << 20  # citizens scored at a time (see recompute_model): 8 MB float64 temporaries


@njit(inline="always", cache=True)
def _share_of(out: np.ndarray, i: int, indptr: np.ndarray, indices: np.ndarray, cut: np.ndarray,
              flag: np.ndarray) -> None:
    tot = 0
    hit = 0
    for e in range(indptr[i], indptr[i + 1]):
        if not is_cut(cut, e):
            tot += 1
            hit += flag[indices[e]]
    if tot:
        out[i] = hit / tot


@njit(cache=True)
def _contacts_share_serial(indptr: np.ndarray, indices: np.ndarray, cut: np.ndarray, flag: np.ndarray
                           ) -> np.ndarray:
    out = np.zeros(indptr.shape[0] - 1, dtype=np.float64)
    for i in range(out.shape[0]):
        _share_of(out, i, indptr, indices, cut, flag)
    return out


@njit(parallel=True, cache=True)
def _contacts_share_parallel(indptr: np.ndarray, indices: np.ndarray, cut: np.ndarray, flag: np.ndarray
                             ) -> np.ndarray:
    out = np.zeros(indptr.shape[0] - 1, dtype=np.float64)
    for i in prange(out.shape[0]):
        _share_of(out, i, indptr, indices, cut, flag)
    return out


def contacts_share(indptr: np.ndarray, indices: np.ndarray, cut: np.ndarray, flag: np.ndarray) -> np.ndarray:
    """Share of each citizen's active contacts whose flag is set (serial when the graph is too small to split)."""
    par = threads.parallel_for(indptr.shape[0] + indices.shape[0])
    return (_contacts_share_parallel if par else _contacts_share_serial)(indptr, indices, cut, flag)


def recompute_model(plan: Plan, st: State, day: int, a: int = 0, b: int | None = None) -> bool:
    """Recompute the model score of the citizens ``[a, b)`` (default: everyone) when due; return whether it ran.

    Only the range is computed and written, so a shard neither spends time on nor touches the
    memory of other shards' citizens; each score is an elementwise function of its citizen's row.
    It is computed ``BLOCK`` citizens at a time: the same operations on each element, in the same
    order (so the same bits), with float64 temporaries of one block rather than of the whole range
    (commercial-score re-scores everyone monthly: at 10^7 each whole-range temporary is 80 MB, and the
    expression holds several at once)."""
    spec = plan.scen.scoring.model
    if spec is None or day % spec.every_days != 0:
        return False
    b = st.n if b is None else b
    lo, hi = spec.range
    tables: dict[int, list[tuple[int, np.ndarray]]] = {}  # feature -> its group terms' (dimension, values)
    for f, name in enumerate(plan.features):
        group = spec.features[name].group
        if group is not None:
            tables[f] = []
            for dim, vals in group.items():
                d = plan.dims.index(dim)
                table = np.zeros(len(plan.dim_values[d]))
                for v, x in vals.items():
                    table[plan.dim_values[d].index(v)] = x
                tables[f].append((d, table))
    g = st.graph
    for m in range(2):
        for s in range(a, b, BLOCK):
            e = min(b, s + BLOCK)
            z = np.zeros(e - s, dtype=np.float64)
            for f, name in enumerate(plan.features):
                w = plan.feat_weight[f]
                if w == 0:
                    continue
                feat = spec.features[name]
                if feat.records is not None:
                    z += w * st.feat_count[m, f, s:e]
                elif feat.group is not None:
                    for d, table in tables[f]:
                        z += w * table[st.groups[d, s:e]]
                elif feat.trait is not None:
                    z += w * st.traits[plan.traits.index(feat.trait), s:e]
                elif feat.contacts_listed is not None:
                    li = plan.lists.index(feat.contacts_listed)
                    z += w * contacts_share(g.indptr[s - g.lo:e - g.lo + 1], g.indices, g.cut, st.listed[m, li])
            st.mscore[m, s:e] = np.clip(spec.center + spec.scale * z, lo, hi).astype(np.float32)
    return True


class Score:
    """Stage 4: points are already current (the dossier keeps them); model scores on their schedule."""

    name: str = "score"
    reads: tuple[str, ...] = ("state.feat_count", "state.listed", "state.graph")
    writes: tuple[str, ...] = ("day.model_day", "state.mscore")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan

    def run(self, st: State, d: Day, x: Exchange) -> None:
        d.model_day = recompute_model(self.plan, st, d.day, x.lo, x.hi)
