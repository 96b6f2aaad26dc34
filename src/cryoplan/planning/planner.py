"""Automatic planning: how many probes, along which path, where, with which protocol.

    result = plan(case)                 # case with a `planning:` section (or defaults)
    result.chosen.probes                # probe specs with skin entry points
    result.case_yaml()                  # a complete case `cryoplan simulate` runs unchanged

The search, in order (docs/planning.md):

1. **Access.** Outward directions over the sphere (or the axial circle) are traced from the
   target's centre to the skin (`access.trace_shaft`); allowed ones are ranked by clearance
   from no-fly structures (capped at 10 mm), then by depth. The probes of a plan are
   parallel, along one of the best few directions, each shaft checked on its own.
2. **Layout and physics.** For 1, 2, … probes (`layout`), the spread across the target and
   the depth offset are tuned on the *search model*: the same solver and case on a coarser
   grid (`planning.model_spacing_mm`, default twice the case's spacing), its T_min
   interpolated onto the case's grid and scored there (`objective`). The longest protocol
   of the menu is tried first; where it meets the objective, shorter ones are tried on the
   same layout.
3. **Robustness.** A plan that meets the objective on the model is run `samples` times with
   each probe moved by the placement error (Gaussian: lateral σ in each of two directions
   across the shaft, depth σ along it): P(met) with its 95 % Wilson interval, and the
   per-voxel probability of lethal freezing.
4. **Choice.** The first plan with P(met) ≥ `min_success_probability` in the order fewest
   probes, then shortest protocol; else the most robust plan that meets the objective,
   flagged. It is then solved once at the case's own spacing (`verified`): that, not the
   model, says whether the plan meets the objective.

Where no plan within the limits meets the objective, the result says why, naming the
structure or limit (`PlanResult.blocked`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.case import Case, PlanningSpec, ProtocolOption, protocol_from
from cryoplan.errors import CaseError
from cryoplan.planning.access import (
    AccessMap,
    Shaft,
    box_access,
    candidate_directions,
    image_access,
    planning_defaults,
    trace_shaft,
)
from cryoplan.planning.layout import Layout, TargetFrame, across, cross_section_sites, place
from cryoplan.planning.objective import PlanScore, TargetGeometry, score, target_geometry
from cryoplan.preparation import PreparedCase, prepare
from cryoplan.simulator import Simulator

PlanProgress = Callable[[str, float], None]  # (what is being done, fraction done 0…1)

SPREADS = (0.6, 0.85, 1.1, 1.35, 1.6)  # spread factors tried across the target
DEPTH_OFFSETS_MM = (-4.0, 4.0)  # depth offsets tried at the best spread
SHIFTS_MM = (2.5, 5.0)  # moves of the whole layout towards its weakest side
DIRECTIONS_TRIED = 3  # the best few access directions a layout may use
CLEARANCE_CAP_MM = 10.0  # beyond this, more clearance does not make a path better
Z_95 = 1.959963984540054  # two-sided 95 % normal quantile, for the Wilson interval


@dataclass(frozen=True)
class Robustness:
    """Monte-Carlo on the placement error (module docstring, step 3)."""

    samples: int
    met: int
    lateral_sigma_mm: float
    depth_sigma_mm: float
    seed: int

    @property
    def probability(self) -> float:
        return self.met / self.samples

    @property
    def interval(self) -> tuple[float, float]:
        """95 % Wilson score interval of P(met)."""
        n, p, z = self.samples, self.probability, Z_95
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        return {
            "success_probability": self.probability,
            "interval_95": [lo, hi],
            "samples": self.samples,
            "met": self.met,
            "placement_error_mm": {
                "lateral": self.lateral_sigma_mm,
                "depth": self.depth_sigma_mm,
            },
            "seed": self.seed,
        }


@dataclass(frozen=True, eq=False)
class Candidate:
    """One plan the search considered."""

    probe_model: str
    layout: Layout
    shafts: tuple[Shaft, ...]
    protocol: ProtocolOption
    model_score: PlanScore
    robustness: Robustness | None = None
    lethal_probability: np.ndarray | None = None  # on the case's grid, from the samples

    @property
    def count(self) -> int:
        return self.layout.count

    def probes(self) -> list[dict[str, Any]]:
        """Probe specs in the case file's form: tip, and the entry point at the skin."""
        return [
            {
                "name": f"p{i + 1}",
                "model": self.probe_model,
                "tip_mm": [round(float(v), 2) for v in shaft.tip_mm],
                "entry_mm": [round(float(v), 2) for v in shaft.entry_mm],
            }
            for i, shaft in enumerate(self.shafts)
        ]

    def row(self) -> dict[str, Any]:
        """The alternatives table's row."""
        return {
            "probes": self.count,
            "protocol": self.protocol.name,
            "protocol_min": self.protocol.seconds / 60.0,
            "spread": self.layout.spread,
            "depth_offset_mm": self.layout.depth_offset_mm,
            "shift_mm": list(self.layout.shift_mm),
            "lethal_coverage_percent": self.model_score.lethal_coverage_percent,
            "ice_margin_mm": self.model_score.ice_margin_mm,
            "met_on_model": self.model_score.met,
            "success_probability": None if self.robustness is None else self.robustness.probability,
            "collateral_lethal_ml": self.model_score.collateral_lethal_ml,
        }


@dataclass(frozen=True, eq=False)
class PlanResult:
    """What the planner chose, what it tried, and what the full solve says of the choice."""

    case: Case
    spec: PlanningSpec
    chosen: Candidate | None
    verified: PlanScore | None  # the chosen plan solved at the case's spacing
    alternatives: tuple[Candidate, ...]
    blocked: str | None  # why no plan meets the objective (None when one does)
    notes: tuple[str, ...]
    timing_s: dict[str, float]
    prepared: PreparedCase = field(repr=False)
    model_spacing_mm: float = 0.0

    def plan_case(self, folder: Path | None = None) -> dict[str, Any]:
        """The chosen plan as a complete case mapping (probes at the skin, protocol). Image
        paths are made relative to `folder` (where the plan is written), else absolute."""
        if self.chosen is None:
            raise ValueError("no plan was chosen")
        data = self.case.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        data["name"] = f"{self.case.name}-plan"
        image = data.get("domain", {}).get("image")
        for key in ("file", "labels"):
            if image is not None and key in image:
                path = self.case.resolve_path(image[key]).resolve()
                image[key] = str(path if folder is None else _relative(path, folder))
        data["probes"] = self.chosen.probes()
        data["protocol"] = [
            p.model_dump(mode="json", exclude_none=True) for p in self.chosen.protocol.phases
        ]
        return data

    def summary(self) -> dict[str, Any]:
        chosen = self.chosen
        plan: dict[str, Any] = {
            "status": "planned" if self.blocked is None else "blocked",
            "blocked": self.blocked,
            "sessions": 1 if chosen is not None else 0,
            "probe_count": None if chosen is None else chosen.count,
            "probes": None if chosen is None else _probe_rows(chosen),
            "protocol": None if chosen is None else chosen.protocol.name,
            "objective": {
                "target": self.case.target,
                "lethal_coverage_percent": 100.0,
                "ice_margin_mm": self.case.margin_mm,
                "lethal_margin_mm": self.spec.lethal_margin_mm,
                "critical_structures": {
                    c.tissue: {"keep_above_c": c.keep_above_c}
                    for c in self.case.critical_structures
                },
            },
            "verified": None if self.verified is None else self.verified.as_dict(),
            "search_model": {
                "spacing_mm": self.model_spacing_mm,
                "score": None if chosen is None else chosen.model_score.as_dict(),
            },
            "robustness": None
            if chosen is None or chosen.robustness is None
            else chosen.robustness.as_dict(),
            "min_success_probability": self.spec.min_success_probability,
            "alternatives": [c.row() for c in self.alternatives],
            "settings": self.spec.model_dump(mode="json"),
            "notes": list(self.notes),
            "timing_s": self.timing_s,
        }
        return {"case": self.case.name, "plan": plan}


def _relative(path: Path, folder: Path) -> Path:
    return Path(os.path.relpath(path, folder.resolve()))


def _probe_rows(chosen: Candidate) -> list[dict[str, Any]]:
    rows = []
    for spec, shaft in zip(chosen.probes(), chosen.shafts, strict=True):
        direction = shaft.tip_mm - shaft.entry_mm
        direction /= np.linalg.norm(direction)
        rows.append(
            spec
            | {
                "depth_mm": round(shaft.depth_mm, 1),
                "direction_lps": [round(float(v), 4) for v in direction],
                "angle_from_axial_plane_deg": round(
                    float(np.degrees(np.arcsin(np.clip(direction[2], -1, 1)))), 1
                ),
                "clearance_mm": round(shaft.clearance_mm, 1)
                if math.isfinite(shaft.clearance_mm)
                else None,
                "closest_no_fly": shaft.closest_structure,
            }
        )
    return rows


class SearchModel:
    """The case on a coarser grid, scored on the case's own grid (module docstring, step 2)."""

    def __init__(self, case: Case, fine: PreparedCase, spacing_mm: float, lethal_margin_mm):
        coarse_case = case.model_copy(
            update={"grid": case.grid.model_copy(update={"spacing_mm": spacing_mm})}
        )
        self.prepared = prepare(coarse_case)
        self.simulator = Simulator(self.prepared)
        self.fine = fine
        self.geometry: TargetGeometry = target_geometry(fine, lethal_margin_mm)
        self.lethal_margin_mm = lethal_margin_mm
        # where the case's voxel centres fall on the model's grid
        fine_points = fine.grid.lps_from_index(np.indices(fine.grid.shape).reshape(3, -1).T)
        self._coarse_index = self.prepared.grid.index_from_lps(fine_points).T
        self.runs = 0

    def on_case_grid(self, field: np.ndarray, nearest: bool = False) -> np.ndarray:
        values = ndimage.map_coordinates(
            field.astype(np.float64), self._coarse_index, order=0 if nearest else 1, mode="nearest"
        )
        return values.reshape(self.fine.grid.shape)

    def evaluate(
        self, probes: list[dict[str, Any]], protocol: ProtocolOption
    ) -> tuple[PlanScore, np.ndarray] | None:
        """Score a plan on the model; None if a probe's active length leaves the model grid."""
        try:
            run = self.simulator.run(probes=probes, protocol=protocol.phases)
        except CaseError:
            return None
        self.runs += 1
        h = run.history
        tmin = self.on_case_grid(h.minimum_temperature_c)
        # vessel voxels are held at their basal temperature: interpolation across a vessel's
        # wall from frozen neighbours must not make them colder
        tmin[self.fine.fixed] = self.fine.basal_temperature_c[self.fine.fixed]
        cycles = self.on_case_grid(h.freeze_thaw_cycles, nearest=True).astype(
            h.freeze_thaw_cycles.dtype
        )
        result = score(self.fine, self.geometry, tmin, cycles, self.lethal_margin_mm)
        from cryoplan.injury import LETHAL_PROBABILITY, injury_model  # noqa: PLC0415

        model = injury_model(self.fine.case.injury.model)
        p = model.probability_of_death(tmin, cycles, self.fine.material, self.fine.tissues)
        return result, p >= LETHAL_PROBABILITY


def _protocol_menu(spec: PlanningSpec, source: str) -> list[ProtocolOption]:
    if spec.protocols is not None:
        return sorted(spec.protocols, key=lambda p: p.seconds)
    menu = [
        ProtocolOption(name=item["name"], phases=protocol_from(item["phases"], source))
        for item in planning_defaults()["protocols"]
    ]
    return sorted(menu, key=lambda p: p.seconds)


def access_directions(
    access: AccessMap, centre_mm: np.ndarray, spec: PlanningSpec, usable_mm: float, radius_mm: float
) -> tuple[list[np.ndarray], str | None]:
    """The best few outward directions from the target's centre (distinct by ≥ 20°), or none
    and the most common reason no path is allowed."""
    ranked = []
    reasons: dict[str, int] = {}
    for u in candidate_directions(spec.plane):
        shaft = trace_shaft(access, centre_mm, u, usable_mm, radius_mm, spec.clearance_mm)
        if shaft.allowed:
            ranked.append((-min(shaft.clearance_mm, CLEARANCE_CAP_MM), shaft.depth_mm, u))
        else:
            reasons[shaft.problem] = reasons.get(shaft.problem, 0) + 1  # type: ignore[index]
    ranked.sort(key=lambda r: (r[0], r[1]))
    chosen: list[np.ndarray] = []
    for _, _, u in ranked:
        if all(np.degrees(np.arccos(np.clip(u @ c, -1, 1))) >= 20.0 for c in chosen):
            chosen.append(u)
        if len(chosen) == DIRECTIONS_TRIED:
            break
    if chosen:
        return chosen, None
    worst = max(reasons, key=reasons.get) if reasons else "no direction to try"  # type: ignore[arg-type]
    return [], worst


def plan(case: Case, progress: PlanProgress | None = None) -> PlanResult:
    """Plan a case (module docstring). Raises `CaseError` for a case that cannot be planned
    as written (no target, unknown names); returns a `PlanResult` with `blocked` set when
    no plan within the limits meets the objective."""
    started = time.perf_counter()
    timing: dict[str, float] = {}
    spec = case.planning or PlanningSpec()
    if case.planning is None:
        case = case.model_copy(update={"planning": spec})
    if case.target is None:
        raise CaseError(case.source, "target", "a target tissue for the planner to destroy")
    say = progress or (lambda what, done: None)
    bare = case.model_copy(update={"probes": None, "protocol": None})

    say("preparing the anatomy", 0.0)
    fine = prepare(bare)
    model_spacing = spec.model_spacing_mm or 2.0 * case.grid.spacing_mm
    search = SearchModel(bare, fine, model_spacing, spec.lethal_margin_mm)
    if bare.domain.image is not None:
        access = image_access(bare)
    else:
        access = box_access(bare, fine.grid, fine.material, fine.tissue_names)
    timing["prepare_s"] = time.perf_counter() - started

    model_name = spec.probe_models[0]
    model = case.probe_models[model_name]
    usable = float(model.usable_length_mm)  # type: ignore[arg-type]  (checked with the case)
    radius = model.diameter_mm / 2.0
    frame0 = TargetFrame.of(search.geometry.target, fine.grid, np.array([0.0, 0.0, 1.0]))
    directions, why_not = access_directions(access, frame0.centre_mm, spec, usable, radius)
    notes = [
        *access.notes,
        "probes are parallel; their placement error is applied as shifts (no angular error)",
        f"search model: the solver at {model_spacing:g} mm, scored on the case's "
        f"{case.grid.spacing_mm:g} mm grid; the chosen plan is verified at "
        f"{case.grid.spacing_mm:g} mm",
    ]
    if not directions:
        return PlanResult(
            case, spec, None, None, (), f"no straight path from the skin to the target: {why_not}",
            tuple(notes), timing, fine, model_spacing,
        )  # fmt: skip

    menu = _protocol_menu(spec, case.source)
    longest = menu[-1]
    alternatives: list[Candidate] = []
    chosen: Candidate | None = None
    best_miss: Candidate | None = None
    search_started = time.perf_counter()
    best_robust: Candidate | None = None
    for count in range(1, spec.max_probes + 1):
        say(f"{count} probe{'s' if count > 1 else ''}: layout", count / (spec.max_probes + 1))
        found = _best_layout(search, access, directions, count, model_name, usable, radius,
                             spec, longest)  # fmt: skip
        if found is None:
            continue
        if not found.model_score.met:
            alternatives.append(found)
            if best_miss is None or found.model_score.shortfall < best_miss.model_score.shortfall:
                best_miss = found
            continue
        # the shortest protocol that meets the objective under the placement error
        say(f"{count} probes: placement error", count / (spec.max_probes + 1))
        for option in menu:
            cand = found if option is longest else _with_protocol(search, found, option)
            if cand is None:
                continue
            if not cand.model_score.met:
                alternatives.append(cand)
                continue
            robust = _robustness(search, cand, spec, stop_below=spec.min_success_probability)
            alternatives.append(robust)
            if robust.robustness.probability >= spec.min_success_probability:  # type: ignore[union-attr]
                chosen = robust
                break
            if best_robust is None or _more_robust(robust, best_robust):
                best_robust = robust
        if chosen is not None:
            break
    if chosen is None and best_robust is not None:
        say("placement error of the most robust plan", 0.9)
        chosen = _robustness(search, best_robust, spec, stop_below=None)
    timing["search_s"] = time.perf_counter() - search_started
    timing["model_runs"] = float(search.runs)

    blocked = None
    verified = None
    if chosen is None:
        miss = best_miss.model_score.reasons if best_miss is not None else ["no layout fitted"]
        blocked = (
            f"no single session of at most {spec.max_probes} probes meets the objective; "
            f"the closest ({best_miss.count if best_miss else 0} probes): " + "; ".join(miss)
        )
    else:
        if chosen.robustness.probability < spec.min_success_probability:  # type: ignore[union-attr]
            notes.append(
                f"no plan reached P(met) ≥ {spec.min_success_probability:g}; the most robust "
                f"one is given (P = {chosen.robustness.probability:.2f})"  # type: ignore[union-attr]
            )
        say("verifying the chosen plan at the case's spacing", 0.95)
        verify_started = time.perf_counter()
        verified = _verify(fine, chosen, spec.lethal_margin_mm, search.geometry)
        timing["verify_s"] = time.perf_counter() - verify_started
        if not verified.met:
            notes.append(
                "the full solve does NOT meet the objective (the search model's error): "
                + "; ".join(verified.reasons)
            )
    timing["total_s"] = time.perf_counter() - started
    say("done", 1.0)
    return PlanResult(case, spec, chosen, verified, tuple(alternatives), blocked, tuple(notes),
                      timing, fine, model_spacing)  # fmt: skip


def _shafts(
    access: AccessMap, layout: Layout, usable: float, radius: float, spec: PlanningSpec
) -> tuple[Shaft, ...] | None:
    shafts = tuple(
        trace_shaft(access, tip, -layout.direction, usable, radius, spec.clearance_mm)
        for tip in layout.tips_mm
    )
    return shafts if all(s.allowed for s in shafts) else None


def _best_layout(
    search: SearchModel,
    access: AccessMap,
    directions: list[np.ndarray],
    count: int,
    model_name: str,
    usable: float,
    radius: float,
    spec: PlanningSpec,
    protocol: ProtocolOption,
) -> Candidate | None:
    """The best layout of `count` probes over the access directions, spreads and depth
    offsets (module docstring, step 2), on the longest protocol."""
    model = search.fine.case.probe_models[model_name]
    margin = search.fine.case.margin_mm

    def rank(c: Candidate) -> tuple[float, float]:
        return _rank(c, margin, spec.lethal_margin_mm)

    best: Candidate | None = None
    for outward in directions:
        frame = TargetFrame.of(search.geometry.target, search.fine.grid, -outward)
        try:
            sites = cross_section_sites(frame, count, seed=spec.seed)
        except ValueError:
            return None
        tried: list[Candidate] = []
        for spread in SPREADS if count > 1 else (1.0,):
            cand = _try(search, access, frame, sites, model, model_name, usable, radius, spec,
                        protocol, spread, 0.0)  # fmt: skip
            if cand is not None:
                tried.append(cand)
        if not tried:
            continue
        top = min(tried, key=rank)
        for offset in DEPTH_OFFSETS_MM:
            cand = _try(search, access, frame, sites, model, model_name, usable, radius, spec,
                        protocol, top.layout.spread, offset)  # fmt: skip
            if cand is not None:
                tried.append(cand)
        top = min(tried, key=rank)
        weak = _weak_side(frame, top.model_score)
        for distance in SHIFTS_MM if weak is not None else ():
            cand = _try(search, access, frame, sites, model, model_name, usable, radius, spec,
                        protocol, top.layout.spread, top.layout.depth_offset_mm,
                        tuple(distance * weak))  # fmt: skip
            if cand is not None:
                tried.append(cand)
        top = min(tried, key=rank)
        if best is None or rank(top) < rank(best):
            best = top
        if best.model_score.met:
            break  # the best-ranked direction that works
    return best


def _weak_side(frame: TargetFrame, s: PlanScore) -> np.ndarray | None:
    """Unit vector across the probes towards where the ice margin is least (None if that
    point lies on the probes' axis through the target's centre)."""
    if s.ice_margin_side_lps is None:
        return None
    rel = np.asarray(s.ice_margin_side_lps) - frame.centre_mm
    across_mm = np.array([rel @ frame.e1, rel @ frame.e2])
    norm = float(np.linalg.norm(across_mm))
    return across_mm / norm if norm > 1e-6 else None


def _rank(c: Candidate, margin_mm: float, lethal_margin_mm: float | None) -> tuple[float, float]:
    """Met plans first, by most slack (`PlanScore.slack_mm`: what a placement error may take
    away before the plan misses); then by least shortfall."""
    s = c.model_score
    return (0.0, -s.slack_mm(margin_mm, lethal_margin_mm)) if s.met else (1.0, s.shortfall)


def _more_robust(a: Candidate, b: Candidate) -> bool:
    """Whether a's success fraction is higher (its samples may have stopped early)."""
    return a.robustness.probability > b.robustness.probability  # type: ignore[union-attr]


def _try(search, access, frame, sites, model, model_name, usable, radius, spec, protocol,
         spread, offset, shift=(0.0, 0.0)) -> Candidate | None:  # fmt: skip
    layout = place(frame, sites, model.active_length_mm, spread, offset, shift)
    if layout.least_spacing_mm() < spec.min_spacing_mm:
        return None
    shafts = _shafts(access, layout, usable, radius, spec)
    if shafts is None:
        return None
    cand = Candidate(model_name, layout, shafts, protocol, _placeholder_score())
    evaluated = search.evaluate(cand.probes(), protocol)
    if evaluated is None:
        return None
    return dataclasses.replace(cand, model_score=evaluated[0])


def _placeholder_score() -> PlanScore:
    return PlanScore(0.0, -math.inf, None, 0.0, -math.inf, {}, 0.0, math.inf, False, ["not run"])


def _with_protocol(
    search: SearchModel, cand: Candidate, option: ProtocolOption
) -> Candidate | None:
    evaluated = search.evaluate(cand.probes(), option)
    if evaluated is None:
        return None
    return dataclasses.replace(cand, protocol=option, model_score=evaluated[0])


def _robustness(
    search: SearchModel, cand: Candidate, spec: PlanningSpec, stop_below: float | None
) -> Candidate:
    """Run the plan with every probe moved by the placement error, `spec.samples` times
    (sample i depends on the seed and i only). With `stop_below`, stop as soon as so many
    samples missed that P(met) cannot reach it (the result then counts the samples run)."""
    error = spec.placement_error_mm
    rng = np.random.default_rng(spec.seed)
    d = cand.layout.direction
    e1, e2 = across(d)
    lateral = rng.normal(0.0, error.lateral, size=(spec.samples, cand.count, 2))
    depth = rng.normal(0.0, error.depth, size=(spec.samples, cand.count))
    allowed_misses = None if stop_below is None else math.floor((1 - stop_below) * spec.samples)
    met = 0
    lethal_sum = np.zeros(search.fine.grid.shape, np.float32)
    runs = 0
    for k in range(spec.samples):
        shift = lateral[k, :, :1] * e1 + lateral[k, :, 1:] * e2 + depth[k][:, None] * d
        probes = [
            p | {"tip_mm": (np.asarray(p["tip_mm"]) + s).tolist(),
                 "entry_mm": (np.asarray(p["entry_mm"]) + s).tolist()}
            for p, s in zip(cand.probes(), shift, strict=True)
        ]  # fmt: skip
        evaluated = search.evaluate(probes, cand.protocol)
        runs += 1
        if evaluated is not None:  # else moved out of the model's grid: a miss
            met += int(evaluated[0].met)
            lethal_sum += evaluated[1]
        if allowed_misses is not None and runs - met > allowed_misses:
            break
    robustness = Robustness(runs, met, error.lateral, error.depth, spec.seed)
    return dataclasses.replace(cand, robustness=robustness, lethal_probability=lethal_sum / runs)


def _verify(
    fine: PreparedCase, cand: Candidate, lethal_margin_mm: float | None, geometry: TargetGeometry
) -> PlanScore:
    """The chosen plan solved at the case's own spacing and scored there."""
    run = Simulator(fine).run(probes=cand.probes(), protocol=cand.protocol.phases)
    h = run.history
    return score(fine, geometry, h.minimum_temperature_c, h.freeze_thaw_cycles, lethal_margin_mm)
