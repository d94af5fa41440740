"""Harms as citizen-by-citizen differences between a run and its counterfactual runs.

For one replicate (one seed) the system run and each counterfactual run
(:mod:`credsim.audit.counterfactuals`) hold the same citizens under the same ids, so their
``citizens.parquet`` files are joined on ``citizen`` and every harm is a per-citizen
difference. The table is written next to the system run as ``harms.parquet``, with a view
``harms`` in its ``results.duckdb``, so every figure can be recomputed::

    credsim sql AUDIT/runs/system-s2019 "SELECT sum(wrongful_denials), sum(wrongful_sanctioned) FROM harms"

Columns, for each harm ``h`` (``wrongful``, ``missed``, ``lawful``, ``cross_context``,
``association``):

``h_denials``     denials in the harm's direction: system minus counterfactual (a harm the
                  system adds) or counterfactual minus system (``missed``: what escaped, with
                  both sides free of false records: the no-false-records run stands in for
                  the system); negative for a citizen the change helped the other way
``h_sanctioned``  1 if the citizen was denied at least once on one side and never on the
                  other, in the harm's direction (e.g. sanctioned only because of false records)
``h_reversed``    1 for the opposite case (e.g. sanctioned only *without* false records,
                  through behaviour or contacts that changed)

and, against the system switched off: ``system_infractions``, ``system_speech`` (events,
system minus baseline). A run with money balances adds the money columns of
:mod:`credsim.audit.money` (money taken wrongly, against the no-false-records run). A
counterfactual identical to the scenario (nothing to remove) is not run: its columns are 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from credsim.audit.counterfactuals import HARMS, Counterfactual
from credsim.audit.money import citizens_source, declared_balances, has_money, money_columns, money_totals
from credsim.store import add_file, read_manifest

HARMS_FILE = "harms.parquet"
BY_HARM_WRONGFUL = "wrongful"  # money taken wrongly is measured against this harm's counterfactual


@dataclass(frozen=True)
class Replicate:
    """The run directories of one seed: the system, the baseline and each harm's counterfactual."""

    seed: int
    system: Path
    baseline: Path | None = None
    counterfactuals: dict[str, Path | None] = field(default_factory=dict)  # harm -> run dir (None: unchanged)


def _q(path: Path) -> str:
    return str(path.resolve()).replace("'", "''")


def _citizens(run_dir: Path) -> str:
    """The run's citizens table as SQL: its one file, or a sharded run's parts."""
    sql = citizens_source(run_dir)
    if sql is None:
        raise FileNotFoundError(f"{run_dir}: a run without a citizens table")
    return sql


def _harm_columns(cf: Counterfactual, alias: str | None, side: str = "s") -> list[str]:
    """The harm's three columns: counterfactual ``alias`` against ``side`` (the system run, or ``versus``)."""
    h = cf.harm
    if alias is None:
        return [f"0::BIGINT AS {h}_denials", f"0 AS {h}_sanctioned", f"0 AS {h}_reversed"]
    s_den, c_den = f"{side}.n_denied", f"{alias}.n_denied"
    more, less = (s_den, c_den) if cf.sign > 0 else (c_den, s_den)
    return [f"({more} - {less})::BIGINT AS {h}_denials",
            f"(({more} > 0) AND ({less} = 0))::INT AS {h}_sanctioned",
            f"(({less} > 0) AND ({more} = 0))::INT AS {h}_reversed"]


def _children_columns(alias: str | None, base: bool) -> list[str]:
    """Children affected (family ties): dependants of citizens denied by a sanction that reaches them, in all;
    only in the run and not in the no-false-records counterfactual (wrongly, citizen by citizen); and only in
    the run and not with the system switched off."""
    hit = "(s.n_dependants_denied > 0)"
    cols = ["s.dependants::INT AS dependants", f"(s.dependants * {hit}::INT)::INT AS children_affected"]
    wrong = f"({hit} AND ({alias}.n_dependants_denied = 0))::INT" if alias else "0"
    cols.append(f"(s.dependants * {wrong})::INT AS children_affected_wrongly")
    if base:
        by_system = f"({hit} AND (b.n_dependants_denied = 0))::INT"
        cols.append(f"(s.dependants * {by_system})::INT AS children_affected_by_system")
    return cols


def harms_sql(rep: Replicate, dims: list[str], money: list[str] | None = None, dependants: bool = False) -> str:
    """The per-citizen harms table of one replicate, as SQL over the runs' Parquet files (``money``: the
    run's declared money balances when it has money, see :mod:`credsim.audit.money`; None: no money;
    ``dependants``: the scenario declares family ties)."""
    cols = ["s.citizen"] + [f's."{d}"::VARCHAR AS "{d}"' for d in dims]
    cols += ["s.n_denied AS denied", "(s.n_denied > 0)::INT AS sanctioned", "s.n_records_adverse AS adverse_records",
             "s.n_records_false AS false_records", "(s.n_rewarded > 0)::INT AS rewarded"]
    joins = []
    aliases: dict[str, str] = {}
    for j, cf in enumerate(HARMS):
        d = rep.counterfactuals.get(cf.harm)
        if d is not None:
            aliases[cf.harm] = f"c{j}"
            joins.append(f"JOIN {_citizens(d)} c{j} USING (citizen)")
    for cf in HARMS:
        # a harm measured against another counterfactual (missed: against no false records) uses that run
        # in place of the system run; when that one was not needed (nothing to remove), the system is it
        side = aliases.get(cf.versus, "s") if cf.versus else "s"
        cols += _harm_columns(cf, aliases.get(cf.harm), side)
    if money is not None:
        cols += money_columns(aliases.get(BY_HARM_WRONGFUL), money)
    if rep.baseline is not None:
        joins.append(f"JOIN {_citizens(rep.baseline)} b USING (citizen)")
        cols += ["(s.n_infractions - b.n_infractions)::BIGINT AS system_infractions",
                 "(s.n_speech - b.n_speech)::BIGINT AS system_speech"]
    if dependants:
        cols += _children_columns(aliases.get(BY_HARM_WRONGFUL), rep.baseline is not None)
    return (f"SELECT {', '.join(cols)} FROM {_citizens(rep.system)} s "
            + " ".join(joins) + " ORDER BY citizen")


def write_harms(rep: Replicate) -> dict[str, float]:
    """Write ``harms.parquet`` (and the ``harms`` view) into the system run; return the totals."""
    man = read_manifest(rep.system)
    dims = list(man["scenario"]["population"]["groups"])
    dependants = man["scenario"]["population"].get("dependants") is not None
    target = rep.system / HARMS_FILE
    con = duckdb.connect()
    try:
        cit = _citizens(rep.system)
        sql = harms_sql(rep, dims, declared_balances(con, cit) if has_money(con, cit) else None, dependants)
        con.execute(f"COPY ({sql}) TO '{_q(target)}' (FORMAT parquet, COMPRESSION zstd)")
        totals = harm_totals(con, f"read_parquet('{_q(target)}')")
    finally:
        con.close()
    cat = duckdb.connect(str(rep.system / "results.duckdb"))
    try:  # relative path, like the run's own views (see credsim.store)
        cat.execute(f"SET file_search_path='{_q(rep.system)}'")
        cat.execute(f"CREATE OR REPLACE VIEW harms AS SELECT * FROM read_parquet('{HARMS_FILE}')")
    finally:
        cat.close()
    add_file(rep.system, HARMS_FILE)
    for cf in HARMS:
        totals[f"harm.{cf.harm}.run"] = 0.0 if rep.counterfactuals.get(cf.harm) is None else 1.0
    return totals


def harm_totals(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, float]:
    """Per harm: ``harm.h.denials`` (sum), ``harm.h.citizens`` and ``harm.h.reversed`` (counts)."""
    cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()]
    exprs: list[tuple[str, str]] = []
    for cf in HARMS:
        h = cf.harm
        exprs += [(f"harm.{h}.denials", f"sum({h}_denials)"), (f"harm.{h}.citizens", f"sum({h}_sanctioned)"),
                  (f"harm.{h}.reversed", f"sum({h}_reversed)")]
    for c in ("system_infractions", "system_speech"):
        if c in cols:
            exprs.append((f"harm.{c}", f"sum({c})"))
    children = [c for c in ("children_affected", "children_affected_wrongly", "children_affected_by_system")
                if c in cols]
    exprs += [(f"harm.{c}", f"sum({c})") for c in children]
    row = con.execute(f"SELECT {', '.join(e for _n, e in exprs)} FROM {table}").fetchone()
    assert row is not None
    out = {n: float(v or 0) for (n, _e), v in zip(exprs, row, strict=True)}
    if "wrongful_money" in cols:
        out.update(money_totals(con, table))
    if children:
        # by group: the group columns are the text ones (harms_sql casts every dimension to VARCHAR)
        types = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {table})").fetchall())
        for dim in [c for c in cols if types[c] == "VARCHAR"]:
            sums = ", ".join(f"sum({c})" for c in children)
            for g, *vals in con.execute(f'SELECT "{dim}", {sums} FROM {table} GROUP BY 1 ORDER BY 1').fetchall():
                for c, v in zip(children, vals, strict=True):
                    out[f"harm.{c}.{dim}.{g}"] = float(v or 0)
    return out
