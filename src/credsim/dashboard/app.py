"""The dashboard's page and callbacks (Dash on Flask, everything served locally, no CDN).

Three tabs:

- **Explore a policy**: pick a scenario, move the knobs (:mod:`credsim.dashboard.knobs`),
  run a small population with its paired baseline (:mod:`credsim.dashboard.runs`) while a
  progress bar moves, and read the headline numbers and the report's charts side by side;
  download the edited scenario (YAML) and the report (HTML).
- **Browse and compare runs**: any audit or run directory under the runs root, alone or
  two side by side. ``?run=NAME&vs=OTHER`` in the address opens them directly.
- **Explain a citizen**: the explain timeline of a traced citizen of a run.

Every callback catches what a user can cause (a :class:`credsim.ScenarioError`, a refused
path, an untraced citizen, a run already going) and shows its text next to the control;
anything else is logged on the server and shown as a one-line message, never a traceback.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import dash
from dash import ALL, Input, Output, State, ctx, dcc, html, no_update
from plotly.offline import get_plotlyjs

from credsim import security
from credsim.audit.explain import NotTraced, explain, find_cases
from credsim.dashboard import knobs as kn
from credsim.dashboard import live, views
from credsim.dashboard import settings as st
from credsim.dashboard.runs import Runner
from credsim.memory import MemoryRefused
from credsim.report.html import PLOTLY_FILE
from credsim.report.labels import Labels, from_scenario
from credsim.scenario.keypath import dump
from credsim.scenario.load import Problem, ScenarioError, builtin_names, dump_yaml, load_scenario
from credsim.scenario.schema import Scenario

log = logging.getLogger("credsim.dashboard")

DEFAULT_POPULATION = 20_000
DEFAULT_DAYS = 90
MAX_POPULATION = st.MAX_POPULATION
MAX_DAYS = st.MAX_DAYS
LIVE: dict[str, Any] = {"aria-live": "polite"}
PROGRESS_ARIA: dict[str, Any] = {"aria-valuenow": "0", "aria-valuemin": "0", "aria-valuemax": "100",
                                 "aria-label": "progress of the run (both runs)"}
LIVE_TITLES = (("list_sizes", "On each list, so far"), ("grade_mix", "Grade mix, so far"))
LIVE_OUTPUTS = 4  # per live chart: figure, its cell's style, text alternative, data table
HIDDEN: dict[str, str] = {"display": "none"}
USER_ERRORS = (ScenarioError, security.PathRefused, security.UploadRefused, NotTraced, MemoryRefused,
               FileNotFoundError, RuntimeError, ValueError)

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#fff;border-bottom:1px solid #ddd;padding:.8em 1.5em}
header h1{margin:0;font-size:1.5em} header p{margin:.3em 0 0;color:#555}
.synthetic{font-size:.85em;color:#7a5c00}
.page{padding:0 1.5em 2em}
.explore{display:flex;gap:1.5em;align-items:flex-start}
.side{flex:0 0 340px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:1em;position:sticky;top:.5em;
 max-height:calc(100vh - 1em);overflow-y:auto;box-sizing:border-box}
.main{flex:1;min-width:0}
.side h3{margin:.9em 0 .3em;font-size:1em;border-bottom:1px solid #eee}
.knob{margin:.55em 0} .knob>label{display:block;font-weight:600;font-size:.9em}
.knob .dash-options-list-option{display:flex;align-items:center;gap:.3em;font-size:.9em;margin:.1em 0}
.tab-container .tab{padding:8px 12px!important;font-weight:600}
.knob input[type=number]{width:9em;padding:.2em}
.path{font-family:monospace;font-size:.72em;color:#595959;word-break:break-all}
.help{font-size:.78em;color:#666}
.row3{display:flex;gap:.5em} .row3 .knob input{width:6.5em}
button{background:#1f5fa8;color:#fff;border:0;border-radius:4px;padding:.5em 1em;font-size:1em;cursor:pointer;
 margin:.3em .3em .3em 0} button.secondary{background:#eee;color:#222;border:1px solid #ccc;font-size:.85em}
.progress{height:14px;background:#e6e6e6;border-radius:7px;overflow:hidden;margin-top:.5em}
.fill{height:100%;background:#1b9e77;transition:width .3s}
.progress-text{font-size:.8em;color:#555}
.message{white-space:pre-wrap;font-family:monospace;font-size:.8em;color:#8a1c0c;background:#fff2ef;
 border-left:3px solid #b3301e;padding:.4em .6em;margin:.5em 0}
.message:empty{display:none}
.info{font-size:.9em;color:#333;background:#eef5fb;border-left:3px solid #1f5fa8;padding:.4em .6em}
.info:empty{display:none}
table.figures{border-collapse:collapse;background:#fff;font-size:.92em;margin:.5em 0}
table.figures th,table.figures td{padding:.3em .7em;border-bottom:1px solid #eee;text-align:right}
table.figures th{background:#f2f2f2} .l{text-align:left!important} td.num{font-variant-numeric:tabular-nums;
 font-weight:600}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
.tablewrap{overflow-x:auto;max-height:20em}
.findings li{margin:.35em 0} .findings b{color:#1a1a1a}
.pair{display:flex;gap:1em} .pair .cell{flex:1;min-width:0;background:#fff;border:1px solid #eee}
.colhead{background:none!important;border:0!important} .colhead h3{margin:.6em 0 0;color:#555}
.wide{background:#fff;border:1px solid #eee}
.charts h2,.main h2{font-size:1.1em;margin:1.2em 0 .3em;border-bottom:1px solid #ddd}
.caption{font-size:.82em;color:#555} .nodata{color:#777;font-style:italic;padding:1em}
.note{background:#fbfaf3;border-left:3px solid #e6ab02;padding:.4em .8em;font-size:.9em}
.meta{color:#666} table.timeline{border-collapse:collapse;font-size:.85em;background:#fff}
table.timeline td,table.timeline th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:left}
tr.false td{color:#b3301e} tr.denied td{font-weight:700;background:#fff2ef} .bad{color:#b3301e}
.bar{display:flex;gap:1em;align-items:flex-end;flex-wrap:wrap;margin:.8em 0}
.bar .Select,.bar .dash-dropdown{min-width:420px}
.runbox{position:sticky;top:-1em;z-index:5;background:#fff;margin:-1em -1em .5em;padding:.8em 1em .5em;
 border-bottom:1px solid #ddd}
.runbox button#run{font-weight:700;padding:.55em 1.6em} button:disabled{background:#9aa7b5;cursor:not-allowed}
.knob.invalid input{border:2px solid #b3301e;background:#fff2ef;outline:none}
.field-msg{font-size:.8em;color:#8a1c0c} .field-msg:empty{display:none}
.stale{opacity:.45;filter:grayscale(60%)} .stale-note{background:#fff4e5;border-left:3px solid #b35900;
 padding:.4em .6em;font-size:.9em;margin:.4em 0} .stale-note:empty{display:none}
@media (max-width:760px){.explore{flex-direction:column}.side{position:static;max-height:none;flex:none;width:100%}
 .pair{flex-direction:column} .bar .Select,.bar .dash-dropdown{min-width:0;width:100%} .page{padding:0 .5em 1em}
 table.figures{display:block;overflow-x:auto;max-width:100%} .runbox{top:0}}
.upload{border:1px dashed #aaa;border-radius:4px;padding:.4em;text-align:center;font-size:.85em;color:#555;
 cursor:pointer;margin:.4em 0}
"""

INDEX = """<!DOCTYPE html>
<html lang="en"><head>{%metas%}<title>{%title%}</title>{%favicon%}{%css%}<style>""" + CSS + """</style></head>
<body>{%app_entry%}<footer>{%config%}{%scripts%}{%renderer%}</footer></body></html>"""


def described(alt_id: str) -> dict[str, Any]:
    """The attribute that ties a chart to its text alternative (a described-by text: the chart holds buttons)."""
    return {"aria-describedby": alt_id}


def live_table(chart: live.LiveChart) -> html.Table:
    """A live chart's numbers as a table (one row per day), the same numbers the chart draws."""
    return html.Table([html.Caption(chart.title, className="sr"),
                       html.Thead(html.Tr([html.Th(h, scope="col", className="l" if j == 0 else "")
                                           for j, h in enumerate(chart.head)])),
                       html.Tbody([html.Tr([html.Td(v, className="l" if j == 0 else "") for j, v in enumerate(r)])
                                   for r in chart.rows])], className="figures")


class Dashboard:
    """The app and its state: the runs root, the run manager, scenarios uploaded or given on the command line."""

    def __init__(self, runs_root: str | Path, scenario: str | None = None, open_run: str | None = None,
                 max_memory: float | None = None) -> None:
        self.runner = Runner(runs_root, max_memory=max_memory)
        self.extra: dict[str, tuple[str, Scenario]] = {}  # option value -> (label, scenario)
        self.initial_scenario = "city-points" if "city-points" in builtin_names() else builtin_names()[0]
        if scenario is not None:
            if scenario in builtin_names():
                self.initial_scenario = scenario
            else:
                scen = load_scenario(scenario)  # ScenarioError for the command line to print
                self.initial_scenario = self._register(f"file: {Path(scenario).name} ({scen.name})", scen)
        self.open_run = open_run
        self.app = self._build()

    # ---- scenarios -----------------------------------------------------------------------------------------
    def _register(self, label: str, scen: Scenario) -> str:
        key = f"extra:{len(self.extra) + 1}"
        self.extra[key] = (label, scen)
        return key

    def scenario_options(self) -> list[dict[str, str]]:
        opts = [{"label": n, "value": n} for n in builtin_names()]
        return opts + [{"label": label, "value": k} for k, (label, _s) in self.extra.items()]

    def base_scenario(self, key: Any) -> Scenario:
        """A built-in scenario by name, or an uploaded one; ScenarioError naming the choices otherwise."""
        if isinstance(key, str) and key in self.extra:
            return self.extra[key][1]
        if not isinstance(key, str) or key not in builtin_names():
            shown = repr(key)[:60]
            raise ScenarioError("scenario", [Problem("", f"one of the built-in scenarios {builtin_names()} "
                                                         f"(got {shown})")])
        return load_scenario(key)

    def build(self, key: Any, values: dict[str, Any], population: Any, days: Any, seed: Any
              ) -> tuple[Scenario, list[str]]:
        """The edited scenario for the form's values, validated; and a list of what was changed."""
        base = self.base_scenario(key)
        problems: list[Problem] = []
        extra: dict[kn.KeyPath, Any] = {}
        for path, raw, field in ((("population", "size"), population, "population"),
                                 (("run", "days"), days, "days"), (("run", "seed"), seed, "seed")):
            why = st.number_problem(field, raw)
            if why is not None:
                problems.append(Problem(".".join(path), why))
            else:
                extra[path] = int(float(str(raw)))
        if problems:
            raise ScenarioError(f"{base.name} (dashboard)", problems)
        scen = kn.apply_knobs(base, values, extra)
        return scen, kn.changed(base, values)

    # ---- layout --------------------------------------------------------------------------------------------
    def _build(self) -> dash.Dash:
        app = dash.Dash(__name__, title="credsim dashboard", update_title="", suppress_callback_exceptions=True,
                        serve_locally=True)
        app.index_string = INDEX
        # uploads arrive base64-encoded inside a JSON callback body: refuse anything far beyond the limit early
        app.server.config["MAX_CONTENT_LENGTH"] = 2 * security.MAX_UPLOAD_BYTES + 1_000_000
        app.layout = self._layout
        self._routes(app)
        self._callbacks(app)
        return app

    def _layout(self) -> html.Div:
        header = html.Header([
            html.H1("credsim dashboard: what does a social-credit policy do to people?"),
            html.P("Change a rule, run a synthetic population, and compare with the same citizens under no system."),
            html.P("Every citizen here is generated: rates, error profiles and responses are the scenario's "
                   "assumptions, not data about real people.", className="synthetic"),
            html.Div(id="url-message", className="message", role="alert")])
        explore = html.Div([
            html.Div([
                html.Div([
                    html.Button("Run", id="run", n_clicks=0),
                    html.Button("Cancel", id="cancel", className="secondary", n_clicks=0),
                    html.Div(html.Div(className="fill", id="progress-fill", style={"width": "0%"}),
                             className="progress", id="progress", role="progressbar", **PROGRESS_ARIA),
                    html.Div("", id="progress-text", className="progress-text", **LIVE),
                    html.Div(id="message", className="message", role="alert"),
                    html.Div(id="invalid-note", className="field-msg", role="status"),
                ], className="runbox"),
                html.H3("1. Scenario"),
                dcc.Dropdown(id="scenario", options=self.scenario_options(), value=self.initial_scenario,
                             clearable=False),
                html.Div(id="scenario-desc", className="help"),
                dcc.Upload(id="upload", children=html.Div("or drop / choose a scenario YAML file"),
                           className="upload", multiple=False),  # size checked on the server (message)
                html.Div(id="upload-message", className="message", role="alert"),
                html.H3("2. Population"),
                html.Div([self._num("population", "citizens", DEFAULT_POPULATION, 1000),
                          self._num("days", "days", DEFAULT_DAYS, 30),
                          self._num("seed", "seed", 0, 1)], className="row3"),
                html.H3("3. Policy knobs"),
                html.Div(id="knobs"),
                html.H3("4. Take it away"),
                html.Button("Download scenario (YAML)", id="btn-yaml", className="secondary", n_clicks=0),
                html.Button("Download report (zip: HTML + plotly.js)", id="btn-report", className="secondary",
                            n_clicks=0),
                html.Div(id="download-message", className="message", role="alert"),
                dcc.Download(id="dl-yaml"), dcc.Download(id="dl-report"),
            ], className="side"),
            html.Div([
                html.Div(id="stale-note", className="stale-note", role="status"),
                html.Div([html.H2("While it runs: your policy so far"),
                          html.P(id="live-caption", className="caption", **LIVE),
                          html.Div([html.Div([
                              html.H3(title),
                              html.P(id=f"live-{key}-alt", className="sr"),
                              html.Div(dcc.Graph(id=f"live-{key}", config=views.GRAPH_CONFIG),
                                       **described(f"live-{key}-alt")),
                              html.Details([html.Summary("Table: the numbers so far"),
                                            html.Div(id=f"live-{key}-table", className="tablewrap")])],
                              id=f"live-{key}-cell", className="cell") for key, title in LIVE_TITLES],
                                   className="pair")],
                         id="live-box", style={"display": "none"}),
                html.Div(html.Div(html.P("Choose a scenario, move a knob and press Run: a paired run of the policy "
                                         "and of the same citizens without it; its list sizes and grade mix are drawn "
                                         "while it runs (20,000 citizens × 90 days took 3 to 5 seconds to the "
                                         "numbers on a busy 2-core test machine)."), className="info"),
                         id="results"),
                html.Div([html.H2("Charts"), dcc.RadioItems(
                    id="compare-with", value="baseline", inline=True,
                    options=[{"label": "next to the same citizens under no system (paired baseline)",
                              "value": "baseline"},
                             {"label": "next to your previous run", "value": "previous"}])],
                    id="charts-bar", style={"display": "none"}),
                html.Div(id="results-charts"),
            ], className="main"),
        ], className="explore")
        browse = html.Div([
            html.Div([
                html.Div([html.Label("Run A"), dcc.Dropdown(id="run-a", placeholder="an audit or run directory")]),
                html.Div([html.Label("Run B (optional)"), dcc.Dropdown(id="run-b", placeholder="compare with")]),
                html.Button("Show", id="compare", n_clicks=0),
                html.Button("Refresh list", id="refresh", className="secondary", n_clicks=0),
            ], className="bar"),
            html.Div(id="browse-message", className="message", role="alert"),
            html.Div(id="browse-out", className="main"),
        ])
        explain_tab = html.Div([
            html.Div([
                html.Div([html.Label("Run"), dcc.Dropdown(id="explain-run", placeholder="a run with traced citizens")]),
                html.Div([html.Label("Suggested citizens"), dcc.Dropdown(id="citizen-pick",
                                                                         placeholder="traced, with a denial")]),
                html.Div([html.Label("Citizen id"), dcc.Input(id="citizen", type="text", debounce=True,
                                                              placeholder="e.g. 1234")]),
                html.Button("Explain", id="explain", n_clicks=0),
            ], className="bar"),
            html.Div(id="explain-message", className="message", role="alert"),
            html.Div(id="explain-out", className="main"),
        ])
        return html.Div([
            dcc.Location(id="url", refresh=False), header,
            dcc.Store(id="job"), dcc.Store(id="current"), dcc.Store(id="previous"), dcc.Store(id="ran-with"),
            dcc.Store(id="live-mark"), dcc.Store(id="live-seen"), dcc.Store(id="finished"),
            dcc.Store(id="poll-ask"), dcc.Store(id="poll-answered"),
            dcc.Interval(id="poll", interval=400, disabled=True),
            html.Div(dcc.Tabs(id="tabs", value="explore", children=[
                dcc.Tab(explore, label="Explore a policy", value="explore"),
                dcc.Tab(browse, label="Browse and compare runs", value="browse"),
                dcc.Tab(explain_tab, label="Explain a citizen", value="explain"),
            ]), className="page"),
        ])

    @staticmethod
    def _num(id_: str, label: str, value: Any, step: float) -> html.Div:
        return html.Div([html.Label(label, htmlFor=id_), dcc.Input(id=id_, type="number", value=value, step=step,
                                                                   debounce=False),
                         html.Div(id=f"{id_}-msg", className="field-msg", role="alert")],
                        className="knob", id=f"{id_}-box")

    @staticmethod
    def knob_controls(scen: Scenario, given: dict[str, Any] | None = None) -> list[Any]:
        """The knob controls, at the scenario's values or at ``given`` ones (from the address)."""
        given = given or {}
        out: list[Any] = []
        words = Labels(from_scenario(dump(scen))).name
        for k in kn.knobs_for(scen):
            kid = {"type": "knob", "id": k.id}
            value = given.get(k.id, k.value)
            if k.kind in ("sensors", "sanctions"):
                ctrl: Any = dcc.Checklist(id=kid, options=[{"label": words(o), "value": o} for o in k.options],
                                          value=list(value))
            else:
                ctrl = dcc.Input(id=kid, type="number", value=value, step=k.step or "any", debounce=False)
            attr: dict[str, Any] = {"data-knob": k.id}
            # a label names its control: the control's DOM id is Dash's rendering of the dict id
            dom_id = json.dumps(kid, sort_keys=True, separators=(",", ":"))
            out.append(html.Div([html.Label(k.label, htmlFor=dom_id if k.kind not in ("sensors", "sanctions")
                                            else None), ctrl,
                                 html.Div(id={"type": "knob-msg", "id": k.id}, className="field-msg", role="alert"),
                                 html.Div(k.help, className="help"), html.Div(k.where, className="path")],
                                className="knob", id={"type": "knob-box", "id": k.id}, **attr))
        return out or [html.P("This scenario has no policy knobs.", className="nodata")]

    # ---- HTTP routes ---------------------------------------------------------------------------------------
    def _routes(self, app: dash.Dash) -> None:
        from flask import Response

        server = app.server

        @server.route("/report/<path:name>")
        def report(name: str) -> Response:
            try:
                page = self.runner.report_html(name)
            except security.PathRefused as exc:
                return Response(f"refused: {exc}\n", status=403, mimetype="text/plain")
            except (FileNotFoundError, ValueError, KeyError, OSError) as exc:
                return Response(f"no report: {exc}\n", status=404, mimetype="text/plain")
            # the page names plotly.js beside it; from the server that is one shared file
            page = page.replace(f'src="{PLOTLY_FILE}"', f'src="/report-assets/{PLOTLY_FILE}"')
            return Response(page, mimetype="text/html")

        @server.route(f"/report-assets/{PLOTLY_FILE}")
        def plotly_js() -> Response:
            return Response(get_plotlyjs(), mimetype="text/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    # ---- callbacks -----------------------------------------------------------------------------------------
    def _callbacks(self, app: dash.Dash) -> None:
        cb = app.callback

        cb(Output("knobs", "children"), Output("scenario-desc", "children"), Output("days", "value"),
           Output("seed", "value"), Output("population", "value"), Input("scenario", "value"),
           State("url", "search"))(self.on_scenario)
        cb(Output({"type": "knob-msg", "id": ALL}, "children"), Output({"type": "knob-box", "id": ALL}, "className"),
           Output("population-msg", "children"), Output("days-msg", "children"), Output("seed-msg", "children"),
           Output("population-box", "className"), Output("days-box", "className"), Output("seed-box", "className"),
           Output("run", "disabled"), Output("invalid-note", "children"), Output("stale-note", "children"),
           Output("results", "className"), Output("results-charts", "className"),
           Input("scenario", "value"), Input({"type": "knob", "id": ALL}, "value"), Input("population", "value"),
           Input("days", "value"), Input("seed", "value"), Input("current", "data"), Input("ran-with", "data"),
           State({"type": "knob", "id": ALL}, "id"))(self.on_validate)
        cb(Output("scenario", "options"), Output("scenario", "value", allow_duplicate=True),
           Output("upload-message", "children"),
           Input("upload", "contents"), State("upload", "filename"), prevent_initial_call=True)(self.on_upload)
        # The progress poll asks again only once its last question was answered (or 4 s have gone): Dash
        # drops a callback's answer when the callback is asked again first (plotly/dash issue 1613), and on a
        # loaded machine, where an answer took longer than the 400 ms tick, every answer was dropped and the
        # page stayed at its last progress line although the run had finished.
        app.clientside_callback(
            "function(n, answered, asked) {"
            " if (asked === undefined || asked === null || answered === asked || n - asked >= 10) { return n; }"
            " return window.dash_clientside.no_update; }",
            Output("poll-ask", "data"), Input("poll", "n_intervals"), State("poll-answered", "data"),
            State("poll-ask", "data"), prevent_initial_call=True)
        cb(Output("job", "data"), Output("poll", "disabled"), Output("progress-fill", "style"),
           Output("progress", "aria-valuenow"), Output("progress-text", "children"), Output("message", "children"),
           Output("finished", "data"), Output("url", "search"), Output("ran-with", "data"),
           Output("poll-answered", "data"), Input("run", "n_clicks"), Input("poll-ask", "data"),
           State("scenario", "value"), State({"type": "knob", "id": ALL}, "value"),
           State({"type": "knob", "id": ALL}, "id"), State("population", "value"), State("days", "value"),
           State("seed", "value"), State("job", "data"), prevent_initial_call=True)(self.on_run)
        cb(Output("results", "children"), Output("current", "data"), Output("previous", "data"),
           Output("message", "children", allow_duplicate=True), Input("finished", "data"), State("current", "data"),
           prevent_initial_call=True)(self.on_finished)
        cb(Output("live-box", "style"), Output("live-caption", "children"),
           *[o for key, _t in LIVE_TITLES
             for o in (Output(f"live-{key}", "figure"), Output(f"live-{key}-cell", "style"),
                       Output(f"live-{key}-alt", "children"), Output(f"live-{key}-table", "children"))],
           Output("live-seen", "data"), Input("live-mark", "data"), Input("current", "data"), State("job", "data"),
           prevent_initial_call=True)(self.on_live)
        cb(Output("live-mark", "data"), Input("poll", "n_intervals"), State("job", "data"), State("live-mark", "data"),
           State("live-seen", "data"), prevent_initial_call=True)(self.on_live_mark)
        cb(Output("message", "children", allow_duplicate=True), Input("cancel", "n_clicks"), State("job", "data"),
           prevent_initial_call=True)(self.on_cancel)
        cb(Output("results-charts", "children"), Output("charts-bar", "style"), Input("compare-with", "value"),
           Input("current", "data"), State("previous", "data"), prevent_initial_call=True)(self.on_charts)
        cb(Output("dl-yaml", "data"), Output("download-message", "children", allow_duplicate=True),
           Input("btn-yaml", "n_clicks"), State("scenario", "value"), State({"type": "knob", "id": ALL}, "value"),
           State({"type": "knob", "id": ALL}, "id"), State("population", "value"), State("days", "value"),
           State("seed", "value"), prevent_initial_call=True)(self.on_yaml)
        cb(Output("dl-report", "data"), Output("download-message", "children", allow_duplicate=True),
           Input("btn-report", "n_clicks"), State("current", "data"), prevent_initial_call=True)(self.on_report)
        cb(Output("run-a", "options"), Output("run-b", "options"), Output("explain-run", "options"),
           Output("explain-run", "value"), Input("refresh", "n_clicks"), Input("tabs", "value"),
           Input("current", "data"), State("explain-run", "value"))(self.on_list)
        cb(Output("browse-out", "children"), Output("browse-message", "children"), Output("tabs", "value"),
           Output("url-message", "children"), Output("scenario", "value", allow_duplicate=True),
           Input("compare", "n_clicks"), Input("url", "search"), State("run-a", "value"), State("run-b", "value"),
           prevent_initial_call="initial_duplicate")(self.on_browse)
        cb(Output("citizen-pick", "options"), Output("citizen-pick", "value"),
           Input("explain-run", "value"))(self.on_explain_run)
        cb(Output("citizen", "value"), Input("citizen-pick", "value"), prevent_initial_call=True)(
            lambda v: str(v) if v is not None else no_update)
        cb(Output("explain-out", "children"), Output("explain-message", "children"), Input("explain", "n_clicks"),
           State("explain-run", "value"), State("citizen", "value"), prevent_initial_call=True)(self.on_explain)

    @staticmethod
    def _oops(exc: BaseException) -> str:
        """A one-line message for an unexpected error (the traceback goes to the server log only)."""
        log.error("dashboard callback failed:\n%s", traceback.format_exc())
        return f"Something went wrong ({type(exc).__name__}: {str(exc)[:300]}). The server log has the details."

    def _guard(self, fn: Callable[[], Any], fail: Callable[[str], Any]) -> Any:
        try:
            return fn()
        except USER_ERRORS as exc:
            return fail(str(exc))
        except Exception as exc:
            return fail(self._oops(exc))

    def on_scenario(self, key: Any, search: Any) -> tuple[Any, ...]:
        """The knobs of the chosen scenario, at the values the address gives when it names this scenario."""
        def ok() -> tuple[Any, ...]:
            scen = self.base_scenario(key)
            desc = scen.description.strip().splitlines()[0] if scen.description.strip() else ""
            q = parse_qs((search or "").lstrip("?"))
            given = st.from_search(search, scen) if q.get("scenario", [None])[0] == key else {}
            return (self.knob_controls(scen, given), desc, given.get("days", min(scen.run.days, DEFAULT_DAYS)),
                    given.get("seed", scen.run.seed), given.get("population", no_update))
        return self._guard(ok, lambda m: ([html.Div(m, className="message")], "", no_update, no_update, no_update))

    def on_validate(self, key: Any, vals: list[Any], population: Any, days: Any, seed: Any, current: Any,
                    ran_with: Any, ids: list[dict[str, str]]) -> tuple[Any, ...]:
        """Mark each invalid control where it is, disable Run, and mark results run with other settings."""
        values = self._values(vals, ids)
        try:
            knob_msgs = st.knob_problems(self.base_scenario(key), values)
        except USER_ERRORS as exc:
            knob_msgs = {i["id"]: str(exc) for i in ids}
        nums = {f: st.number_problem(f, v) for f, v in (("population", population), ("days", days),
                                                         ("seed", seed))}
        bad = len(knob_msgs) + sum(1 for v in nums.values() if v)
        settings = st.Settings(str(key), values, population, days, seed).key()
        stale = isinstance(current, str) and isinstance(ran_with, str) and ran_with != settings
        return ([knob_msgs.get(i["id"], "") for i in ids],
                ["knob invalid" if i["id"] in knob_msgs else "knob" for i in ids],
                nums["population"] or "", nums["days"] or "", nums["seed"] or "",
                *["knob invalid" if nums[f] else "knob" for f in ("population", "days", "seed")],
                bad > 0,
                (f"{bad} setting{'s are' if bad > 1 else ' is'} not valid (marked in red): fix "
                 f"{'them' if bad > 1 else 'it'} to run." if bad else ""),
                ("The settings changed since these results were computed: they show the previous settings. "
                 "Press Run to update." if stale else ""),
                "stale" if stale else "", "stale" if stale else "")

    def on_upload(self, contents: Any, filename: Any) -> tuple[Any, ...]:
        def ok() -> tuple[Any, ...]:
            if not isinstance(contents, str) or "," not in contents:
                raise security.UploadRefused("the upload could not be read")
            b64 = contents.split(",", 1)[1]
            security.check_upload_size(len(b64) * 3 // 4)  # before decoding anything
            try:
                data = base64.b64decode(b64, validate=True)
            except (binascii.Error, ValueError):
                raise security.UploadRefused("the upload is not valid base64 data") from None
            scen = security.load_uploaded_scenario(data)
            key = self._register(f"uploaded: {str(filename)[:60]} ({scen.name})", scen)
            return self.scenario_options(), key, ""
        return self._guard(ok, lambda m: (no_update, no_update, m))

    def _values(self, vals: list[Any], ids: list[dict[str, str]]) -> dict[str, Any]:
        return {i["id"]: v for i, v in zip(ids, vals, strict=True)}

    def on_cancel(self, _clicks: Any, job_id: Any) -> str:
        job = self.runner.cancel(job_id)
        return "cancelling: the run stops after its current day" if job else "no run in progress to cancel"

    def on_run(self, _clicks: Any, asked: Any, key: Any, vals: list[Any], ids: list[dict[str, str]], population: Any,
               days: Any, seed: Any, job_id: Any) -> tuple[Any, ...]:
        """Start a run (Run pressed) or report its progress (the poll); a finished run is named in ``finished``.

        A poll answers with the question it answers (``poll-answered``), so the page asks again only then
        (see the clientside gate in :meth:`_callbacks`). It stays cheap: the results page, a second or more
        to render, is :meth:`on_finished`'s, asked once.
        """
        keep = no_update
        if ctx.triggered_id == "run":
            values = self._values(vals, ids)
            try:
                scen, changes = self.build(key, values, population, days, seed)
                job = self.runner.start(scen, changes)
            except USER_ERRORS as exc:
                return (keep, keep, keep, keep, "", str(exc), keep, keep, keep, keep)
            except Exception as exc:
                return (keep, keep, keep, keep, "", self._oops(exc), keep, keep, keep, keep)
            settings = st.Settings(str(key), values, population, days, seed)
            return (job.id, False, {"width": "0%"}, "0", f"starting {scen.name} ...", "", keep,
                    st.to_search(settings), settings.key(), keep)
        found = self.runner.job(job_id)
        if found is None:  # a poll that left before the finished run's answer came back: it must not blank "done in"
            return (keep, True, keep, keep, keep, keep, keep, keep, keep, asked)
        job = found
        pct = f"{100 * job.fraction:.0f}"
        if not job.finished:
            text = f"{job.phase}: day {job.stage_day} of {job.days} ({pct}% of both runs)"
            return (keep, False, {"width": f"{pct}%"}, pct, text, keep, keep, keep, keep, asked)
        if job.error:
            return (None, True, {"width": "0%"}, "0", "the run did not finish", job.error, keep, keep, keep, asked)
        cached = " (baseline reused)" if job.baseline_cached else ""
        text = f"done in {job.wall:.1f} s{cached}: {job.name}"
        return (None, True, {"width": "100%"}, "100", text, "", job.name, keep, keep, asked)

    def on_finished(self, name: Any, current: Any) -> tuple[Any, ...]:
        """The results page of a run that has just finished (named by :meth:`on_run`); the run shown until now
        becomes the previous one."""
        keep = no_update
        if not isinstance(name, str) or name == current:  # a second poll may name the same run again
            return (keep, keep, keep, keep)
        try:
            page = self.results_page(name, current)
        except Exception as exc:
            return (keep, keep, keep, self._oops(exc))
        return (page, name, current, "")

    def on_live_mark(self, _n: Any, job_id: Any, mark: Any, seen: Any) -> Any:
        """The snapshot the live charts should show next, or no change; polled with the progress bar.

        Drawing a snapshot takes longer than a poll (about a second at 360 days), and Dash drops
        a callback's answer when the same callback is asked again before it answers (plotly/dash
        issue 1613), so charts drawn straight from the poll stopped growing after the first slow
        draw. This poll is cheap; it hands over a new snapshot only once the page has finished
        drawing the last one (``seen`` caught up with ``mark``), so at most one draw is ever in flight.
        """
        job = self.runner.job(job_id)
        if job is None:
            return no_update
        if job.finished:
            done = f"{job.id}:done"
            return done if mark != done else no_update
        snap = job.partial
        if snap is None:
            return no_update
        new = f"{job.id}:{snap.day}"
        drawing = isinstance(mark, str) and mark.startswith(f"{job.id}:") and mark != seen
        return no_update if new == mark or drawing else new

    def on_live(self, mark: Any, _current: Any, job_id: Any) -> tuple[Any, ...]:
        """The policy run's charts so far, drawn when :meth:`on_live_mark` names a new snapshot; hidden once it ends.

        Always answers with ``mark`` as seen, even when drawing failed, so the next snapshot is not held back.
        """
        keep = no_update
        seen = mark if isinstance(mark, str) else None
        unchanged = (keep,) * (2 + LIVE_OUTPUTS * len(LIVE_TITLES)) + (seen,)
        job = self.runner.job(job_id)
        if job is None or job.finished:  # a new "current" run means the job has finished
            return (HIDDEN,) + (keep,) * (1 + LIVE_OUTPUTS * len(LIVE_TITLES)) + (seen,)
        snap = job.partial
        if snap is None:
            return unchanged
        try:
            drawn = {c.key: c for c in live.figures(snap, job.labels)}
        except Exception as exc:  # a live chart is a courtesy: the final charts still come
            self._oops(exc)  # logged on the server
            return unchanged
        out: list[Any] = [{"display": "block"},
                          f"Day {snap.day} of {snap.days} of your policy's run: partial figures, redrawn every "
                          f"{live.every(snap.days)} days while it runs. The full charts replace them at the end."]
        for key, _title in LIVE_TITLES:
            c = drawn.get(key)
            fig = c.fig if c is not None else None
            out += [fig if fig is not None else {}, {} if fig is not None else HIDDEN,
                    c.alt if c is not None else "", live_table(c) if c is not None and fig is not None else None]
        return (*out, seen)

    def results_page(self, name: str, previous: Any) -> list[Any]:
        res = self.runner.result(name)
        base = self.runner.baseline_result(name)
        prev = None
        if isinstance(previous, str):
            try:
                prev = self.runner.result(previous)
            except USER_ERRORS:
                prev = None
        m = res["meta"]
        changes = m.get("dashboard_changes") or []
        return [
            html.H2(f"{m['scenario']}: {m['population']:,} citizens × {m['days']} days, seed {m['seeds'][0]}",
                    id="results-title"),
            html.P(["Your settings: " + ("; ".join(changes) if changes else "the scenario's own") + ". ",
                    html.A("Open the full report", href=f"/report/{name}", target="_blank"),
                    f" · run folder: {name}"], className="meta"),
            views.headline_table(res, base, prev, run=name),
            html.H2("What happened"), views.findings(res),
        ]

    def on_charts(self, mode: Any, current: Any, previous: Any) -> tuple[Any, ...]:
        """The chart grid of the latest run, next to its baseline or to the previous run."""
        def ok() -> tuple[Any, ...]:
            if not isinstance(current, str):
                return None, {"display": "none"}
            res = self.runner.result(current)
            if mode == "previous":
                if not isinstance(previous, str):
                    return (html.P("No previous run yet: change a knob and run again.", className="nodata"),
                            {"display": "block"})
                other, label = self.runner.result(previous), f"previous run ({previous})"
                return (views.chart_grid(res, other, right=label, span_paired=False, run=current),
                        {"display": "block"})
            return views.chart_grid(res, self.runner.baseline_result(current), run=current), {"display": "block"}
        return self._guard(ok, lambda m: (html.Div(m, className="message"), {"display": "block"}))

    def on_yaml(self, _clicks: Any, key: Any, vals: list[Any], ids: list[dict[str, str]], population: Any,
                days: Any, seed: Any) -> tuple[Any, ...]:
        def ok() -> tuple[Any, ...]:
            scen, changes = self.build(key, self._values(vals, ids), population, days, seed)
            changes += [f"population.size: {scen.population.size}", f"run.days: {scen.run.days}",
                        f"run.seed: {scen.run.seed}"]
            head = "".join(f"#   {c}\n" for c in changes)
            text = f"# {scen.name}, edited in the credsim dashboard. Changes:\n{head}" + dump_yaml(scen)
            return dcc.send_string(text, f"{scen.name}-edited.yaml"), ""
        return self._guard(ok, lambda m: (no_update, m))

    def on_report(self, _clicks: Any, current: Any) -> tuple[Any, ...]:
        def ok() -> tuple[Any, ...]:
            if not isinstance(current, str):
                return no_update, "Run a policy first: the report is written for the latest run."
            return dcc.send_bytes(self.runner.report_zip(current), f"report-{current.replace('/', '_')}.zip"), ""
        return self._guard(ok, lambda m: (no_update, m))

    def on_list(self, _clicks: Any, _tab: Any, current: Any, explain_run: Any) -> tuple[Any, ...]:
        try:
            runs = self.runner.list_runs()
        except OSError as exc:
            log.error("listing runs failed: %s", exc)
            runs = []
        opts = [{"label": r["label"], "value": r["name"]} for r in runs]
        value = current if ctx.triggered_id == "current" and isinstance(current, str) else no_update
        if explain_run is None and isinstance(current, str):
            value = current
        return opts, opts, opts, value

    def on_browse(self, _clicks: Any, search: Any, a: Any, b: Any) -> tuple[Any, ...]:
        """Show one run or compare two; from the Show button, or from the address (?run=A&vs=B&scenario=S)."""
        from_url = ctx.triggered_id != "compare"
        scen_value: Any = no_update
        if from_url:
            q = parse_qs((search or "").lstrip("?"), keep_blank_values=True)
            if "scenario" in q:
                wanted = q["scenario"][0]
                if wanted not in builtin_names():
                    msg = f"unknown scenario {wanted[:60]!r} in the address: one of {', '.join(builtin_names())}"
                    return no_update, "", no_update, msg, no_update
                scen_value = wanted
            if "run" in q:
                a, b = q["run"][0], (q.get("vs") or [None])[0]
            elif self.open_run is not None and ctx.triggered_id is None:
                a, b = self.open_run, None
            else:
                return no_update, "", no_update, "", scen_value

        def ok() -> tuple[Any, ...]:
            if not a:
                return None, "Choose a run (or two) to show.", no_update, "", scen_value
            if b:
                body = views.compare_view(self.runner.result(a), self.runner.result(b), str(a), str(b))
            else:
                res = self.runner.result(a)
                base = self.runner.baseline_result(a)
                body = html.Div([html.H2(f"{a}"), html.A("Open the full report", href=f"/report/{a}",
                                                          target="_blank"),
                                 views.headline_table(res, base, None, run=str(a), table_id="browse-table"),
                                 html.H2("What happened"),
                                 views.findings(res), views.chart_grid(res, base, prefix="browse", run=str(a))])
            return body, "", "browse" if from_url else no_update, "", scen_value
        return self._guard(ok, lambda m: (None, m, "browse" if from_url else no_update, "", scen_value))

    def _system_run(self, name: Any) -> Path:
        return self.runner.run_dirs(name)[0]

    def on_explain_run(self, name: Any) -> tuple[Any, ...]:
        if not name:
            return [], None

        def ok() -> tuple[Any, ...]:
            return suggest(self._system_run(name))

        def suggest(run: Path) -> tuple[Any, ...]:
            opts: list[dict[str, Any]] = []
            seen: set[int] = set()
            for kind, label in (("wrongful", "wrongfully denied"), ("denied", "denied"),
                                ("association", "denied for contacts")):
                traced, _untraced = find_cases(run, kind, 8)
                for c in traced:
                    if c not in seen:
                        seen.add(c)
                        opts.append({"label": f"{c}: {label}", "value": c})
            con = security.safe_connect(self.runner.root, run.relative_to(self.runner.root).as_posix())
            try:
                rows = con.execute("SELECT citizen FROM citizens WHERE traced AND n_records_true + n_records_false "
                                   "> 0 ORDER BY n_records_false DESC, citizen LIMIT 8").fetchall()
            finally:
                con.close()
            for (c,) in rows:
                if int(c) not in seen:
                    seen.add(int(c))
                    opts.append({"label": f"{c}: has records", "value": int(c)})
            return opts, (opts[0]["value"] if opts else None)
        return self._guard(ok, lambda m: ([], None))

    def on_explain(self, _clicks: Any, name: Any, citizen: Any) -> tuple[Any, ...]:
        def ok() -> tuple[Any, ...]:
            if not name:
                return None, "Choose a run first."
            text = str(citizen if citizen is not None else "").strip()
            if not text.isdigit() or len(text) > 12:
                return None, (f"a citizen id is a whole number of at least 0 (got {text[:40]!r}); "
                              "pick one from the suggestions")
            ex = explain(self._system_run(name), int(text))
            return views.explain_view(ex), ""
        return self._guard(ok, lambda m: (None, m))


def create_app(runs_root: str | Path = "runs", scenario: str | None = None, open_run: str | None = None) -> dash.Dash:
    """The Dash app over ``runs_root`` (created if missing); ``scenario``: a built-in name or a YAML file."""
    return Dashboard(runs_root, scenario, open_run).app
