"""Case → thermal history → summary. The Python API's `simulate`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from cryoplan.case import Case
from cryoplan.discretise import ISOTHERMS_C, Discretised, discretise
from cryoplan.outcome import Outcome, evaluate
from cryoplan.thermal import CpuMultirateBackend, ThermalBackend, ThermalHistory, solve
from cryoplan.thermal.problem import ThermalProblem
from cryoplan.thermal.stepping import ProgressCallback


def isotherm_key(threshold_c: float) -> str:
    """'0', '-20', '-40': the summary's keys for an isotherm."""
    return f"{threshold_c:g}"


@dataclass(frozen=True)
class SimulationResult:
    """A solved case: its discretisation and its thermal history."""

    discretised: Discretised
    history: ThermalHistory

    @property
    def case(self) -> Case:
        return self.discretised.case

    @cached_property
    def outcome(self) -> Outcome:
        """Cell death and metrics (computed once, on first use)."""
        return evaluate(self)

    def isotherm(self, threshold_c: float) -> dict[str, Any]:
        """Volume (mL) and bounding extent (mm, along the grid axes) of T_min ≤ threshold."""
        grid = self.discretised.grid
        inside = self.history.minimum_temperature_c <= threshold_c
        n = int(inside.sum())
        extent = [0.0, 0.0, 0.0]
        if n:
            for axis in range(3):
                other = tuple(a for a in range(3) if a != axis)
                present = np.flatnonzero(inside.any(axis=other))
                extent[axis] = float((present[-1] - present[0] + 1) * grid.spacing_mm[axis])
        return {"volume_ml": n * grid.voxel_volume_ml, "extent_mm": extent}

    def summary(self) -> dict[str, Any]:
        """The contents of summary.json."""
        d = self.discretised
        h = self.history
        grid = d.grid
        n_vox = int(np.prod(grid.shape))
        return {
            "name": self.case.name,
            "source": self.case.source,
            # where the anatomy came from; synthetic lesions are listed as such
            "anatomy": d.tissue_map.provenance or {"kind": "box or phantom"},
            "grid": {
                "shape": list(grid.shape),
                "spacing_mm": list(grid.spacing_mm),
                "origin_lps_mm": list(grid.origin_mm),
                "affine_lps": grid.affine_lps.tolist(),
            },
            "tissues": {
                t.name: int((d.problem.material == i).sum()) * grid.voxel_volume_ml
                for i, t in enumerate(d.tissues)
            },
            "probes": [
                {
                    "name": p.name,
                    "model": p.model,
                    "diameter_mm": p.diameter_mm,
                    "active_length_mm": p.active_length_mm,
                    "tip_mm": p.tip_mm.tolist(),
                    "entry_mm": p.entry_mm.tolist(),
                }
                for p in d.probes
            ],
            "protocol": [
                {"phase": s.label.split(":", 1)[1], "start_s": s.start_s, "end_s": s.end_s}
                for s in d.problem.schedule
            ],
            "isotherms": {isotherm_key(t): self.isotherm(t) for t in ISOTHERMS_C},
            "lethal_zone": {
                "injury_model": self.outcome.injury_model,
                "volume_ml": int(self.outcome.lethal_zone.sum()) * grid.voxel_volume_ml,
            },
            "outcome": self.outcome.as_dict(),
            "tissue_labels": {str(i): t.name for i, t in enumerate(d.tissues)},
            "minimum_temperature_c": float(h.minimum_temperature_c.min()),
            "energy_balance": h.ledger.as_dict(),
            "timing": {
                "simulated_s": d.problem.duration_s,
                "wall_time_s": h.wall_time_s,
                "steps": h.n_steps,
                "max_time_step_s": h.max_time_step_s,
                "voxels": n_vox,
                "voxel_updates_per_s": n_vox * h.n_steps / h.wall_time_s if h.wall_time_s else None,
                "backend": h.backend,
            },
        }


def simulate(
    case: Case,
    progress: ProgressCallback | None = None,
    backend_factory: Callable[[ThermalProblem], ThermalBackend] = CpuMultirateBackend,
) -> SimulationResult:
    """Discretise and solve a case over its whole protocol (the multirate back end by
    default; `CpuExplicitBackend` is the reference path)."""
    d = discretise(case)
    history = solve(d.problem, d.plan, backend_factory=backend_factory, progress=progress)
    return SimulationResult(d, history)
