"""A result directory read back for reporting (so `cryoplan report DIR` needs only the files)."""

from __future__ import annotations

import csv
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

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
    image: np.ndarray | None = None  # the patient image on the grid (image domains)
    organs: np.ndarray | None = None  # the label map on the grid (image domains), 0 = none

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

    @property
    def organ_names(self) -> dict[int, str]:
        """Label value → organ name of `organs` (summary.json's organ_labels)."""
        named = (self.summary.get("organ_labels") or {}).get("names") or {}
        return {int(value): name for value, name in named.items()}


SUMMARY_KEYS = {"grid": dict, "tissue_labels": dict, "outcome": dict, "isotherms": dict}


def load_report_data(directory: str | Path) -> ReportData:
    """Read a results folder; anything missing, truncated or not as `cryoplan simulate`
    writes it is a one-line `CaseError` naming the file."""
    d = Path(directory)
    missing = [n for n in NEEDED if not (d / n).is_file()]
    if missing:
        raise CaseError(
            str(d), "", f"a result directory of `cryoplan simulate` (missing {', '.join(missing)})"
        )
    try:
        summary = json.loads((d / "summary.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(str(d / "summary.json"), "", f"readable JSON ({exc})") from None
    _check_summary(d / "summary.json", summary)
    volumes = {}
    for name in ("tmin.nii.gz", "lethal.nii.gz", "tissues.nii.gz"):
        try:
            volumes[name] = np.asarray(nib.load(d / name).dataobj)
        except (OSError, ValueError, EOFError, zlib.error, ImageFileError) as exc:
            reason = str(exc) or type(exc).__name__
            raise CaseError(str(d / name), "", f"a whole NIfTI volume ({reason})") from None
    shapes = {v.shape for v in volumes.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise CaseError(str(d), "", "tmin, lethal and tissues volumes of one 3-D shape")
    names, times, values = _read_sensors(d / "sensors.csv")
    shape = volumes["tmin.nii.gz"].shape
    image = _optional_volume(d / "image.nii.gz", shape, np.float32)
    organs = _optional_volume(d / "organs.nii.gz", shape, np.int32)
    return ReportData(
        d,
        summary,
        volumes["tmin.nii.gz"].astype(np.float64),
        volumes["lethal.nii.gz"] > 0,
        volumes["tissues.nii.gz"].astype(np.int64),
        names,
        times,
        values,
        _plan_of(summary),
        image,
        organs,
    )


def _optional_volume(path: Path, shape: tuple[int, ...], dtype: type) -> np.ndarray | None:
    """A volume on the simulation grid that only some results have (image domains)."""
    if not path.is_file():
        return None
    try:
        volume = np.asarray(nib.load(path).dataobj, dtype=dtype)
    except (OSError, ValueError, EOFError, zlib.error, ImageFileError) as exc:
        reason = str(exc) or type(exc).__name__
        raise CaseError(str(path), "", f"a whole NIfTI volume ({reason})") from None
    if volume.shape != shape:
        raise CaseError(str(path), "", "the simulation grid's shape")
    return volume


def _check_summary(path: Path, summary: Any) -> None:
    if not isinstance(summary, dict):
        raise CaseError(str(path), "", "a JSON object written by `cryoplan simulate`")
    for key, kind in SUMMARY_KEYS.items():
        if not isinstance(summary.get(key), kind):
            raise CaseError(str(path), key, "a summary written by `cryoplan simulate`")
    affine = summary["grid"].get("affine_lps")
    if np.shape(affine) != (4, 4):
        raise CaseError(str(path), "grid.affine_lps", "a 4 × 4 matrix")


def _read_sensors(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(sensor names, times [s], temperatures [°C] (n_times, n_sensors)) of sensors.csv."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except (OSError, ValueError) as exc:
        raise CaseError(str(path), "", f"a readable CSV file ({exc})") from None
    if not rows or not rows[0] or rows[0][0] != "time_s":
        raise CaseError(str(path), "", "a header row time_s, sensor names…")
    names = rows[0][1:]
    if len(set(names)) != len(names):
        raise CaseError(str(path), "", "sensor names that are unique")
    try:
        values = np.array([[float(v) for v in r] for r in rows[1:]], dtype=np.float64)
    except ValueError as exc:
        raise CaseError(str(path), "", f"numbers under the header ({exc})") from None
    values = values.reshape(-1, len(names) + 1) if values.size else np.zeros((0, len(names) + 1))
    if values.shape[1] != len(names) + 1:
        raise CaseError(str(path), "", "one value per column in every row")
    return names, values[:, 0], values[:, 1:]


def _plan_of(summary: dict[str, Any]) -> dict[str, Any] | None:
    """How the planner chose the simulated plan file (summary.json's `plan`), if it is one."""
    plan = summary.get("plan")
    return plan if isinstance(plan, dict) else None
