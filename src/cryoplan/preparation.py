"""Case → `PreparedCase`: everything a run needs that does not depend on the probes or the
protocol, built once.

`prepare(case)` reads the anatomy (image, label map, phantom or box), crops and resamples it
to the simulation grid, resolves the tissues present into the solver's property table, marks
the vessel voxels held at blood temperature, places the sensors and solves the basal steady
state (`thermal.steady`). A `cryoplan.simulator.Simulator` then runs the prepared case as
often as wanted with the probes moved or the protocol changed, reusing all of it: a planner
or a Monte-Carlo sweep pays for the images and the basal solve once.

A `PreparedCase` is frozen and pickles: it holds plain values (the case with the catalogue
and tissue values it was loaded with, arrays), so a copy sent to another process gives the
same runs there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from cryoplan.anatomy import Grid, TissueMap, build_phantom
from cryoplan.anatomy.phantoms import PHANTOM_SIZES_MM
from cryoplan.budget import check_case_grid
from cryoplan.case import Case, Vessel
from cryoplan.errors import CaseError
from cryoplan.thermal.materials import MaterialRow, material_table
from cryoplan.thermal.problem import FIXED_TEMPERATURE, INSULATED, ThermalProblem
from cryoplan.thermal.steady import basal_temperature_c
from cryoplan.tissues import Ice, Tissue, load_library


@dataclass(frozen=True, eq=False)  # arrays: compared by identity, not elementwise
class PreparedCase:
    """A case on its grid, ready for runs with any probes and protocol.

    `problem` is the probe-free, "static" thermal problem: material, property table, fixed
    (vessel) voxels, outer boundary, blood temperature, and as its initial temperature the
    basal steady state [°C]; its probe coupling and schedule are empty. A run's problem is
    `dataclasses.replace(problem, probes=…, schedule=…)`, sharing every array.
    """

    case: Case
    tissue_map: TissueMap
    tissues: tuple[Tissue, ...]  # in material-index order
    problem: ThermalProblem
    sensor_index_xyz: np.ndarray  # (n_sensors, 3) fractional voxel indices of case.sensors

    @property
    def grid(self) -> Grid:
        """The simulation grid (LPS mm), fixed for every run of this case."""
        return self.tissue_map.grid

    @property
    def material(self) -> np.ndarray:
        """uint8 (nx, ny, nz): each voxel's index into `tissues`."""
        return self.problem.material

    @property
    def fixed(self) -> np.ndarray:
        """bool (nx, ny, nz): voxels held at their basal temperature (large vessels)."""
        return self.problem.fixed

    @property
    def properties(self) -> np.ndarray:
        """The solver's property table, one row per tissue (`thermal.materials`)."""
        return self.problem.properties

    @property
    def basal_temperature_c(self) -> np.ndarray:
        """The basal steady state [°C] every run starts from."""
        return self.problem.initial_temperature_c

    @property
    def body_temperature_c(self) -> float:
        """Arterial blood temperature [°C]: perfusion's source, vessels, held outer faces."""
        return self.problem.blood_temperature_c

    @property
    def tissue_names(self) -> list[str]:
        return [t.name for t in self.tissues]

    def tissue_mask(self, name: str) -> np.ndarray:
        """bool (nx, ny, nz): the voxels of one tissue."""
        return self.material == self.tissue_names.index(name)


def body_temperature_c(case: Case) -> float:
    """The case's body temperature [°C], else the library's arterial blood temperature."""
    if case.body_temperature_c is not None:
        return case.body_temperature_c
    return case.blood.temperature_c


def _check_size(case: Case, size_mm: tuple[float, float, float]) -> None:
    """The box or phantom grid's cost, before it is allocated (`budget.check_grid`)."""
    h = case.grid.spacing_mm
    check_case_grid(case, [max(1, round(s / h)) for s in size_mm])  # as Grid.centred_box


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
    """The case's tissue map on the simulation grid (box, phantom, or cropped patient image)."""
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
    # SimpleITK and the DICOM readers: loaded only for an image domain
    from cryoplan.anatomy.patient import build_patient_anatomy  # noqa: PLC0415

    return build_patient_anatomy(case)


def resolve_tissues(case: Case, names: list[str]) -> list[Tissue]:
    """The complete tissues of these names, as the case resolved them when it was loaded."""
    return [case.resolved_tissues[n] for n in names]


def material_rows(
    tissues: list[Tissue], blood_capacity_j_m3k: float, ice: Ice | None = None
) -> list[MaterialRow]:
    """Tissue → solver material row (perfusion coefficient P = w_b ρ_b c_b [W/(m³·K)], with
    w_b the tissue's perfusion [1/s] and ρ_b c_b the blood's volumetric heat capacity). With
    `ice`, the frozen k and C follow temperature through the tissue's ice
    (`Tissue.frozen_slopes`); without, they are constant below the solidus."""
    slopes = [t.frozen_slopes(ice) if ice else (0.0, 0.0) for t in tissues]
    return [
        MaterialRow(
            conductivity_frozen_w_mk=t.conductivity_w_mk.frozen,
            conductivity_unfrozen_w_mk=t.conductivity_w_mk.unfrozen,
            capacity_frozen_j_m3k=t.heat_capacity_j_m3k.frozen,
            capacity_unfrozen_j_m3k=t.heat_capacity_j_m3k.unfrozen,
            latent_heat_j_m3=t.latent_heat_j_m3,
            solidus_c=t.freezing_range_c[0],
            liquidus_c=t.freezing_range_c[1],
            perfusion_coefficient_w_m3k=t.perfusion_1_s * blood_capacity_j_m3k,
            metabolic_w_m3=t.metabolic_w_m3,
            lethal_c=t.lethal_temperature_c,
            conductivity_slope_w_mk2=kappa,
            capacity_slope_j_m3k2=gamma,
        )
        for t, (kappa, gamma) in zip(tissues, slopes, strict=True)
    ]


def sensor_indices(case: Case, grid: Grid) -> np.ndarray:
    """Fractional voxel indices (n, 3) of the case's sensors; a sensor outside the domain is
    a `CaseError` naming it."""
    out = []
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
        out.append(idx)
    return np.asarray(out, float).reshape(-1, 3)


def prepare(case: Case) -> PreparedCase:
    """Read the anatomy, build the property table and solve the basal state of a case, once
    for any number of runs (raises `CaseError` for a mistake found on the grid).

    The case's probes and protocol, if it has any, are not needed here; for a patient image
    they (with the target and `grid.region_mm`) decide where the grid is cropped.
    """
    return prepare_on(case, build_anatomy(case))


def prepare_on(case: Case, tissue_map: TissueMap) -> PreparedCase:
    """`prepare` on an anatomy already built: the property table, vessels, sensors and basal
    state of `case` on `tissue_map`. A sweep that varies tissue values (`cryoplan.sweep`)
    prepares each variant of a case this way, on the anatomy of the first, without reading
    the images again; `case` must then differ from the first only in its values (tissues,
    probe models, body temperature), not in its domain or grid."""
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
    sensors = sensor_indices(case, grid)
    # a read-only view, no memory: the steady solve below makes the one field it needs
    initial = np.broadcast_to(np.float64(t_body), grid.shape)
    kind = INSULATED if case.outer_boundary == "insulated" else FIXED_TEMPERATURE
    uniform = ThermalProblem(
        spacing_m=grid.spacing_m,
        material=material,
        properties=material_table(
            material_rows(
                tissues,
                case.blood.volumetric_heat_capacity_j_m3k,
                load_library().ice if case.frozen_properties == "temperature_dependent" else None,
            )
        ),
        initial_temperature_c=initial,
        fixed=fixed,
        boundary_kind=(kind,) * 6,  # type: ignore[arg-type]
        boundary_temperature_c=(t_body,) * 6,  # type: ignore[arg-type]
        blood_temperature_c=t_body,
        schedule=(),
    )
    # Start from the tissue's basal steady state, not a uniform 37 °C (thermal.steady); the
    # probes are off in it, so it serves every run. A domain with none (insulated,
    # unperfused, metabolising) keeps the uniform start.
    try:
        basal = basal_temperature_c(uniform)
    except ValueError:
        basal = np.full(grid.shape, t_body)
    problem = dataclasses.replace(uniform, initial_temperature_c=basal)
    return PreparedCase(case, tissue_map, tuple(tissues), problem, sensors)
