"""Runs of a prepared case: place probes, build the schedule, solve. "Prepare once, run many."

    prepared = cryoplan.prepare(case)          # images, tissues, basal state: once
    simulator = cryoplan.Simulator(prepared)   # the multirate back end ("fast")
    first = simulator.run()                    # the case's own probes and protocol
    moved = simulator.run(probes=[{"model": "argon-17g", "tip_mm": [2, 11, 0],
                                   "entry_mm": [2, -120, 0]}])

A run validates its probes and protocol as the case file would (errors name the case file and
the field path, e.g. `probes[1].tip_mm`), places the probes on the prepared grid
(`probes.coupling`), builds the schedule (`cryoplan.protocol`) and solves the run's thermal
problem: the prepared static problem with the probe coupling and schedule put in. Nothing of
the prepared case is read or solved again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from cryoplan.anatomy import Grid
from cryoplan.case import (
    Phase,
    ProbeSpec,
    check_plan,
    probe_names,
    probes_from,
    protocol_from,
)
from cryoplan.errors import CaseError
from cryoplan.preparation import PreparedCase
from cryoplan.probes.catalogue import ProbeModel
from cryoplan.probes.coupling import ActiveSegment, couple_probes
from cryoplan.probes.geometry import probe_geometry
from cryoplan.protocol import build_schedule
from cryoplan.thermal import SOLVERS, ThermalBackend, ThermalHistory, solve
from cryoplan.thermal.problem import ProbeCoupling, RecordingPlan, Segment, ThermalProblem
from cryoplan.thermal.stepping import ProgressCallback

ISOTHERMS_C = (0.0, -20.0, -40.0)

BackendFactory = Callable[[ThermalProblem], ThermalBackend]
# A back end by name (`thermal.SOLVERS`: "fast" multirate, "reference" one global step), or a
# factory that makes one from a problem.
Backend = Literal["fast", "reference"] | BackendFactory


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


@dataclass(frozen=True, eq=False)  # arrays: compared by identity, not elementwise
class RunProblem:
    """What one run solves: the placed probes, the plan they came from, and the problem."""

    probe_specs: tuple[ProbeSpec, ...]
    probes: tuple[PlacedProbe, ...]
    protocol: tuple[Phase, ...]
    problem: ThermalProblem  # the prepared static problem with probes and schedule put in
    plan: RecordingPlan


@dataclass(frozen=True, eq=False)  # arrays: compared by identity, not elementwise
class Run:
    """One solved run of a prepared case.

    Holds what differs between runs (probes, protocol, schedule, probe coupling) and the
    thermal history; the grid, tissues and basal state stay in the `PreparedCase`
    (`problem(prepared)` puts the two back together).
    """

    probe_specs: tuple[ProbeSpec, ...]
    probes: tuple[PlacedProbe, ...]
    protocol: tuple[Phase, ...]
    schedule: tuple[Segment, ...]
    coupling: ProbeCoupling
    history: ThermalHistory
    plan: RecordingPlan

    @property
    def duration_s(self) -> float:
        """Simulated time [s]: the end of the last phase."""
        return self.schedule[-1].end_s if self.schedule else 0.0

    def problem(self, prepared: PreparedCase) -> ThermalProblem:
        """The thermal problem this run solved (arrays shared with `prepared`)."""
        return dataclasses.replace(prepared.problem, probes=self.coupling, schedule=self.schedule)


def place_probes(
    probes: Sequence[ProbeSpec], models: Mapping[str, ProbeModel], grid: Grid, source: str
) -> list[PlacedProbe]:
    """Probes on the grid; a probe whose active length leaves the domain is a `CaseError`
    naming `probes[i].tip_mm` in `source`."""
    lo, hi = grid.bounds_mm()
    placed = []
    for i, (spec, name) in enumerate(zip(probes, probe_names(probes), strict=True)):
        g = probe_geometry(spec, models)
        for point, what in ((g.tip_mm, "tip"), (g.active_end_mm, "end of the active length")):
            if not grid.contains_index(grid.index_from_lps(point)):
                raise CaseError(
                    source,
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


def backend_factory_of(backend: Backend) -> BackendFactory:
    """A back-end factory from a name ("fast", "reference") or a factory."""
    if callable(backend):
        return backend
    if backend not in SOLVERS:
        raise ValueError(f"unknown back end {backend!r}; choose one of {', '.join(SOLVERS)}")
    return SOLVERS[backend]


class Simulator:
    """Runs a `PreparedCase` with any probes and protocol (see the module docstring).

    `backend`: "fast" (multirate, the default), "reference" (one global step), or a factory
    `ThermalProblem -> ThermalBackend`.
    """

    def __init__(self, prepared: PreparedCase, backend: Backend = "fast") -> None:
        self.prepared = prepared
        self.backend_factory = backend_factory_of(backend)

    def problem(
        self,
        probes: Sequence[ProbeSpec | Mapping[str, Any]] | None = None,
        protocol: Sequence[Phase | Mapping[str, Any]] | None = None,
    ) -> RunProblem:
        """Validate a plan and build the thermal problem of its run (no solve).

        `probes` (`ProbeSpec`s or mappings in the case file's form) and `protocol` (`Phase`s
        or mappings) default to the case's own. Mistakes raise `CaseError` naming the case
        file and the field (`probes[1].tip_mm`, `protocol[0].probes`, …).
        """
        prepared = self.prepared
        case = prepared.case
        source = case.source
        probes = case.probes if probes is None else probes
        protocol = case.protocol if protocol is None else protocol
        for field, given in (("probes", probes), ("protocol", protocol)):
            if given is None:
                raise CaseError(
                    source, field, "required field is missing (not in the case nor given to run)"
                )
        specs = probes_from(probes, source)  # type: ignore[arg-type]
        phases = protocol_from(protocol, source)  # type: ignore[arg-type]
        check_plan(source, specs, phases, case.probe_models, case.output.snapshot_times_min)
        grid = prepared.grid
        placed = place_probes(specs, case.probe_models, grid, source)
        schedule = build_schedule(case, specs, phases)
        segments = [
            ActiveSegment(
                tuple(grid.index_from_lps(p.tip_mm)),  # type: ignore[arg-type]
                tuple(grid.index_from_lps(p.active_end_mm)),  # type: ignore[arg-type]
                p.diameter_mm / 2 * 1e-3,
            )
            for p in placed
        ]
        coupling = couple_probes(segments, grid.shape, grid.spacing_m, prepared.fixed)
        problem = dataclasses.replace(prepared.problem, probes=coupling, schedule=schedule)
        plan = RecordingPlan(
            snapshot_times_s=tuple(60.0 * t for t in case.output.snapshot_times_min),
            sensor_index_xyz=prepared.sensor_index_xyz,
            sensor_interval_s=case.output.sensor_interval_s,
            volume_thresholds_c=ISOTHERMS_C,
        )
        return RunProblem(tuple(specs), tuple(placed), tuple(phases), problem, plan)

    def run(
        self,
        probes: Sequence[ProbeSpec | Mapping[str, Any]] | None = None,
        protocol: Sequence[Phase | Mapping[str, Any]] | None = None,
        progress: ProgressCallback | None = None,
    ) -> Run:
        """Place the probes, build the schedule and solve (defaults: the case's own).

        `progress(simulated_s, total_s)` is called as the solve advances.
        """
        setup = self.problem(probes, protocol)
        history = self.solve(setup.problem, setup.plan, progress)
        return Run(
            probe_specs=setup.probe_specs,
            probes=setup.probes,
            protocol=setup.protocol,
            schedule=setup.problem.schedule,
            coupling=setup.problem.probes,
            history=history,
            plan=setup.plan,
        )

    def solve(
        self,
        problem: ThermalProblem,
        plan: RecordingPlan,
        progress: ProgressCallback | None = None,
    ) -> ThermalHistory:
        """The one place a run meets the solver.

        Every run of this simulator passes through here with the same grid, material,
        properties, fixed voxels and basal state (only probes and schedule differ), so a back
        end that keeps static per-grid state between runs plugs in by overriding this method
        (or by a factory that hands out such a back end).
        """
        return solve(problem, plan, backend_factory=self.backend_factory, progress=progress)
