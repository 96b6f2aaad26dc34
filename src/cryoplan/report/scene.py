"""The report's interactive 3-D scene: surfaces and volumes for the bundled WebGL viewer.

The viewer (web/src/view3d.js, built into report/static/view3d.js and inlined in the HTML)
draws what `scene_payload` lists, in NIfTI world coordinates (RAS mm): every position here
is taken from the grid's LPS affine and turned to RAS by negating x and y.

- the target's surface, each vertex coloured by whether it lies in the lethal zone;
- the lethal zone and the visible ice ball (T_min ≤ 0 °C) as see-through surfaces;
- each organ of the label map that comes within `NEAR_ICE_MM` of the ice, and every vessel,
  in its own colour (`figures.organ_colour`, the same name → colour in every report); a
  case without a label map shows its vessel tissues;
- each probe's shaft as a thin cylinder from its tip to the skin (the active length darker);
- the patient's image on the grid as the background volume, when the result has one.

Surfaces come from marching cubes on the simulation grid; the payload's arrays are base64
little-endian float32 positions and uint32 triangle indices, as the viewer expects.
"""

from __future__ import annotations

import base64
import gzip
from dataclasses import dataclass
from importlib import resources
from typing import Any

import nibabel as nib
import numpy as np
from scipy import ndimage
from skimage import measure

from cryoplan.report import figures
from cryoplan.report.data import ReportData

NEAR_ICE_MM = 15.0  # organs whose ice clearance is at most this are drawn
SMOOTHING_VOXELS = 0.8  # masks are blurred this much (Gaussian σ, voxels) before contouring
LPS_TO_RAS = np.array([-1.0, -1.0, 1.0])
SHAFT_SIDES = 12  # a probe's cylinder: enough to look round at the report's zoom
TARGET_MISSED_RGBA = (213, 94, 0, 255)  # figures.TARGET_COLOUR: not in the lethal zone
TARGET_COVERED_RGBA = (140, 140, 140, 255)  # figures.COVERED_COLOUR
VIEWER_FILE = "view3d.js"
ACTIVE = "#111111"  # a probe's active length
SHAFT = "#6e6e6e"  # the rest of its shaft


def _rgba(colour: str, alpha: float) -> list[int]:
    value = colour.lstrip("#")
    return [int(value[i : i + 2], 16) for i in (0, 2, 4)] + [round(255 * alpha)]


def viewer_script() -> str | None:
    """The bundled viewer's JavaScript, or None where it was not built (`make web`)."""
    path = resources.files("cryoplan.report").joinpath("static", VIEWER_FILE)
    return path.read_text("utf-8") if path.is_file() else None


@dataclass(frozen=True)
class LegendEntry:
    """One line of the 3-D view's legend (the same colour as its surface)."""

    label: str
    colour: str
    opacity: float


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _surface(
    data: ReportData, mask: np.ndarray, smooth_voxels: float = SMOOTHING_VOXELS
) -> tuple[np.ndarray, np.ndarray] | None:
    """Marching-cubes surface of a mask, closed at the grid's edge: (RAS mm vertices, faces).
    `smooth_voxels` blurs the mask first (Gaussian σ in voxels) so that a region is drawn
    without its voxels' staircase (a region thinner than the blur is drawn unblurred)."""
    if not mask.any():
        return None
    volume = np.pad(mask.astype(np.float32), 1)
    if smooth_voxels > 0.0:
        blurred = ndimage.gaussian_filter(volume, smooth_voxels)
        volume = blurred if blurred.max() > 0.5 else volume
    return _isosurface(data, volume, 0.5, padded=True)


def _isosurface(
    data: ReportData, volume: np.ndarray, level: float, padded: bool = False
) -> tuple[np.ndarray, np.ndarray] | None:
    """The surface `volume == level` around its higher values: (RAS mm vertices, faces)."""
    if not volume.min() < level < volume.max():
        return None
    verts, faces, _, _ = measure.marching_cubes(volume, level=level)
    # scikit-image winds its triangles counter-clockwise seen from the higher values (the
    # inside); the viewer culls faces seen from behind, so turn them to face outwards. LPS →
    # RAS negates two axes, a rotation, which keeps the winding.
    faces = faces[:, ::-1]
    index = verts - 1.0 if padded else verts
    a = data.affine_lps
    lps = index @ a[:3, :3].T + a[:3, 3]
    return lps * LPS_TO_RAS, faces.astype(np.uint32)


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class SceneSurface:
    """One surface of the scene: RAS mm vertices, triangles, one colour or one per vertex."""

    name: str
    vertices_ras: np.ndarray  # (n, 3) float
    faces: np.ndarray  # (m, 3) uint32
    colour: str  # hex; the legend's colour (with per-vertex colours: the uncovered one)
    opacity: float
    vertex_rgba: np.ndarray | None = None  # (n, 4) uint8


def _mesh(item: SceneSurface) -> dict[str, Any]:
    """One mesh of the viewer's payload (web/README.md)."""
    mesh: dict[str, Any] = {
        "name": item.name,
        "positions_b64": _b64(item.vertices_ras.astype("<f4")),
        "indices_b64": _b64(item.faces.astype("<u4")),
        "opacity": item.opacity,
    }
    if item.vertex_rgba is None:
        mesh["rgba"] = _rgba(item.colour, 1.0)
    else:
        mesh["colors_b64"] = _b64(item.vertex_rgba.astype(np.uint8))
    return mesh


def cylinder(start: np.ndarray, end: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed-side cylinder (no caps) from `start` to `end` [mm]: (vertices, faces)."""
    axis = end - start
    length = float(np.linalg.norm(axis))
    axis = axis / length
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u)
    v = np.cross(axis, u)
    angles = np.linspace(0.0, 2 * np.pi, SHAFT_SIDES, endpoint=False)
    ring = radius * (np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v)
    verts = np.concatenate([start + ring, end + ring])
    i = np.arange(SHAFT_SIDES)
    j = (i + 1) % SHAFT_SIDES
    n = SHAFT_SIDES
    faces = np.concatenate([np.stack([i, j, n + i], 1), np.stack([j, n + j, n + i], 1)])
    return verts, faces.astype(np.uint32)


def _probe_surfaces(data: ReportData, clip_to_grid: bool) -> list[SceneSurface]:
    """Each probe's active length (black) and its shaft up to the skin entry (grey). Without
    a skin entry (a box or phantom), and with `clip_to_grid` (the still picture's box), the
    shaft ends where it leaves the simulation grid."""
    paths = {p["probe"]: p for p in data.summary.get("paths") or []}
    lo = data.affine_lps[:3, 3]
    hi = lo + np.diag(data.affine_lps[:3, :3]) * (np.asarray(data.tmin_c.shape) - 1)
    box_lo, box_hi = np.minimum(lo, hi), np.maximum(lo, hi)
    out = []
    for probe, (tip, end, entry) in zip(
        data.summary["probes"], figures.probe_segments(data), strict=True
    ):
        radius = max(0.5 * float(probe["diameter_mm"]), 0.6)  # visible even for 17G
        path = paths.get(probe["name"])
        skin = np.asarray(path["skin_entry_mm"], float) if path else entry
        if clip_to_grid or not path:
            along = np.linspace(0.0, 1.0, 400)[:, None]
            shaft = end + along * (skin - end)
            inside = np.all((shaft >= box_lo) & (shaft <= box_hi), axis=1)
            skin = shaft[inside][-1] if inside.any() else end
        verts, faces = cylinder(tip * LPS_TO_RAS, end * LPS_TO_RAS, radius * 1.3)
        out.append(SceneSurface(f"probe {probe['name']} (active)", verts, faces, ACTIVE, 1.0))
        if float(np.linalg.norm(skin - end)) > 1.0:
            verts, faces = cylinder(end * LPS_TO_RAS, skin * LPS_TO_RAS, radius)
            out.append(SceneSurface(f"probe {probe['name']} shaft", verts, faces, SHAFT, 1.0))
    return out


def _nifti_b64(data: ReportData, volume: np.ndarray) -> str:
    """A gzipped NIfTI of a volume on the grid, its affine in RAS (as NIfTI stores it)."""
    affine = np.diag([*LPS_TO_RAS, 1.0]) @ data.affine_lps
    image = nib.Nifti1Image(volume, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return base64.b64encode(gzip.compress(image.to_bytes(), 6)).decode("ascii")


def scene_surfaces(data: ReportData, clip_to_grid: bool = False) -> list[SceneSurface]:
    """Every surface of the scene, drawn in this order (the module docstring's list)."""
    out: list[SceneSurface] = []
    names = data.tissue_names
    target_name = (data.outcome.get("target") or {}).get("tissue")
    if target_name in names:
        target = data.tissue_index == names.index(target_name)
        surface = _surface(data, target)
        if surface is not None:
            inside = _covered(data, surface[0], target, data.lethal)
            rgba = np.where(inside[:, None], TARGET_COVERED_RGBA, TARGET_MISSED_RGBA)
            out.append(SceneSurface(f"target ({target_name})", *surface, figures.TARGET_COLOUR,
                                    1.0, rgba.astype(np.uint8)))  # fmt: skip
    lethal = _surface(data, data.lethal)
    if lethal is not None:
        out.append(SceneSurface("lethal zone", *lethal, figures.LETHAL_COLOUR, 0.35))
    # the ice ball's edge from the temperature field itself: the cold side is the inside
    ice = _isosurface(data, -data.tmin_c, 0.0)
    if ice is not None:
        out.append(SceneSurface("ice ball (0 °C)", *ice, figures.ISOTHERM_STYLE[0.0][0], 0.2))
    for value, name, colour in _organs_to_draw(data):
        surface = _surface(data, data.organs == value)  # type: ignore[operator]
        if surface is not None:
            out.append(SceneSurface(name, *surface, colour, 0.45))
    for index, name in _vessel_tissues_to_draw(data):
        surface = _surface(data, data.tissue_index == index)
        if surface is not None:
            out.append(SceneSurface(name, *surface, figures.organ_colour(name), 0.45))
    return out + _probe_surfaces(data, clip_to_grid)


def scene_legend(data: ReportData, surfaces: list[SceneSurface] | None = None) -> list[LegendEntry]:
    """The legend of the scene's surfaces, in their colours (probes: one entry per kind)."""
    legend = []
    for item in surfaces if surfaces is not None else scene_surfaces(data):
        if item.vertex_rgba is not None:  # the target, coloured by coverage
            legend.append(LegendEntry(f"{item.name} inside the lethal zone",
                                      figures.COVERED_COLOUR, 1.0))  # fmt: skip
            legend.append(LegendEntry(f"{item.name} NOT in the lethal zone", item.colour, 1.0))
        elif not item.name.startswith("probe "):
            legend.append(LegendEntry(item.name, item.colour, item.opacity))
    legend.append(LegendEntry("probe: active length", ACTIVE, 1.0))
    legend.append(LegendEntry("probe: shaft to the skin", SHAFT, 1.0))
    return legend


def scene_payload(data: ReportData) -> tuple[dict[str, Any], list[LegendEntry]]:
    """The viewer's payload (web/README.md) and the legend that matches its colours."""
    surfaces = scene_surfaces(data)
    volumes = []
    if data.image is not None:
        low, high = figures.image_window(data.image)
        volumes.append({
            "name": "image.nii.gz", "data_b64": _nifti_b64(data, data.image),
            "colormap": "gray", "cal_min": low, "cal_max": high, "opacity": 1.0,
        })  # fmt: skip
    payload = {
        "volumes": volumes,
        "meshes": [_mesh(item) for item in surfaces],
        # meshes seen through the image's volume rendering, which would hide them
        "view": {"azimuth": 110, "elevation": 15, "mesh_xray": 0.3},
    }
    return payload, scene_legend(data, surfaces)


def _covered(
    data: ReportData, ras_vertices: np.ndarray, region: np.ndarray, lethal: np.ndarray
) -> np.ndarray:
    """Whether each vertex (RAS mm) of a region's surface is covered: every voxel of the
    region among the eight around the vertex lies in the lethal zone."""
    inv = np.linalg.inv(data.affine_lps)
    index = (ras_vertices * LPS_TO_RAS) @ inv[:3, :3].T + inv[:3, 3]
    shape = np.asarray(region.shape) - 1
    base = np.floor(index).astype(int)
    covered = np.ones(len(index), bool)
    for corner in np.ndindex(2, 2, 2):
        at = tuple(np.clip(base + corner, 0, shape).T)
        covered &= ~region[at] | lethal[at]
    return covered


def _organs_to_draw(data: ReportData) -> list[tuple[int, str, str]]:
    """(label value, name, colour) of the organs to draw: the vessels, and every organ other
    than the target's host that the ice comes within NEAR_ICE_MM of."""
    if data.organs is None:
        return []
    organs = data.outcome.get("organs") or {}
    out = []
    for name, organ in organs.items():
        clearance = organ.get("ice_clearance_mm")
        near = clearance is not None and clearance <= NEAR_ICE_MM
        if organ["role"] == "vessel" or (organ["role"] == "nearby" and near):
            out.append((int(organ["label"]), name, figures.organ_colour(name)))
    return out


def _vessel_tissues_to_draw(data: ReportData) -> list[tuple[int, str]]:
    """(tissue index, name) of the vessels of a case without a label map (a box or the
    phantom): the tissues with a heat sink in summary.json's structures."""
    if data.organs is not None:
        return []
    structures = data.outcome.get("structures") or {}
    return [(i, name) for i, name in enumerate(data.tissue_names)
            if "heat_sink" in structures.get(name, {})]  # fmt: skip
