"""Explain one traced citizen: a timeline and, for each sanction, a counterfactual.

The timeline merges what ``traces.parquet`` holds about the citizen: true events, records
(official, shadow or both; false ones marked), the points each record moved, score and
grade path, list entries and exits, and every attempt that was denied or rewarded.

The counterfactual answers, for each official denial: *what is the smallest set of
records whose removal would have avoided it?*

- **list sanctions** (``when: {list: L}`` with a records entry rule of ``count`` c): the
  stay on L began when c entry records were live; removing ``k - c + 1`` of the ``k``
  entry records filed in the entry window keeps the count below c, so the citizen is
  never listed. False records are removed first, then the latest.
- **grade sanctions** (``when: {grades: [...]}``, points scores): the score must reach the
  nearest band outside the sanctioned grades. Removing the live negative records with the
  largest point losses first reaches that deficit with the fewest records (a greedy
  choice is optimal for cardinality). Approximation: the other records keep their points
  (removing one could let a capped record count more).
- model-score grades: not reducible to a record set here; the explanation says so.

Only traced citizens have a full history. :func:`find_cases` lists citizens with
wrongful sanctions; when none of them was traced, :func:`retrace` re-runs the same
scenario and seed with those ids traced (tracing does not change any draw, so the run is
the same) and explains from that run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credsim.store import connect, read_manifest


@dataclass
class Sanction:
    day: int
    attempt: str
    sanction: str
    wrongful: bool
    removal: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    false_only: bool | None = None  # would removing only the false records have avoided it?
    false_set: list[dict[str, Any]] = field(default_factory=list)  # the fewest false records that do


@dataclass
class Explanation:
    citizen: int
    run_dir: str
    groups: dict[str, str]
    summary: dict[str, Any]
    timeline: list[dict[str, Any]]
    score_path: list[tuple[int, float, float]]
    sanctions: list[Sanction]
    kinds: dict[str, str] = field(default_factory=dict)  # behaviour -> kind

    def as_dict(self) -> dict[str, Any]:
        return {"citizen": self.citizen, "run_dir": self.run_dir, "groups": self.groups, "summary": self.summary,
                "timeline": self.timeline, "score_path": self.score_path,
                "sanctions": [s.__dict__ for s in self.sanctions]}


class NotTraced(LookupError):
    """The citizen has no trace in this run (use ``--find`` or retrace)."""


def _rule_expiry(scen: dict[str, Any]) -> tuple[dict[str, int], int]:
    pts = (scen.get("scoring") or {}).get("points") or {}
    default = int(pts.get("expiry_days") or 365)
    out = {}
    for name, rule in (pts.get("rules") or {}).items():
        if isinstance(rule, dict) and rule.get("expiry_days"):
            out[name] = int(rule["expiry_days"])
    return out, default


def explain(run_dir: str | Path, citizen: int) -> Explanation:
    """The traced ``citizen``'s timeline and a counterfactual for each official denial."""
    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    scen = man["scenario"]
    con = connect(run_dir)
    try:
        crow = con.execute("SELECT * FROM citizens WHERE citizen = ?", [citizen]).fetchone()
        if crow is None:
            raise NotTraced(f"citizen {citizen} does not exist in {run_dir} (population {man['population']:,})")
        cols = [d[0] for d in con.description or []]
        cit = dict(zip(cols, crow, strict=True))
        if not cit.get("traced"):
            raise NotTraced(f"citizen {citizen} was not traced in {run_dir}; traced ids: "
                            "SELECT citizen FROM citizens WHERE traced (or use --find wrongful)")
        rows = con.execute("SELECT day, stage, item, value, view, \"true\", source FROM traces WHERE citizen = ? "
                           "ORDER BY day, stage, item", [citizen]).fetchall()
    finally:
        con.close()
    dims = list(scen["population"]["groups"])
    groups = {d: cit[d] for d in dims}
    summary = {k: cit[k] for k in cols if k.startswith("n_") or k in ("score", "shadow_score", "grade", "shadow_grade")
               or k.startswith("on_") or k.startswith("shadow_on_") or k.startswith("model_score")}
    timeline: list[dict[str, Any]] = []
    scores: dict[int, list[float]] = {}
    records: list[dict[str, Any]] = []
    official_denials: list[tuple[int, str, str]] = []
    shadow_denied: set[tuple[int, str]] = set()
    score_item = "model" if ((scen.get("scoring") or {}).get("grades") or {}).get("score") == "model" else "points"
    for day, stage, item, value, view, true, source in rows:
        if stage == "score":
            if item == score_item:
                scores.setdefault(day, [math.nan, math.nan])[0 if view == "official" else 1] = value
            continue
        if stage == "sanction":
            if view == "shadow":
                if value < 0:
                    shadow_denied.add((day, item))
                continue
            if value == 0:
                continue
            if value < 0:
                official_denials.append((day, item, source))
            timeline.append({"day": day, "what": "denied" if value < 0 else "rewarded", "item": item,
                             "detail": f"by {source}" if source else "", "view": view})
            continue
        entry: dict[str, Any] = {"day": day, "what": stage, "item": item, "view": view}
        if stage == "record":
            entry.update(points=value, true=bool(true), source=source)
            records.append(entry)
        elif stage == "list":
            entry["what"] = "listed" if value > 0 else "delisted"
        elif stage == "grade":
            entry["what"] = "grade"
        elif stage == "money":
            entry["amount"] = value
        timeline.append(entry)
    order = {"event": 0, "record": 1, "grade": 2, "listed": 3, "delisted": 3, "denied": 4, "rewarded": 4}
    timeline.sort(key=lambda t: (t["day"], order.get(t["what"], 5)))
    for t in timeline:
        if t["what"] == "denied":
            t["wrongful"] = (t["day"], t["item"]) not in shadow_denied
    score_path = [(d, v[0], v[1]) for d, v in sorted(scores.items())]
    sanctions = [_counterfactual(scen, day, item, san, (day, item) not in shadow_denied, records, timeline, scores)
                 for day, item, san in official_denials]
    kinds = {name: b["kind"] for name, b in scen["behaviours"].items()}
    return Explanation(citizen, str(run_dir), groups, summary, timeline, score_path, sanctions, kinds)


def _counterfactual(scen: dict[str, Any], day: int, attempt: str, sanction: str, wrongful: bool,
                    records: list[dict[str, Any]], timeline: list[dict[str, Any]],
                    scores: dict[int, list[float]]) -> Sanction:
    out = Sanction(day, attempt, sanction, wrongful)
    spec = (scen.get("sanctions") or {}).get(sanction) or {}
    when = spec.get("when") or {}
    lst = when.get("list")
    official = [r for r in records if r["view"] in ("both", "official")]
    if lst:
        entry_rule = ((scen.get("lists") or {}).get(lst) or {}).get("entry") or {}
        entries = [t["day"] for t in timeline if t["what"] == "listed" and t["item"] == lst
                   and t["view"] == "official" and t["day"] <= day]
        if not entries:
            out.note = f"no entry to {lst} found in the trace"
            return out
        e = entries[-1]
        if entry_rule.get("grades"):
            return _grade_removal(scen, out, e, entry_rule["grades"], official, scores,
                                  f"the grade that put the citizen on {lst} on day {e}")
        grace, window, count = (int(entry_rule.get("grace_days", 0)), int(entry_rule.get("window_days", 365)),
                                int(entry_rule.get("count", 1)))
        types = set(entry_rule.get("records") or [])
        cand = [r for r in official if r["item"] in types and e - grace - window < r["day"] <= e - grace]
        if not cand:
            cand = [r for r in official if r["item"] in types and r["day"] <= e]
        need = max(len(cand) - count + 1, 1)
        cand.sort(key=lambda r: (r["true"], -r["day"]))  # false first, then the latest
        out.removal = cand[:need]
        out.note = (f"on {lst} since day {e}: {len(cand)} entry record(s) in the window, {count} needed; "
                    f"remove {need}")
        return out
    grades = when.get("grades") or []
    return _grade_removal(scen, out, day, grades, official, scores, "the grade on the day of the denial")


def _grade_removal(scen: dict[str, Any], out: Sanction, day: int, sanctioned: list[str],
                   official: list[dict[str, Any]], scores: dict[int, list[float]], what: str) -> Sanction:
    scoring = scen.get("scoring") or {}
    bands = (scoring.get("grades") or {}).get("bands") or []
    if (scoring.get("grades") or {}).get("score") == "model" or not scoring.get("points"):
        out.note = f"{what} comes from a model score: no record-removal counterfactual (see the features)"
        return out
    score = (scores.get(day) or [math.nan])[0]
    names = [b["name"] for b in bands]
    mins = [b.get("min") for b in bands]
    g = next((i for i, m in enumerate(mins) if m is None or score >= m), len(bands) - 1)
    better = [i for i in range(g) if names[i] not in sanctioned]
    if not better:
        out.note = "no grade outside the sanctioned ones is reachable"
        return out
    target = float(mins[better[-1]])  # the nearest acceptable band above
    deficit = target - score
    expiry, default = _rule_expiry(scen)
    live = [r for r in official if r["points"] < 0 and r["day"] <= day < r["day"] + expiry.get(r["item"], default)]
    live.sort(key=lambda r: (r["points"], -r["day"]))  # largest loss first
    if sum(-r["points"] for r in live) < deficit:
        out.note = f"score {score:.0f}, needs {target:.0f}: even removing all {len(live)} live losses is not enough"
        return out
    size, gained = 0, 0.0
    while gained < deficit:  # largest losses first: the fewest records that close the gap
        gained += -live[size]["points"]
        size += 1
    false = [r for r in live if not r["true"]]
    true = [r for r in live if r["true"]]
    chosen = live[:size]
    for f in range(min(size, len(false)), -1, -1):  # among sets of that size, as many false records as possible
        pick = false[:f] + true[:size - f]
        if len(pick) == size and sum(-r["points"] for r in pick) >= deficit:
            chosen = pick
            break
    out.false_only = sum(-r["points"] for r in false) >= deficit
    if out.false_only:
        got = 0.0
        for r in false:  # largest false losses first
            if got >= deficit:
                break
            out.false_set.append(r)
            got += -r["points"]
    out.removal = chosen
    out.note = (f"score {score:.0f} on day {day}, grade {names[g]}; reaching {names[better[-1]]} "
                f"needs {deficit:.0f} points")
    return out


def find_cases(run_dir: str | Path, kind: str = "wrongful", limit: int = 10) -> tuple[list[int], list[int]]:
    """(traced, untraced) citizen ids with at least one ``kind`` case (wrongful, missed, denied, association_only)."""
    col = {"wrongful": "n_wrongful", "missed": "n_missed", "denied": "n_denied",
           "association": "n_association_only", "association_only": "n_association_only"}.get(kind)
    if col is None:
        raise ValueError(f"--find expects one of wrongful, missed, denied, association; got {kind!r}")
    con = connect(run_dir)
    try:
        rows = con.execute(f"SELECT citizen, traced FROM citizens WHERE {col} > 0 ORDER BY {col} DESC, citizen "
                           "LIMIT 10000").fetchall()
    finally:
        con.close()
    traced = [int(c) for c, t in rows if t][:limit]
    untraced = [int(c) for c, t in rows if not t][:limit]
    return traced, untraced


def retrace(run_dir: str | Path, ids: list[int], out: str | Path | None = None, threads: int | None = None) -> Path:
    """Re-run ``run_dir``'s scenario and seed with ``ids`` traced; check it reproduces the run."""
    from credsim.api import run as run_api
    from credsim.scenario.load import load_scenario

    run_dir = Path(run_dir)
    man = read_manifest(run_dir)
    data = man["scenario"]
    data["run"]["trace_ids"] = sorted(set(data["run"].get("trace_ids", [])) | set(ids))
    target = Path(out) if out is not None else run_dir / "retraced"
    run_api(load_scenario(data), out=target, seed=man["seed"], overwrite=True, threads=threads)
    a, b = connect(run_dir), connect(target)
    try:
        q = "SELECT sum(n_denied), sum(n_wrongful), sum(n_missed), sum(n_records_false) FROM citizens"
        if a.execute(q).fetchone() != b.execute(q).fetchone():
            raise RuntimeError(f"re-running {run_dir} did not reproduce it (a different credsim version?)")
    finally:
        a.close(); b.close()
    return target
