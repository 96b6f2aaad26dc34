"""Case → thermal Problem: the grid, tissue property table, probes on the grid, schedule.

This is the only place where anatomy, tissues, probes and protocol meet the solver's plain
arrays. Every check that needs the grid (probes and sensors inside the domain) happens
here, before anything is solved or written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cryoplan.anatomy import Grid, TissueMap, build_phantom
from cryoplan.anatomy.patient import build_patient_anatomy
from cryoplan.anatomy.phantoms import PHANTOM_SIZES_MM
from cryoplan.case import Case, Vessel
from cryoplan.errors import CaseError
from cryoplan.probes.coupling import ActiveSegment, couple_probes
from cryoplan.probes.geometry import probe_geometry
from cryoplan.protocol import build_schedule
from cryoplan.thermal.materials import MaterialRow, material_table
from cryoplan.thermal.problem import (
    FIXED_TEMPERATURE,
    INSULATED,
    RecordingPlan,
    ThermalProblem,
)
from cryoplan.thermal.steady import basal_temperature_c
from cryoplan.tissues import Tissue, complete_tissue, load_library, merge_tissue

ISOTHERMS_C = (0.0, -20.0, -40.0)
# About 50 bytes of state per voxel: 250 million voxels is ~12 GB, half the machine.
MAX_VOXELS = 250_000_000


@dataclass(frozen=True)
class PlacedProbe:
    """A probe resolved against the catalogue, in LPS millimetres."""

    name: str
    model: str | None
    diameter_mm: float
    active_length_mm: float
    tip_mm: np.ndarray
    entry_mm: np.ndarray
    active_end_mm: np.ndarray  # tip + active length towards the entry


@dataclass(frozen=True)
class Discretised:
    """The case on its grid: what the solver gets, and what the outputs need to explain it."""

    case: Case
    tissue_map: TissueMap
    tissues: tuple[Tissue, ...]  # in material-index order
    probes: tuple[PlacedProbe, ...]
    problem: ThermalProblem
    plan: RecordingPlan

    @property
    def grid(self) -> Grid:
        return self.tissue_map.grid


def body_temperature_c(case: Case) -> float:
    if case.body_temperature_c is not None:
        return case.body_temperature_c
    return load_library().blood.temperature_c


def _check_size(case: Case, size_mm: tuple[float, float, float]) -> None:
    h = case.grid.spacing_mm
    n = int(np.prod([max(1, round(s / h)) for s in size_mm]))
    if n > MAX_VOXELS:
        raise CaseError(
            case.source,
            "grid.spacing_mm",
            f"a spacing that gives at most {MAX_VOXELS:,} voxels; {h} mm gives {n:,}",
        )


def vessel_mask(grid: Grid, vessel: Vessel) -> np.ndarray:
    """Voxels whose centres lie within the vessel's radius of its segment (LPS mm).

    Computed one i-slab at a time so that a 0.5 mm grid needs no index arrays of its own size.
    """
    a = np.asarray(vessel.from_mm, float)
    axis = np.asarray(vessel.to_mm, float) - a
    jj, kk = np.meshgrid(np.arange(grid.shape[1]), np.arange(grid.shape[2]), indexing="ij")
    mask = np.zeros(grid.shape, bool)
    for i in range(grid.shape[0]):
        index = np.stack([np.full(jj.shape, i), jj, kk], axis=-1)
        rel = grid.lps_from_index(index) - a
        along = np.clip(rel @ axis / (axis @ axis), 0.0, 1.0)
        off_axis = rel - along[..., None] * axis
        mask[i] = np.einsum("...c,...c->...", off_axis, off_axis) <= (vessel.diameter_mm / 2) ** 2
    return mask


def build_anatomy(case: Case) -> TissueMap:
    d = case.domain
    h = case.grid.spacing_mm
    if d.box is not None:
        _check_size(case, d.box.size_mm)
        grid = Grid.centred_box(d.box.size_mm, h)
        labels = np.zeros(grid.shape, np.uint8)
        names = [d.box.tissue]
        for vessel in d.box.vessels:
            if vessel.tissue not in names:
                names.append(vessel.tissue)
            labels[vessel_mask(grid, vessel)] = names.index(vessel.tissue)
        return TissueMap(grid, labels, dict(enumerate(names)))
    if d.phantom is not None:  # the name was checked with the case
        _check_size(case, PHANTOM_SIZES_MM[d.phantom])
        return build_phantom(d.phantom, h)
    return build_patient_anatomy(case)


def resolve_tissues(case: Case, names: list[str]) -> list[Tissue]:
    library = load_library().tissues
    out = []
    for n in names:
        spec = case.tissues.get(n)
        base = library.get(n) or (library.get(spec.like) if spec and spec.like else None)
        out.append(complete_tissue(n, merge_tissue(n, base, spec)))
    return out


def material_rows(tissues: list[Tissue]) -> list[MaterialRow]:
    """Tissue → solver material row (perfusion coefficient P = w_b ρ_b c_b)."""
    blood_capacity = load_library().blood.volumetric_heat_capacity_j_m3k
    return [
        MaterialRow(
            conductivity_frozen_w_mk=t.conductivity_w_mk.frozen,
            conductivity_unfrozen_w_mk=t.conductivity_w_mk.unfrozen,
            capacity_frozen_j_m3k=t.heat_capacity_j_m3k.frozen,
            capacity_unfrozen_j_m3k=t.heat_capacity_j_m3k.unfrozen,
            latent_heat_j_m3=t.latent_heat_j_m3,
            solidus_c=t.freezing_range_c[0],
            liquidus_c=t.freezing_range_c[1],
            perfusion_coefficient_w_m3k=t.perfusion_1_s * blood_capacity,
            metabolic_w_m3=t.metabolic_w_m3,
            lethal_c=t.lethal_temperature_c,
        )
        for t in tissues
    ]


def place_probes(case: Case, grid: Grid) -> list[PlacedProbe]:
    lo, hi = grid.bounds_mm()
    placed = []
    for i, (spec, name) in enumerate(zip(case.probes, case.probe_names(), strict=True)):
        g = probe_geometry(spec)
        for point, what in ((g.tip_mm, "tip"), (g.active_end_mm, "end of the active length")):
            if not grid.contains_index(grid.index_from_lps(point)):
                raise CaseError(
                    case.source,
                    f"probes[{i}].tip_mm",
                    f"the probe's {what} {np.round(point, 2).tolist()} mm lies outside the domain "
                    f"(LPS {np.round(lo, 2).tolist()} to {np.round(hi, 2).tolist()} mm); "
                    "the active length must be inside",
                )
        placed.append(
            PlacedProbe(
                name,
                spec.model,
                g.diameter_mm,
                g.active_length_mm,
                g.tip_mm,
                g.entry_mm,
                g.active_end_mm,
            )
        )
    return placed


def discretise(case: Case) -> Discretised:
    """Build the thermal Problem of a case (raises `CaseError` for geometry mistakes)."""
    tissue_map = build_anatomy(case)
    grid = tissue_map.grid
    labels_present = sorted(int(v) for v in np.unique(tissue_map.labels))
    names = [tissue_map.tissue_of_label[v] for v in labels_present]
    tissues = resolve_tissues(case, names)
    lut = np.zeros(max(labels_present) + 1, np.uint8)
    lut[labels_present] = np.arange(len(labels_present), dtype=np.uint8)
    material = np.ascontiguousarray(lut[tissue_map.labels])
    if case.target is not None and case.target not in names:
        raise CaseError(
            case.source,
            "target",
            f"tissue {case.target!r} does not occur in the domain ({', '.join(names)})",
        )

    t_body = body_temperature_c(case)
    is_vessel = np.array([t.blood_vessel for t in tissues])
    fixed = is_vessel[material]
    # a read-only view, no memory: the steady solve below makes the one field it needs
    initial = np.broadcast_to(np.float64(t_body), grid.shape)

    probes = place_probes(case, grid)
    spacing_m = grid.spacing_m
    segments = [
        ActiveSegment(
            tuple(grid.index_from_lps(p.tip_mm)),  # type: ignore[arg-type]
            tuple(grid.index_from_lps(p.active_end_mm)),  # type: ignore[arg-type]
            p.diameter_mm / 2 * 1e-3,
        )
        for p in probes
    ]
    coupling = couple_probes(segments, grid.shape, spacing_m, fixed)

    sensor_idx = []
    for i, s in enumerate(case.sensors):
        idx = grid.index_from_lps(np.asarray(s.at_mm))
        if not grid.contains_index(idx):
            lo, hi = grid.bounds_mm()
            raise CaseError(
                case.source,
                f"sensors[{i}].at_mm",
                f"a point inside the domain (LPS {np.round(lo, 2).tolist()} to "
                f"{np.round(hi, 2).tolist()} mm), got {list(s.at_mm)}",
            )
        sensor_idx.append(idx)

    kind = INSULATED if case.outer_boundary == "insulated" else FIXED_TEMPERATURE
    uniform = ThermalProblem(
        spacing_m=spacing_m,
        material=material,
        properties=material_table(material_rows(tissues)),
        initial_temperature_c=initial,
        fixed=fixed,
        boundary_kind=(kind,) * 6,  # type: ignore[arg-type]
        boundary_temperature_c=(t_body,) * 6,  # type: ignore[arg-type]
        blood_temperature_c=t_body,
        schedule=build_schedule(case),
        probes=coupling,
    )
    # Start from the tissue's basal steady state, not a uniform 37 °C (thermal.steady). A
    # domain with none (insulated, unperfused, metabolising) keeps the uniform start.
    try:
        basal = basal_temperature_c(uniform)
    except ValueError:
        basal = np.full(grid.shape, t_body)
    problem = dataclasses.replace(uniform, initial_temperature_c=basal)
    plan = RecordingPlan(
        snapshot_times_s=tuple(60.0 * t for t in case.output.snapshot_times_min),
        sensor_index_xyz=np.asarray(sensor_idx, float).reshape(-1, 3),
        sensor_interval_s=case.output.sensor_interval_s,
        volume_thresholds_c=ISOTHERMS_C,
    )
    return Discretised(case, tissue_map, tuple(tissues), tuple(probes), problem, plan)
