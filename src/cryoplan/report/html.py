"""The report: one self-contained HTML page (templates/report.html.j2) and the same as PDF.

`report_context` gathers what the page shows from a results folder, as plain values; the
Jinja2 template lays it out (autoescaped). The HTML inlines its pictures (PNG data) and the
interactive 3-D viewer (report/static/view3d.js, with the scene of `report.scene`), so it
opens with no server and no network. The PDF is the template's print variant (A4 pages,
the static 3-D picture in place of the viewer) laid out by WeasyPrint.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from scipy import ndimage

from cryoplan import __version__
from cryoplan.report import figures, scene
from cryoplan.report.data import ReportData, load_report_data


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _table(header: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    """A table for the template's `table` macro: a cell is a string, or {text, cls}."""
    return {"header": header, "rows": rows}


def _xyz(point: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in point)


MET = {True: "yes", False: "NO", None: "—"}


def _f(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _plan_context(data: ReportData) -> dict[str, Any]:
    """The probes, the protocol, the cycles and the thermocouples."""
    s = data.summary
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
    return {
        "probes": probes,
        "protocol": protocol,
        "cycles": data.outcome.get("verdict", {}).get("freeze_thaw_cycles"),
        "sensors": [f"{x['name']} at {_xyz(x['at_mm'])}" for x in s.get("sensors") or []],
    }


def _paths_context(data: ReportData) -> dict[str, Any] | None:
    """Each probe's way in from the skin (summary.json's `paths`; image cases)."""
    paths = data.summary.get("paths")
    if not paths:
        return None
    rows = []
    for p in paths:
        crosses = " → ".join(f"{c['region']} {c['length_mm']:.0f}" for c in p["crosses"])
        nearest = p["nearest_no_fly"] or "none near"
        problem = p["problem"]
        rows.append([
            p["probe"], _xyz(p["skin_entry_mm"]), _f(p["depth_mm"]),
            f"{p['angle_to_axial_plane_deg']:+.0f}", f"{p['angle_in_axial_plane_deg']:+.0f}",
            {"text": crosses, "cls": "text"}, nearest, _f(p["clearance_mm"]),
            {"text": "allowed" if problem is None else problem,
             "cls": "text" if problem is None else "text warn"},
        ])  # fmt: skip
    wanted = paths[0]["clearance_wanted_mm"]
    return {
        "no_fly_note": f"{wanted:g} mm wanted beyond the probe's radius",
        "table": _table(
            ["probe", "skin entry (LPS mm)", "depth mm", "to axial plane °", "in axial plane °",
             "crosses, skin to tip (mm)", "nearest no-fly", "clearance mm", "check"],
            rows,
        ),
    }  # fmt: skip


def _target_table(data: ReportData) -> dict[str, Any] | None:
    t = data.outcome.get("target")
    if not t:
        return None
    cov = t["coverage_percent"]
    # where the target comes from: its organs by name (a drawn target's label says so)
    labels = [name for name, o in (data.outcome.get("organs") or {}).items()
              if o["role"] == "target"]  # fmt: skip
    rows = [["the target's labels", ", ".join(labels)]] if labels else []
    rows += [
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
        ["minimum margin at (LPS mm)", _xyz(m.get("minimum_at_lps_mm", []))],
        ["side of the minimum margin", m.get("minimum_side", "—")],
    ]
    return _table(["measure", "value"], rows)


ROLE_WORDS = {
    "target": "target",
    "host": "holds the target",
    "vessel": "vessel (blood temperature)",
    "nearby": "",
}


def _organs_context(data: ReportData) -> dict[str, Any] | None:
    """Per organ of the label map, nearest the ice first; a frozen organ other than the
    target's host is marked as the warnings are."""
    organs = data.outcome.get("organs")
    if not organs:
        return None

    def order(item: tuple[str, dict[str, Any]]) -> float:
        clearance = item[1]["ice_clearance_mm"]
        return np.inf if clearance is None else clearance

    rows = []
    for name, o in sorted(organs.items(), key=order):
        frozen = o["role"] == "nearby" and o["frozen_volume_ml"] > 0.0
        rows.append([
            {"text": name, "cls": "warn" if frozen else ""}, ROLE_WORDS[o["role"]],
            o["tissue"], _f(o["volume_in_grid_ml"]), _f(o["frozen_volume_ml"], 2),
            _f(o["lethal_volume_ml"], 2), _f(o["minimum_temperature_c"]),
            _f(o["ice_clearance_mm"]),
        ])  # fmt: skip
    names_from = (data.summary.get("organ_labels") or {}).get("names_from", "")
    return {
        "names_from": names_from,
        "table": _table(
            ["organ", "role", "simulated as", "in the region mL", "frozen (≤ 0 °C) mL",
             "in lethal zone mL", "coldest °C", "ice clearance mm"],
            rows,
        ),
    }  # fmt: skip


def _structures_table(data: ReportData) -> dict[str, Any]:
    return _table(
        ["tissue", "volume mL", "in lethal zone mL", "frozen (≤ 0 °C) mL", "coldest °C",
         "clearance from lethal zone mm", "clearance from ice mm", "limit °C", "met"],
        [
            [name, _f(v["volume_ml"]), _f(v["lethal_volume_ml"], 2), _f(v["frozen_volume_ml"], 2),
             _f(v["minimum_temperature_c"]), _f(v["clearance_from_lethal_zone_mm"]),
             _f(v.get("clearance_from_ice_mm")), _f(v.get("keep_above_c")),
             "held at blood temperature (see the ice clearance)"
             if v.get("constraint_note") else MET[v.get("constraint_met")]]
            for name, v in data.outcome["structures"].items()
        ],
    )  # fmt: skip


def _heat_sinks_table(data: ReportData) -> dict[str, Any] | None:
    sinks = [(n, v["heat_sink"]) for n, v in data.outcome["structures"].items() if "heat_sink" in v]
    if not sinks:
        return None
    return _table(
        ["vessel", "vessel from target centre mm", "reach toward it mm", "reach away mm"],
        [[n, _f(h["vessel_distance_from_target_centre_mm"]), _f(h["lethal_reach_toward_mm"]),
          _f(h["lethal_reach_away_mm"])] for n, h in sinks],
    )  # fmt: skip


def _ice_ball_table(data: ReportData) -> dict[str, Any]:
    s = data.summary
    return _table(
        ["isotherm of T_min", "volume mL", "extent x × y × z mm"],
        [
            [f"{k} °C", _f(v["volume_ml"]), " × ".join(f"{e:.0f}" for e in v["extent_mm"])]
            for k, v in s["isotherms"].items()
        ]
        + [["lethal zone", _f(s["lethal_zone"]["volume_ml"]), ""]],
    )


def _run_note(data: ReportData) -> str:
    s = data.summary
    e = s["energy_balance"]
    tm = s["timing"]
    shape = " × ".join(str(n) for n in s["grid"]["shape"])
    return (
        f"energy balance error {e['relative_error']:.1e} (probes {e['probes_j'] / 1e3:.1f} kJ); "
        f"{tm['simulated_s'] / 60:.1f} min simulated in {tm['wall_time_s']:.1f} s on a {shape} "
        f"grid at {s['grid']['spacing_mm'][0]:g} mm"
    )


def _identity(data: ReportData) -> str:
    """The case's and the series' identity (digests, never a patient's name or a path)."""
    s = data.summary
    parts = [f"case file SHA-256 {str(s.get('case_file_sha256'))[:12]}…"]
    anatomy = s.get("anatomy") or {}
    if anatomy.get("labels_sha256"):
        image = f"image: {anatomy['image']}" if anatomy.get("image") else "no image"
        parts.append(f"{image}; label map SHA-256 {anatomy['labels_sha256'][:12]}…")
    lesions = anatomy.get("synthetic_lesions") or []
    if lesions:
        parts.append(f"{len(lesions)} synthetic lesion{'s' if len(lesions) != 1 else ''}")
    parts += [
        f"cryoplan {__version__}",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        f"cell death model: {data.outcome['injury_model']}",
    ]
    return " · ".join(parts)


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


STRIPS = (
    ("axial", "inferior to superior"),
    ("coronal", "anterior to posterior"),
    ("sagittal", "right to left"),
)


def _figures(data: ReportData) -> tuple[list[tuple[str, Figure]], list[tuple[str, Figure]]]:
    """(the slice figures, the curves) in the order the report shows them."""
    slices = [("Slices through the target", figures.slices_figure(data))]
    for view, order in STRIPS:
        strip = figures.strip_figure(data, view)
        if strip is not None:
            slices.append((f"{view.capitalize()} slices across the target, {order}", strip))
    if figures.worst_point_index(data) is not None:
        slices.append(
            ("Slices through the point of smallest margin (×)", figures.slices_figure(data, True))
        )
    curves = [("Ice-ball growth", figures.growth_figure(data))]
    sensors = figures.sensors_figure(data)
    if sensors is not None:
        curves.append(("Thermocouples", sensors))
    curves.append(("Temperature–volume histograms", figures.histogram_figure(data)))
    return slices, curves


def _planning_context(plan: dict[str, Any]) -> dict[str, Any]:
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
    staged = plan.get("staged")
    alternatives = [
        [str(a["probes"]), a["protocol"], _f(a["spread"], 2), _f(a["depth_offset_mm"]),
         _f(a["lethal_coverage_percent"]), _f(a["ice_margin_mm"]), MET[a["met_on_model"]],
         "—" if a["success_probability"] is None else f"{a['success_probability']:.2f}"]
        for a in plan.get("alternatives", [])
    ]  # fmt: skip
    return {
        "summary": _table(["", ""], rows),
        "paths": _table(
            ["session", "probe", "depth mm", "angle from axial plane °", "clearance mm",
             "nearest no-fly structure"],
            paths,
        ),
        "staged": None if not staged else _table(
            ["session", "part of the target mL", "part centre (LPS mm)", "probes", "protocol"],
            [[str(s["session"]), _f(s["part_volume_ml"]), _xyz(s["part_centre_lps_mm"]),
              str(s["probe_count"]), s["protocol"]] for s in staged["sessions"]],
        ),
        "staged_reason": (staged or {}).get("reason"),
        "alternatives": None if not alternatives else _table(
            ["probes", "protocol", "spread", "depth offset mm", "target lethal %",
             "ice margin mm", "met", "P(met)"],
            alternatives,
        ),
        "notes": plan.get("notes", []),
    }  # fmt: skip


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


def _spread(checked: dict[str, Any]) -> str:
    """A probe model's validation residuals: one, or their range [mm]."""
    low, high = checked["residual_range_mm"]
    return f"{low:+.1f} mm" if checked["points"] == 1 else f"{low:+.1f} to {high:+.1f} mm"


def uncertainty_sentence(data: ReportData) -> str | None:
    """The probe models' validation residuals said beside the margin they make uncertain."""
    parts = []
    for name, model in sorted((data.summary.get("probe_models") or {}).items()):
        checked = model.get("validation")
        if not checked:
            parts.append(f"{name} is not validated against measured ice balls")
            continue
        points = checked["points"]
        parts.append(
            f"{name}'s zones differ from measured ones by {_spread(checked)} "
            f"({points} validation point{'s' if points != 1 else ''})"
        )
    if not parts or not (data.outcome.get("target") or {}).get("margin_mm"):
        return None
    return "Uncertainty: " + "; ".join(parts) + ". The margin is uncertain by as much."


def _trust_table(data: ReportData) -> dict[str, Any] | None:
    """Each probe model's calibration and validation residuals (the uncertainty of its
    sizes)."""
    rows = []
    for name, model in sorted((data.summary.get("probe_models") or {}).items()):
        checked = model.get("validation")
        if checked:
            residual = (
                f"{_spread(checked)} on its one validation point"
                if checked["points"] == 1
                else f"{_spread(checked)} over {checked['points']} validation points (mean "
                f"|error| {checked['mean_abs_residual_mm']:.1f} mm)"
            )
        else:
            residual = "not validated"
        rows.append([name, "yes" if model.get("calibrated") else "no", residual])
    if not rows:
        return None
    return _table(["probe model", "calibrated", "zone sizes against measurements"], rows)


VIEWER_MISSING = (
    "The interactive 3-D view was not built into this installation (make web builds it: "
    "npm ci and esbuild in web/); the static picture stands in."
)


def _viewer_context(data: ReportData) -> dict[str, Any] | None:
    """The inlined viewer, its scene and legend; None where the viewer was not built."""
    script = scene.viewer_script()
    if script is None:
        return None
    payload, legend = scene.scene_payload(data)
    # inside <script> elements: no "</" may close them early
    return {
        "script": script.replace("</script", "<\\/script"),
        "payload_json": json.dumps(payload).replace("</", "<\\/"),
        "legend": legend,
    }


def figure_pngs(data: ReportData) -> dict[str, list[dict[str, str]]]:
    """The report's pictures as PNG data, drawn once for the HTML and the PDF alike."""
    slices, curves = _figures(data)
    return {
        "slice_figures": [{"title": t, "png_b64": _png(f)} for t, f in slices],
        "other_figures": [{"title": t, "png_b64": _png(f)} for t, f in curves],
    }


def report_context(
    data: ReportData, for_print: bool, pictures: dict[str, list[dict[str, str]]] | None = None
) -> dict[str, Any]:
    """Everything templates/report.html.j2 shows, as plain values (`pictures`: from
    `figure_pngs`, where the caller has them already)."""
    pictures = pictures or figure_pngs(data)
    viewer = None if for_print else _viewer_context(data)
    o = data.outcome
    v = o["verdict"]
    return {
        "print": for_print,
        "name": data.summary["name"],
        "identity": _identity(data),
        "verdict": {"cls": {True: "ok", False: "bad", None: "none"}[
            v["complete_ablation_with_margin"]], "text": v["text"]},
        "margin_sentence": _margin_sentence(o.get("target")),
        "advice": advice_sentence(data),
        "uncertainty": uncertainty_sentence(data),
        "intended_use": INTENDED_USE,
        "frozen_properties": data.summary.get("frozen_properties", "constant"),
        "trust_table": _trust_table(data),
        "plan": _plan_context(data),
        "paths": _paths_context(data),
        "planning": None if data.plan is None else _planning_context(data.plan),
        "slice_figures": pictures["slice_figures"],
        "viewer": viewer,
        "viewer_missing": VIEWER_MISSING,
        "static_3d": _png(figures.three_d_figure(data)) if viewer is None else None,
        "other_figures": pictures["other_figures"],
        "target_table": _target_table(data),
        "organs": _organs_context(data),
        "structures": _structures_table(data),
        "heat_sinks": _heat_sinks_table(data),
        "ice_ball": _ice_ball_table(data),
        "warnings": o["warnings"],
        "notes": [*o["notes"], _run_note(data)],
    }  # fmt: skip


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("cryoplan.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a name the context lacks is an error, not blank
        keep_trailing_newline=True,
    )


def render_html(
    data: ReportData, for_print: bool = False, pictures: dict[str, Any] | None = None
) -> str:
    """The report as one self-contained HTML page (`for_print`: the PDF's variant)."""
    context = report_context(data, for_print, pictures)
    return _environment().get_template("report.html.j2").render(context)


def write_pdf(data: ReportData, path: Path, pictures: dict[str, Any] | None = None) -> None:
    """The same report as A4 PDF pages, laid out by WeasyPrint from the print variant."""
    import weasyprint  # noqa: PLC0415  (heavy; only --pdf needs it)

    weasyprint.HTML(string=render_html(data, True, pictures)).write_pdf(path)


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
        pictures = figure_pngs(data)
        (staging / "report.html").write_text(render_html(data, False, pictures), "utf-8")
        names = ["report.html"]
        if pdf:
            write_pdf(data, staging / "report.pdf", pictures)
            names.append("report.pdf")
        for name in names:
            (staging / name).replace(d / name)
            written.append(d / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return written
