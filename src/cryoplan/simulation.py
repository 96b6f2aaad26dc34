"""Case → thermal history → summary: the one-shot Python API `simulate`.

`simulate(case)` is `prepare(case)` followed by one `Simulator.run()` with the case's own
probes and protocol; a `SimulationResult` keeps both halves and writes summary.json's
contents. Planners and sweeps use the halves directly (`cryoplan.preparation`,
`cryoplan.simulator`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from cryoplan.anatomy import Grid
from cryoplan.case import Case
from cryoplan.discretise import Discretised
from cryoplan.outcome import ALL_OBJECTIVES, Outcome, evaluate
from cryoplan.preparation import PreparedCase, prepare
from cryoplan.simulator import (
    ISOTHERMS_C,
    Backend,
    BackendFactory,
    PlacedProbe,
    Run,
    Simulator,
)
from cryoplan.thermal import DriveKind, ThermalHistory
from cryoplan.thermal.stepping import ProgressCallback


def isotherm_key(threshold_c: float) -> str:
    """'0', '-20', '-40': the summary's keys for an isotherm."""
    return f"{threshold_c:g}"


PLAN_FILE_PATTERNS = ("plan.yaml", "stage-*.yaml")  # what `cryoplan plan` writes


def file_sha256(path: str | Path | None) -> str | None:
    """The SHA-256 of a file's bytes, or None if `path` is not a readable file."""
    try:
        return hashlib.sha256(Path(str(path)).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def anatomy_summary(provenance: dict[str, Any]) -> dict[str, Any]:
    """What summary.json says of the anatomy's origin: its kind, the label map's digest and
    the synthetic lesions; never a path (paths often name the patient)."""
    if not provenance:
        return {"kind": "box or phantom"}
    image = provenance.get("image")
    return {
        "kind": "patient images",
        "image": None if image is None else ("DICOM series" if Path(image).is_dir() else "file"),
        "labels_sha256": file_sha256(provenance.get("labels")),
        "synthetic_lesions": provenance.get("synthetic_lesions", []),
    }


def planner_choice(source: str) -> dict[str, Any] | None:
    """The `plan` section of the planner's summary.json beside a plan file it wrote."""
    path = Path(source)
    if not any(path.match(pattern) for pattern in PLAN_FILE_PATTERNS):
        return None
    try:
        planned = json.loads((path.parent / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    plan = planned.get("plan") if isinstance(planned, dict) else None
    return plan if isinstance(plan, dict) else None


@dataclass(frozen=True, eq=False)  # arrays: compared by identity, not elementwise
class SimulationResult:
    """A solved case: the prepared case and its run."""

    prepared: PreparedCase
    run: Run

    @property
    def case(self) -> Case:
        return self.prepared.case

    @property
    def history(self) -> ThermalHistory:
        return self.run.history

    @property
    def grid(self) -> Grid:
        return self.prepared.grid

    @property
    def probes(self) -> tuple[PlacedProbe, ...]:
        return self.run.probes

    @cached_property
    def discretised(self) -> Discretised:
        """The case, its grid and the problem its run solved, in the form `discretise`
        returns (kept for callers written against it)."""
        p = self.prepared
        return Discretised(
            p.case, p.tissue_map, p.tissues, self.run.probes, self.run.problem(p), self.run.plan
        )

    @cached_property
    def outcome(self) -> Outcome:
        """Cell death and every metric (computed once, on first use)."""
        return evaluate(self.run, self.prepared, ALL_OBJECTIVES)

    @cached_property
    def paths(self) -> list[dict[str, Any]] | None:
        """Each probe's way in from the skin (image cases; `planning.access.probe_paths`):
        reads the image again for the body's outline, so only on first use."""
        from cryoplan.planning.access import probe_paths  # noqa: PLC0415  (the planner's rules)

        return probe_paths(self.case, list(self.run.probe_specs))

    def isotherm(self, threshold_c: float) -> dict[str, Any]:
        """Volume (mL) and bounding extent (mm, along the grid axes) of T_min ≤ threshold."""
        grid = self.grid
        inside = self.history.minimum_temperature_c <= threshold_c
        n = int(inside.sum())
        extent = [0.0, 0.0, 0.0]
        if n:
            for axis in range(3):
                other = tuple(a for a in range(3) if a != axis)
                present = np.flatnonzero(inside.any(axis=other))
                extent[axis] = float((present[-1] - present[0] + 1) * grid.spacing_mm[axis])
        return {"volume_ml": n * grid.voxel_volume_ml, "extent_mm": extent}

    def planning_objective(self) -> dict[str, Any] | None:
        """For a case with a `planning:` section (a plan.yaml), the planner's objective scored
        on this run (`planning.objective`): 100 % of the target lethal and the ice margin,
        which the outcome's verdict (a lethal-zone margin) does not judge. None otherwise."""
        planning = self.case.planning
        if planning is None or self.case.target is None:
            return None
        from cryoplan.planning.objective import score, target_geometry  # noqa: PLC0415

        h = self.history
        geometry = target_geometry(self.prepared, planning.lethal_margin_mm)
        return score(
            self.prepared,
            geometry,
            h.minimum_temperature_c,
            h.freeze_thaw_cycles,
            planning.lethal_margin_mm,
            self.outcome.probability_of_death,  # the case's injury model, already applied
        ).as_dict()

    def _organ_labels(self) -> dict[str, Any] | None:
        """organs.nii.gz's label values named (image domains), and where the names come from."""
        organs = self.prepared.tissue_map.organs
        if organs is None:
            return None
        names = {str(value): name for value, name in organs.names.items()}
        return {"names": names, "names_from": organs.names_from}

    def summary(self) -> dict[str, Any]:
        """The contents of summary.json."""
        p = self.prepared
        h = self.history
        grid = p.grid
        n_vox = int(np.prod(grid.shape))
        return {
            "name": self.case.name,
            # no input path (it often names the patient): the case file's digest instead
            "case_file_sha256": file_sha256(self.case.source),
            # where the anatomy came from; synthetic lesions are listed as such
            "anatomy": anatomy_summary(p.tissue_map.provenance),
            # for a plan file `cryoplan plan` wrote: how the planner chose it (from its
            # summary.json beside the plan file), so that the results folder says it alone
            "plan": planner_choice(self.case.source),
            "grid": {
                "shape": list(grid.shape),
                "spacing_mm": list(grid.spacing_mm),
                "origin_lps_mm": list(grid.origin_mm),
                "affine_lps": grid.affine_lps.tolist(),
            },
            "tissues": {
                t.name: int((p.material == i).sum()) * grid.voxel_volume_ml
                for i, t in enumerate(p.tissues)
            },
            "probes": [
                {
                    "name": probe.name,
                    "model": probe.model,
                    "diameter_mm": probe.diameter_mm,
                    "active_length_mm": probe.active_length_mm,
                    "tip_mm": probe.tip_mm.tolist(),
                    "entry_mm": probe.entry_mm.tolist(),
                }
                for probe in self.run.probes
            ],
            "paths": self.paths,
            "probe_models": {
                name: {
                    "calibrated": model.calibrated,
                    "calibration_note": model.calibration_note,
                    "validation": model.validation.summary() if model.validation else None,
                }
                for name in sorted({probe.model for probe in self.run.probes if probe.model})
                for model in (self.case.probe_models[name],)
            },
            "frozen_properties": self.case.frozen_properties,
            "protocol": [
                {
                    "phase": s.label.split(":", 1)[1],
                    "start_s": s.start_s,
                    "end_s": s.end_s,
                    # the probes that freeze or warm in this phase (a passive thaw: none)
                    "probes": [
                        probe.name
                        for probe, drive in zip(self.run.probes, s.drives, strict=True)
                        if drive.kind != DriveKind.OFF
                    ],
                }
                for s in self.run.schedule
            ],
            "sensors": [{"name": x.name, "at_mm": list(x.at_mm)} for x in self.case.sensors],
            "isotherms": {isotherm_key(t): self.isotherm(t) for t in ISOTHERMS_C},
            "lethal_zone": {
                "injury_model": self.outcome.injury_model,
                "volume_ml": int(self.outcome.lethal_zone.sum()) * grid.voxel_volume_ml,
            },
            "outcome": self.outcome.as_dict(),
            "planning_objective": self.planning_objective(),
            "tissue_labels": {str(i): t.name for i, t in enumerate(p.tissues)},
            "organ_labels": self._organ_labels(),
            "minimum_temperature_c": float(h.minimum_temperature_c.min()),
            "energy_balance": h.ledger.as_dict(),
            "timing": {
                "simulated_s": self.run.duration_s,
                "wall_time_s": h.wall_time_s,
                "setup_time_s": h.setup_time_s,
                # compiling (or loading) the kernels before the run: not in wall_time_s
                "compile_time_s": h.compile_time_s,
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
    backend: Backend = "fast",
    *,
    backend_factory: BackendFactory | None = None,
) -> SimulationResult:
    """Prepare and solve a case over its whole protocol with its own probes.

    `backend`: "fast" (the multirate back end, default), "reference" (one global step), or a
    factory; `backend_factory` is the older name for a factory and wins when given. A case
    without probes or protocol is a `CaseError` naming the missing field, raised before any
    image is read.
    """
    case.require_plan()
    prepared = prepare(case)
    run = Simulator(prepared, backend_factory or backend).run(progress=progress)
    return SimulationResult(prepared, run)
