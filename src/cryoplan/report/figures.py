"""The report's pictures (matplotlib, Agg): slices, 3-D view, curves, histograms.

Slices follow the radiological convention: axial and coronal views show the patient's right
on the viewer's left; axial views have anterior at the top; sagittal views have anterior on
the left. Every panel carries mm axes and the patient-direction letters at its edges.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from mpl_toolkits.mplot3d.art3d import Poly3DCollection
from scipy import ndimage

from cryoplan.report.data import ReportData

# Okabe & Ito's colour-blind-safe palette for lines: the isotherms in blues, the lethal zone
# in yellow (apart from every blue under deuteranopia and protanopia), the target vermillion.
ISOTHERM_STYLE = {
    0.0: ("#56b4e9", "0 °C (ice edge)"),
    -20.0: ("#0072b2", "−20 °C"),
    -40.0: ("#1b2a8a", "−40 °C"),
}
# A tissue keeps its colour from one report to the next (by name); others take the rest.
NAMED_TISSUE_COLOURS = {
    "tumour": "#e8a0a0", "liver": "#c9a27e", "vessel": "#a3c4e0", "kidney": "#c0a6d6",
    "muscle": "#d9b3b3", "fat": "#e0d29a", "breast": "#f0dcc8", "skin": "#d9c7b8",
    "bone": "#eeeeee", "lung": "#b8d8d0", "prostate": "#c8d9a3", "gel": "#dde7ee",
    "agar": "#dde7ee", "bowel": "#d6b4c8",
}  # fmt: skip
OTHER_TISSUE_COLOURS = ["#9fd6cf", "#c8d9a3", "#d6c4a3", "#b3b3d9", "#d9a3c8", "#a3d9b3"]
# Fixed colours for the organs a liver, kidney or prostate case meets most; any other
# name takes a colour from ORGAN_PALETTE chosen by its CRC-32, so it too keeps its colour
# from one report to the next.
NAMED_ORGAN_COLOURS = {
    "liver": "#c9a27e", "inferior_vena_cava": "#2f6fd0", "portal_vein_and_splenic_vein": "#009e73",
    "aorta": "#cc79a7", "kidney_right": "#a07cc5", "kidney_left": "#a07cc5", "vessel": "#3f7fbf",
    "adrenal_gland_right": "#e69f00", "adrenal_gland_left": "#e69f00", "gallbladder": "#7fbf3f",
    "duodenum": "#d6609a", "small_bowel": "#e377c2", "colon": "#b85c8a", "stomach": "#c98bb5",
    "pancreas": "#d2a35a", "spleen": "#8c564b", "prostate": "#c8d9a3", "urinary_bladder": "#9edae5",
}  # fmt: skip
ORGAN_PALETTE = ["#17becf", "#9467bd", "#8c564b", "#bcbd22", "#7f7f7f", "#aec7e8", "#ff9896",
                 "#98df8a", "#c5b0d5", "#c49c94"]  # fmt: skip
TARGET_COLOUR = "#d55e00"
COVERED_COLOUR = "#8c8c8c"
LETHAL_COLOUR = "#f0e442"
TMIN_RANGE_C = (-150.0, 37.0)
CT_WINDOW_HU = (40.0, 400.0)  # (level, width): a soft-tissue abdominal window


def tissue_colours(names: list[str]) -> list[str]:
    """A colour per tissue, the same for a name in every report."""
    others = iter(OTHER_TISSUE_COLOURS * (1 + len(names)))
    return [NAMED_TISSUE_COLOURS.get(n) or next(others) for n in names]


def organ_colour(name: str) -> str:
    """A fixed colour per organ name (hex)."""
    if name in NAMED_ORGAN_COLOURS:
        return NAMED_ORGAN_COLOURS[name]
    return ORGAN_PALETTE[zlib.crc32(name.encode("utf-8")) % len(ORGAN_PALETTE)]


def image_window(image: np.ndarray) -> tuple[float, float]:
    """(low, high) grey levels: a soft-tissue CT window for Hounsfield units (air near
    −1000 present), else the 1st–99th percentiles (MRI)."""
    if float(np.percentile(image, 1)) < -500.0:
        level, width = CT_WINDOW_HU
        return level - width / 2, level + width / 2
    low, high = np.percentile(image, [1, 99])
    return float(low), float(max(high, low + 1e-6))


# (horizontal axis, vertical axis, fixed axis, edge letters left/right/top/bottom, invert y)
VIEWS = {
    "axial": (0, 1, 2, ("R", "L", "A", "P"), True),
    "coronal": (0, 2, 1, ("R", "L", "S", "I"), False),
    "sagittal": (1, 2, 0, ("A", "P", "S", "I"), False),
}
AXIS_NAMES = ("x (mm, R→L)", "y (mm, A→P)", "z (mm, I→S)")


def focus_index(data: ReportData) -> np.ndarray:
    """Voxel index the slices pass through: the target's centre, else the probes' centre."""
    target = data.outcome.get("target")
    if target:
        point = np.asarray(target["centre_lps_mm"])
    else:
        probes = data.summary["probes"]
        point = np.mean([np.asarray(p["tip_mm"]) for p in probes], axis=0)
    idx = np.rint(data.index_of_lps(point)).astype(int)
    return np.clip(idx, 0, np.asarray(data.tmin_c.shape) - 1)


def _slice(volume: np.ndarray, fixed_axis: int, index: int, h: int, v: int) -> np.ndarray:
    """2-D slice with array axes ordered (horizontal, vertical)."""
    sl = np.take(volume, index, axis=fixed_axis)
    remaining = [a for a in range(3) if a != fixed_axis]
    return sl if remaining == [h, v] else sl.T


def probe_segments(data: ReportData) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(tip, end of active length, entry) per probe, LPS mm."""
    out = []
    for p in data.summary["probes"]:
        tip = np.asarray(p["tip_mm"], float)
        entry = np.asarray(p["entry_mm"], float)
        axis = (entry - tip) / np.linalg.norm(entry - tip)
        out.append((tip, tip + p["active_length_mm"] * axis, entry))
    return out


def worst_point_index(data: ReportData) -> np.ndarray | None:
    """Voxel index of the point where the margin is smallest, if the run has a target."""
    where = ((data.outcome.get("target") or {}).get("margin_mm") or {}).get("minimum_at_lps_mm")
    if not where:
        return None
    idx = np.rint(data.index_of_lps(np.asarray(where, float))).astype(int)
    return np.clip(idx, 0, np.asarray(data.tmin_c.shape) - 1)


def _target_plus_margin(data: ReportData, target: np.ndarray) -> np.ndarray:
    """Signed distance [mm] outside the target (≤ 0 inside): its contour at margin_mm is the
    target grown by the margin asked for."""
    step = np.abs(np.diag(data.affine_lps)[:3])
    return ndimage.distance_transform_edt(~target, sampling=step)


@dataclass(frozen=True)
class _Overlay:
    """What every slice panel of a report draws, worked out once per figure."""

    names: list[str]
    colours: list[str]
    window: tuple[float, float] | None
    target_index: int | None
    grown: np.ndarray | None  # mm outside the target (its contour at margin_mm)
    margin_mm: float | None
    marked: np.ndarray | None  # the voxel of smallest margin, or None
    organ_names: dict[int, str] = field(default_factory=dict)  # image cases: outlined organs
    drawn: set[int] = field(default_factory=set)  # the organs the figure's panels outlined


def _overlay(data: ReportData, marked: np.ndarray | None = None) -> _Overlay:
    names = data.tissue_names
    target_name = (data.outcome.get("target") or {}).get("tissue")
    target_index = names.index(target_name) if target_name in names else None
    margin_mm = (data.outcome.get("target") or {}).get("required_margin_mm")
    grown = None
    if target_index is not None and margin_mm:
        grown = _target_plus_margin(data, data.tissue_index == target_index)
    window = image_window(data.image) if data.image is not None else None
    return _Overlay(names, tissue_colours(names), window, target_index, grown, margin_mm, marked,
                    data.organ_names if data.organs is not None else {})  # fmt: skip


def _panel(ax, data: ReportData, view: str, focus: np.ndarray, o: _Overlay):
    """One slice panel (`view` of VIEWS through voxel `focus`); returns the T_min mesh."""
    h, v, fixed, letters, invert = VIEWS[view]
    names, window, target_index = o.names, o.window, o.target_index
    grown, margin_mm, marked = o.grown, o.margin_mm, o.marked
    tissue_cmap = ListedColormap(o.colours if names else ["#dddddd"])
    xs, ys = data.axis_mm(h), data.axis_mm(v)
    fixed_mm = data.axis_mm(fixed)[focus[fixed]]
    tissue = _slice(data.tissue_index, fixed, focus[fixed], h, v)
    tmin = _slice(data.tmin_c, fixed, focus[fixed], h, v)
    if window is not None:  # the patient's image, the tissues as a light tint over it
        picture = _slice(data.image, fixed, focus[fixed], h, v)
        ax.pcolormesh(xs, ys, picture.T, cmap="gray", vmin=window[0], vmax=window[1],
                      shading="nearest")  # fmt: skip
    if o.organ_names and data.organs is not None:  # the label map's organs, tinted and outlined
        _organs(ax, xs, ys, _slice(data.organs, fixed, focus[fixed], h, v), o)
    else:
        ax.pcolormesh(
            xs, ys, tissue.T, cmap=tissue_cmap, vmin=-0.5, vmax=len(names) - 0.5,
            shading="nearest", alpha=0.22 if window is not None else 1.0,
        )  # fmt: skip
    cold = np.ma.masked_greater(tmin, 0.0 if window is not None else 20.0)
    mesh = ax.pcolormesh(
        xs, ys, cold.T, cmap="Blues_r", vmin=TMIN_RANGE_C[0], vmax=TMIN_RANGE_C[1],
        alpha=0.45 if window is not None else 0.55, shading="nearest",
    )  # fmt: skip
    for level, (colour, _) in ISOTHERM_STYLE.items():
        if tmin.min() < level < tmin.max():
            # solid, as in the legend (matplotlib dashes negative levels by default)
            ax.contour(xs, ys, tmin.T, levels=[level], colors=[colour], linewidths=2.0,
                       linestyles="solid")  # fmt: skip
    lethal = _slice(data.lethal.astype(float), fixed, focus[fixed], h, v)
    if lethal.max() > 0:
        ax.contour(
            xs,
            ys,
            lethal.T,
            levels=[0.5],
            colors=[LETHAL_COLOUR],
            linewidths=2.4,
            linestyles="--",
        )
    if target_index is not None:
        target = (tissue == target_index).astype(float)
        if target.max() > 0:
            ax.contour(xs, ys, target.T, levels=[0.5], colors=[TARGET_COLOUR], linewidths=1.4)
    if grown is not None:
        ring = _slice(grown, fixed, focus[fixed], h, v)
        if ring.min() < margin_mm < ring.max():
            ax.contour(xs, ys, ring.T, levels=[margin_mm], colors=[TARGET_COLOUR],
                       linewidths=1.2, linestyles="dotted")  # fmt: skip
    if marked is not None:
        ax.plot(data.axis_mm(h)[marked[h]], data.axis_mm(v)[marked[v]], marker="X", ms=13,
                color=TARGET_COLOUR, mec="white", mew=1.5, ls="")  # fmt: skip
    for tip, end, _ in probe_segments(data):
        # solid where the active length crosses (or lies within 2 mm of) this slice,
        # faint and dashed where it is only projected onto it
        a, b = tip[fixed] - fixed_mm, end[fixed] - fixed_mm
        near = a * b <= 0 or min(abs(a), abs(b)) <= 2.0
        style = {"color": "black", "lw": 2.5, "alpha": 0.85} if near else {
            "color": "black", "lw": 1.5, "alpha": 0.35, "ls": "--"}  # fmt: skip
        ax.plot([tip[h], end[h]], [tip[v], end[v]], **style)
        ax.plot(tip[h], tip[v], "o", color="black", ms=4, alpha=style["alpha"])
    for sensor in data.summary.get("sensors") or []:  # thermocouples near this slice
        at = np.asarray(sensor["at_mm"], float)
        if abs(at[fixed] - fixed_mm) <= 2.0:
            ax.plot(at[h], at[v], "s", color="white", mec="black", ms=5)
            ax.annotate(sensor["name"], (at[h], at[v]), xytext=(4, 4),
                        textcoords="offset points", fontsize=8)  # fmt: skip
    ax.set_aspect("equal")
    ax.set_xlabel(AXIS_NAMES[h])
    ax.set_ylabel(AXIS_NAMES[v])
    if invert:
        ax.invert_yaxis()
    ax.set_title(f"{view} ({'xyz'[fixed]} = {fixed_mm:.1f} mm)")
    left, right, top, bottom = letters
    style = {"fontsize": 15, "fontweight": "bold", "color": "#222", "transform": ax.transAxes}
    ax.text(0.015, 0.5, left, ha="left", va="center", **style)
    ax.text(0.985, 0.5, right, ha="right", va="center", **style)
    ax.text(0.5, 0.985, top, ha="center", va="top", **style)
    ax.text(0.5, 0.015, bottom, ha="center", va="bottom", **style)
    return mesh


def _organs(ax, xs: np.ndarray, ys: np.ndarray, organs: np.ndarray, o: _Overlay) -> None:
    """Each organ in a slice: a light tint and an outline in its own colour."""
    tint = np.zeros((*organs.T.shape, 4))
    for value in np.unique(organs):
        if value == 0 or int(value) not in o.organ_names:
            continue
        colour = organ_colour(o.organ_names[int(value)])
        inside = (organs == value).T
        tint[inside] = (*matplotlib.colors.to_rgb(colour), 0.18)
        ax.contour(xs, ys, inside.astype(float), levels=[0.5], colors=[colour], linewidths=1.0)
        o.drawn.add(int(value))
    ax.pcolormesh(xs, ys, tint, shading="nearest")


def slices_figure(data: ReportData, worst: bool = False) -> Figure:
    """Three orthogonal slices through the target (or, `worst`, through the point where the
    margin is smallest, marked): T_min, isotherms, target, target + margin, lethal zone."""
    marked = worst_point_index(data) if worst else None
    focus = marked if marked is not None else focus_index(data)
    o = _overlay(data, marked)
    fig, axes = plt.subplots(1, 3, figsize=(15.5, 5.6), constrained_layout=True)
    mesh = None
    for ax, view in zip(axes, VIEWS, strict=True):
        mesh = _panel(ax, data, view, focus, o)
    _legend(fig, axes, mesh, data, o)
    return fig


def strip_figure(data: ReportData, view: str = "axial", count: int = 5) -> Figure | None:
    """`count` slices of one view (axial, coronal, sagittal) evenly across the target's
    extent along that view's fixed axis, in increasing LPS coordinate; None without a
    target."""
    o = _overlay(data)
    if o.target_index is None:
        return None
    fixed = VIEWS[view][2]
    others = tuple(a for a in range(3) if a != fixed)
    levels = np.flatnonzero((data.tissue_index == o.target_index).any(axis=others))
    if levels.size == 0:
        return None
    levels = np.unique(np.rint(np.linspace(levels[0], levels[-1], count)).astype(int))
    # in increasing LPS coordinate: inferior → superior, anterior → posterior, right → left
    levels = levels[np.argsort(data.axis_mm(fixed)[levels])]
    fig, axes = plt.subplots(1, len(levels), figsize=(3.3 * len(levels) + 1.5, 4.4),
                             constrained_layout=True, squeeze=False)  # fmt: skip
    mesh = None
    centre = focus_index(data)
    for ax, level in zip(axes[0], levels, strict=True):
        focus = centre.copy()
        focus[fixed] = level
        mesh = _panel(ax, data, view, focus, o)
    _legend(fig, axes[0], mesh, data, o)
    return fig


def _legend(fig: Figure, axes, mesh, data: ReportData, o: _Overlay) -> None:
    """The colour bar and the legend shared by a figure's slice panels."""
    target_name = o.names[o.target_index] if o.target_index is not None else None
    target_index, grown, margin_mm, marked = o.target_index, o.grown, o.margin_mm, o.marked
    colours, names = o.colours, o.names
    bar = fig.colorbar(mesh, ax=axes, shrink=0.85, pad=0.01)
    bar.set_label("minimum temperature reached (°C)")
    handles = [Line2D([], [], color=c, lw=2, label=lab) for c, lab in ISOTHERM_STYLE.values()]
    handles.append(Line2D([], [], color=LETHAL_COLOUR, lw=2.4, ls="--", label="lethal zone"))
    if target_index is not None:
        handles.append(Line2D([], [], color=TARGET_COLOUR, lw=1.4, label=f"target ({target_name})"))
    if grown is not None:
        handles.append(Line2D([], [], color=TARGET_COLOUR, lw=1.2, ls="dotted",
                              label=f"target + {margin_mm:g} mm margin"))  # fmt: skip
    if marked is not None:
        handles.append(Line2D([], [], color=TARGET_COLOUR, marker="X", ms=10, mec="white",
                              ls="", label="smallest margin"))  # fmt: skip
    handles.append(Line2D([], [], color="black", lw=2.5, label="probe (active length)"))
    handles.append(
        Line2D([], [], color="black", lw=1.5, ls="--", alpha=0.35, label="probe off this slice")
    )
    if data.summary.get("sensors"):
        handles.append(Line2D([], [], ls="", marker="s", color="white", mec="black",
                              label="thermocouple (within 2 mm)"))  # fmt: skip
    if o.organ_names:
        handles += [Patch(facecolor=organ_colour(o.organ_names[v]) + "40",
                          edgecolor=organ_colour(o.organ_names[v]), label=o.organ_names[v])
                    for v in sorted(o.drawn)]  # fmt: skip
    else:
        handles += [Patch(color=c, label=n) for c, n in zip(colours, names, strict=True)]
    fig.legend(
        handles=handles, loc="outside lower center", ncol=min(len(handles), 6), frameon=False
    )


def three_d_figure(data: ReportData) -> Figure:
    """The 3-D scene of the report's viewer (`report.scene`) as a still picture for the PDF:
    the same surfaces in the same colours, seen from the same side (LPS mm axes)."""
    from cryoplan.report import scene  # noqa: PLC0415  (scene draws on this module's colours)

    fig = plt.figure(figsize=(8.5, 7.5), constrained_layout=True)
    ax = fig.add_subplot(projection="3d")
    surfaces = scene.scene_surfaces(data, clip_to_grid=True)
    for item in surfaces:
        lps, faces = item.vertices_ras * scene.LPS_TO_RAS, item.faces
        colours: np.ndarray | str = item.colour
        if item.vertex_rgba is not None:  # a face takes the mean of its corners' colours
            colours = item.vertex_rgba[faces].mean(axis=1) / 255.0
        ax.add_collection3d(Poly3DCollection(lps[faces], facecolor=colours, edgecolor="none",
                                             alpha=item.opacity))  # fmt: skip
    handles = [Patch(color=e.colour, alpha=max(e.opacity, 0.35), label=e.label)
               for e in scene.scene_legend(data, surfaces)]  # fmt: skip
    lo = data.affine_lps[:3, 3]
    hi = lo + np.diag(data.affine_lps[:3, :3]) * (np.asarray(data.tmin_c.shape) - 1)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_box_aspect(tuple(hi - lo))
    ax.set_xlabel(AXIS_NAMES[0])
    ax.set_ylabel(AXIS_NAMES[1])
    ax.set_zlabel(AXIS_NAMES[2])
    ax.view_init(elev=20, azim=-60)
    ax.legend(handles=handles, loc="upper left", fontsize=8)
    ax.set_title("target, lethal zone, ice ball, organs near the ice and probes (LPS mm)")
    return fig


def _shade_protocol(ax, data: ReportData) -> None:
    colours = {"freeze": "#cfe3ff", "passive_thaw": "#fff0d0", "active_thaw": "#ffd6c9"}
    for ph in data.summary["protocol"]:
        ax.axvspan(
            ph["start_s"] / 60,
            ph["end_s"] / 60,
            color=colours.get(ph["phase"], "#eee"),
            alpha=0.6,
            lw=0,
        )
    ax.legend(
        handles=[
            Patch(color=c, label=k.replace("_", " "))
            for k, c in colours.items()
            if any(p["phase"] == k for p in data.summary["protocol"])
        ]
        + ax.get_legend_handles_labels()[0],
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
    )


def _time_figure(data: ReportData, ylabel: str, title: str, draw) -> Figure:
    """A curve against time (min) with the protocol's phases shaded behind it."""
    fig, ax = plt.subplots(figsize=(10.5, 4.5), constrained_layout=True)
    draw(ax)
    ax.set_xlabel("time (min)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _shade_protocol(ax, data)
    return fig


def sensors_figure(data: ReportData) -> Figure | None:
    if not data.sensor_names:
        return None

    def draw(ax) -> None:
        for k, name in enumerate(data.sensor_names):
            ax.plot(data.sensor_time_s / 60, data.sensor_c[:, k], lw=1.8, label=name)
        for level, (colour, _label) in ISOTHERM_STYLE.items():
            ax.axhline(level, color=colour, lw=0.8, ls=":")

    return _time_figure(data, "temperature (°C)", "virtual thermocouples", draw)


def growth_figure(data: ReportData) -> Figure:
    series = data.outcome["time_series"]
    t = np.asarray(series["time_s"]) / 60

    def draw(ax) -> None:
        for level, (colour, label) in ISOTHERM_STYLE.items():
            key = f"volume_at_or_below_{level:g}_c_ml"
            if key in series:
                ax.plot(t, series[key], color=colour, lw=2, label=f"at or below {label}")
        ax.plot(t, series["lethal_temperature_reached_ml"], color=LETHAL_COLOUR, lw=2, ls="--",
                label="lethal temperature reached (cumulative)")  # fmt: skip

    return _time_figure(data, "volume (mL)", "ice ball and lethal zone against time", draw)


def histogram_figure(data: ReportData) -> Figure:
    """Cumulative temperature–volume histograms (the 'dose–volume histogram' of cryoablation)."""
    hist = data.outcome["temperature_volume_histogram"]
    temps = np.asarray(hist["temperature_c"])
    fig, ax = plt.subplots(figsize=(9, 4.5), constrained_layout=True)
    target = (data.outcome.get("target") or {}).get("tissue")
    others = iter(plt.get_cmap("tab10").colors[1:])
    for name in data.tissue_names:
        ax.plot(temps, hist[name], lw=2.6 if name == target else 1.8,
                color=TARGET_COLOUR if name == target else next(others),
                label=name + (" (target)" if name == target else ""))  # fmt: skip
    for level, (colour, _) in ISOTHERM_STYLE.items():
        ax.axvline(level, color=colour, lw=0.8, ls=":")
    ax.set_xlim(20, -160)  # colder to the right, as dose increases to the right in a DVH
    ax.set_ylim(0, 101)
    ax.set_xlabel("minimum temperature reached, T (°C)")
    ax.set_ylabel("% of volume at or below T")
    ax.set_title("cumulative temperature–volume histogram")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9)
    return fig
