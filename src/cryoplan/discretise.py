"""Case → the thermal Problem of its own plan, in one call (`discretise`).

The work is done in two steps that a planner or a sweep uses separately: `prepare`
(`cryoplan.preparation`: grid, tissues, property table, fixed voxels, sensors, basal state,
independent of the probes) and `Simulator` (`cryoplan.simulator`: probes on the grid,
schedule). `discretise(case)` chains
them for the case's own probes and protocol, for callers that want the whole problem of one
case (tests, benchmarks, peer solvers).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryoplan.anatomy import Grid, TissueMap
from cryoplan.budget import MAX_VOXELS
from cryoplan.case import Case
from cryoplan.preparation import (
    body_temperature_c,
    build_anatomy,
    material_rows,
    prepare,
    resolve_tissues,
    vessel_mask,
)
from cryoplan.simulator import ISOTHERMS_C, PlacedProbe, Simulator, place_probes
from cryoplan.thermal.problem import RecordingPlan, ThermalProblem
from cryoplan.tissues import Tissue

__all__ = [
    "ISOTHERMS_C",
    "MAX_VOXELS",
    "Discretised",
    "PlacedProbe",
    "body_temperature_c",
    "build_anatomy",
    "discretise",
    "material_rows",
    "place_probes",
    "resolve_tissues",
    "vessel_mask",
]


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


def discretise(case: Case) -> Discretised:
    """Build the thermal Problem of a case with its own probes and protocol (raises
    `CaseError` for geometry mistakes, or if the case lacks probes or protocol)."""
    case.require_plan()
    prepared = prepare(case)
    setup = Simulator(prepared).problem()
    return Discretised(
        case, prepared.tissue_map, prepared.tissues, setup.probes, setup.problem, setup.plan
    )
