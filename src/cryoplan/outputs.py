"""Writing a result directory, all or nothing.

- summary.json, tmin.nii.gz (minimum temperature, °C), sensors.csv: the command-line contract;
- lethal.nii.gz (1 inside the lethal zone), tissues.nii.gz (tissue index, named in
  summary.json's tissue_labels): what the report and other tools need;
- temperature_<minutes>min.nii.gz for each requested snapshot;
- on request (`vtk=True`, `cryoplan simulate --vtk`): fields.vti and isotherm_<T>c.vtp for
  ParaView (VTK XML, zlib-compressed binary). Opt-in because no other file needs them and
  surfaces cost marching cubes on every run.

Files are written into a temporary directory beside DIR and moved into DIR only once every
one of them is complete, so an interrupted or failed run never leaves a half-written result.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nibabel as nib
import numpy as np

from cryoplan.anatomy.grid import Grid
from cryoplan.errors import CaseError
from cryoplan.export.vtk import write_isosurface_vtp, write_vti
from cryoplan.markups import probes_to_markups
from cryoplan.simulation import SimulationResult
from cryoplan.simulator import ISOTHERMS_C

OUTPUT_FILES = ("summary.json", "tmin.nii.gz", "sensors.csv", "lethal.nii.gz", "tissues.nii.gz")


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
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["time_s", *names])
        for t, row in zip(h.record_time_s, h.sensor_temperature_c, strict=True):
            writer.writerow([f"{t:.6g}", *(f"{v:.4f}" for v in row)])


def snapshot_file_name(time_s: float) -> str:
    return f"temperature_{time_s / 60:g}min.nii.gz"


def check_output_dir(out_dir: str | Path) -> Path:
    """Fail early (before solving) if results cannot be written to `out_dir`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CaseError(
            str(out), "--out", "a directory for the results (a file of that name exists)"
        )
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CaseError(
            str(out), "--out", f"a directory that can be created ({parent} is not writable)"
        )
    return out


def write_on_image_grid(folder: Path, result: SimulationResult) -> list[str]:
    """T_min and the lethal zone resampled onto the patient image's grid (NIfTI and NRRD), so
    that they overlay the input image with no manual step. Outside the simulated crop, T_min
    is body temperature and the lethal zone empty."""
    tissue_map = result.prepared.tissue_map
    if tissue_map.source_grid is None:
        return []
    # SimpleITK and highdicom: loaded only for the results of an image case
    from cryoplan.anatomy.images import Volume, resample, write_image  # noqa: PLC0415
    from cryoplan.export.dicom_seg import write_lethal_seg  # noqa: PLC0415

    grid = result.grid
    body = float(result.prepared.body_temperature_c)
    tmin = resample(Volume(result.history.minimum_temperature_c, grid), tissue_map.source_grid,
                    nearest=False, default=body)  # fmt: skip
    lethal = resample(Volume(result.outcome.lethal_zone.astype(np.uint8), grid),
                      tissue_map.source_grid, nearest=True, default=0)  # fmt: skip
    written = []
    for suffix in (".nii.gz", ".nrrd"):
        write_image(
            folder / f"tmin_on_image{suffix}", tmin.astype(np.float32), tissue_map.source_grid
        )
        write_image(
            folder / f"lethal_on_image{suffix}", lethal.astype(np.uint8), tissue_map.source_grid
        )
        written += [f"tmin_on_image{suffix}", f"lethal_on_image{suffix}"]
    image = tissue_map.provenance.get("image")
    if image is not None and Path(image).is_dir():  # a DICOM series: the lethal zone as SEG
        write_lethal_seg(Path(image), lethal, folder / "lethal.seg.dcm")
        written.append("lethal.seg.dcm")
    return written


def write_vtk(folder: Path, result: SimulationResult) -> list[str]:
    """Fields (fields.vti) and isotherm surfaces (isotherm_<T>c.vtp) for ParaView, in LPS mm."""
    grid = result.grid
    tmin = result.history.minimum_temperature_c
    write_vti(
        folder / "fields.vti",
        {
            "minimum_temperature_c": tmin,
            "lethal_zone": result.outcome.lethal_zone,
            "tissue_index": result.prepared.material,
        },
        grid,
    )
    written = ["fields.vti"]
    for threshold in ISOTHERMS_C:
        name = f"isotherm_{threshold:g}c.vtp"
        write_isosurface_vtp(folder / name, tmin, threshold, grid)
        written.append(name)
    return written


def write_markups(path: Path, result: SimulationResult) -> list[str]:
    """The planned probes as a 3D Slicer Markups file (one line per probe: tip, entry)."""
    doc = json.dumps(probes_to_markups(result.probes), indent=2)
    path.write_text(doc + "\n", "utf-8")
    return [path.name]


@contextmanager
def staging_directory(out: Path) -> Iterator[Path]:
    """A temporary directory beside `out` for files that are moved into `out` only when all
    are written; removed (with anything left in it) whatever happens."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as exc:
        raise CaseError(str(out), "--out", f"a writable directory ({exc.strerror})") from None
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, out: Path, names: list[str]) -> None:
    """Move the staged files into `out` (created if needed)."""
    out.mkdir(exist_ok=True)
    for name in names:
        (staging / name).replace(out / name)


def write_result(result: SimulationResult, out_dir: str | Path, vtk: bool = False) -> Path:
    """Write the result files into `out_dir` (created if needed); return its path. `vtk`
    adds the ParaView files (`write_vtk`)."""
    out = check_output_dir(out_dir)
    with staging_directory(out) as staging:
        summary = result.summary()
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", "utf-8")
        write_nifti(
            staging / "tmin.nii.gz",
            result.history.minimum_temperature_c.astype(np.float32),
            result.grid,
        )
        write_sensors_csv(staging / "sensors.csv", result)
        grid = result.grid
        write_nifti(staging / "lethal.nii.gz", result.outcome.lethal_zone.astype(np.uint8), grid)
        # tissue index per voxel; summary.json's tissue_labels names each index
        write_nifti(staging / "tissues.nii.gz", result.prepared.material, grid)
        names = list(OUTPUT_FILES)
        names += write_on_image_grid(staging, result)
        names += write_markups(staging / "probes.mrk.json", result)
        if vtk:
            names += write_vtk(staging, result)
        for time_s, field in sorted(result.history.snapshots_c.items()):
            names.append(snapshot_file_name(time_s))
            write_nifti(staging / names[-1], field.astype(np.float32), result.grid)
        publish(staging, out, names)
    return out
