"""A validated scenario turned into index tables the stages can use.

Names become small integers and tables become NumPy arrays once, before the day loop,
so no stage ever looks a name up on the hot path. The plan is a pure function of the
scenario: the same file always compiles to the same arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from credsim.conditions import CondTables, compile_conditions, first_list
from credsim.economy import Economy, compile_economy
from credsim.names import KINDS, LIST_KINDS, TRIGGERS
from credsim.scenario.check import record_types
from credsim.scenario.schema import ASSOCIATION_DOMAIN, Scenario


def _by_group(scen: Scenario, table: dict[str, dict[str, float]] | dict[str, dict[str, int]], dims: list[str],
              maxv: int, default: float) -> tuple[int, np.ndarray]:
    """A value per group of one dimension (``(dimension index or -1, (maxv,) values)``), others ``default``."""
    out = np.full(maxv, default, dtype=np.float64)
    for dim, vals in table.items():
        names = list(scen.population.groups[dim])
        for v, x in vals.items():
            out[names.index(v)] = x
        return dims.index(dim), out
    return -1, out


def _group_table(scen: Scenario, table: dict[str, dict[str, float]], dims: list[str], maxv: int) -> np.ndarray:
    out = np.ones((len(dims), maxv), dtype=np.float64)
    for dim, vals in table.items():
        d = dims.index(dim)
        names = list(scen.population.groups[dim])
        for v, m in vals.items():
            out[d, names.index(v)] = m
    return out


@dataclass
class Plan:
    scen: Scenario
    dims: list[str]
    dim_values: list[list[str]]
    maxv: int
    traits: list[str]
    domains: list[str]
    # behaviours
    beh: list[str]
    beh_kind: np.ndarray
    beh_rate: np.ndarray
    beh_domain: np.ndarray
    beh_group: np.ndarray  # (B, D, V) multipliers
    beh_trait: np.ndarray  # (B, T) log-multipliers per sd
    beh_only_listed: np.ndarray  # (B,) list index or -1
    # record types (behaviours then association.<list>)
    rtypes: list[str]
    rtype_domain: np.ndarray
    # the row of state.neg_by_domain that holds a domain's official points lost: one row per domain some rule takes
    # points in (in domain order), then one row never written, which every other domain reads as 0
    neg_row: np.ndarray  # (domains,)
    rtype_neg_row: np.ndarray  # (R,) neg_row of each record type's domain
    rtype_adverse: np.ndarray  # (R,) bool: counts against the citizen (points lost, negative feature, blacklist)
    # sensors
    sensors: list[str]
    sen_cov: np.ndarray
    sen_cov_group: np.ndarray  # (S, D, V)
    sen_det: np.ndarray
    sen_false: np.ndarray
    sen_delay: np.ndarray
    sen_surv: np.ndarray  # (S, D, V)
    sen_shared: np.ndarray
    sen_obs: np.ndarray  # (S, B) bool
    beh_in_scope: np.ndarray  # (B,) observed by a shared sensor
    beh_shadow_delay: np.ndarray  # (B,)
    # points
    has_points: bool
    points_base: float
    rule_points: np.ndarray  # (R,)
    rule_expiry: np.ndarray  # (R,)
    cap_period: int
    cap_loss: float
    cap_gain: float
    # model score
    has_model: bool
    features: list[str]
    feat_types: np.ndarray  # (R, F) bool: record types counted by a feature
    feat_expiry: np.ndarray  # (F,)
    feat_weight: np.ndarray  # (F,) combined weight x coefficient
    # grades
    grades: list[str]
    grade_mins: np.ndarray  # (G-1,) descending
    grade_source: str
    # lists
    lists: list[str]
    list_domain: np.ndarray
    list_by_grade: np.ndarray  # (L,) bool
    entry_types: np.ndarray  # (R, L) bool
    entry_count: np.ndarray
    entry_window: np.ndarray
    entry_grace: np.ndarray
    entry_grades: np.ndarray  # (L, G) bool
    cure_types: np.ndarray  # (R, L) bool
    cure_slot: np.ndarray  # (L,) row of the list in State.cured_seq, -1 for a list no record cures
    exit_term: np.ndarray  # (L,) 0 = none
    exit_on_recovery: np.ndarray
    assoc_points: np.ndarray
    # sanctions
    sanctions: list[str]
    san_list: np.ndarray  # (K,) list index or -1
    san_grades: np.ndarray  # (K, G) bool
    san_attempts: np.ndarray  # (K, B) bool
    san_reward: np.ndarray  # (K,) bool
    san_severity: np.ndarray
    san_own_domain: np.ndarray  # (K,) bool: only records of the attempt's domain count
    san_cond: CondTables  # compound conditions (san_list == -2), as clause and atom tables
    san_names_list: np.ndarray  # (K, L) bool: lists a sanction's condition names (what a refusal tells of)
    san_reaches: np.ndarray  # (K,) bool: a denial also harms the citizen's dependants
    # responses
    responses: list[str]
    resp_cut: np.ndarray  # (Q,) bool
    resp_trigger: np.ndarray  # (Q,) index into TRIGGERS
    resp_applies: np.ndarray  # (Q, B) bool
    resp_size: np.ndarray
    resp_half: np.ndarray
    resp_prob: np.ndarray
    resp_lists: np.ndarray  # (Q, L) bool (all True when unrestricted)
    # rate schedules (policy eras): behaviour index -> (from_day ascending, multiplier)
    beh_schedule: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # censors: (S,) share of a caught post's contacts it is hidden from (0: an ordinary sensor)
    sen_suppress: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # money, outcomes of attempts and state-dependent rates (inactive when the scenario has none)
    econ: Economy | None = None
    # per-group starting points and list entry counts: (dimension index or -1, per group value)
    points_base_dim: int = -1
    points_base_g: np.ndarray = field(default_factory=lambda: np.zeros(1))
    entry_count_dim: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # (L,)
    entry_count_g: np.ndarray = field(default_factory=lambda: np.zeros((0, 1), np.int64))  # (L, maxv)
    # listing grounds: list index -> (cumulative shares, shortest and longest extension, no fixed term)
    list_grounds: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)

    def schedule_multiplier(self, b: int, day: int) -> float:
        """The schedule's multiplier of behaviour ``b`` on ``day`` (1 before the first step)."""
        days, mult = self.beh_schedule[b]
        k = int(np.searchsorted(days, day, side="right")) - 1
        return 1.0 if k < 0 else float(mult[k])

    def entry_count_of(self, li: int, groups: np.ndarray, cit: np.ndarray) -> np.ndarray:
        """Records each of ``cit`` needs to enter list ``li`` (its group's count where ``count_by`` says)."""
        d = int(self.entry_count_dim[li])
        if d < 0:
            return np.full(cit.shape[0], self.entry_count[li], np.int64)
        return self.entry_count_g[li, groups[d, cit].astype(np.int64)]

    def points_base_of(self, groups: np.ndarray) -> np.ndarray:
        """Every citizen's starting points (its group's where ``base_by`` says), float32 like the score."""
        if self.points_base_dim < 0:
            return np.full(groups.shape[1], np.float32(self.points_base), np.float32)
        return self.points_base_g.astype(np.float32)[groups[self.points_base_dim].astype(np.int64)]

    @property
    def n_beh(self) -> int:
        return len(self.beh)

    @property
    def n_cured(self) -> int:
        """Lists a record can cure: the rows of ``State.cured_seq``."""
        return int((self.cure_slot >= 0).sum())

    @property
    def censors(self) -> np.ndarray:
        """(S,) bool: the sensors that hide a caught post from part of its poster's contacts (``suppress``)."""
        return np.array([self.scen.sensors[s].suppress is not None for s in self.sensors], dtype=np.bool_)

    @property
    def reads_graph(self) -> bool:
        """Whether any stage reads the contact graph: a response triggered by a contact's listing (cut ties
        included), association points, a model feature on contacts' list status, or a censor (a post's reach is
        its poster's active ties). A scenario with none of these builds no graph (``engine.prepare``): nothing it
        does or outputs depends on one, and its other draws do not either (every stream is counter-based)."""
        model = self.scen.scoring.model
        return bool(TRIGGERS.index("contact_listed") in self.resp_trigger.tolist()
                    or (self.assoc_points != 0).any()
                    or (model is not None and any(f.contacts_listed for f in model.features.values()))
                    or self.censors.any())


def cure_slots(cure_types: np.ndarray) -> np.ndarray:
    """Each list's row in ``State.cured_seq``, -1 for a list no record cures.

    Why: a cure's sequence number is int64 per view, list and citizen (16 B a citizen per list); most
    lists have no cure (``integrated``: 1 of 5), so the column holds rows only for those that do."""
    cured = cure_types.any(axis=0)
    return np.where(cured, np.cumsum(cured) - 1, -1).astype(np.int64)


def compile_plan(scen: Scenario) -> Plan:
    pop = scen.population
    dims = list(pop.groups)
    dim_values = [list(pop.groups[d]) for d in dims]
    maxv = max(len(v) for v in dim_values)
    traits = list(pop.traits)
    domains = list(scen.domains) + [ASSOCIATION_DOMAIN]
    beh = list(scen.behaviours)
    lists = list(scen.lists)
    B, L = len(beh), len(lists)

    def gt(t: dict[str, dict[str, float]]) -> np.ndarray:
        return _group_table(scen, t, dims, maxv)

    bs = [scen.behaviours[b] for b in beh]
    beh_trait = np.zeros((B, len(traits)))
    for i, b in enumerate(bs):
        for t, v in b.traits.items():
            beh_trait[i, traits.index(t)] = v
    rtypes = record_types(scen)
    R = len(rtypes)
    rtype_domain = np.array(
        [domains.index(r.split(".", 1)[0]) for r in rtypes], dtype=np.int64
    )

    sensors = list(scen.sensors)
    shared = set(scen.shared_sensors())
    ss = [scen.sensors[s] for s in sensors]
    S = len(sensors)
    sen_obs = np.zeros((S, B), dtype=np.bool_)
    for i, sen in enumerate(ss):
        for bname in sen.observes:
            sen_obs[i, beh.index(bname)] = True
    sen_shared = np.array([s in shared for s in sensors], dtype=np.bool_)
    in_scope = np.zeros(B, dtype=np.bool_)
    shadow_delay = np.zeros(B, dtype=np.int64)
    for bi in range(B):
        for si in range(S):
            if sen_obs[si, bi] and sen_shared[si]:
                in_scope[bi] = True
                shadow_delay[bi] = ss[si].delay_days
                break

    sc = scen.scoring
    rule_points = np.zeros(R)
    rule_expiry = np.full(R, 365, dtype=np.int64)
    cap_period, cap_loss, cap_gain = 0, np.inf, np.inf
    if sc.points is not None:
        rule_expiry[:] = sc.points.expiry_days
        for r, rule in sc.points.rules.items():
            j = rtypes.index(r)
            if isinstance(rule, float | int):
                rule_points[j] = float(rule)
            else:
                rule_points[j] = rule.points
                if rule.expiry_days is not None:
                    rule_expiry[j] = rule.expiry_days
        if sc.points.cap is not None:
            cap_period = sc.points.cap.period_days
            cap_loss, cap_gain = sc.points.cap.max_loss, sc.points.cap.max_gain

    # only a rule that takes points writes a domain's row (a < 0 in the filing kernels): a domain no rule takes
    # points in is read from a row of zeros (integrated: 10 of its 13 domains, 44 B a citizen, not 52)
    losing = sorted({int(rtype_domain[t]) for t in np.flatnonzero(rule_points < 0)})
    neg_row = np.full(len(domains), len(losing), dtype=np.int64)
    neg_row[losing] = np.arange(len(losing))

    features: list[str] = []
    feat_types = np.zeros((R, 0), dtype=np.bool_)
    feat_expiry = np.zeros(0, dtype=np.int64)
    feat_weight = np.zeros(0)
    if sc.model is not None:
        features = list(sc.model.features)
        F = len(features)
        feat_types = np.zeros((R, F), dtype=np.bool_)
        feat_expiry = np.array([sc.model.features[f].expiry_days for f in features], dtype=np.int64)
        feat_weight = np.zeros(F)
        for f, spec in sc.model.features.items():
            for r in spec.records or []:
                feat_types[rtypes.index(r), features.index(f)] = True
        for d in sc.model.dimensions.values():
            for f, c in d.features.items():
                feat_weight[features.index(f)] += d.weight * c

    grades = [b.name for b in sc.grades.bands] if sc.grades else []
    grade_mins = (
        np.array([b.min for b in sc.grades.bands[:-1]], dtype=np.float64) if sc.grades else np.zeros(0)
    )
    G = len(grades)

    ls = [scen.lists[n] for n in lists]
    entry_types = np.zeros((R, L), dtype=np.bool_)
    cure_types = np.zeros((R, L), dtype=np.bool_)
    entry_grades = np.zeros((L, max(G, 1)), dtype=np.bool_)
    for j, lst in enumerate(ls):
        for r in lst.entry.records or []:
            entry_types[rtypes.index(r), j] = True
        for g in lst.entry.grades or []:
            entry_grades[j, grades.index(g)] = True
        for r in lst.exit.cure:
            cure_types[rtypes.index(r), j] = True

    sn = list(scen.sanctions)
    ks = [scen.sanctions[k] for k in sn]
    K = len(sn)
    san_grades = np.zeros((K, max(G, 1)), dtype=np.bool_)
    san_attempts = np.zeros((K, B), dtype=np.bool_)
    for k, san in enumerate(ks):
        for g in san.when.grades or []:
            san_grades[k, grades.index(g)] = True
        for a in san.attempts:
            san_attempts[k, beh.index(a)] = True

    whens = [san.when for san in ks]
    san_names_list = np.zeros((K, max(L, 1)), dtype=np.bool_)
    for k, named in enumerate(first_list(whens, lists)):
        san_names_list[k, named] = True
    base_dim, base_g = _by_group(scen, sc.points.base_by if sc.points else {}, dims, maxv,
                                 sc.points.base if sc.points else 0.0)
    count_by = [_by_group(scen, x.entry.count_by, dims, maxv, x.entry.count) for x in ls]

    rn = list(scen.responses)
    qs = [scen.responses[q] for q in rn]
    Q = len(rn)
    resp_applies = np.zeros((Q, B), dtype=np.bool_)
    resp_lists = np.ones((Q, L), dtype=np.bool_)
    for q, resp in enumerate(qs):
        for i, bspec in enumerate(bs):
            if bspec.kind in resp.kinds or beh[i] in resp.behaviours:
                resp_applies[q, i] = True
        if resp.lists:
            resp_lists[q, :] = False
            for ln in resp.lists:
                resp_lists[q, lists.index(ln)] = True

    black = np.array([x.kind == LIST_KINDS[0] for x in ls], dtype=np.bool_)  # blacklists count against
    rtype_adverse = ((rule_points < 0) | (feat_types & (feat_weight < 0)[None, :]).any(axis=1)
                     | (entry_types & black[None, :]).any(axis=1))

    return Plan(
        scen=scen,
        dims=dims,
        dim_values=dim_values,
        maxv=maxv,
        traits=traits,
        domains=domains,
        beh=beh,
        beh_kind=np.array([KINDS.index(b.kind) for b in bs], dtype=np.int64),
        beh_rate=np.array([b.rate for b in bs], dtype=np.float64),
        beh_domain=rtype_domain[:B].copy(),
        beh_group=np.stack([gt(b.by) for b in bs]) if B else np.ones((0, len(dims), maxv)),
        beh_trait=beh_trait,
        beh_only_listed=np.array(
            [lists.index(b.only_listed) if b.only_listed else -1 for b in bs], dtype=np.int64
        ),
        rtypes=rtypes,
        rtype_domain=rtype_domain,
        neg_row=neg_row,
        rtype_neg_row=neg_row[rtype_domain],
        rtype_adverse=rtype_adverse,
        sensors=sensors,
        sen_cov=np.array([s.coverage for s in ss], dtype=np.float64),
        sen_cov_group=np.stack([gt(s.coverage_by) for s in ss]) if S else np.ones((0, len(dims), maxv)),
        sen_det=np.array([s.detection for s in ss], dtype=np.float64),
        sen_false=np.array([s.false_rate for s in ss], dtype=np.float64),
        sen_delay=np.array([s.delay_days for s in ss], dtype=np.int64),
        sen_surv=np.stack([gt(s.surveillance) for s in ss]) if S else np.ones((0, len(dims), maxv)),
        sen_shared=sen_shared,
        sen_obs=sen_obs,
        beh_in_scope=in_scope,
        beh_shadow_delay=shadow_delay,
        has_points=sc.points is not None,
        points_base=sc.points.base if sc.points is not None else 0.0,
        rule_points=rule_points,
        rule_expiry=rule_expiry,
        cap_period=cap_period,
        cap_loss=float(cap_loss),
        cap_gain=float(cap_gain),
        has_model=sc.model is not None,
        features=features,
        feat_types=feat_types,
        feat_expiry=feat_expiry,
        feat_weight=feat_weight,
        grades=grades,
        grade_mins=grade_mins,
        grade_source=sc.grades.score if sc.grades else "points",
        lists=lists,
        list_domain=np.array([domains.index(x.domain) for x in ls], dtype=np.int64),
        list_by_grade=np.array([x.entry.grades is not None for x in ls], dtype=np.bool_),
        entry_types=entry_types,
        entry_count=np.array([x.entry.count for x in ls], dtype=np.int64),
        entry_window=np.array([x.entry.window_days for x in ls], dtype=np.int64),
        entry_grace=np.array([x.entry.grace_days for x in ls], dtype=np.int64),
        entry_grades=entry_grades,
        cure_types=cure_types,
        cure_slot=cure_slots(cure_types),
        exit_term=np.array([x.exit.term_days or 0 for x in ls], dtype=np.int64),
        exit_on_recovery=np.array([x.exit.on_grade_recovery for x in ls], dtype=np.bool_),
        assoc_points=np.array([x.association_points for x in ls], dtype=np.float64),
        sanctions=sn,
        san_list=np.array([lists.index(s.when.list_) if s.when.list_ else -2 if s.when.compound else -1
                           for s in ks], dtype=np.int64),
        san_grades=san_grades,
        san_attempts=san_attempts,
        san_reward=np.array([s.effect == "reward" for s in ks], dtype=np.bool_),
        san_severity=np.array([s.severity for s in ks], dtype=np.float64),
        san_own_domain=np.array([s.own_domain for s in ks], dtype=np.bool_),
        san_cond=compile_conditions(whens, lists, grades),
        san_names_list=san_names_list,
        san_reaches=np.array([s.reaches == "dependants" for s in ks], dtype=np.bool_),
        responses=rn,
        resp_cut=np.array([r.effect == "cut_ties" for r in qs], dtype=np.bool_),
        resp_trigger=np.array([TRIGGERS.index(r.trigger) for r in qs], dtype=np.int64),
        resp_applies=resp_applies,
        resp_size=np.array([r.size for r in qs], dtype=np.float64),
        resp_half=np.array([r.half_life_days for r in qs], dtype=np.float64),
        resp_prob=np.array([r.probability for r in qs], dtype=np.float64),
        resp_lists=resp_lists,
        beh_schedule={i: (np.array([st.from_day for st in b.schedule], dtype=np.int64),
                          np.array([st.multiplier for st in b.schedule], dtype=np.float64))
                      for i, b in enumerate(bs) if b.schedule},
        sen_suppress=np.array([s.suppress or 0.0 for s in ss], dtype=np.float64),
        econ=compile_economy(scen, dims, maxv, beh, rtypes, lists, grades, gt),
        points_base_dim=base_dim,
        points_base_g=base_g,
        entry_count_dim=np.array([c[0] for c in count_by], dtype=np.int64),
        entry_count_g=np.array([c[1] for c in count_by], dtype=np.int64).reshape(L, maxv),
        list_grounds={j: (np.cumsum([g.share for g in x.exit.grounds.values()]),
                          np.array([g.extend_days[0] if g.extend_days else 0 for g in x.exit.grounds.values()],
                                   np.int64),
                          np.array([g.extend_days[1] if g.extend_days else 0 for g in x.exit.grounds.values()],
                                   np.int64),
                          np.array([g.no_term for g in x.exit.grounds.values()], np.bool_))
                      for j, x in enumerate(ls) if x.exit.grounds},
    )
