"""Money taken wrongly: citizen by citizen, against the run without false records (same seed).

Why a difference and not the clawbacks of false findings: a false record moves money in ways a
label cannot follow -- a clawback takes back benefits that would have been paid anyway, and a
clawback can rest on a true record filed after a false one. The no-false-records counterfactual
(:mod:`credsim.audit.counterfactuals`), run with the same seed and so the same random numbers,
says what each citizen would have lost without false records; the harm is the difference.

Columns added to ``harms.parquet`` when the run has money (``money_taken`` in ``citizens.parquet``):

``money_taken_net``          taken minus refunded in the run (what the citizen is still out of pocket)
``money_compensated``        compensation paid in the run (beside the refund; not netted)
``wrongful_money_taken``     taken in the run minus taken without false records
``wrongful_money_refunded``  refunded in the run minus refunded without false records
``wrongful_money``           the net money taken wrongly: ``wrongful_money_taken - wrongful_money_refunded``
``wrongful_compensated``     compensation in the run minus compensation without false records
``wrongful_<balance>``       each declared balance (``money: [...]``) in the run minus without false records:
                             e.g. benefits not paid while wrongly listed (negative), arrears added

Intervals: within one run, a group's sum is given with a normal 95% interval of a sum of the
group's citizens' values treated as independent draws (``n x mean +- 1.96 sqrt(n) sd``: the
variation of citizens given the seed, not of seeds); over k >= 2 replicates, the t interval of
the per-seed sums (:func:`credsim.audit.stats.interval`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import duckdb

from credsim.audit.stats import interval
from credsim.catalog import source
from credsim.names import money_column
from credsim.scenario.economy import COMPENSATED, REFUNDED, TAKEN
from credsim.store import read_manifest, run_files

Z95 = 1.959964


def has_money(con: duckdb.DuckDBPyConnection, citizens: str) -> bool:
    """Whether a run's citizens table (a ``read_parquet(...)`` expression) has money balances."""
    return money_column(TAKEN) in _columns(con, citizens)


def _columns(con: duckdb.DuckDBPyConnection, citizens: str) -> list[str]:
    return [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {citizens}").fetchall()]


def declared_balances(con: duckdb.DuckDBPyConnection, citizens: str) -> list[str]:
    """The scenario's own money balances (``money: [...]``) found in a citizens table, in order."""
    engine = {money_column(c) for c in (TAKEN, REFUNDED, COMPENSATED)}
    head = money_column("")
    return [c.removeprefix(head) for c in _columns(con, citizens) if c.startswith(head) and c not in engine]


def money_columns(alias: str | None, balances: list[str], side: str = "s") -> list[str]:
    """The SQL of the money harm columns: ``side`` (the system run) against ``alias`` (no false records)."""
    t, r, c = money_column(TAKEN), money_column(REFUNDED), money_column(COMPENSATED)
    cols = [f"({side}.{t} - {side}.{r}) AS money_taken_net", f"{side}.{c} AS money_compensated"]
    if alias is None:  # the scenario has no false records: nothing is taken wrongly
        return cols + ["0.0 AS wrongful_money_taken", "0.0 AS wrongful_money_refunded", "0.0 AS wrongful_money",
                       "0.0 AS wrongful_compensated"] + [f"0.0 AS wrongful_{b}" for b in balances]
    return cols + [f"({side}.{t} - {alias}.{t}) AS wrongful_money_taken",
                   f"({side}.{r} - {alias}.{r}) AS wrongful_money_refunded",
                   f"(({side}.{t} - {alias}.{t}) - ({side}.{r} - {alias}.{r})) AS wrongful_money",
                   f"({side}.{c} - {alias}.{c}) AS wrongful_compensated"] + [
        f'({side}."{money_column(b)}" - {alias}."{money_column(b)}") AS "wrongful_{b}"' for b in balances]


def money_totals(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, float]:
    """Sums over citizens for the audit's scalars: ``harm.wrongful.money_taken_net`` (net money taken wrongly),
    ``harm.wrongful.money_taken``, ``harm.wrongful.money_refunded`` and ``harm.wrongful.citizens_out_of_pocket``
    (citizens whose net money taken wrongly is above 0)."""
    extra = [c for c in _columns(con, table) if c.startswith("wrongful_") and c not in (
        "wrongful_denials", "wrongful_sanctioned", "wrongful_reversed", "wrongful_money", "wrongful_money_taken",
        "wrongful_money_refunded")]
    row = con.execute("SELECT sum(wrongful_money), sum(wrongful_money_taken), sum(wrongful_money_refunded), "
                      "count(*) FILTER (WHERE wrongful_money > 0)"
                      + "".join(f', sum("{c}")' for c in extra) + f" FROM {table}").fetchone()
    assert row is not None
    keys = ["money_taken_net", "money_taken", "money_refunded", "citizens_out_of_pocket"]
    keys += [c.removeprefix("wrongful_") for c in extra]  # compensated, and each declared balance
    return {f"harm.wrongful.{k}": float(v or 0.0) for k, v in zip(keys, row, strict=True)}


def _q(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def group_sums(harms: Path, dims: list[str], column: str = "wrongful_money") -> list[dict[str, Any]]:
    """Per group (and ``all``): citizens, sum, mean, and the within-run normal 95% interval of the sum."""
    con = duckdb.connect()
    try:
        rows = []
        for dim in ["all", *dims]:
            key = "'all'" if dim == "all" else f'"{dim}"::VARCHAR'
            got = con.execute(f"SELECT {key} AS g, count(*), sum({column}), stddev_samp({column}) "
                              f"FROM read_parquet('{_q(harms)}') GROUP BY g ORDER BY g").fetchall()
            for g, n, s, sd in got:
                n, s = int(n), float(s or 0.0)
                h = Z95 * math.sqrt(n) * float(sd or 0.0)
                rows.append({"dimension": dim, "group": str(g), "citizens": n, "sum": s, "lo": s - h, "hi": s + h,
                             "mean": s / n if n else math.nan,
                             "how": "normal 95% interval over the group's citizens within one run"})
    finally:
        con.close()
    return rows


def pooled(harms_files: list[Path], dims: list[str], column: str = "wrongful_money") -> list[dict[str, Any]]:
    """Per group, over replicates: the t interval of the per-seed sums (one replicate: the within-run interval)."""
    per = [group_sums(h, dims, column) for h in harms_files]
    if len(per) == 1:
        return per[0]
    out = []
    for j, row in enumerate(per[0]):
        iv = interval([p[j]["sum"] for p in per])
        out.append({**row, "sum": iv.mean, "lo": iv.lo, "hi": iv.hi, "mean": iv.mean / row["citizens"],
                    "how": f"95% t interval of the per-seed sums over {len(per)} replicates"})
    return out


def citizens_source(run_dir: Path) -> str | None:
    """A run's citizens table as SQL (its one file, or a sharded run's parts); None when it has none."""
    if not (run_dir / "manifest.json").exists():
        return None
    files = run_files(run_dir.resolve(), read_manifest(run_dir)).get("citizens")
    return source(files) if files else None


def run_money(run_dir: Path, dims: list[str]) -> dict[str, Any]:
    """A run's money figures: totals taken, refunded and compensated; money taken wrongly by group when the
    run was audited (its ``harms.parquet``); empty when the run has no money."""
    src = citizens_source(run_dir)
    if src is None:
        return {}
    con = duckdb.connect()
    try:
        if not has_money(con, src):
            return {}
        t, r, c = money_column(TAKEN), money_column(REFUNDED), money_column(COMPENSATED)
        row = con.execute(f"SELECT sum({t}), sum({r}), sum({c}), count(*) FILTER (WHERE {t} > 0), "
                          f"count(*) FILTER (WHERE {r} > 0) FROM {src}").fetchone()
    finally:
        con.close()
    assert row is not None
    out: dict[str, Any] = {"taken": float(row[0] or 0), "refunded": float(row[1] or 0),
                           "compensated": float(row[2] or 0), "citizens_taken": int(row[3] or 0),
                           "citizens_refunded": int(row[4] or 0)}
    harms = run_dir / "harms.parquet"
    if harms.exists():
        out["wrongful"] = group_sums(harms, dims)
        con = duckdb.connect()
        try:
            table = f"read_parquet('{_q(harms)}')"
            out["other"] = {k.removeprefix("harm.wrongful."): v for k, v in money_totals(con, table).items()}
        finally:
            con.close()
    return out


def net_taken_wrongly(run_dir: Path, no_false: Path | None) -> float | None:
    """Sum over citizens of (taken - refunded) in the run minus the same without false records (same seed);
    None when the run has no money, 0 when there is no counterfactual (the scenario has no false records)."""
    src = citizens_source(run_dir)
    con = duckdb.connect()
    try:
        if src is None or not has_money(con, src):
            return None
        t, r = money_column(TAKEN), money_column(REFUNDED)
        mine = con.execute(f"SELECT sum({t} - {r}) FROM {src}").fetchone()
        if no_false is None:
            return 0.0
        theirs_src = citizens_source(no_false)
        assert theirs_src is not None, f"{no_false}: a no-false-records run without a citizens table"
        theirs = con.execute(f"SELECT sum({t} - {r}) FROM {theirs_src}").fetchone()
    finally:
        con.close()
    assert mine is not None and theirs is not None
    return float(mine[0] or 0.0) - float(theirs[0] or 0.0)
