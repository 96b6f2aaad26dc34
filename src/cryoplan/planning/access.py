"""The way in: where the skin is, what a shaft must not touch, and whether a straight path
from the skin to a tip is allowed.

An `AccessMap` holds, on the anatomy's own grid (the patient image's grid before any crop; for
a box or phantom the simulation grid), a `body` mask, the distance [mm] from every voxel to
the nearest no-fly voxel and which no-fly structure that is. A shaft is the segment from the
tip back along the probe to the point where it leaves the body (the skin entry); it is
allowed when

- the depth (tip to skin entry) is at most the probe's usable length (catalogue),
- every point of it outside the target keeps `clearance_mm` plus the probe's radius from
  every no-fly voxel (inside the target, where the probe must be, the radius alone: it
  may lie beside a structure the target abuts, not in it),
- it leaves the body through the skin inside the image (a box or phantom: through the named
  face), not through the image's edge.

Clearance is the distance from the shaft's axis to the nearest no-fly voxel's boundary: a
Euclidean distance transform to the no-fly voxels' centres (on the grid's spacing),
interpolated along the shaft, less half a voxel (`AccessMap.half_voxel_mm`, the mean
half-spacing) so that a structure's own extent counts against the shaft.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.anatomy import Grid
from cryoplan.case import Case, EntryFace, PlanningSpec, ProbeSpec, probe_names
from cryoplan.errors import CaseError
from cryoplan.metrics import surrounding_label
from cryoplan.probes.geometry import probe_geometry
from cryoplan.yamlio import load_yaml

# LPS unit vector pointing out of the body through each face of a box (patient directions)
FACE_OUTWARD = {
    "right": (-1.0, 0.0, 0.0),
    "left": (1.0, 0.0, 0.0),
    "anterior": (0.0, -1.0, 0.0),
    "posterior": (0.0, 1.0, 0.0),
    "inferior": (0.0, 0.0, -1.0),
    "superior": (0.0, 0.0, 1.0),
}


@lru_cache(maxsize=1)
def planning_defaults() -> dict[str, Any]:
    """The planner's sourced defaults (planning/planning.yaml)."""
    text = resources.files("cryoplan.planning").joinpath("planning.yaml").read_text("utf-8")
    return load_yaml(text)


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class AccessMap:
    """Body, no-fly distances and the entry rule on the anatomy's grid (module docstring)."""

    grid: Grid
    body: np.ndarray  # bool
    no_fly_distance_mm: np.ndarray  # float32: to the nearest no-fly voxel's centre
    nearest_no_fly: np.ndarray  # int16: index into no_fly_names of that voxel (−1: none)
    no_fly_names: tuple[str, ...]
    target: np.ndarray  # bool: the target's voxels
    entry_face: str | None  # a box or phantom: the face probes enter through
    notes: tuple[str, ...]  # what was assumed (the body's outline, organs let through)
    # what each voxel is, for the tissues a shaft crosses: an index into `region_names`
    # (an image: the organ's name where the label map has one, else the tissue's)
    region: np.ndarray | None = None
    region_names: tuple[str, ...] = ()

    @property
    def half_voxel_mm(self) -> float:
        """Half the mean spacing: from a no-fly voxel's centre to its boundary, roughly."""
        return 0.5 * float(np.mean(self.grid.spacing_mm))


@dataclass(frozen=True)
class Shaft:
    """A straight path from the skin to a tip, and what it meets."""

    tip_mm: np.ndarray
    entry_mm: np.ndarray  # where it crosses the skin (or the entry face)
    depth_mm: float
    clearance_mm: float  # least distance from the shaft's axis to a no-fly voxel
    closest_structure: str | None
    problem: str | None  # None: allowed; otherwise why not, in one phrase

    @property
    def allowed(self) -> bool:
        return self.problem is None


def expand_no_fly(names: list[str], label_names: set[str]) -> set[str]:
    """Group names (planning.yaml's `no_fly_groups`) → the label names present they cover;
    other names stand for themselves."""
    groups = planning_defaults()["no_fly_groups"]
    out: set[str] = set()
    for name in names:
        patterns = groups.get(name, [name])
        for pattern in patterns:
            out |= {n for n in label_names if fnmatch.fnmatchcase(n, pattern)}
    return out


def _distance_map(
    no_fly: np.ndarray, which: np.ndarray, grid: Grid
) -> tuple[np.ndarray, np.ndarray]:
    if not no_fly.any():  # far beyond any shaft: a large finite distance interpolates cleanly
        return np.full(no_fly.shape, 1e6, np.float32), np.full(no_fly.shape, -1, np.int16)
    distance, nearest = ndimage.distance_transform_edt(
        ~no_fly, sampling=grid.spacing_mm, return_indices=True
    )
    return distance.astype(np.float32), which[tuple(nearest)].astype(np.int16)


def image_access(case: Case) -> AccessMap:
    """The access map of an image case: body from the CT (or every labelled voxel), no-fly
    structures from the label map's names and the case's vessel tissues."""
    from cryoplan.anatomy.images import totalsegmentator_names  # noqa: PLC0415
    from cryoplan.anatomy.patient import organ_names, read_image_anatomy  # noqa: PLC0415

    planning = case.planning
    assert planning is not None
    anatomy = read_image_anatomy(case, with_body=True)
    grid = anatomy.labels.grid
    labels = anatomy.labels.array
    body = anatomy.body
    assert body is not None
    notes = [anatomy.body_note]
    value_names = anatomy.labels.label_names or {v: n for n, v in totalsegmentator_names().items()}
    present = {int(v) for v in np.unique(labels)} - {0}
    label_name = {v: value_names.get(v, str(v)) for v in present}
    wanted = _no_fly_names(planning)
    chosen = expand_no_fly(list(wanted), set(label_name.values()))
    target = anatomy.tissue_names.index(case.target)  # type: ignore[arg-type]
    organ = surrounding_label(anatomy.tissue_index == target, labels)
    if organ is not None and label_name[organ] in chosen:
        chosen.discard(label_name[organ])
        notes.append(f"{label_name[organ]} holds the target: shafts may cross it")
    names: list[str] = []
    which = np.full(labels.shape, -1, np.int16)
    for value, name in sorted(label_name.items()):
        if name in chosen:
            names.append(name)
            which[(labels == value) & (anatomy.tissue_index != target)] = len(names) - 1
    groups = planning_defaults()["no_fly_groups"]
    for k, tissue in enumerate(anatomy.tissue_names):  # the case's own vessels, by tissue
        # a group's name (`kidney`) stands for its labels, not for a tissue of that name,
        # which may be the organ holding the target
        named = tissue in wanted and tissue not in groups
        in_list = named or case.resolved_tissues[tissue].blood_vessel
        if k != target and in_list and tissue not in names:
            names.append(tissue)
            which[(anatomy.tissue_index == k) & (which < 0)] = len(names) - 1
    _check_names_known(case, list(wanted), set(label_name.values()) | set(anatomy.tissue_names))
    distance, nearest = _distance_map(which >= 0, which, grid)
    in_target = anatomy.tissue_index == target
    # crossings are named as the report names organs (the no-fly match above keeps
    # TotalSegmentator's names, which its groups are written in)
    organ_name, _ = organ_names(case, anatomy.labels, sorted(label_name))
    region, region_names = _regions(anatomy.tissue_index, anatomy.tissue_names, labels,
                                    organ_name, target)  # fmt: skip
    return AccessMap(grid, body, distance, nearest, tuple(names), in_target, None, tuple(notes),
                     region, region_names)  # fmt: skip


def _regions(
    tissue_index: np.ndarray,
    tissue_names: list[str],
    labels: np.ndarray,
    label_name: dict[int, str],
    target: int,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Each voxel's region: its organ (a named label) where it has one, else its tissue
    (the default tissue, which the label map leaves unnamed; skin); the target's voxels
    stay the target."""
    names = list(tissue_names)
    names[0] = f"unlabelled (simulated as {names[0]})"  # index 0: the default tissue
    region = tissue_index.astype(np.int16)
    for value, name in sorted(label_name.items()):
        names.append(name)
        region[(labels == value) & (tissue_index != target)] = len(names) - 1
    return region, tuple(names)


def box_access(case: Case, grid: Grid, material: np.ndarray, tissue_names: list[str]) -> AccessMap:
    """The access map of a box or phantom: the whole domain is body; probes enter through
    one face; no-fly structures are the named tissues and every large vessel."""
    planning = case.planning
    assert planning is not None
    face = planning.entry.face if isinstance(planning.entry, EntryFace) else "anterior"
    wanted = _no_fly_names(planning)
    _check_names_known(case, list(wanted), set(tissue_names))
    names: list[str] = []
    which = np.full(grid.shape, -1, np.int16)
    for k, tissue in enumerate(tissue_names):
        if tissue == case.target:
            continue
        if tissue in wanted or case.resolved_tissues[tissue].blood_vessel:
            names.append(tissue)
            which[material == k] = len(names) - 1
    distance, nearest = _distance_map(which >= 0, which, grid)
    body = np.ones(grid.shape, bool)
    notes = (f"entry through the domain's {face} face",)
    in_target = material == tissue_names.index(case.target)  # type: ignore[arg-type]
    return AccessMap(grid, body, distance, nearest, tuple(names), in_target, face, notes,
                     material.astype(np.int16), tuple(tissue_names))  # fmt: skip


def _no_fly_names(planning: PlanningSpec) -> list[str]:
    if planning.no_fly is not None:
        return list(planning.no_fly)
    return list(planning_defaults()["default_no_fly"])


def _check_names_known(case: Case, wanted: list[str], present: set[str]) -> None:
    """A no-fly name must be a group, a label name or a tissue (a typo must not pass)."""
    groups = planning_defaults()["no_fly_groups"]
    known = set(groups) | present | set(case.resolved_tissues)
    for i, name in enumerate(wanted):
        if name not in known:
            raise CaseError(
                case.source,
                f"planning.no_fly[{i}]",
                f"a group ({', '.join(groups)}), a label name or a tissue; got {name!r}",
            )


def trace_shaft(
    access: AccessMap,
    tip_mm: np.ndarray,
    outward: np.ndarray,
    usable_length_mm: float,
    radius_mm: float,
    clearance_mm: float,
) -> Shaft:
    """Follow a shaft from `tip_mm` along `outward` (unit, towards the skin) until it leaves
    the body; measure its depth and clearance and say whether it is allowed."""
    grid = access.grid
    step = 0.5 * min(grid.spacing_mm)
    tip = np.asarray(tip_mm, float)
    outward = np.asarray(outward, float) / np.linalg.norm(outward)
    n = int(np.ceil((usable_length_mm + 4 * max(grid.spacing_mm)) / step)) + 1
    points = tip + np.arange(n)[:, None] * step * outward
    index = grid.index_from_lps(points)
    upper = np.asarray(grid.shape) - 0.5
    inside_grid = np.all((index >= -0.5) & (index <= upper), axis=1)
    nearest = np.clip(np.rint(index).astype(int), 0, np.asarray(grid.shape) - 1)
    in_body = access.body[tuple(nearest.T)] & inside_grid
    outside = np.flatnonzero(~in_body)
    exit_at = int(outside[0]) if outside.size else n - 1
    entry = points[exit_at]
    depth = float(exit_at * step)
    along = slice(0, max(exit_at, 1))
    clear = (
        ndimage.map_coordinates(access.no_fly_distance_mm, index[along].T, order=1, mode="nearest")
        - access.half_voxel_mm
    )
    # wanted: clearance + radius outside the target, the radius alone inside it
    in_target = access.target[tuple(nearest[along].T)]
    wanted = np.where(in_target, radius_mm, clearance_mm + radius_mm)
    worst = int(np.argmin(clear - wanted))
    clearance = float(clear[worst])
    which = int(access.nearest_no_fly[tuple(nearest[along][worst])])
    structure = access.no_fly_names[which] if which >= 0 else None
    problem = None
    if exit_at == 0:
        problem = "its tip lies outside the body"
    elif not outside.size or depth > usable_length_mm:
        problem = f"deeper than the probe's usable length {usable_length_mm:g} mm"
    elif access.entry_face is None and not inside_grid[exit_at]:
        problem = "leaves the image before it reaches the skin"
    elif clearance < wanted[worst]:
        inside = " inside the target" if in_target[worst] else ""
        problem = (
            f"passes {clearance:.1f} mm from {structure}{inside} "
            f"({wanted[worst]:g} mm wanted: clearance {clearance_mm:g} mm + radius "
            f"{radius_mm:g} mm outside the target, the radius inside)"
        )
    elif access.entry_face is not None:
        face = np.asarray(FACE_OUTWARD[access.entry_face])
        if float(np.dot(outward, face)) <= 0.0 or not _on_face(grid, entry, face):
            problem = f"does not enter through the {access.entry_face} face"
    return Shaft(tip, entry, depth, clearance, structure, problem)


def _on_face(grid: Grid, point: np.ndarray, face: np.ndarray) -> bool:
    """Whether a point just outside the domain lies beyond the face with this outward normal."""
    lo, hi = grid.bounds_mm()
    axis = int(np.argmax(np.abs(face)))
    bound = hi[axis] if face[axis] > 0 else lo[axis]
    return bool(abs(point[axis] - bound) <= max(grid.spacing_mm))


def candidate_directions(plane: str, count: int = 400) -> np.ndarray:
    """Unit vectors (n, 3): the six patient axes first (straight anterior, lateral, …
    approaches, a box's face normals), then the sphere (Fibonacci lattice, `count` points),
    or the axial circle every 5° for `plane: axial`: the outward directions the planner
    tries."""
    if plane == "axial":
        angles = np.deg2rad(np.arange(0.0, 360.0, 5.0))
        return np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], axis=1)
    i = np.arange(count) + 0.5
    polar = np.arccos(1.0 - 2.0 * i / count)
    azimuth = np.pi * (1.0 + 5.0**0.5) * i
    lattice = np.stack(
        [np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], axis=1
    )
    return np.concatenate([np.asarray(list(FACE_OUTWARD.values())), lattice])


def shaft_crossings(access: AccessMap, shaft: Shaft) -> list[tuple[str, float]]:
    """The regions a shaft passes through from the skin entry to its tip, in that order,
    each with its length along the shaft [mm] (sampled every half of the finest spacing)."""
    if access.region is None:
        return []
    grid = access.grid
    step = 0.5 * min(grid.spacing_mm)
    n = max(2, int(np.ceil(shaft.depth_mm / step)) + 1)
    points = shaft.entry_mm + np.linspace(0.0, 1.0, n)[:, None] * (shaft.tip_mm - shaft.entry_mm)
    index = np.rint(grid.index_from_lps(points)).astype(int)
    index = np.clip(index, 0, np.asarray(grid.shape) - 1)
    codes = access.region[tuple(index.T)]
    piece = shaft.depth_mm / (n - 1)
    out: list[tuple[str, float]] = []
    for code in codes[1:]:  # n - 1 pieces, each named by its far end
        name = access.region_names[int(code)]
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1] + piece)
        else:
            out.append((name, piece))
    return out


def path_angles_deg(outward: np.ndarray) -> tuple[float, float]:
    """(angle to the axial plane, angle in the axial plane) of a shaft [degrees].

    `outward` points from the tip to the skin (LPS). The first is the cranio-caudal tilt:
    positive when the skin entry lies superior to the tip. The second is the direction of
    the shaft's axial projection from the anterior: 0° straight anterior, +90° the patient's
    left, −90° the patient's right, ±180° posterior.
    """
    d = np.asarray(outward, float) / np.linalg.norm(outward)
    tilt = float(np.degrees(np.arcsin(np.clip(d[2], -1.0, 1.0))))
    in_plane = float(np.degrees(np.arctan2(d[0], -d[1]))) if np.hypot(d[0], d[1]) > 1e-9 else 0.0
    return tilt, in_plane


def probe_paths(
    case: Case, probes: list[ProbeSpec], access: AccessMap | None = None
) -> list[dict[str, Any]] | None:
    """Each probe's way in on an image case, by the planner's own rules (`trace_shaft`): the
    skin entry, depth, angles, the regions crossed and the nearest no-fly structure, with the
    case's `planning:` settings or their defaults. None for a box or phantom (no skin).
    `access` is the case's access map where the caller keeps one (else it is built)."""
    if case.domain.image is None or case.target is None:
        return None
    spec = case.planning or PlanningSpec()
    if access is None:
        access = image_access(case.model_copy(update={"planning": spec}))
    out = []
    for name, probe in zip(probe_names(probes), probes, strict=True):
        geometry = probe_geometry(probe, case.probe_models)
        tip = np.asarray(geometry.tip_mm, float)
        outward = np.asarray(geometry.entry_mm, float) - tip
        model = case.probe_models.get(probe.model) if probe.model else None
        usable = getattr(model, "usable_length_mm", None) or 1e4  # inline probes: no limit
        shaft = trace_shaft(access, tip, outward, float(usable), geometry.diameter_mm / 2.0,
                            spec.clearance_mm)  # fmt: skip
        tilt, in_plane = path_angles_deg(outward)
        out.append({
            "probe": name,
            "skin_entry_mm": shaft.entry_mm.tolist(),
            "depth_mm": shaft.depth_mm,
            "angle_to_axial_plane_deg": tilt,
            "angle_in_axial_plane_deg": in_plane,
            "crosses": [{"region": region, "length_mm": length}
                        for region, length in shaft_crossings(access, shaft)],
            "nearest_no_fly": shaft.closest_structure,
            "clearance_mm": shaft.clearance_mm,
            "clearance_wanted_mm": spec.clearance_mm,
            "problem": shaft.problem,
        })  # fmt: skip
    return out
