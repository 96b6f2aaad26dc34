"""A result directory read back for reporting (so `cryoplan report DIR` needs only the files)."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from cryoplan.errors import CaseError

NEEDED = ("summary.json", "tmin.nii.gz", "sensors.csv", "lethal.nii.gz", "tissues.nii.gz")


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, on the simulation grid (axis-aligned, LPS mm)."""

    directory: Path
    summary: dict[str, Any]
    tmin_c: np.ndarray
    lethal: np.ndarray
    tissue_index: np.ndarray
    sensor_names: list[str]
    sensor_time_s: np.ndarray
    sensor_c: np.ndarray  # (n_times, n_sensors)
    plan: dict[str, Any] | None = None  # the planner's summary, when the case is a plan file

    @property
    def affine_lps(self) -> np.ndarray:
        return np.asarray(self.summary["grid"]["affine_lps"])

    @property
    def tissue_names(self) -> list[str]:
        labels = self.summary["tissue_labels"]
        return [labels[str(i)] for i in range(len(labels))]

    def axis_mm(self, axis: int) -> np.ndarray:
        """LPS coordinate of the voxel centres along one grid axis (axis-aligned grid)."""
        a = self.affine_lps
        n = self.tmin_c.shape[axis]
        return a[axis, 3] + a[axis, axis] * np.arange(n)

    def index_of_lps(self, point_mm: np.ndarray) -> np.ndarray:
        inv = np.linalg.inv(self.affine_lps)
        return inv[:3, :3] @ np.asarray(point_mm, float) + inv[:3, 3]

    @property
    def outcome(self) -> dict[str, Any]:
        return self.summary["outcome"]


def load_report_data(directory: str | Path) -> ReportData:
    d = Path(directory)
    missing = [n for n in NEEDED if not (d / n).is_file()]
    if missing:
        raise CaseError(
            str(d), "", f"a result directory of `cryoplan simulate` (missing {', '.join(missing)})"
        )
    try:
        summary = json.loads((d / "summary.json").read_text("utf-8"))
        tmin = np.asarray(nib.load(d / "tmin.nii.gz").dataobj, dtype=np.float64)
        lethal = np.asarray(nib.load(d / "lethal.nii.gz").dataobj) > 0
        tissue = np.asarray(nib.load(d / "tissues.nii.gz").dataobj).astype(np.int64)
        with (d / "sensors.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, ValueError, json.JSONDecodeError) as exc:
        raise CaseError(str(d), "", f"readable result files ({exc})") from None
    names = rows[0][1:]
    values = np.array([[float(v) for v in r] for r in rows[1:]]).reshape(-1, len(names) + 1)
    return ReportData(
        d, summary, tmin, lethal, tissue, names, values[:, 0], values[:, 1:], _plan_of(summary)
    )


PLAN_FILE_PATTERNS = ("plan.yaml", "stage-*.yaml")  # what `cryoplan plan` writes


def _plan_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The `plan` section of the planner's summary.json beside the simulated case, if the
    case is a plan file `cryoplan plan` wrote (and that folder is still there)."""
    source = Path(str(summary.get("source", "")))
    if not any(source.match(pattern) for pattern in PLAN_FILE_PATTERNS):
        return None
    try:
        planned = json.loads((source.parent / "summary.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    plan = planned.get("plan") if isinstance(planned, dict) else None
    return plan if isinstance(plan, dict) else None
