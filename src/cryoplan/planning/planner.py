"""Automatic planning: how many probes, along which path, where, with which protocol.

    result = plan(case)                 # case with a `planning:` section (or defaults)
    result.chosen.probes                # probe specs with skin entry points
    result.case_yaml()                  # a complete case `cryoplan simulate` runs unchanged

The search, in order (docs/planning.md):

1. **Access.** Outward directions (the six patient axes and the sphere, or the axial
   circle) are traced from the target to the skin (`access.trace_shaft`) and ranked by how
   many of a bundle of nine parallel shafts across the target are allowed, then by
   clearance from no-fly structures (capped at 10 mm), then by depth. The probes of a plan
   are laid out parallel along one of the best three directions; a probe whose path is not
   allowed may tilt (5°, 10°, 15°) about the middle of its active length.
2. **Layout and physics.** For 1, 2, … probes (`layout`; a count whose layout at spread
   1.1 leaves over a quarter of the target alive is not tuned further), the spread across
   the target, the depth offset and a move towards the weakest side are tuned on the
   *search model*: the same solver and case on a coarser grid
   (`planning.model_spacing_mm`, default twice the case's spacing), its T_min interpolated
   onto the case's grid and scored there (`objective`). The longest protocol of the menu is
   tried first; where it meets the objective, shorter ones are tried on the same layout.
3. **Robustness.** A plan that meets the objective on the model is run `samples` times with
   each probe moved by the placement error (Gaussian: lateral σ in each of two directions
   across the shaft, depth σ along it): P(met) with its 95 % Wilson interval, and the
   per-voxel probability of lethal freezing.
4. **Choice.** The first plan with P(met) ≥ `min_success_probability` in the order fewest
   probes, then shortest protocol; else the most robust plan that meets the objective,
   flagged. It is then solved once at the case's own spacing (`verified`): that, not the
   model, says whether the plan meets the objective.

5. **Staged plans.** Where no single session meets the objective and the closest leaves
   part of the target alive, the target is split into K = 2 … `max_sessions` parts
   (`split_target`), one session planned per part (its objective: `part_geometry`, the
   part grown by the lateral σ), and the sessions judged together on the coldest
   temperature any reached, nominally and under the placement error (`StagedPlan`).

Where no plan within the limits meets the objective, the result says why, naming the
structure or limit (`PlanResult.blocked`).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage
from scipy.cluster.vq import kmeans2

from cryoplan import metrics
from cryoplan.anatomy import Grid
from cryoplan.case import Case, PlanningSpec, ProtocolOption, protocol_from
from cryoplan.errors import CaseError
from cryoplan.injury import LETHAL_PROBABILITY
from cryoplan.planning.access import (
    AccessMap,
    Shaft,
    box_access,
    candidate_directions,
    image_access,
    path_angles_deg,
    planning_defaults,
    trace_shaft,
)
from cryoplan.planning.layout import (
    Layout,
    TargetFrame,
    across,
    cross_section_sites,
    least_spread,
    place,
)
from cryoplan.planning.objective import (
    PlanScore,
    TargetGeometry,
    death_probability,
    part_geometry,
    score,
    target_geometry,
)
from cryoplan.preparation import PreparedCase, prepare
from cryoplan.simulator import Simulator
from cryoplan.thermal.threads import THREADS_VARIABLE

PlanProgress = Callable[[str, float], None]  # (what is being done, fraction done 0…1)

SPREADS = (0.6, 0.85, 1.1, 1.35, 1.6)  # spread factors tried across the target
DEPTH_OFFSETS_MM = (-4.0, 4.0)  # depth offsets tried at the best spread
SHIFTS_MM = (2.5, 5.0)  # moves of the whole layout towards its weakest side
SCREEN_SPREAD = 1.1  # the spread tried first
SCREEN_BELOW_PERCENT = 75.0  # below this lethal coverage there, the other spreads are skipped
REFINE_ABOVE_PERCENT = 95.0  # depth offsets and shifts are tried from this lethal coverage
TILTS_DEG = (5.0, 10.0, 15.0)  # a probe's path may tilt this far from the layout's direction
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
            # what it takes to use this alternative instead: its probes and protocol
            "probe_specs": self.probes(),
            "protocol_phases": [p.model_dump(exclude_none=True) for p in self.protocol.phases],
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
    staged: StagedPlan | None = None  # several sessions (then `chosen` is None)

    @property
    def candidates(self) -> list[Candidate]:
        """The plan of each session: one, or a staged plan's K."""
        if self.staged is not None:
            return [s.plan for s in self.staged.sessions]
        return [] if self.chosen is None else [self.chosen]

    @property
    def success_probability(self) -> float | None:
        if self.staged is not None:
            return self.staged.success_probability
        if self.chosen is None or self.chosen.robustness is None:
            return None
        return self.chosen.robustness.probability

    @property
    def lethal_probability(self) -> np.ndarray | None:
        """Per voxel of the case's grid, P(lethally frozen) under the placement error."""
        if self.staged is not None:
            return self.staged.lethal_probability
        return None if self.chosen is None else self.chosen.lethal_probability

    def plan_case(self, folder: Path | None = None, session: int = 0) -> dict[str, Any]:
        """The chosen plan (a staged plan: that session's, from 0) as a complete case mapping
        (probes at the skin, protocol). Image paths are made relative to `folder` (where the
        plan is written), else absolute."""
        candidates = self.candidates
        if not candidates:
            raise ValueError("no plan was chosen")
        chosen = candidates[session]
        data = self.case.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        suffix = "" if self.staged is None else f"-stage-{session + 1}"
        data["name"] = f"{self.case.name}-plan{suffix}"
        image = data.get("domain", {}).get("image")
        for key in ("file", "labels"):
            if image is not None and key in image:
                path = self.case.resolve_path(image[key]).resolve()
                image[key] = str(path if folder is None else _relative(path, folder))
        data["probes"] = chosen.probes()
        data["protocol"] = [
            p.model_dump(mode="json", exclude_none=True) for p in chosen.protocol.phases
        ]
        return data

    def summary(self) -> dict[str, Any]:
        chosen = self.chosen
        plan: dict[str, Any] = {
            "status": "planned" if self.blocked is None else "blocked",
            "blocked": self.blocked,
            "sessions": len(self.candidates),
            "meets_objective": None if self.verified is None else self.verified.met,
            # the contract's headline figures (ARCHITECTURE.md), from the verified solve
            "success_probability": self.success_probability,
            "coverage_percent": None
            if self.verified is None
            else self.verified.lethal_coverage_percent,
            "minimum_ice_margin_mm": None if self.verified is None else self.verified.ice_margin_mm,
            "time_s": self.timing_s.get("total_s"),
            "probe_count": sum(c.count for c in self.candidates) or None,
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
            "staged": None if self.staged is None else self._staged_summary(),
            "min_success_probability": self.spec.min_success_probability,
            "alternatives": [c.row() for c in self.alternatives],
            "settings": self.spec.model_dump(mode="json"),
            "notes": list(self.notes),
            "timing_s": self.timing_s,
        }
        return {"case": self.case.name, "plan": plan}

    def _staged_summary(self) -> dict[str, Any]:
        staged = self.staged
        assert staged is not None
        grid = self.prepared.grid
        return {
            "reason": staged.reason,
            "robustness": None if staged.robustness is None else staged.robustness.as_dict(),
            "robustness_rule": "in each sample every session's probes are moved by the "
            "placement error (independent draws); the coldest temperature over the sessions "
            "is scored on the whole objective",
            "sessions": [
                {
                    "session": k + 1,
                    "part_volume_ml": s.part_ml(grid),
                    "part_centre_lps_mm": s.part_centre_lps(grid),
                    "probe_count": s.plan.count,
                    "probes": _probe_rows(s.plan),
                    "protocol": s.plan.protocol.name,
                    "search_model_score": s.plan.model_score.as_dict(),
                    "verified_alone": None if s.verified is None else s.verified.as_dict(),
                }
                for k, s in enumerate(staged.sessions)
            ],
        }


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
                # positive where the skin entry lies superior to the tip, as in `paths`
                "angle_from_axial_plane_deg": round(
                    path_angles_deg(shaft.entry_mm - shaft.tip_mm)[0], 1
                ),
                # None: no no-fly structure anywhere near (the distance map's "far")
                "clearance_mm": round(shaft.clearance_mm, 1)
                if shaft.closest_structure is not None
                else None,
                "closest_no_fly": shaft.closest_structure,
            }
        )
    return rows


class SearchModel:
    """The case on a coarser grid, scored on the case's own grid (module docstring, step 2).

    `evaluate_many` runs plans in `workers` processes at once (spawned, one solver thread
    each): the model's grids are small enough that a run uses one core, so two runs on two
    cores take the time of one. Given a Dask `client` (`cryoplan plan --scheduler`), it
    maps them on that cluster instead, as a sweep does: the model is sent to each worker
    once, and `workers` is the cluster's task slots."""

    def __init__(
        self,
        coarse: PreparedCase,
        fine: PreparedCase,
        lethal_margin_mm,
        workers=1,
        geometry=None,
        client=None,
    ):
        self.prepared = coarse
        self.simulator = Simulator(coarse)
        self.fine = fine
        # the model's error near a thin protected structure (its coldest voxel smoothed
        # away at the coarse spacing): limits are checked a model voxel around it
        guard_mm = float(np.max(coarse.grid.spacing_mm))
        self.geometry: TargetGeometry = geometry or target_geometry(
            fine, lethal_margin_mm, limit_guard_mm=guard_mm
        )
        self.lethal_margin_mm = lethal_margin_mm
        # where the case's voxel centres fall on the model's grid
        fine_points = fine.grid.lps_from_index(np.indices(fine.grid.shape).reshape(3, -1).T)
        self._coarse_index = coarse.grid.index_from_lps(fine_points).T
        self.runs = 0
        self.client = client
        if client is not None:
            workers = max(1, sum(client.nthreads().values()))
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._on_cluster = None  # the model's parts, scattered to the Dask workers once

    @staticmethod
    def for_case(
        case: Case,
        fine: PreparedCase,
        spacing_mm: float,
        lethal_margin_mm,
        workers: int = 1,
        client=None,
    ) -> SearchModel:
        coarse_case = case.model_copy(
            update={"grid": case.grid.model_copy(update={"spacing_mm": spacing_mm})}
        )
        return SearchModel(prepare(coarse_case), fine, lethal_margin_mm, workers, client=client)

    def on_case_grid(self, field: np.ndarray, nearest: bool = False) -> np.ndarray:
        values = ndimage.map_coordinates(
            field.astype(np.float64), self._coarse_index, order=0 if nearest else 1, mode="nearest"
        )
        return values.reshape(self.fine.grid.shape)

    def fields(
        self, probes: list[dict[str, Any]], protocol: ProtocolOption
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """T_min [°C] and freeze–thaw cycles of a plan run on the model, on the case's grid
        (None if a probe's active length leaves the model's grid)."""
        try:
            run = self.simulator.run(probes=probes, protocol=protocol.phases)
        except CaseError:
            return None
        h = run.history
        tmin = self.on_case_grid(h.minimum_temperature_c)
        # vessel voxels are held at their basal temperature: interpolation across a vessel's
        # wall from frozen neighbours must not make them colder
        tmin[self.fine.fixed] = self.fine.basal_temperature_c[self.fine.fixed]
        cycles = self.on_case_grid(h.freeze_thaw_cycles, nearest=True).astype(
            h.freeze_thaw_cycles.dtype
        )
        return tmin, cycles

    def evaluate(
        self, probes: list[dict[str, Any]], protocol: ProtocolOption
    ) -> tuple[PlanScore, np.ndarray] | None:
        """Score a plan on the model; None if a probe's active length leaves the model grid.
        Returns the score and the lethal zone on the case's grid."""
        fields = self.fields(probes, protocol)
        if fields is None:
            return None
        tmin, cycles = fields
        p = death_probability(self.fine, tmin, cycles)
        result = score(self.fine, self.geometry, tmin, cycles, self.lethal_margin_mm, p)
        return result, p >= LETHAL_PROBABILITY

    def evaluate_many(
        self, jobs: list[tuple[list[dict[str, Any]], ProtocolOption]]
    ) -> list[tuple[PlanScore, np.ndarray] | None]:
        """`evaluate` for each (probes, protocol), in the worker processes when there are."""
        return self._map(self.evaluate, _evaluate_in_worker, jobs)

    def fields_many(
        self, jobs: list[tuple[list[dict[str, Any]], ProtocolOption]]
    ) -> list[tuple[np.ndarray, np.ndarray] | None]:
        """`fields` for each (probes, protocol), in the worker processes when there are."""
        return self._map(self.fields, _fields_in_worker, jobs)

    def _map(self, here: Callable, in_worker: Callable, jobs: list) -> list:
        self.runs += len(jobs)
        if self.client is not None and len(jobs) >= 2:
            if self._on_cluster is None:
                parts = (self.prepared, self.fine, self.lethal_margin_mm, self.geometry)
                # a list of one: scatter sends each item of a list or tuple on its own
                (self._on_cluster,) = self.client.scatter([parts], broadcast=True, hash=False)
            futures = self.client.map(
                _on_dask_worker, [in_worker.__name__] * len(jobs), [self._on_cluster] * len(jobs),
                jobs, pure=False,
            )  # fmt: skip
            return self.client.gather(futures)
        if self.workers < 2 or len(jobs) < 2:
            return [here(*job) for job in jobs]
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),  # never fork numba's threads
                initializer=_start_worker,
                initargs=(self.prepared, self.fine, self.lethal_margin_mm, self.geometry),
            )
        return list(self._pool.map(in_worker, jobs))

    def use_geometry(self, geometry: TargetGeometry) -> None:
        """Score against another objective (a staged plan's session); the workers, which
        hold the objective, are started afresh with it."""
        if geometry is not self.geometry:
            self.close()
            self.geometry = geometry

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        if self._on_cluster is not None:
            self._on_cluster.release()
            self._on_cluster = None


_WORKER: SearchModel | None = None  # the search model of a worker process


def _start_worker(
    coarse: PreparedCase, fine: PreparedCase, lethal_margin_mm, geometry: TargetGeometry
) -> None:
    global _WORKER  # noqa: PLW0603  (one model per worker process, built once)
    os.environ[THREADS_VARIABLE] = "1"
    _WORKER = SearchModel(coarse, fine, lethal_margin_mm, geometry=geometry)


def _evaluate_in_worker(job) -> tuple[PlanScore, np.ndarray] | None:
    assert _WORKER is not None
    return _WORKER.evaluate(*job)


def _fields_in_worker(job) -> tuple[np.ndarray, np.ndarray] | None:
    assert _WORKER is not None
    return _WORKER.fields(*job)


# the model a Dask worker built from the scattered parts it holds (one at a time), and the
# lock that keeps two task threads of one worker from swapping it under each other
_DASK_MODEL: tuple[object, SearchModel] | None = None
_DASK_MODEL_LOCK = threading.Lock()


def _on_dask_worker(function: str, parts: tuple, job):
    """`SearchModel.evaluate` or `.fields` on a Dask worker, with the search model of
    `parts` (built once per worker and kept while the same parts come)."""
    global _DASK_MODEL  # noqa: PLW0603  (one model per worker process)
    with _DASK_MODEL_LOCK:
        if _DASK_MODEL is None or _DASK_MODEL[0] is not parts:
            coarse, fine, lethal_margin_mm, geometry = parts
            _DASK_MODEL = (parts, SearchModel(coarse, fine, lethal_margin_mm, geometry=geometry))
        model = _DASK_MODEL[1]
    run = {"_evaluate_in_worker": model.evaluate, "_fields_in_worker": model.fields}[function]
    return run(*job)


def _protocol_menu(spec: PlanningSpec, source: str) -> list[ProtocolOption]:
    if spec.protocols is not None:
        return sorted(spec.protocols, key=lambda p: p.seconds)
    menu = [
        ProtocolOption(name=item["name"], phases=protocol_from(item["phases"], source))
        for item in planning_defaults()["protocols"]
    ]
    return sorted(menu, key=lambda p: p.seconds)


def access_directions(
    access: AccessMap,
    target_points_mm: np.ndarray,
    spec: PlanningSpec,
    usable_mm: float,
    radius_mm: float,
) -> tuple[list[np.ndarray], str | None]:
    """The best few outward directions for a bundle of parallel probes (distinct by ≥ 20°),
    or none and the most common reason no path is allowed.

    Each direction is tried for a bundle: a shaft through the target's centre and eight
    around it at 0.6 of the target's half-width across that direction. Directions are
    ranked by the share of the bundle's shafts allowed, then the centre shaft's clearance
    (capped at `CLEARANCE_CAP_MM`), then its depth."""
    ranked = []
    reasons: dict[str, int] = {}
    points = target_points_mm
    centre = points.mean(axis=0)
    for u in candidate_directions(spec.plane):
        shaft = trace_shaft(access, centre, u, usable_mm, radius_mm, spec.clearance_mm)
        if not shaft.allowed:
            reasons[shaft.problem] = reasons.get(shaft.problem, 0) + 1  # type: ignore[index]
            continue
        e1, e2 = across(-u)
        rel = points - centre
        half_width = float(np.sqrt(((rel @ e1) ** 2 + (rel @ e2) ** 2).max()))
        angles = np.arange(8) * np.pi / 4
        ring = centre + 0.6 * half_width * (
            np.cos(angles)[:, None] * e1 + np.sin(angles)[:, None] * e2
        )
        allowed = sum(
            trace_shaft(access, p, u, usable_mm, radius_mm, spec.clearance_mm).allowed for p in ring
        )
        ranked.append((-allowed, -min(shaft.clearance_mm, CLEARANCE_CAP_MM), shaft.depth_mm, u))
    ranked.sort(key=lambda r: r[:3])
    chosen: list[np.ndarray] = []
    for *_, u in ranked:
        if all(np.degrees(np.arccos(np.clip(u @ c, -1, 1))) >= 20.0 for c in chosen):
            chosen.append(u)
        if len(chosen) == DIRECTIONS_TRIED:
            break
    if chosen:
        return chosen, None
    worst = max(reasons, key=reasons.get) if reasons else "no direction to try"  # type: ignore[arg-type]
    return [], worst


def plan(
    case: Case, progress: PlanProgress | None = None, workers: int = 1, client=None
) -> PlanResult:
    """Plan a case (module docstring). Raises `CaseError` for a case that cannot be planned
    as written (no target, unknown names); returns a `PlanResult` with `blocked` set when
    no plan within the limits meets the objective.

    `workers` > 1 runs the search model in that many spawned processes (the command line
    uses two where two CPUs are free). Spawned processes import the caller's main module:
    a script that asks for workers must call `plan` under `if __name__ == "__main__":`.
    A Dask `client` maps the search model's runs (the layouts, the placement-error Monte
    Carlo) on its cluster instead (`SearchModel`)."""
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
    search = SearchModel.for_case(
        bare, fine, model_spacing, spec.lethal_margin_mm, workers, client=client
    )
    if bare.domain.image is not None:
        access = image_access(bare)
    else:
        access = box_access(bare, fine.grid, fine.material, fine.tissue_names)
    timing["prepare_s"] = time.perf_counter() - started

    model_name = spec.probe_models[0]
    model = case.probe_models[model_name]
    usable = float(model.usable_length_mm)  # type: ignore[arg-type]  (checked with the case)
    radius = model.diameter_mm / 2.0
    session = _SessionSearch(search, access, spec, model_name, usable, radius,
                             _protocol_menu(spec, case.source), say)  # fmt: skip
    notes = [
        *access.notes,
        "probes are laid out parallel; a path may tilt up to 15° about the middle of its "
        "active length to keep clear of no-fly structures; the placement error is applied "
        "as shifts (no angular error)",
        f"search model: the solver at {model_spacing:g} mm, scored on the case's "
        f"{case.grid.spacing_mm:g} mm grid; the chosen plan is verified at "
        f"{case.grid.spacing_mm:g} mm",
    ]
    whole = search.geometry  # the search's objective (limits guarded)
    exact = target_geometry(fine, spec.lethal_margin_mm)  # the verification's
    directions, why_not = session.directions(whole.target)
    if not directions:
        search.close()
        return PlanResult(
            case, spec, None, None, (), f"no straight path from the skin to the target: {why_not}",
            tuple(notes), timing, fine, model_spacing,
        )  # fmt: skip

    search_started = time.perf_counter()
    found = session.search(directions)
    alternatives = list(found.alternatives)
    chosen, best_miss = found.chosen, found.best_miss
    staged = None
    if chosen is None and spec.max_sessions > 1 and best_miss is not None:
        if best_miss.model_score.lethal_coverage_percent < 100.0:  # more reach may help
            tried: list[str] = []
            staged = _staged(session, whole, spec, tried)
            notes += [f"staged plan tried: {line}" for line in tried]
        else:
            held_back = best_miss.model_score.limited_by
            notes.append(
                "a staged plan was not tried: the closest plan kills the whole target; "
                + (
                    "its margin or limits miss"
                    if held_back is None
                    else f"{held_back} holds it back"
                )
                + ", which more sessions do not change"
            )
    timing["search_s"] = time.perf_counter() - search_started

    blocked = None
    verified = None
    verify_started = time.perf_counter()
    if staged is not None:
        say("verifying the sessions at the case's spacing", 0.95)
        staged, verified = _verify_staged(fine, staged, spec.lethal_margin_mm, exact)
        if not verified.met:
            blocked = (
                f"the {staged.count} sessions together do not meet the objective at the "
                "case's spacing: " + "; ".join(verified.reasons)
            )
    elif chosen is None:
        miss = best_miss.model_score.reasons if best_miss is not None else ["no layout fitted"]
        blocked = (
            f"no single session of at most {spec.max_probes} probes meets the objective; "
            f"the closest ({best_miss.count if best_miss else 0} probes): " + "; ".join(miss)
        )
        held_back = held_back_by_limits(alternatives, best_miss)
        if held_back is not None:
            blocked += f"; {held_back}"
        if best_miss is not None:
            # the closest plan is still given (plan.yaml says it misses, and why): the user
            # sees what the anatomy allows rather than nothing
            say("placement error of the closest plan", 0.9)
            chosen = _robustness(search, best_miss, spec, stop_below=None)
            notes.append("the plan given is the closest one; it does NOT meet the objective")
    robust = None if chosen is None else chosen.robustness
    if staged is not None:
        robust = staged.robustness
    if blocked is None and robust is not None and robust.probability < spec.min_success_probability:
        notes.append(
            f"the staged plan reaches P(met) = {robust.probability:.2f}, below the wanted "
            f"{spec.min_success_probability:g} (its sessions are planned on the model without "
            "the placement error, then checked together under it)"
            if staged is not None
            else f"no plan reached P(met) ≥ {spec.min_success_probability:g}; the most robust "
            f"one is given (P = {robust.probability:.2f})"
        )
    if chosen is not None:
        say("verifying the chosen plan at the case's spacing", 0.95)
        verified = _verify(fine, chosen, spec.lethal_margin_mm, exact)
        if blocked is None and not verified.met:
            notes.append(
                "the full solve does NOT meet the objective (the search model's error): "
                + "; ".join(verified.reasons)
            )
    if verified is not None:
        timing["verify_s"] = time.perf_counter() - verify_started
    search.close()
    timing["model_runs"] = float(search.runs)
    timing["total_s"] = time.perf_counter() - started
    say("done", 1.0)
    return PlanResult(case, spec, chosen, verified, tuple(alternatives), blocked, tuple(notes),
                      timing, fine, model_spacing, staged)  # fmt: skip


def held_back_by_limits(tried: list[Candidate], closest: Candidate | None) -> str | None:
    """Where plans that kill more of the target than the closest one break a critical
    structure's limit, say so (the limit that holds the plan back), from the plan among
    them that kills the most; None where none does."""
    if closest is None:
        return None
    reach = closest.model_score.lethal_coverage_percent
    breaking = [
        c for c in tried
        if c.model_score.lethal_coverage_percent > reach
        and any(s["minimum_temperature_c"] <= s["keep_above_c"]
                for s in c.model_score.structures.values())
    ]  # fmt: skip
    if not breaking:
        return None
    best = max(breaking, key=lambda c: c.model_score.lethal_coverage_percent)
    broken = [
        f"{name} reaches {s['minimum_temperature_c']:.1f} °C (kept above {s['keep_above_c']:g} °C)"
        for name, s in best.model_score.structures.items()
        if s["minimum_temperature_c"] <= s["keep_above_c"]
    ]
    return (
        f"the plans that kill more of the target break a limit (with {best.count} probes, "
        f"{best.model_score.lethal_coverage_percent:.1f} % lethal: " + "; ".join(broken) + ")"
    )


@dataclass(frozen=True)
class _Found:
    """What one session's search found (`_SessionSearch.search`)."""

    chosen: Candidate | None  # meets the objective on the model, with its robustness
    best_miss: Candidate | None  # the closest plan that does not
    alternatives: tuple[Candidate, ...]


@dataclass(frozen=True)
class _SessionSearch:
    """The single-session search (module docstring, steps 2–4) against the search model's
    current objective: the whole target, or one part of a staged plan."""

    model: SearchModel
    access: AccessMap
    spec: PlanningSpec
    model_name: str
    usable_mm: float
    radius_mm: float
    menu: list[ProtocolOption]  # shortest first
    say: PlanProgress

    def directions(self, target: np.ndarray) -> tuple[list[np.ndarray], str | None]:
        points = self.model.fine.grid.lps_from_index(np.argwhere(target))
        return access_directions(self.access, points, self.spec, self.usable_mm, self.radius_mm)

    def search(self, directions: list[np.ndarray], label: str = "", robust: bool = True) -> _Found:
        """For 1, 2, … probes: the best layout on the longest protocol; where it meets the
        objective, the shortest protocol that meets it with P(met) ≥ the minimum (without
        `robust`: the first count and shortest protocol that meet it on the model, the
        placement error left to the caller)."""
        spec, search, menu = self.spec, self.model, self.menu
        longest = menu[-1]
        alternatives: list[Candidate] = []
        best_miss: Candidate | None = None
        best_robust: Candidate | None = None
        for count in range(1, spec.max_probes + 1):
            done = count / (spec.max_probes + 1)
            self.say(f"{label}{count} probe{'s' if count > 1 else ''}: layout", done)
            found = _best_layout(search, self.access, directions, count, self.model_name,
                                 self.usable_mm, self.radius_mm, spec, longest)  # fmt: skip
            if found is None:
                continue
            if not found.model_score.met:
                alternatives.append(found)
                if (
                    best_miss is None
                    or found.model_score.shortfall < best_miss.model_score.shortfall
                ):
                    best_miss = found
                continue
            others = {c.protocol.name: c for c in _with_protocols(search, found, menu[:-1])}
            if not robust:
                met = [c for c in (*others.values(), found) if c.model_score.met]
                shortest = min(met, key=lambda c: c.protocol.seconds)
                return _Found(shortest, best_miss, (*alternatives, *others.values(), found))
            self.say(f"{label}{count} probes: placement error", done)
            for option in menu:
                cand = found if option is longest else others.get(option.name)
                if cand is None:
                    continue
                if not cand.model_score.met:
                    alternatives.append(cand)
                    continue
                tested = _robustness(search, cand, spec, stop_below=spec.min_success_probability)
                alternatives.append(tested)
                if tested.robustness.probability >= spec.min_success_probability:  # type: ignore[union-attr]
                    return _Found(tested, best_miss, tuple(alternatives))
                if best_robust is None or _more_robust(tested, best_robust):
                    best_robust = tested
        if best_robust is None:
            return _Found(None, best_miss, tuple(alternatives))
        self.say(f"{label}placement error of the most robust plan", 0.9)
        chosen = _robustness(search, best_robust, spec, stop_below=None)
        return _Found(chosen, best_miss, tuple(alternatives))


def split_target(
    target: np.ndarray, grid: Grid, parts: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The target split into `parts` compact pieces (k-means of its voxels' positions, a few
    starts from a fixed seed), each with its cell: the voxels whose nearest target voxel
    lies in that piece. Pieces tile the target and cells tile the grid."""
    points = grid.lps_from_index(np.argwhere(target))
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(4):
        centres, assigned = kmeans2(points, parts, minit="++", seed=rng)
        if len(np.unique(assigned)) < parts:
            continue
        inertia = float(((points - centres[assigned]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = assigned, inertia
    if best is None:
        raise ValueError(f"the target cannot be split into {parts} parts")
    piece = np.full(target.shape, -1, np.int16)
    piece[target] = best
    _, nearest = ndimage.distance_transform_edt(
        ~target, sampling=grid.spacing_mm, return_indices=True
    )
    cell_of = piece[tuple(nearest)]
    return [(piece == k, cell_of == k) for k in range(parts)]


@dataclass(frozen=True, eq=False)
class SessionPlan:
    """One session of a staged plan: the part of the target it treats and its plan."""

    part: np.ndarray  # bool, on the case's grid
    cell: np.ndarray  # bool: the voxels whose nearest target voxel lies in the part
    plan: Candidate
    verified: PlanScore | None = None  # the session alone against its part's objective

    def part_ml(self, grid: Grid) -> float:
        return float(self.part.sum()) * grid.voxel_volume_ml

    def part_centre_lps(self, grid: Grid) -> list[float]:
        return grid.lps_from_index(np.argwhere(self.part)).mean(axis=0).round(1).tolist()


@dataclass(frozen=True, eq=False)
class StagedPlan:
    """K sessions, each treating one part of the target (`split_target`); together judged
    on the coldest temperature any of them reached (module docstring, step 5)."""

    sessions: tuple[SessionPlan, ...]
    reason: str  # why one session was not enough
    robustness: Robustness | None = None  # of the sessions together (`_staged_robustness`)
    lethal_probability: np.ndarray | None = None  # P(lethal after all sessions), per voxel

    @property
    def count(self) -> int:
        return len(self.sessions)

    @property
    def success_probability(self) -> float | None:
        return None if self.robustness is None else self.robustness.probability


def _staged(
    session: _SessionSearch,
    whole: TargetGeometry,
    spec: PlanningSpec,
    tried: list[str],
) -> StagedPlan | None:
    """The fewest sessions (2 … `max_sessions`) whose parts each get a plan that meets the
    part's objective (`objective.part_geometry`) on the model; None if no number does
    (`tried` gets, for each number, the part that failed and why)."""
    search = session.model
    grid = search.fine.grid
    overlap_mm = spec.placement_error_mm.lateral
    reason = (
        f"no single session of at most {spec.max_probes} probes "
        f"({spec.probe_models[0]}) meets the objective"
    )
    try:
        for count in range(2, spec.max_sessions + 1):
            sessions = []
            for k, (part, cell) in enumerate(split_target(whole.target, grid, count, spec.seed)):
                # each session also kills a placement error's width of its neighbours' parts,
                # so that the parts still meet when the probes land off the plan
                overlap = metrics.dilate_mm(part, overlap_mm, grid.spacing_mm) & whole.target
                search.use_geometry(part_geometry(whole, overlap, cell))
                directions, why_not = session.directions(part)
                label = f"stage {k + 1} of {count}: "
                found = session.search(directions, label, robust=False) if directions else None
                if found is None or found.chosen is None:
                    closest = None if found is None else found.best_miss
                    why = (
                        f"no path ({why_not})"
                        if found is None
                        else "no layout fitted"
                        if closest is None
                        else f"the closest ({closest.count} probes): "
                        + "; ".join(closest.model_score.reasons)
                    )
                    volume_ml = float(part.sum()) * grid.voxel_volume_ml
                    tried.append(
                        f"{count} sessions: part {k + 1} ({volume_ml:.1f} mL) is not treated "
                        f"by one session: {why}"
                    )
                    break
                sessions.append(SessionPlan(part, cell, found.chosen))
            else:
                search.use_geometry(whole)
                session.say(f"{count} sessions: placement error", 0.9)
                return _staged_robustness(search, StagedPlan(tuple(sessions), reason), spec)
        return None
    finally:
        search.use_geometry(whole)


def _staged_robustness(search: SearchModel, staged: StagedPlan, spec: PlanningSpec) -> StagedPlan:
    """The sessions together under the placement error: in sample i every session's probes
    are moved (each session its own draw: seed, session, i), the coldest temperature over
    the sessions is scored on the whole objective. P(met) and P(lethal) per voxel."""
    per_session = [
        _displaced(s.plan, spec, np.random.default_rng([spec.seed, k]))
        for k, s in enumerate(staged.sessions)
    ]
    met = 0
    lethal_sum = np.zeros(search.fine.grid.shape, np.float32)
    for i in range(spec.samples):
        fields = search.fields_many([jobs[i] for jobs in per_session])
        if any(f is None for f in fields):  # a probe moved off the model's grid: a miss
            continue
        tmin, cycles = _coldest(fields)  # type: ignore[arg-type]
        p = death_probability(search.fine, tmin, cycles)
        result = score(search.fine, search.geometry, tmin, cycles, search.lethal_margin_mm, p)
        met += int(result.met)
        lethal_sum += p >= LETHAL_PROBABILITY
    error = spec.placement_error_mm
    robustness = Robustness(spec.samples, met, error.lateral, error.depth, spec.seed)
    return dataclasses.replace(
        staged, robustness=robustness, lethal_probability=lethal_sum / spec.samples
    )


def _coldest(fields: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """The coldest T_min [°C] over sessions, with the freeze–thaw cycles of the session
    that reached it."""
    tmin, cycles = fields[0][0].copy(), fields[0][1].copy()
    for t, c in fields[1:]:
        colder = t < tmin
        tmin[colder] = t[colder]
        cycles[colder] = c[colder]
    return tmin, cycles


def _verify_staged(
    fine: PreparedCase, staged: StagedPlan, lethal_margin_mm: float | None, whole: TargetGeometry
) -> tuple[StagedPlan, PlanScore]:
    """Each session solved at the case's spacing and scored on its part; the sessions
    together scored on the whole objective from the coldest temperature any reached (and
    the freeze–thaw cycles of the session that reached it)."""
    fields = []
    sessions = []
    for s in staged.sessions:
        run = Simulator(fine).run(probes=s.plan.probes(), protocol=s.plan.protocol.phases)
        h = run.history
        cell_geometry = part_geometry(whole, s.part, s.cell)
        alone = score(fine, cell_geometry, h.minimum_temperature_c, h.freeze_thaw_cycles,
                      lethal_margin_mm)  # fmt: skip
        sessions.append(dataclasses.replace(s, verified=alone))
        fields.append((h.minimum_temperature_c, h.freeze_thaw_cycles))
    tmin, cycles = _coldest(fields)
    together = score(fine, whole, tmin, cycles, lethal_margin_mm)
    return dataclasses.replace(staged, sessions=tuple(sessions)), together


def _shafts(
    access: AccessMap,
    layout: Layout,
    active_length_mm: float,
    usable: float,
    radius: float,
    spec: PlanningSpec,
) -> tuple[Shaft, ...] | None:
    """Each probe's path from the skin: along the layout's direction if allowed, else tilted
    by the least of `TILTS_DEG` about the middle of its active length (the freezing part
    stays where the layout put it) that keeps half `min_spacing_mm` from the shafts chosen
    before it (so that none cross or touch); None if some probe has no such path."""
    d = layout.direction
    e1, e2 = across(d)
    shafts: list[Shaft] = []
    for tip in layout.tips_mm:
        middle = tip - 0.5 * active_length_mm * d
        found = None
        tilts = (0.0,) if spec.template_mm is not None else (0.0, *TILTS_DEG)  # holes fix paths
        for tilt in tilts:
            options = []
            for azimuth in (0.0,) if tilt == 0.0 else np.arange(8) * np.pi / 4:
                t = np.radians(tilt)
                axis = np.cos(t) * d + np.sin(t) * (np.cos(azimuth) * e1 + np.sin(azimuth) * e2)
                moved_tip = middle + 0.5 * active_length_mm * axis
                shaft = trace_shaft(access, moved_tip, -axis, usable, radius, spec.clearance_mm)
                if shaft.allowed and all(
                    _segment_distance(shaft.tip_mm, shaft.entry_mm, o.tip_mm, o.entry_mm)
                    >= spec.min_spacing_mm / 2
                    for o in shafts
                ):
                    options.append(shaft)
            if options:
                found = max(options, key=lambda sh: sh.clearance_mm)
                break
        if found is None:
            return None
        shafts.append(found)
    return tuple(shafts)


def _segment_distance(p0: np.ndarray, p1: np.ndarray, q0: np.ndarray, q1: np.ndarray) -> float:
    """Least distance [mm] between segments p0–p1 and q0–q1 (sampled at 0.5 mm)."""
    n = int(max(np.linalg.norm(p1 - p0), np.linalg.norm(q1 - q0)) / 0.5) + 2
    t = np.linspace(0.0, 1.0, n)[:, None]
    p = p0 + t * (p1 - p0)
    q = q0 + t * (q1 - q0)
    return float(np.min(np.linalg.norm(p[:, None, :] - q[None, :, :], axis=-1)))


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

        seen: set[bytes] = set()  # tips already run (a template snaps spreads together)

        def layouts(
            settings: list[tuple[float, float, tuple[float, float]]],
            frame: TargetFrame = frame,
            sites: np.ndarray = sites,
            seen: set[bytes] = seen,
        ) -> list[Candidate]:
            """Place, check and run the layouts of these (spread, depth offset, shift); a
            layout whose tips were run already is not run again."""
            placed = [
                _candidate(
                    access,
                    frame,
                    sites,
                    model,
                    model_name,
                    usable,
                    radius,
                    spec,
                    protocol,
                    spread,
                    offset,
                    shift,
                )
                for spread, offset, shift in settings
            ]
            fresh = []
            for c in placed:
                key = None if c is None else np.round(c.layout.tips_mm, 3).tobytes()
                if key is not None and key not in seen:
                    seen.add(key)
                    fresh.append(c)
            return _evaluated(search, fresh)

        no_shift = (0.0, 0.0)
        # spreads that would bring two probes closer than the minimum spacing start at it
        # (on a target small beside the spacing, the probes stand at the spacing around it)
        floor = least_spread(sites, spec.min_spacing_mm) * (1.0 + 1e-9)
        spreads = sorted({round(max(s, floor), 6) for s in SPREADS})
        screen = max(SCREEN_SPREAD, floor)
        # one spread first: a count whose middle layout leaves much of the target alive is
        # not worth the other spreads (it sets the alternatives table's row alone)
        tried = layouts([(screen, 0.0, no_shift)]) if count > 1 else []
        if tried and tried[0].model_score.lethal_coverage_percent < SCREEN_BELOW_PERCENT:
            if best is None or rank(tried[0]) < rank(best):
                best = tried[0]
            continue
        rest = [s for s in spreads if abs(s - screen) > 1e-6] if count > 1 else [1.0]
        tried += layouts([(spread, 0.0, no_shift) for spread in rest])
        if not tried:
            continue
        top = min(tried, key=rank)
        if top.model_score.lethal_coverage_percent < REFINE_ABOVE_PERCENT:
            if best is None or rank(top) < rank(best):
                best = top
            continue  # far from the objective: depth and shift will not close the gap
        tried += layouts([(top.layout.spread, offset, no_shift) for offset in DEPTH_OFFSETS_MM])
        top = min(tried, key=rank)
        weak = _weak_side(frame, top.model_score)
        if weak is not None:
            tried += layouts(
                [
                    (top.layout.spread, top.layout.depth_offset_mm, tuple(distance * weak))
                    for distance in SHIFTS_MM
                ]
            )
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


def _candidate(access, frame, sites, model, model_name, usable, radius, spec, protocol,
               spread, offset, shift) -> Candidate | None:  # fmt: skip
    """A layout with its shafts, not yet run (None if its spacing or paths are not allowed)."""
    layout = place(frame, sites, model.active_length_mm, spread, offset, shift, spec.template_mm)
    if layout.least_spacing_mm() < spec.min_spacing_mm:
        return None
    shafts = _shafts(access, layout, model.active_length_mm, usable, radius, spec)
    if shafts is None:
        return None
    return Candidate(model_name, layout, shafts, protocol, _placeholder_score())


def _evaluated(search: SearchModel, candidates: list[Candidate]) -> list[Candidate]:
    """The candidates run on the search model (at once), with their scores; those whose
    probes leave the model's grid are dropped."""
    results = search.evaluate_many([(c.probes(), c.protocol) for c in candidates])
    return [
        dataclasses.replace(c, model_score=r[0])
        for c, r in zip(candidates, results, strict=True)
        if r is not None
    ]


def _placeholder_score() -> PlanScore:
    return PlanScore(0.0, -math.inf, None, 0.0, -math.inf, {}, 0.0, math.inf, False, ["not run"])


def _with_protocols(
    search: SearchModel, cand: Candidate, options: list[ProtocolOption]
) -> list[Candidate]:
    """The same layout under other protocols (run at once)."""
    return _evaluated(search, [dataclasses.replace(cand, protocol=o) for o in options])


def _robustness(
    search: SearchModel, cand: Candidate, spec: PlanningSpec, stop_below: float | None
) -> Candidate:
    """Run the plan with every probe moved by the placement error, `spec.samples` times
    (sample i depends on the seed and i only; `search.workers` samples run at once). With
    `stop_below`, stop once so many samples missed that P(met) cannot reach it (the result
    then counts the samples run)."""
    error = spec.placement_error_mm
    jobs = _displaced(cand, spec, np.random.default_rng(spec.seed))
    allowed_misses = None if stop_below is None else math.floor((1 - stop_below) * spec.samples)
    met = 0
    lethal_sum = np.zeros(search.fine.grid.shape, np.float32)
    runs = 0
    chunk = max(1, search.workers)
    for first in range(0, len(jobs), chunk):
        for evaluated in search.evaluate_many(jobs[first : first + chunk]):
            runs += 1
            if evaluated is not None:  # else moved out of the model's grid: a miss
                met += int(evaluated[0].met)
                lethal_sum += evaluated[1]
        if allowed_misses is not None and runs - met > allowed_misses:
            break
    robustness = Robustness(runs, met, error.lateral, error.depth, spec.seed)
    return dataclasses.replace(cand, robustness=robustness, lethal_probability=lethal_sum / runs)


def _displaced(
    cand: Candidate, spec: PlanningSpec, rng: np.random.Generator
) -> list[tuple[list[dict[str, Any]], ProtocolOption]]:
    """`spec.samples` copies of the plan, every probe moved by the placement error
    (Gaussian: lateral σ in each of two directions across the shafts, depth σ along them)."""
    error = spec.placement_error_mm
    d = cand.layout.direction
    e1, e2 = across(d)
    lateral = rng.normal(0.0, error.lateral, size=(spec.samples, cand.count, 2))
    depth = rng.normal(0.0, error.depth, size=(spec.samples, cand.count))
    jobs = []
    for k in range(spec.samples):
        shift = lateral[k, :, :1] * e1 + lateral[k, :, 1:] * e2 + depth[k][:, None] * d
        probes = [
            p | {"tip_mm": (np.asarray(p["tip_mm"]) + s).tolist(),
                 "entry_mm": (np.asarray(p["entry_mm"]) + s).tolist()}
            for p, s in zip(cand.probes(), shift, strict=True)
        ]  # fmt: skip
        jobs.append((probes, cand.protocol))
    return jobs


def _verify(
    fine: PreparedCase, cand: Candidate, lethal_margin_mm: float | None, geometry: TargetGeometry
) -> PlanScore:
    """The chosen plan solved at the case's own spacing and scored there."""
    run = Simulator(fine).run(probes=cand.probes(), protocol=cand.protocol.phases)
    h = run.history
    return score(fine, geometry, h.minimum_temperature_c, h.freeze_thaw_cycles, lethal_margin_mm)
