"""Writing a result directory: summary.json, tmin.nii.gz, sensors.csv — all or nothing.

Files are written into a temporary directory beside DIR and moved into DIR only once every
one of them is complete, so an interrupted or failed run never leaves a half-written result.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

from cryoplan.anatomy.grid import Grid
from cryoplan.simulate import SimulationResult

OUTPUT_FILES = ("summary.json", "tmin.nii.gz", "sensors.csv")


def write_nifti(path: Path, data: np.ndarray, grid: Grid) -> None:
    """A NIfTI volume with the grid's affine (converted from LPS to RAS, as NIfTI stores it)."""
    image = nib.Nifti1Image(np.asarray(data), grid.affine_ras)
    image.set_qform(grid.affine_ras, code=1)
    image.set_sform(grid.affine_ras, code=1)
    image.header.set_xyzt_units(xyz="mm", t="sec")
    nib.save(image, path)


def write_sensors_csv(path: Path, result: SimulationResult) -> None:
    names = [s.name for s in result.case.sensors]
    h = result.history
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["time_s", *names])
        for t, row in zip(h.sensor_time_s, h.sensor_temperature_c, strict=True):
            writer.writerow([f"{t:.6g}", *(f"{v:.4f}" for v in row)])


def write_result(result: SimulationResult, out_dir: str | Path) -> Path:
    """Write the result files into `out_dir` (created if needed); return its path."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        summary = result.summary()
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
        write_nifti(
            staging / "tmin.nii.gz",
            result.history.minimum_temperature_c.astype(np.float32),
            result.discretised.grid,
        )
        write_sensors_csv(staging / "sensors.csv", result)
        out.mkdir(exist_ok=True)
        for name in OUTPUT_FILES:
            (staging / name).replace(out / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
