"""The calibration report: one self-contained HTML page in the audit report's style.

What a reader needs to trust a fit: every target and held-out check against its simulated
value at the fit seeds and at seeds the fit never saw (with the spread across seeds), the
posterior-predictive interval, each parameter's interval, and the diagnostics of the fit and
of the sampler (objective per evaluation, ABC thresholds, acceptance, effective sample size).
"""

from __future__ import annotations

import html
import math

import plotly.graph_objects as go

from credsim.abc_smc import Posterior
from credsim.calib_pipeline import Calibration, Spread, verdict
from credsim.laplace import Laplace
from credsim.report.charts import PALETTE, Chart, _layout
from credsim.report.html import figure_block, page
from credsim.scenario import keypath


def _e(x: object) -> str:
    return html.escape(str(x))


def _r(x: float) -> str:
    return f"{x:.3f}" if math.isfinite(x) else "n/a"


def _figure(x: float, rate: bool, count_format: str) -> str:
    """A published or scaled figure: a rate (precision, a share) needs its decimals, a count does not."""
    return f"{x:.3f}" if rate else f"{x:,{count_format}}"


def _spread_cell(sp: Spread | None) -> str:
    if sp is None:
        return "<td>-</td>"
    if len(sp.values) == 1:
        return f"<td>{_r(sp.mean_ratio)}</td>"
    return f"<td>{_r(sp.mean_ratio)} <span class=\"meta\">({_r(sp.low)}–{_r(sp.high)})</span></td>"


def _figures_table(cal: Calibration, keys: list[str], checks: bool) -> str:
    tf = cal.tf
    head = ("<tr><th class=l>figure</th><th class=l>source</th><th>published</th><th>scaled to N</th>"
            "<th>fit seeds: mean ratio (range)</th><th>validation: mean ratio (range)</th>"
            "<th>posterior predictive 90%</th><th>tolerance</th><th class=l>out of sample</th></tr>")
    rows = [head]
    for k in keys:
        spec = tf.checks[k] if checks else tf.targets[k]
        tol = tf.tolerance_of(k)
        fs = cal.fit_spread[k]
        vs = cal.validation.get(k)
        pp = cal.predictive_ratio(k)
        ppc = f"<td>{_r(pp[0])}–{_r(pp[2])}</td>" if pp else "<td>-</td>"
        judged = vs or fs
        ok = judged.within(tol)
        out = judged.seeds_outside(tol)
        verdict_text = ("mean within" if ok else "mean OFF") + (f"; {out} seed(s) outside" if out else "")
        rows.append(f"<tr class=\"{'' if ok else 'flag'}\"><td class=l>{_e(k)}</td><td class=l>{_e(spec.source)}</td>"
                    f"<td>{_figure(spec.value, spec.is_rate, '.0f')}</td>"
                    f"<td>{_figure(fs.figure, spec.is_rate, '.1f')}</td>"
                    f"{_spread_cell(fs)}{_spread_cell(vs)}{ppc}"
                    f"<td>±{tol:.0%}</td><td class=l>{verdict_text}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _ratio_chart(cal: Calibration) -> go.Figure:
    keys = list(cal.tf.targets) + list(cal.tf.checks)
    fig = go.Figure()
    for i, (label, spreads) in enumerate((("fit seeds", cal.fit_spread), ("validation seeds", cal.validation))):
        ks = [k for k in keys if k in spreads]
        if not ks:
            continue
        fig.add_trace(go.Scatter(
            x=[spreads[k].mean_ratio for k in ks], y=ks, mode="markers", name=f"{label} (mean, range)",
            marker={"color": PALETTE[2 * i], "size": 9},
            error_x={"type": "data", "symmetric": False,
                     "array": [spreads[k].high - spreads[k].mean_ratio for k in ks],
                     "arrayminus": [spreads[k].mean_ratio - spreads[k].low for k in ks]}))
    pp = {k: cal.predictive_ratio(k) for k in keys}
    ks = [k for k in keys if pp[k] is not None]
    if ks:
        fig.add_trace(go.Scatter(
            x=[pp[k][1] for k in ks], y=ks, mode="markers", name="posterior predictive (median, 90%)",  # type: ignore[index]
            marker={"color": PALETTE[4], "symbol": "diamond", "size": 8},
            error_x={"type": "data", "symmetric": False,
                     "array": [pp[k][2] - pp[k][1] for k in ks],  # type: ignore[index]
                     "arrayminus": [pp[k][1] - pp[k][0] for k in ks]}))  # type: ignore[index]
    fig.add_vline(x=1.0, line_dash="dot", line_color="#888")
    _layout(fig, height=160 + 28 * len(keys), xaxis_title="simulated / published figure scaled to N",
            yaxis={"autorange": "reversed"})
    return fig.update_layout(legend={"orientation": "h", "y": -0.25 - 1.5 / (len(keys) + 4)})  # below the title


def _params_table(cal: Calibration) -> str:
    rows = ["<tr><th class=l>parameter</th><th class=l>key path</th><th>bounds</th><th>start</th><th>fitted</th>"
            "<th>posterior median</th><th>90% interval</th></tr>"]
    for k, spec in cal.tf.parameters.items():
        post = cal.posterior.interval(k) if cal.posterior is not None else None
        iv = f"<td>{post[1]:.4g}</td><td>{post[0]:.4g} – {post[2]:.4g}</td>" if post else "<td>-</td><td>-</td>"
        rows.append(f"<tr><td class=l>{_e(k)}</td><td class=l><code>{_e(keypath.show(spec.keys))}</code></td>"
                    f"<td>{spec.low:.4g} – {spec.high:.4g}</td><td>{cal.fit.start.params.get(k, float('nan')):.4g}</td>"
                    f"<td>{cal.fit.best.params[k]:.4g}</td>{iv}</tr>")
    return "<table>" + "".join(rows) + "</table>"


def _objective_chart(cal: Calibration) -> go.Figure:
    ys = [sum(math.log(max(r, 1e-9)) ** 2 for r in e.ratios.values()) for e in cal.fit.history]
    fig = go.Figure(go.Scatter(x=list(range(1, len(ys) + 1)), y=ys, mode="lines+markers",
                               marker={"color": PALETTE[0]}, name="objective"))
    return _layout(fig, height=300, xaxis_title="parameter point tried", yaxis_title="sum of squared log-ratios",
                   yaxis_type="log")


def _laplace_section(post: Laplace) -> str:
    inside, total = post.check_coverage()
    rows = ["<tr><th class=l>parameter</th><th>step (log)</th>"
            + "".join(f"<th>{_e(k)}</th>" for k in post.prior.names) + "</tr>"]
    sd = [math.sqrt(post.cov[i, i]) for i in range(len(post.prior.names))]
    for i, k in enumerate(post.prior.names):
        corr = "".join(f"<td>{post.cov[i, j] / (sd[i] * sd[j]):+.2f}</td>" for j in range(len(sd)))
        rows.append(f"<tr><td class=l>{_e(k)}</td><td>{post.steps[i]:+.3f}</td>{corr}</tr>")
    check = (f"{inside} of {total} figures of {len(post.check_seeds)} runs at posterior draws (each at a seed of "
             f"its own) fall inside their 90% predictive interval; their median distance from the linear "
             f"prediction is {post.linearity():.2f} run-noise sds (about 1 when the linear model holds)"
             if total else "no check runs were made (--particles 0)")
    return ("<table>" + "".join(rows) + "</table>"
            f"<p class=caption>Laplace approximation at the fit (a linearised synthetic likelihood with a "
            f"sandwich variance; docs/calibration.md). Jacobian by forward differences of the log figures at "
            f"the fit seeds (steps above); run-to-run noise from the fitted point at {len(post.noise_seeds)} "
            f"seeds; posterior: a multivariate t with {len(post.noise_seeds) - 1} degrees of freedom truncated "
            f"to the bounds ({post.acceptance:.0%} of draws inside). "
            + (f"Misfit: weighted chi-square {post.chi2:.3g} against {post.chi2_expected:.3g} expected from the "
               "runs' own noise" + (f", so every interval is widened {math.sqrt(post.inflation):.2f}x (Birge ratio)"
                                    if post.inflation > 1 else ", so no widening")
               if post.misfit_estimable else
               "Misfit: not estimable (no more targets than parameters: the step fits them all), so no widening")
            + (f". Stepped again at the posterior's scale (its first sd was more than twice the step, so the "
               f"figures were linearised where they may be flat): {_e(', '.join(dict.fromkeys(post.refined)))}"
               if post.refined else "")
            + f". The table shows each parameter's final step and its correlation with the others. {check}. "
            f"{post.runs} evaluations, those read from the cache included.</p>")


def _posterior_section(cal: Calibration) -> str:
    """The posterior's heading and diagnostics, for either method."""
    post = cal.posterior
    if post is None:
        return ("<h2>Posterior</h2><p class=\"nodata\">No posterior: run with --posterior laplace or abc-smc "
                "(and parameters to fit).</p>")
    if isinstance(post, Laplace):
        return "<h2>Posterior (Laplace)</h2>" + _laplace_section(post)
    return "<h2>Posterior (ABC-SMC)</h2>" + _abc_section(post)


def _abc_section(post: Posterior) -> str:
    rows = ["<tr><th>generation</th><th>eps (RMS log-ratio)</th><th>runs</th><th>accepted within eps</th>"
            "<th class=l>note</th></tr>"]
    for i, g in enumerate(post.generations):
        note = "eps raised to the closest P runs (rounds ran out)" if g.relaxed else ""
        rows.append(f"<tr><td>{i}</td><td>{g.eps:.4g}</td><td>{g.proposed}</td><td>{g.accepted}</td>"
                    f"<td class=l>{note}</td></tr>")
    return ("<table>" + "".join(rows) + "</table>"
            f"<p class=caption>{len(post.particles)} particles; effective sample size of the final weights "
            f"{post.ess:.1f}; {post.runs} runs including one posterior-predictive run per particle, each at a "
            "seed of its own that neither the fit nor the validation uses. "
            "Intervals are weighted 5% and 95% quantiles of the final particles; ABC with eps &gt; 0 widens "
            "the posterior, so the intervals are conservative.</p>")


def calibration_html(cal: Calibration) -> str:
    """The report page."""
    tf = cal.tf
    ok = verdict(cal)
    where = f"at the fit seeds {tf.simulate.fit_seeds}"
    if tf.validation is not None and cal.validation_population:
        where = f"at the validation seeds {tf.validation.seeds} and {cal.validation_population:,} citizens"
    n_in = sum(1 for k in tf.targets if (cal.validation or cal.fit_spread)[k].within(tf.tolerance_of(k)))
    c_in = sum(1 for k in tf.checks if (cal.validation or cal.fit_spread)[k].within(tf.tolerance_of(k)))
    body = [
        f"<h1>Calibration of {_e(cal.scenario)}</h1>",
        f"<p class=meta>targets file {_e(cal.targets_file)}; figures scaled by N / {tf.real_population:,.0f}; "
        f"fit: {tf.simulate.population:,} citizens × {tf.simulate.days} days at seeds {tf.simulate.fit_seeds} "
        f"(the objective averages over them); {cal.runs} simulations run and {cal.cached} read from the cache in "
        f"{cal.wall_seconds:,.0f} s wall on {cal.workers} worker(s).</p>",
        "<h2>Findings</h2><ul class=findings>",
        f"<li><span class=num>{n_in} of {len(tf.targets)}</span> fitted targets within their tolerance on "
        f"average over the seeds {where}{'' if ok else ' — the calibration does NOT pass'}.</li>",
        f"<li><span class=num>{c_in} of {len(tf.checks)}</span> held-out checks (never fitted) within their "
        f"tolerance {where}.</li>" if tf.checks else "",
        "</ul>",
        "<h2>Targets (fitted)</h2>", _figures_table(cal, list(tf.targets), False),
        "<p class=caption>Ratios are simulated / published figure scaled to the simulated N; "
        "ranges are the smallest and largest over the seeds; the out-of-sample column judges the mean "
        "over the validation seeds when there are any, else over the fit seeds, and counts the single "
        "seeds outside the tolerance.</p>",
    ]
    if tf.checks:
        body += ["<h2>Checks (held out, never fitted)</h2>", _figures_table(cal, list(tf.checks), True)]
    body += ["<h2>Every figure</h2>",
             figure_block(Chart("Simulated against published, each figure", _ratio_chart(cal),
                                "simulated / published (scaled to the population) for each target and check"),
                          "ratios", "calibration-ratios"),
             "<h2>Parameters</h2>", _params_table(cal),
             "<h2>Fit diagnostics</h2>",
             figure_block(Chart("The objective over the fit's evaluations", _objective_chart(cal),
                                "sum of squared log-ratios of every parameter point the fit evaluated"),
                          "objective", "calibration-objective"),
             f"<p class=caption>{cal.fit.evaluations} parameter points, each run at every fit seed "
             "(SciPy least squares on log-ratios, finite differences).</p>",
             _posterior_section(cal)]
    return page(f"credsim calibration: {cal.scenario}", "\n".join(body))
