"""Planning baselines: cryoplan's planner against two planners from the literature, on the
same case, each plan judged by the same full solve.

    .venv/bin/python benchmarks/planning/bench_baselines.py CASE.yaml [CASE.yaml ...]
        [--out benchmarks/results/planning-baselines.json]

A case needs a `target` and (optionally) a `planning:` section; its `probes` and `protocol`
are ignored. Three planners make a plan for it:

1. **ellipsoid** (as in BWH's CryoMC, Acad Radiol 2021): each probe's lethal zone and ice
   ball (0 °C) are ellipsoids about its axis. Their sizes are the probe model's own: one
   probe of `planning.probe_models[0]` is simulated in a uniform box of the target tissue
   (90 × 110 × 90 mm, at the case's grid spacing: a 1 mm grid moves the phantom's sizes by
   ≤ 0.4 mm and takes 15× longer) on the longest protocol of the planning menu, and the
   lethal (the case's injury model, p ≥ 0.5) and 0 °C isotherms' radial half-width, axial
   half-length and axial centre (from the tip towards the entry) are measured on its T_min.
   Nelder–Mead then moves the tips of
   n = 1 … `max_probes` parallel probes (along the best direction `access_directions`
   finds) to maximise the share of the target inside the lethal ellipsoids plus the share
   of the margin shell (target grown by `margin_mm`) inside the 0 °C ellipsoids, from a few
   starts; the fewest probes whose ellipsoids cover both fully is the plan (else the best).
   The ellipsoids know nothing of vessels, of the organ around the target or of how
   neighbouring ice balls merge: that is the baseline. `--calibration-tissue liver` sizes
   them in another tissue (the organ around the target, say) instead.
2. **bubble packing** (Rabin, Shimada and co-workers, CMU): probes at the sites of a
   hexagonal packing of bubbles `--bubble-spacing-mm` (17 mm) apart across the target's
   cross-section shrunk by `--bubble-inset-mm` (8 mm; the "cryoprobe convex hull"
   contracted 7–9 mm), each active length centred on the target's depth along its line;
   the count is what the packing gives (at most `max_probes`).
3. **cryoplan**: `cryoplan.planning.plan(case, workers=1)`.

Both baselines use the longest protocol of the planning menu (the one the ellipsoids are
measured on) and the planner's access rules: each shaft is traced back to the skin
(`access.trace_shaft`), and whether that path is allowed is reported, not enforced.

Each plan is then solved at the case's own spacing and scored with the planner's objective
(`objective.score`): lethal coverage, least ice margin, collateral lethal volume, met; and
P(met) under the placement error with the planner's σ, seed and sample count, on the
planner's search model (`planner._robustness`; cryoplan's own figure is its chosen plan's).
Wall time of the planning step: for the baselines, preparing the case, the access map and
directions, and the baseline's own work (the ellipsoid baseline's calibration run
included); for cryoplan, `plan`'s whole time (it also prepares the search model and runs
its own P(met) and verification, which the baselines' time leaves out).

Nothing is asserted: measured on demand (benchmarks/planning/README.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage, optimize
from scipy.spatial import cKDTree

from cryoplan.case import BoxDomain, Case, Domain, GridSpec, PlanningSpec, ProtocolOption, load_case
from cryoplan.errors import CaseError
from cryoplan.injury import LETHAL_PROBABILITY, injury_model
from cryoplan.planning import planner
from cryoplan.planning.access import AccessMap, Shaft, box_access, image_access, trace_shaft
from cryoplan.planning.layout import Layout, TargetFrame, cross_section_sites, place
from cryoplan.planning.objective import PlanScore, score, target_geometry
from cryoplan.preparation import PreparedCase, prepare
from cryoplan.simulator import Simulator

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "planning-baselines.json"

# the single-probe calibration run of the ellipsoid baseline
CALIBRATION_LATERAL_MM = 90.0  # box across the probe (body temperature at its faces)
CALIBRATION_AXIAL_MM = 110.0  # box along the probe
PROFILE_STEP_MM = 0.1  # sampling step along the profiles the isotherms are read from
AZIMUTHS = 8  # radial profiles around the axis, averaged

# the ellipsoid baseline's Nelder–Mead
NM_MAX_ITERATIONS = 300  # per start
NM_STARTS_SPREAD = (1.0, 0.7)  # k-means sites × spread; a third start jitters the first
NM_JITTER_MM = 3.0
NM_SIMPLEX_STEP_MM = 3.0  # initial simplex: each coordinate moved this far
SOFT_EDGE_MM = 1.0  # width of the smoothed inside/outside step the optimiser sees
SPACING_PENALTY = 1.0  # objective lost per min_spacing_mm of shortfall in probe spacing

# the bubble-packing baseline
BUBBLE_INSET_MM = 8.0  # target shrunk by this (7–9 mm in the sources)
BUBBLE_SPACING_MM = 17.0  # between neighbouring probes (15–20 mm)
LATTICE_ROTATIONS_DEG = tuple(range(0, 60, 10))
LATTICE_OFFSETS = 6  # offsets per lattice direction tried


@dataclasses.dataclass(frozen=True)
class ZoneSize:
    """An isotherm of one probe as an ellipsoid of revolution about the probe's axis [mm]."""

    radial_half_width_mm: float
    axial_half_length_mm: float
    centre_from_tip_mm: float  # from the tip towards the entry along the axis
    level_c: float  # the temperature the zone is bounded by


@dataclasses.dataclass(frozen=True)
class ProbeIsotherms:
    """The lethal zone and the ice ball (0 °C) of one probe on one protocol."""

    lethal: ZoneSize
    ice: ZoneSize
    box_tissue: str
    calibration_s: float

    def as_dict(self) -> dict[str, Any]:
        def rounded(zone: ZoneSize) -> dict[str, float]:
            return {k: round(v, 2) for k, v in dataclasses.asdict(zone).items()}

        return {
            "lethal": rounded(self.lethal),
            "ice_0c": rounded(self.ice),
            "box_tissue": self.box_tissue,
            "calibration_s": self.calibration_s,
        }


@dataclasses.dataclass
class CaseSetting:
    """What every planner of one case shares: the prepared case, its objective's geometry,
    the access map and best directions, the probe model, the protocol menu."""

    case: Case
    spec: PlanningSpec
    fine: PreparedCase
    geometry: Any  # objective.TargetGeometry
    access: AccessMap
    directions: list[np.ndarray]
    why_no_direction: str | None
    model_name: str
    active_length_mm: float
    usable_mm: float
    radius_mm: float
    longest: ProtocolOption
    shared_s: float  # preparing, access map, directions


def lethal_level_c(case: Case, tissue: str, cycles: int) -> float:
    """The warmest T_min [°C] at which the case's injury model calls `tissue` dead
    (p ≥ 0.5) after `cycles` freeze–thaw cycles: the lethal isotherm's temperature."""
    temperatures_c = np.linspace(-120.0, 0.0, 12001)
    shape = (temperatures_c.size, 1, 1)
    p = injury_model(case.injury.model).probability_of_death(
        temperatures_c.reshape(shape),
        np.full(shape, cycles, np.int16),
        np.zeros(shape, np.uint8),
        (case.resolved_tissues[tissue],),
    )
    dead = temperatures_c[p.ravel() >= LETHAL_PROBABILITY]
    return float(dead.max()) if dead.size else -math.inf


def measure_isotherms(setting: CaseSetting, tissue: str | None = None) -> ProbeIsotherms:
    """One probe of the planning model in a uniform box of `tissue` (default: the target's),
    on the longest protocol: the lethal and 0 °C zones' sizes read off its T_min (module
    docstring, 1). The lethal level is the injury model's for the target tissue."""
    started = time.perf_counter()
    case = setting.case
    box = case.model_copy(
        update={
            "domain": Domain(
                box=BoxDomain(
                    size_mm=(CALIBRATION_LATERAL_MM, CALIBRATION_AXIAL_MM, CALIBRATION_LATERAL_MM),
                    tissue=tissue or case.target,
                )
            ),
            "grid": GridSpec(spacing_mm=case.grid.spacing_mm),
            "target": None,  # the box may hold another tissue than the target
            "probes": None,
            "protocol": None,
            "critical_structures": [],
            "sensors": [],
            "planning": None,
        }
    )
    prepared = prepare(box)
    # the probe along +y (anterior → posterior), its active length centred in the box
    direction = np.array([0.0, 1.0, 0.0])
    tip_mm = 0.5 * setting.active_length_mm * direction
    entry_mm = tip_mm - (0.5 * CALIBRATION_AXIAL_MM + 10.0) * direction
    probe = {"model": setting.model_name, "tip_mm": tip_mm.tolist(), "entry_mm": entry_mm.tolist()}
    run = Simulator(prepared).run(probes=[probe], protocol=setting.longest.phases)
    tmin_c = run.history.minimum_temperature_c
    cycles = int(run.history.freeze_thaw_cycles.max())
    lethal_c = lethal_level_c(case, case.target, cycles)  # type: ignore[arg-type]
    lethal = _zone_size(prepared, tmin_c, lethal_c, tip_mm, direction, setting.active_length_mm)
    ice = _zone_size(prepared, tmin_c, 0.0, tip_mm, direction, setting.active_length_mm)
    return ProbeIsotherms(lethal, ice, tissue or case.target, time.perf_counter() - started)


def _zone_size(
    prepared: PreparedCase,
    tmin_c: np.ndarray,
    level_c: float,
    tip_mm: np.ndarray,
    direction: np.ndarray,
    active_length_mm: float,
) -> ZoneSize:
    """The zone T_min ≤ level_c about a probe as an ellipsoid: its axial ends on the probe's
    axis, and its widest radial reach (mean of `AZIMUTHS` profiles) between them, read where
    T_min crosses the level (linear interpolation, `PROFILE_STEP_MM` steps)."""
    grid = prepared.grid

    def profile(points_mm: np.ndarray) -> np.ndarray:
        index = grid.index_from_lps(points_mm).T
        return ndimage.map_coordinates(tmin_c, index, order=1, mode="nearest")

    # along the axis: s from the tip towards the entry (negative: beyond the tip)
    s_mm = np.arange(-60.0, 60.0 + active_length_mm, PROFILE_STEP_MM)
    inside = profile(tip_mm - s_mm[:, None] * direction) <= level_c
    middle = int(np.argmin(np.abs(s_mm - 0.5 * active_length_mm)))
    if not inside[middle]:
        return ZoneSize(0.0, 0.0, 0.5 * active_length_mm, level_c)
    outside = np.flatnonzero(~inside)
    beyond_tip = outside[outside < middle]
    towards_entry = outside[outside > middle]
    s_lo = s_mm[beyond_tip.max() + 1] if beyond_tip.size else s_mm[0]
    s_hi = s_mm[towards_entry.min() - 1] if towards_entry.size else s_mm[-1]
    e1 = np.array([1.0, 0.0, 0.0])
    e2 = np.cross(direction, e1)
    r_mm = np.arange(0.0, 0.5 * CALIBRATION_LATERAL_MM, PROFILE_STEP_MM)
    widest = 0.0
    for s in np.arange(s_lo, s_hi, 1.0):
        reach = []
        for k in range(AZIMUTHS):
            angle = 2 * np.pi * k / AZIMUTHS
            radial = np.cos(angle) * e1 + np.sin(angle) * e2
            points = tip_mm - s * direction + r_mm[:, None] * radial
            cold = profile(points) <= level_c
            warm = np.flatnonzero(~cold)
            reach.append(r_mm[warm[0] - 1] if warm.size and warm[0] > 0 else 0.0)
        widest = max(widest, float(np.mean(reach)))
    return ZoneSize(widest, 0.5 * float(s_hi - s_lo), 0.5 * float(s_hi + s_lo), level_c)


def _setting(case: Case) -> CaseSetting:
    """Prepare the case and find the access directions as the planner does (timed)."""
    started = time.perf_counter()
    spec = case.planning or PlanningSpec()
    case = case.model_copy(update={"planning": spec})
    bare = case.model_copy(update={"probes": None, "protocol": None})
    fine = prepare(bare)
    geometry = target_geometry(fine, spec.lethal_margin_mm)
    if bare.domain.image is not None:
        access = image_access(bare)
    else:
        access = box_access(bare, fine.grid, fine.material, fine.tissue_names)
    model_name = spec.probe_models[0]
    model = case.probe_models[model_name]
    usable_mm = float(model.usable_length_mm)  # type: ignore[arg-type]
    radius_mm = model.diameter_mm / 2.0
    target_points = fine.grid.lps_from_index(np.argwhere(geometry.target))
    directions, why_not = planner.access_directions(
        access, target_points, spec, usable_mm, radius_mm
    )
    longest = planner._protocol_menu(spec, case.source)[-1]
    return CaseSetting(
        bare, spec, fine, geometry, access, directions, why_not, model_name,
        float(model.active_length_mm), usable_mm, radius_mm, longest,
        time.perf_counter() - started,
    )  # fmt: skip


def _shafts(setting: CaseSetting, layout: Layout) -> tuple[Shaft, ...]:
    """Each tip traced back along the layout's direction to the skin (allowed or not)."""
    s = setting
    return tuple(
        trace_shaft(s.access, tip, -layout.direction, s.usable_mm, s.radius_mm, s.spec.clearance_mm)
        for tip in layout.tips_mm
    )


def _candidate(setting: CaseSetting, layout: Layout) -> planner.Candidate:
    placeholder = PlanScore(0.0, -math.inf, None, 0.0, -math.inf, {}, 0.0, math.inf, False, [])
    return planner.Candidate(
        setting.model_name, layout, _shafts(setting, layout), setting.longest, placeholder
    )


class EllipsoidCoverage:
    """Ellipsoid-predicted coverage of the target (lethal ellipsoids) and of the margin shell
    (0 °C ellipsoids) for tips given in the target's frame (across e1, e2; depth s)."""

    def __init__(self, setting: CaseSetting, frame: TargetFrame, sizes: ProbeIsotherms):
        grid = setting.fine.grid

        def in_frame(mask: np.ndarray) -> np.ndarray:
            rel = grid.lps_from_index(np.argwhere(mask)) - frame.centre_mm
            return np.stack([rel @ frame.e1, rel @ frame.e2, rel @ frame.direction], axis=1)

        self.target_mm = in_frame(setting.geometry.target)
        self.shell_mm = in_frame(setting.geometry.ice_shell)
        self.sizes = sizes
        self.min_spacing_mm = setting.spec.min_spacing_mm

    @staticmethod
    def _depth_inside_mm(points_mm: np.ndarray, tips: np.ndarray, zone: ZoneSize) -> np.ndarray:
        """(points, probes): how far inside each probe's ellipsoid a point lies, roughly
        [mm] ((1 − normalised radius) × the radial half-width; negative outside)."""
        a, b = max(zone.radial_half_width_mm, 1e-6), max(zone.axial_half_length_mm, 1e-6)
        centres = tips.copy()
        centres[:, 2] -= zone.centre_from_tip_mm  # towards the entry: shallower
        rel = points_mm[:, None, :] - centres[None, :, :]
        q = np.sqrt((rel[..., 0] ** 2 + rel[..., 1] ** 2) / a**2 + rel[..., 2] ** 2 / b**2)
        return (1.0 - q) * a

    def least_spacing_mm(self, tips: np.ndarray) -> float:
        if len(tips) < 2:
            return math.inf
        gaps = np.linalg.norm(tips[:, None, :2] - tips[None, :, :2], axis=-1)
        return float(gaps[np.triu_indices(len(tips), 1)].min())

    def hard(self, tips: np.ndarray) -> tuple[float, float]:
        """Shares [%] of the target inside a lethal ellipsoid and of the shell inside a
        0 °C ellipsoid."""
        lethal = self._depth_inside_mm(self.target_mm, tips, self.sizes.lethal).max(axis=1) >= 0
        ice = self._depth_inside_mm(self.shell_mm, tips, self.sizes.ice).max(axis=1) >= 0
        return 100.0 * float(lethal.mean()), 100.0 * float(ice.mean())

    def loss(self, flat: np.ndarray) -> float:
        """What Nelder–Mead minimises: minus the smoothed coverage of target and shell
        (each a share 0…1), plus a penalty for probes closer than `min_spacing_mm`."""
        tips = flat.reshape(-1, 3)
        lethal = self._depth_inside_mm(self.target_mm, tips, self.sizes.lethal).max(axis=1)
        ice = self._depth_inside_mm(self.shell_mm, tips, self.sizes.ice).max(axis=1)
        soft = _sigmoid(lethal / SOFT_EDGE_MM).mean() + _sigmoid(ice / SOFT_EDGE_MM).mean()
        shortfall = 0.0
        if len(tips) > 1:
            gaps = np.linalg.norm(tips[:, None, :2] - tips[None, :, :2], axis=-1)
            gaps = gaps[np.triu_indices(len(tips), 1)]
            shortfall = float(np.clip(self.min_spacing_mm - gaps, 0.0, None).sum())
        return -float(soft) + SPACING_PENALTY * shortfall / self.min_spacing_mm


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def ellipsoid_plan(setting: CaseSetting, sizes: ProbeIsotherms) -> tuple[Layout, dict[str, Any]]:
    """The ellipsoid baseline (module docstring, 1): the fewest parallel probes whose
    ellipsoids cover target and shell fully after Nelder–Mead, else the best coverage."""
    direction = -setting.directions[0]
    frame = TargetFrame.of(setting.geometry.target, setting.fine.grid, direction)
    coverage = EllipsoidCoverage(setting, frame, sizes)
    rng = np.random.default_rng(setting.spec.seed)
    tried = []
    best = None
    for count in range(1, setting.spec.max_probes + 1):
        try:
            sites = cross_section_sites(frame, count, seed=setting.spec.seed)
        except ValueError:
            break
        starts = []
        for spread in NM_STARTS_SPREAD if count > 1 else (1.0,):
            layout = place(frame, sites, setting.active_length_mm, spread, 0.0)
            starts.append(_in_frame(frame, layout.tips_mm))
        starts.append(starts[0] + rng.normal(0.0, NM_JITTER_MM, size=starts[0].shape))
        outcome = None
        for start in starts:
            x0 = start.ravel()
            simplex = np.vstack([x0, x0 + NM_SIMPLEX_STEP_MM * np.eye(x0.size)])
            found = optimize.minimize(
                coverage.loss,
                x0,
                method="Nelder-Mead",
                options={
                    "maxiter": NM_MAX_ITERATIONS,
                    "initial_simplex": simplex,
                    "xatol": 0.05,
                    "fatol": 1e-5,
                },
            )
            tips = found.x.reshape(-1, 3)
            lethal_pct, ice_pct = coverage.hard(tips)
            spaced = coverage.least_spacing_mm(tips) >= setting.spec.min_spacing_mm
            key = (spaced, lethal_pct + ice_pct, -found.fun)
            if outcome is None or key > outcome["key"]:
                outcome = {"key": key, "tips": tips, "lethal": lethal_pct, "ice": ice_pct,
                           "spaced": spaced, "iterations": int(found.nit)}  # fmt: skip
        assert outcome is not None
        row = {
            "probes": count,
            "ellipsoid_lethal_coverage_percent": outcome["lethal"],
            "ellipsoid_shell_coverage_percent": outcome["ice"],
            "spacing_kept": outcome["spaced"],
            "iterations_best_start": outcome["iterations"],
        }
        tried.append(row)
        if best is None or outcome["key"] > best["key"]:
            best = outcome | {"count": count}
        if outcome["spaced"] and outcome["lethal"] >= 100.0 and outcome["ice"] >= 100.0:
            best = outcome | {"count": count}
            break
    assert best is not None
    tips_mm = frame.centre_mm + best["tips"] @ np.stack([frame.e1, frame.e2, frame.direction])
    layout = Layout(tips_mm, frame.direction, 1.0, 0.0)
    details = {
        "ellipsoid_lethal_coverage_percent": best["lethal"],
        "ellipsoid_shell_coverage_percent": best["ice"],
        "full_ellipsoid_coverage": bool(best["lethal"] >= 100.0 and best["ice"] >= 100.0),
        "counts_tried": tried,
        "direction_lps": frame.direction.round(4).tolist(),
    }
    return layout, details


def _in_frame(frame: TargetFrame, points_mm: np.ndarray) -> np.ndarray:
    rel = points_mm - frame.centre_mm
    return np.stack([rel @ frame.e1, rel @ frame.e2, rel @ frame.direction], axis=1)


def bubble_plan(
    setting: CaseSetting, inset_mm: float, spacing_mm: float
) -> tuple[Layout, dict[str, Any]]:
    """The bubble-packing baseline (module docstring, 2): a hexagonal lattice `spacing_mm`
    apart, rotated and shifted to fit the most sites into the target's cross-section shrunk
    by `inset_mm` (ties: the lattice whose sites sit nearest that region's centre)."""
    grid = setting.fine.grid
    target = setting.geometry.target
    direction = -setting.directions[0]
    frame = TargetFrame.of(target, grid, direction)
    # the shrunk target: voxel centres at least inset_mm inside the target's surface (which
    # lies half a voxel beyond its outermost centres)
    half_voxel_mm = 0.5 * float(np.mean(grid.spacing_mm))
    depth_mm = ndimage.distance_transform_edt(target, sampling=grid.spacing_mm) - half_voxel_mm
    shrunk = target & (depth_mm >= inset_mm)
    notes = []
    if not shrunk.any():
        sites = np.zeros((1, 2))
        notes.append(f"the target shrunk by {inset_mm:g} mm is empty: one probe at its centre")
    else:
        rel = grid.lps_from_index(np.argwhere(shrunk)) - frame.centre_mm
        region = np.stack([rel @ frame.e1, rel @ frame.e2], axis=1)
        sites = _hex_packing(region, spacing_mm, 0.75 * float(np.min(grid.spacing_mm)))
        if len(sites) == 0:
            sites = region.mean(axis=0, keepdims=True)
            notes.append("no lattice site fell in the shrunk cross-section: one at its centre")
    if len(sites) > setting.spec.max_probes:
        order = np.argsort(np.linalg.norm(sites - sites.mean(axis=0), axis=1))
        sites = sites[order[: setting.spec.max_probes]]
        notes.append(f"capped at max_probes = {setting.spec.max_probes}")
    layout = place(frame, sites, setting.active_length_mm, 1.0, 0.0)
    details = {
        "inset_mm": inset_mm,
        "spacing_mm": spacing_mm,
        "shrunk_target_ml": float(shrunk.sum()) * grid.voxel_volume_ml,
        "notes": notes,
        "direction_lps": frame.direction.round(4).tolist(),
    }
    return layout, details


def _hex_packing(region_mm: np.ndarray, spacing_mm: float, tolerance_mm: float) -> np.ndarray:
    """Sites of a hexagonal lattice (`spacing_mm`) inside a 2-D point cloud (a site counts
    when within `tolerance_mm` of one of its points); the rotation and offset with the most
    sites, then the least mean distance to the cloud's centre."""
    tree = cKDTree(region_mm)
    centre = region_mm.mean(axis=0)
    reach = float(np.linalg.norm(region_mm - centre, axis=1).max()) + 2 * spacing_mm
    n = int(np.ceil(reach / spacing_mm)) + 1
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    unit = np.stack([i + 0.5 * j, j * math.sqrt(3) / 2], axis=-1).reshape(-1, 2) * spacing_mm
    best, best_key = np.zeros((0, 2)), (0, 0.0)
    for rotation_deg in LATTICE_ROTATIONS_DEG:
        t = math.radians(rotation_deg)
        turn = np.array([[math.cos(t), math.sin(t)], [-math.sin(t), math.cos(t)]])
        for fu in np.arange(LATTICE_OFFSETS) / LATTICE_OFFSETS:
            for fv in np.arange(LATTICE_OFFSETS) / LATTICE_OFFSETS:
                offset = spacing_mm * np.array([fu + 0.5 * fv, fv * math.sqrt(3) / 2])
                sites = centre + (unit + offset) @ turn
                distance, _ = tree.query(sites)
                inside = sites[distance <= tolerance_mm]
                if len(inside) == 0:
                    continue
                spread = float(np.linalg.norm(inside - centre, axis=1).mean())
                key = (len(inside), -spread)
                if key > best_key:
                    best, best_key = inside, key
    return best


def verify(setting: CaseSetting, cand: planner.Candidate) -> tuple[PlanScore | None, float, str]:
    """The plan solved at the case's own spacing and scored (None and why, if it cannot run)."""
    started = time.perf_counter()
    try:
        run = Simulator(setting.fine).run(probes=cand.probes(), protocol=cand.protocol.phases)
    except CaseError as exc:
        return None, time.perf_counter() - started, str(exc)
    h = run.history
    result = score(
        setting.fine, setting.geometry, h.minimum_temperature_c, h.freeze_thaw_cycles,
        setting.spec.lethal_margin_mm,
    )  # fmt: skip
    return result, time.perf_counter() - started, ""


def _row(
    case_name: str,
    planner_name: str,
    cand: planner.Candidate | None,
    verified: PlanScore | None,
    planning_s: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    robust = None if cand is None else cand.robustness
    return {
        "case": case_name,
        "planner": planner_name,
        "probes": None if cand is None else cand.count,
        "protocol": None if cand is None else cand.protocol.name,
        "met": None if verified is None else verified.met,
        "lethal_coverage_percent": None if verified is None else verified.lethal_coverage_percent,
        "ice_margin_mm": None if verified is None else verified.ice_margin_mm,
        "margin_shell_frozen_percent": None
        if verified is None
        else verified.margin_shell_frozen_percent,
        "lethal_margin_mm": None if verified is None else verified.lethal_margin_mm,
        "collateral_lethal_ml": None if verified is None else verified.collateral_lethal_ml,
        "missed": None if verified is None else verified.reasons,
        "success_probability": None if robust is None else robust.probability,
        "success_interval_95": None if robust is None else list(robust.interval),
        "samples": None if robust is None else robust.samples,
        "planning_s": planning_s,
        "shafts_allowed": None if cand is None else [sh.allowed for sh in cand.shafts],
        "shaft_problems": None
        if cand is None
        else [sh.problem for sh in cand.shafts if sh.problem is not None],
        "plan_probes": None if cand is None else cand.probes(),
    } | extra


def bench_case(
    path: Path, inset_mm: float, spacing_mm: float, calibration_tissue: str | None, say
) -> list[dict[str, Any]]:
    """The three planners on one case: a row each (module docstring)."""
    case = load_case(path)
    if case.target is None:
        raise SystemExit(f"{path}: the case names no target")
    say(f"{case.name}: preparing, access directions")
    setting = _setting(case)
    rows: list[dict[str, Any]] = []
    spec = setting.spec
    if not setting.directions:
        say(f"{case.name}: no access direction ({setting.why_no_direction}); baselines skipped")
    else:
        model_spacing_mm = spec.model_spacing_mm or 2.0 * case.grid.spacing_mm
        search = planner.SearchModel.for_case(
            setting.case, setting.fine, model_spacing_mm, spec.lethal_margin_mm, workers=1
        )
        say(f"{case.name}: ellipsoid baseline (calibration run, Nelder–Mead)")
        started = time.perf_counter()
        sizes = measure_isotherms(setting, calibration_tissue)
        layout, details = ellipsoid_plan(setting, sizes)
        cand = _candidate(setting, layout)
        own_s = time.perf_counter() - started
        rows.append(_judged(setting, search, cand, "ellipsoid (CryoMC-style)", own_s,
                            details | {"isotherms": sizes.as_dict()}, say))  # fmt: skip
        say(f"{case.name}: bubble-packing baseline")
        started = time.perf_counter()
        layout, details = bubble_plan(setting, inset_mm, spacing_mm)
        cand = _candidate(setting, layout)
        own_s = time.perf_counter() - started
        rows.append(_judged(setting, search, cand, "bubble packing", own_s, details, say))
        search.close()
    say(f"{case.name}: cryoplan plan (workers=1)")
    result = planner.plan(case, workers=1)
    summary = result.summary()["plan"]
    row = _row(case.name, "cryoplan", result.chosen, result.verified, result.timing_s["total_s"], {
        "status": summary["status"],
        "blocked": result.blocked,
        "notes": list(result.notes),
        "timing_s": result.timing_s,
        "verify_s": result.timing_s.get("verify_s"),
        "sessions": summary["sessions"],
    })  # fmt: skip
    if result.staged is not None:  # K sessions: their probes together, P(met) of all of them
        robust = result.staged.robustness
        row |= {
            "probes": summary["probe_count"],
            "protocol": "/".join(c.protocol.name for c in result.candidates),
            "success_probability": result.success_probability,
            "success_interval_95": None if robust is None else list(robust.interval),
            "samples": None if robust is None else robust.samples,
            "plan_probes": [c.probes() for c in result.candidates],
        }
    rows.append(row)
    return rows


def _judged(setting, search, cand, name, own_s, details, say) -> dict[str, Any]:
    """A baseline's plan verified at the case's spacing and run under the placement error."""
    say(f"  {name}: {cand.count} probes; full solve")
    verified, verify_s, failure = verify(setting, cand)
    say(f"  {name}: placement error ({setting.spec.samples} samples on the search model)")
    robust = planner._robustness(search, cand, setting.spec, stop_below=None)
    planning_s = setting.shared_s + own_s
    extra = details | {
        "status": "met" if verified is not None and verified.met else "not met",
        "verify_s": verify_s,
        "timing_s": {"shared_s": setting.shared_s, "own_s": own_s},
        "failure": failure or None,
    }
    return _row(setting.case.name, name, robust, verified, planning_s, extra)


def warm_up() -> None:
    """One tiny run so that compiling (or loading) the solver's kernels is in no timing."""
    from cryoplan.case import case_from_dict  # noqa: PLC0415

    case = case_from_dict(
        {
            "domain": {"box": {"size_mm": [40, 40, 40], "tissue": "liver"}},
            "grid": {"spacing_mm": 4.0},
            "probes": [{"model": "argon-17g", "tip_mm": [0, 10, 0], "entry_mm": [0, -40, 0]}],
            "protocol": [{"phase": "freeze", "duration_min": 1}],
        }
    )
    Simulator(prepare(case)).run()


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="Planning baselines (verified at the case's spacing)")
    columns = ("case", "planner", "probes", "protocol", "lethal %", "ice margin mm",
               "shell frozen %", "collateral mL", "met", "P(met) (95 %)", "plan s")  # fmt: skip
    for column in columns:
        table.add_column(column)

    def f(value, digits=1):
        return "–" if value is None else f"{value:.{digits}f}"

    for r in rows:
        p = r["success_probability"]
        lo, hi = r["success_interval_95"] or (None, None)
        robust = "–" if p is None else f"{p:.2f} ({lo:.2f}–{hi:.2f}, n={r['samples']})"
        table.add_row(
            r["case"], r["planner"], str(r["probes"]), str(r["protocol"]),
            f(r["lethal_coverage_percent"]), f(r["ice_margin_mm"]),
            f(r["margin_shell_frozen_percent"]), f(r["collateral_lethal_ml"]),
            str(r["met"]),
            robust,
            f(r["planning_s"]),
        )  # fmt: skip
    Console(width=200).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="+", type=Path, help="case YAML files with a target")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON")
    parser.add_argument("--bubble-inset-mm", type=float, default=BUBBLE_INSET_MM)
    parser.add_argument("--bubble-spacing-mm", type=float, default=BUBBLE_SPACING_MM)
    parser.add_argument(
        "--calibration-tissue",
        help="the ellipsoid baseline's box tissue (default: the case's target tissue)",
    )
    args = parser.parse_args()
    started = time.perf_counter()

    def say(what: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f} s] {what}", flush=True)

    warm_up()
    rows: list[dict[str, Any]] = []
    for path in args.cases:
        try:
            rows += bench_case(
                path, args.bubble_inset_mm, args.bubble_spacing_mm, args.calibration_tissue, say
            )
        except CaseError as exc:  # a case the planners cannot take: say so, go on
            say(f"{path}: {exc}")
            rows.append({"case": str(path), "planner": "all", "error": str(exc)})
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows},
                                       indent=1, default=_jsonable))  # fmt: skip
    print_table([r for r in rows if "error" not in r])
    say(f"wrote {args.out}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    main()
