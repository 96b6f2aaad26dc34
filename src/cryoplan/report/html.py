"""One self-contained HTML report (pictures embedded as PNG data), and the same as a PDF."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import shutil
import tempfile
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure
from scipy import ndimage

from cryoplan import __version__
from cryoplan.report import figures
from cryoplan.report.data import ReportData, load_report_data

CSS = """
body { font-family: system-ui, sans-serif; max-width: 1280px; margin: 1.5em auto; color: #222; }
h1 { margin-bottom: 0.1em; } .sub { color: #666; margin-top: 0; }
.verdict { padding: 0.9em 1.2em; border-radius: 6px; font-size: 1.15em; margin: 1em 0; }
.ok { background: #e3f6e3; border-left: 6px solid #2e7d32; }
.bad { background: #fde8e8; border-left: 6px solid #c62828; }
.none { background: #eef1f5; border-left: 6px solid #607d8b; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; }
td, th { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .warn { color: #b71c1c; } .note { color: #555; }
.trust { background: #fff8e1; border-left: 6px solid #f9a825; padding: 0.6em 1.2em; }
"""


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _xyz(point: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in point)


MET = {True: "yes", False: "NO", None: "—"}


def _f(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _sections(data: ReportData) -> list[tuple[str, str]]:
    """(title, HTML) of the text sections, shared by the HTML and the PDF."""
    s = data.summary
    o = data.outcome
    spacing, to_edge = probe_geometry(data)
    probes = _table(
        ["probe", "model", "diameter mm", "active mm", "tip (LPS mm)", "entry (LPS mm)",
         "to the nearest probe mm", "active centre to target edge mm (+ inside)"],
        [
            [p["name"], p["model"] or "inline", f"{p['diameter_mm']:g}",
             f"{p['active_length_mm']:g}", _xyz(p["tip_mm"]), _xyz(p["entry_mm"]),
             _f(spacing[i]), _f(to_edge[i])]
            for i, p in enumerate(s["probes"])
        ],
    )  # fmt: skip
    protocol = _table(
        ["phase", "from (min)", "to (min)", "probes working"],
        [
            [p["phase"].replace("_", " "), f"{p['start_s'] / 60:g}", f"{p['end_s'] / 60:g}",
             ", ".join(p.get("probes", [])) or "none"]
            for p in s["protocol"]
        ],
    )  # fmt: skip
    cycles = o.get("verdict", {}).get("freeze_thaw_cycles")
    cycle_note = (
        f"<p>{cycles} freeze cycle{'s' if cycles != 1 else ''}; the injury model credits a "
        "repeated cycle with no extra kill (none is sourced: injury.yaml).</p>"
        if cycles
        else ""
    )
    sensors = s.get("sensors") or []
    sensor_note = (
        "<p>Thermocouples (shown on the slices): "
        + "; ".join(f"{html.escape(x['name'])} at {_xyz(x['at_mm'])}" for x in sensors)
        + " (LPS mm).</p>"
        if sensors
        else ""
    )
    out = [("Plan", probes + protocol + cycle_note + sensor_note)]
    if data.plan is not None:
        out.append(("How the plan was chosen", _planning_html(data.plan)))
    t = o.get("target")
    if t:
        cov = t["coverage_percent"]
        rows = [
            ["target volume (mL)", _f(t["volume_ml"], 2)],
            ["target in the lethal zone (%)", _f(cov["lethal"])],
            ["target at or below −20 °C (%)", _f(cov["-20"])],
            ["target at or below 0 °C (%)", _f(cov["0"])],
        ]
        rows += [
            [f"target + {m} mm in the lethal zone (%)", _f(v)]
            for m, v in t["margin_coverage_percent"].items()
        ]
        m = t["margin_mm"]
        rows += [
            ["minimum margin (mm)", _f(m["minimum"])],
            ["mean margin (mm)", _f(m["mean"])],
            [
                "minimum margin at (LPS mm)",
                ", ".join(f"{v:.1f}" for v in m.get("minimum_at_lps_mm", [])),
            ],
            ["side of the minimum margin", m.get("minimum_side", "—")],
        ]
        out.append(("Target", _table(["measure", "value"], rows)))
    structures = _table(
        ["structure", "volume mL", "in lethal zone mL", "frozen (≤ 0 °C) mL", "coldest °C",
         "clearance from lethal zone mm", "clearance from ice mm", "limit °C", "met"],
        [
            [name, _f(v["volume_ml"]), _f(v["lethal_volume_ml"], 2), _f(v["frozen_volume_ml"], 2),
             _f(v["minimum_temperature_c"]), _f(v["clearance_from_lethal_zone_mm"]),
             _f(v.get("clearance_from_ice_mm")), _f(v.get("keep_above_c")),
             "held at blood temperature (see the ice clearance)"
             if v.get("constraint_note") else MET[v.get("constraint_met")]]
            for name, v in o["structures"].items()
        ],
    )  # fmt: skip
    out.append(("Other structures (collateral damage)", structures))
    sinks = [(n, v["heat_sink"]) for n, v in o["structures"].items() if "heat_sink" in v]
    if sinks:
        out.append((
            "Heat sinks: how far the lethal zone reaches from the target's centre",
            _table(
                ["vessel", "vessel from target centre mm", "reach toward it mm", "reach away mm"],
                [[n, _f(h["vessel_distance_from_target_centre_mm"]),
                  _f(h["lethal_reach_toward_mm"]), _f(h["lethal_reach_away_mm"])]
                 for n, h in sinks],
            ),
        ))  # fmt: skip
    iso = _table(
        ["isotherm of T_min", "volume mL", "extent x × y × z mm"],
        [
            [f"{k} °C", _f(v["volume_ml"]), " × ".join(f"{e:.0f}" for e in v["extent_mm"])]
            for k, v in s["isotherms"].items()
        ]
        + [["lethal zone", _f(s["lethal_zone"]["volume_ml"]), ""]],
    )
    out.append(("Ice ball", iso))
    items = "".join(f'<li class="warn">{html.escape(w)}</li>' for w in o["warnings"])
    items += "".join(f'<li class="note">{html.escape(n)}</li>' for n in o["notes"])
    e = s["energy_balance"]
    tm = s["timing"]
    shape = " × ".join(str(n) for n in s["grid"]["shape"])
    items += (
        f'<li class="note">energy balance error {e["relative_error"]:.1e} '
        f"(probes {e['probes_j'] / 1e3:.1f} kJ); {tm['simulated_s'] / 60:.1f} min simulated in "
        f"{tm['wall_time_s']:.1f} s on a {shape} grid at {s['grid']['spacing_mm'][0]:g} mm</li>"
    )
    out.append(("Warnings and notes", f"<ul>{items}</ul>"))
    return out


def probe_geometry(data: ReportData) -> tuple[list[float | None], list[float | None]]:
    """Per probe: the distance [mm] from its active length to the nearest other probe's, and
    from the middle of its active length to the target's edge (positive inside the target;
    None without a target)."""
    segments = figures.probe_segments(data)
    samples = [np.linspace(tip, end, 21) for tip, end, _ in segments]
    spacing: list[float | None] = []
    for i, own in enumerate(samples):
        others = [
            float(np.min(np.linalg.norm(own[:, None] - other[None], axis=2)))
            for j, other in enumerate(samples)
            if j != i
        ]
        spacing.append(min(others) if others else None)
    target = (data.outcome.get("target") or {}).get("tissue")
    names = data.tissue_names
    if target not in names:
        return spacing, [None] * len(segments)
    mask = data.tissue_index == names.index(target)
    step = np.abs(np.diag(data.affine_lps)[:3])
    inside = ndimage.distance_transform_edt(mask, sampling=step)
    outside = ndimage.distance_transform_edt(~mask, sampling=step)
    signed = np.where(mask, inside, -outside)
    to_edge: list[float | None] = []
    for tip, end, _ in segments:
        index = np.rint(data.index_of_lps(0.5 * (tip + end))).astype(int)
        index = np.clip(index, 0, np.asarray(mask.shape) - 1)
        to_edge.append(float(signed[tuple(index)]))
    return spacing, to_edge


def _figures(data: ReportData) -> list[tuple[str, Figure]]:
    figs = [("Slices through the target", figures.slices_figure(data))]
    strip = figures.axial_strip_figure(data)
    if strip is not None:
        figs.append(("Axial slices across the target, inferior to superior", strip))
    if figures.worst_point_index(data) is not None:
        figs.append(
            ("Slices through the point of smallest margin (×)", figures.slices_figure(data, True))
        )
    figs += [
        ("3-D view", figures.three_d_figure(data)),
        ("Ice-ball growth", figures.growth_figure(data)),
        ("Temperature–volume histograms", figures.histogram_figure(data)),
    ]
    sensors = figures.sensors_figure(data)
    if sensors is not None:
        figs.insert(len(figs) - 2, ("Thermocouples", sensors))
    return figs


def _planning_html(plan: dict[str, Any]) -> str:
    """The planner's account of this plan (its summary.json): status, P(met), the paths,
    the sessions of a staged plan, and every alternative it tried."""
    error = plan["settings"]["placement_error_mm"]
    p = plan.get("success_probability")
    robust = plan.get("robustness") or (plan.get("staged") or {}).get("robustness") or {}
    interval = robust.get("interval_95")
    verified = plan.get("verified") or {}
    rows = [
        ["status", plan["status"] + (f": {plan['blocked']}" if plan.get("blocked") else "")],
        ["sessions", str(plan["sessions"])],
        [
            "P(objective met) under placement error",
            "—"
            if p is None
            else f"{p:.2f}"
            + (f" (95 % interval {interval[0]:.2f}–{interval[1]:.2f}, " if interval else " (")
            + f"σ {error['lateral']:g} mm lateral, {error['depth']:g} mm depth, "
            f"{robust.get('samples', '?')} samples; wanted ≥ {plan['min_success_probability']:g})",
        ],
        ["objective", _objective_text(plan["objective"])],
        [
            "verified at the case's spacing",
            "—"
            if not verified
            else ("met" if verified["met"] else "NOT met: " + "; ".join(verified["missed"])),
        ],
    ]
    parts = [_table(["", ""], rows)]
    sessions = (plan.get("staged") or {}).get("sessions") or [
        {"session": 1, "probes": plan.get("probes") or []}
    ]
    paths = [
        [str(s["session"]), q["name"], _f(q["depth_mm"]), _f(q["angle_from_axial_plane_deg"]),
         "—" if q["clearance_mm"] is None else _f(q["clearance_mm"]),
         q["closest_no_fly"] or "none near"]
        for s in sessions
        for q in s["probes"]
    ]  # fmt: skip
    parts.append(
        "<p>Paths from the skin:</p>"
        + _table(
            [
                "session",
                "probe",
                "depth mm",
                "angle from axial plane °",
                "clearance mm",
                "nearest no-fly structure",
            ],
            paths,
        )
    )
    staged = plan.get("staged")
    if staged:
        parts.append(
            f"<p>Staged plan: {html.escape(staged['reason'])}.</p>"
            + _table(
                ["session", "part of the target mL", "part centre (LPS mm)", "probes", "protocol"],
                [
                    [
                        str(s["session"]),
                        _f(s["part_volume_ml"]),
                        _xyz(s["part_centre_lps_mm"]),
                        str(s["probe_count"]),
                        s["protocol"],
                    ]
                    for s in staged["sessions"]
                ],
            )
        )
    alternatives = [
        [str(a["probes"]), a["protocol"], _f(a["spread"], 2), _f(a["depth_offset_mm"]),
         _f(a["lethal_coverage_percent"]), _f(a["ice_margin_mm"]), MET[a["met_on_model"]],
         "—" if a["success_probability"] is None else f"{a['success_probability']:.2f}"]
        for a in plan.get("alternatives", [])
    ]  # fmt: skip
    if alternatives:
        parts.append(
            "<p>Alternatives tried (on the search model):</p>"
            + _table(
                [
                    "probes",
                    "protocol",
                    "spread",
                    "depth offset mm",
                    "target lethal %",
                    "ice margin mm",
                    "met",
                    "P(met)",
                ],
                alternatives,
            )
        )
    notes = "".join(f'<li class="note">{html.escape(n)}</li>' for n in plan.get("notes", []))
    return "".join(parts) + f"<ul>{notes}</ul>"


def _objective_text(objective: dict[str, Any]) -> str:
    text = (
        f"all of {objective['target']} lethal; ice (0 °C) {objective['ice_margin_mm']:g} mm "
        "beyond it"
    )
    if objective.get("lethal_margin_mm") is not None:
        text += f"; lethal zone {objective['lethal_margin_mm']:g} mm beyond it"
    for name, limit in objective.get("critical_structures", {}).items():
        text += f"; {name} above {limit['keep_above_c']:g} °C"
    return text


INTENDED_USE = (
    "Research use only: not a medical device. A prediction from a model whose probe figures "
    "are validated on phantoms and two swine organs (docs/validation.md), to plan and compare, "
    "not to decide a treatment alone."
)


def _verdict_html(data: ReportData) -> str:
    v = data.outcome["verdict"]
    cls = {True: "ok", False: "bad", None: "none"}[v["complete_ablation_with_margin"]]
    parts = [f'<div class="verdict {cls}"><b>Verdict:</b> {html.escape(v["text"])}</div>']
    margin = _margin_sentence(data.outcome.get("target"))
    if margin:
        parts.append(f"<p>{html.escape(margin)}</p>")
    advice = advice_sentence(data)
    if advice:
        parts.append(f"<p><b>What would help:</b> {html.escape(advice)}</p>")
    parts.append(_trust_html(data))
    return "".join(parts)


def advice_sentence(data: ReportData) -> str | None:
    """Where the margin falls short: the worst point, the probe nearest to it and how far,
    and the usual remedies (not a plan: `cryoplan plan` searches for one)."""
    target = data.outcome.get("target")
    if not target or target.get("margin_mm", {}).get("minimum") is None:
        return None
    asked = float(target["required_margin_mm"])
    reached = float(target["margin_mm"]["minimum"])
    where = target["margin_mm"].get("minimum_at_lps_mm")
    if reached >= asked or not where:
        return None
    point = np.asarray(where, float)
    nearest, distance = None, np.inf
    for p, (tip, end, _) in zip(data.summary["probes"], figures.probe_segments(data), strict=True):
        along = np.linspace(tip, end, 41)
        d = float(np.min(np.linalg.norm(along - point, axis=1)))
        if d < distance:
            nearest, distance = p["name"], d
    side = target["margin_mm"].get("minimum_side", "?")
    return (
        f"the margin is shortest at {_xyz(where)} mm LPS ({side}), {distance:.1f} mm from "
        f"probe {nearest}'s active length. A probe nearer that point, probe {nearest} moved "
        f"about {asked - reached:.1f} mm towards it, or a longer freeze would close it "
        "(cryoplan plan searches such changes and checks what they freeze)."
    )


def _margin_sentence(target: dict[str, Any] | None) -> str | None:
    """The margin asked for and the one reached, with the sign spelled out."""
    if not target or target.get("margin_mm", {}).get("minimum") is None:
        return None
    asked = float(target["required_margin_mm"])
    reached = float(target["margin_mm"]["minimum"])
    side = target["margin_mm"].get("minimum_side", "?")
    if reached >= 0:
        where = f"the lethal zone reaches {reached:.1f} mm beyond the target's edge at its nearest"
    else:
        where = (
            f"the lethal zone stops {-reached:.1f} mm inside the target's edge on the {side} "
            "side (tumour left alive there)"
        )
    short = asked - reached
    verdict = "met" if short <= 0 else f"{short:.1f} mm short of it on the {side} side"
    return f"Margin asked for: {asked:g} mm. Reached: {reached:+.1f} mm: {where}; {verdict}."


def _trust_html(data: ReportData) -> str:
    """How far to trust the figures: the intended use, each probe model's calibration and
    validation residuals (the uncertainty of its sizes), the frozen-properties setting."""
    rows = []
    for name, model in sorted((data.summary.get("probe_models") or {}).items()):
        checked = model.get("validation")
        if checked:
            low, high = checked["residual_range_mm"]
            spread = f"{low:+.1f} mm" if checked["points"] == 1 else f"{low:+.1f} to {high:+.1f} mm"
            residual = (
                f"{spread} on its one validation point"
                if checked["points"] == 1
                else f"{spread} over {checked['points']} validation points (mean |error| "
                f"{checked['mean_abs_residual_mm']:.1f} mm)"
            )
        else:
            residual = "not validated"
        rows.append([name, "yes" if model.get("calibrated") else "no", residual])
    table = (
        _table(["probe model", "calibrated", "zone sizes against measurements"], rows)
        if rows
        else ""
    )
    setting = data.summary.get("frozen_properties", "constant")
    return (
        "<div class='trust'><b>How far to trust these figures.</b> "
        f"{html.escape(INTENDED_USE)} Negative residuals: the model's zones are smaller than "
        f"measured. Frozen properties: {html.escape(setting)}.{table}</div>"
    )


def render_html(data: ReportData) -> str:
    s = data.summary
    name = html.escape(s["name"])
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>cryoplan report: {name}</title><style>{CSS}</style></head><body>",
        f"<h1>cryoplan report: {name}</h1>",
        f"<p class='sub'>case file SHA-256 {html.escape(str(s.get('case_file_sha256'))[:12])}… · "
        f"cryoplan {__version__} · "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · "
        f"cell death model: {html.escape(data.outcome['injury_model'])}</p>",
        _verdict_html(data),
    ]
    sections = _sections(data)
    parts += [f"<h2>{html.escape(t)}</h2>{body}" for t, body in sections[:1]]
    for title, fig in _figures(data):
        alt = html.escape(title)
        parts.append(f"<h2>{alt}</h2><img alt='{alt}' src='data:image/png;base64,{_png(fig)}'>")
    parts += [f"<h2>{html.escape(t)}</h2>{body}" for t, body in sections[1:]]
    parts.append("</body></html>")
    return "\n".join(parts)


def _text_page(data: ReportData) -> Figure:
    """A PDF page with the verdict and the key numbers."""
    o = data.outcome
    lines = [f"cryoplan report: {data.summary['name']}", "", "Verdict: " + o["verdict"]["text"]]
    margin = _margin_sentence(o.get("target"))
    lines += [margin, ""] if margin else [""]
    lines += [INTENDED_USE, ""]
    t = o.get("target")
    if t:
        m = t["margin_mm"]
        lines += [
            f"target {t['tissue']}: {t['volume_ml']:.2f} mL; "
            f"in the lethal zone {t['coverage_percent']['lethal']:.1f} %",
            f"margin: minimum {m['minimum']:.1f} mm ({m.get('minimum_side', '—')}), "
            f"mean {m['mean']:.1f} mm; required {t['required_margin_mm']:g} mm",
        ]
    for name, v in o["structures"].items():
        lines.append(
            f"{name}: {v['lethal_volume_ml']:.2f} mL in the lethal zone, "
            f"coldest {v['minimum_temperature_c']:.1f} °C"
        )
    lines += ["", *("WARNING: " + w for w in o["warnings"]), *o["notes"]]
    fig = plt.figure(figsize=(8.27, 11.69))
    fig.text(0.06, 0.95, "\n".join(lines), va="top", ha="left", fontsize=9.5, wrap=True)
    return fig


def write_report(
    directory: str | Path, pdf: bool = False, require_complete: bool = True
) -> list[Path]:
    """Write report.html (and report.pdf) into a result directory; return the paths written.
    The directory must have been published whole (`cryoplan.outputs.check_complete`) unless
    `require_complete` is False (a folder still being staged, which will be)."""
    if require_complete:
        from cryoplan.outputs import check_complete  # noqa: PLC0415

        check_complete(directory)
    data = load_report_data(directory)
    d = Path(directory)
    staging = Path(tempfile.mkdtemp(prefix=".report.", dir=d))
    written = []
    try:
        (staging / "report.html").write_text(render_html(data), "utf-8")
        names = ["report.html"]
        if pdf:
            with PdfPages(staging / "report.pdf") as pages:
                for fig in [_text_page(data)] + [f for _, f in _figures(data)]:
                    pages.savefig(fig)
                    plt.close(fig)
            names.append("report.pdf")
        for name in names:
            (staging / name).replace(d / name)
            written.append(d / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
