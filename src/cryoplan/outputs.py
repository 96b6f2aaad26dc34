"""Writing a result directory, all or nothing.

- summary.json, tmin.nii.gz (minimum temperature, °C), sensors.csv: the command-line contract;
- lethal.nii.gz (1 inside the lethal zone), tissues.nii.gz (tissue index, named in
  summary.json's tissue_labels): what the report and other tools need;
- image domains: organs.nii.gz (the label map on the simulation grid, each value named in
  summary.json's organ_labels), image.nii.gz (the image's intensities on that grid), and
  T_min and the lethal zone on the image's own grid (`write_on_image_grid`);
- temperature_<minutes>min.nii.gz for each requested snapshot;
- on request (`vtk=True`, `cryoplan simulate --vtk`): fields.vti and isotherm_<T>c.vtp for
  ParaView (VTK XML, zlib-compressed binary). Opt-in because no other file needs them and
  surfaces cost marching cubes on every run.

A results folder is published whole (`results_folder`): every file is written into a staging
folder beside DIR (on DIR's filesystem; inside DIR when DIR is a mount point), a completion
marker (`.cryoplan-complete.json`, the files it vouches for) is written last, and the staging
folder becomes DIR by one rename, or, replacing an earlier result (`--overwrite`), by one
atomic exchange of the two folders. An interrupted or failed run leaves the old folder or the
new one, whole, never a mixture; `cryoplan report` refuses a folder without the marker. A
staging folder left by a killed run is removed by the next run beside it.
"""

from __future__ import annotations

import contextlib
import csv
import ctypes
import ctypes.util
import errno
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from cryoplan.anatomy.grid import Grid
from cryoplan.errors import CaseError
from cryoplan.export.vtk import write_isosurface_vtp, write_vti
from cryoplan.markups import probes_to_markups
from cryoplan.simulation import SimulationResult
from cryoplan.simulator import ISOTHERMS_C

OUTPUT_FILES = ("summary.json", "tmin.nii.gz", "sensors.csv", "lethal.nii.gz", "tissues.nii.gz")
COMPLETE_MARKER = ".cryoplan-complete.json"
IMAGE_ON_GRID = "image.nii.gz"  # a patient image resampled onto the simulation grid
ORGANS_ON_GRID = "organs.nii.gz"  # a patient label map on the simulation grid (image domains)
STAGING_PREFIX = ".cryoplan-staging."
REPLACED_PREFIX = ".cryoplan-replaced."


def finite(value: Any) -> Any:
    """A JSON-able value with every NaN or infinity made None (a measure with nothing to
    measure, as a margin with no lethal zone), so that the file is standard JSON that any
    reader, a browser's included, accepts."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_text(value: Any) -> str:
    """Standard JSON (no NaN, no Infinity: `finite`), indented, with a final newline."""
    return json.dumps(finite(value), indent=2, allow_nan=False) + "\n"


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


TEMPORARY_PREFIX = ".tmp-"  # the name of a file `written_whole` is writing starts so


@contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed to it once the block has written it: the file
    is there whole or not at all (its name ends as `path`'s, for writers that choose the
    format by the suffix). For single files; a results folder is `results_folder`."""
    tmp = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{path.name}")
    try:
        yield tmp
        with tmp.open("rb") as f:  # on the disk before it has its name (a machine crash)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_output_dir(out_dir: str | Path, overwrite: bool = False) -> Path:
    """Fail early (before solving) if results cannot be published as `out_dir`: an empty
    name, the current folder or one holding it, a file or a dangling link of that name, a
    name too long, an unwritable parent, or (without `overwrite`) a folder that is not empty."""
    if not str(out_dir).strip() or str(out_dir) in (".", "./"):
        raise CaseError(
            str(out_dir), "--out", "a folder of its own for the results (got the current folder)"
        )
    out = Path(out_dir)
    try:
        resolved = out.resolve()
        here = Path.cwd().resolve()
    except (OSError, RuntimeError) as exc:
        raise CaseError(str(out), "--out", f"a folder path that resolves ({exc})") from None
    if resolved == here or resolved in here.parents or resolved == Path.home().resolve():
        raise CaseError(
            str(out), "--out", "a folder of its own for the results, not the current folder, "
            "one holding it, or the home folder",
        )  # fmt: skip
    if out.is_symlink() and not out.exists():
        raise CaseError(str(out), "--out", "a folder, not a dangling symbolic link")
    if out.exists() and not out.is_dir():
        raise CaseError(
            str(out), "--out", "a directory for the results (a file of that name exists)"
        )
    if len(out.name.encode()) > _name_max(out) - 40:  # room for the staging name's suffix
        raise CaseError(str(out), "--out", f"a folder name of at most {_name_max(out) - 40} bytes")
    if out.is_dir() and not overwrite and _has_entries(out):
        raise CaseError(
            str(out), "--out", "a new folder: it exists and is not empty (--overwrite replaces "
            "it whole)",
        )  # fmt: skip
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise CaseError(
            str(out), "--out", f"a directory that can be created ({parent} is not writable)"
        )
    return out


def _has_entries(folder: Path) -> bool:
    """Does the folder hold anything but staging left by this project?"""
    return any(not e.name.startswith((STAGING_PREFIX, REPLACED_PREFIX)) for e in folder.iterdir())


def _name_max(path: Path) -> int:
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    try:
        return os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def is_complete(folder: str | Path) -> bool:
    """Was this folder published whole by cryoplan (its marker and every file it names)?"""
    marker = Path(folder) / COMPLETE_MARKER
    try:
        files = json.loads(marker.read_text("utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return isinstance(files, list) and all(
        isinstance(f, str) and (Path(folder) / f).is_file() for f in files
    )


def check_complete(folder: str | Path) -> None:
    """A `CaseError` unless `folder` is a whole results folder (see `is_complete`)."""
    if not Path(folder).is_dir():
        raise CaseError(str(folder), "", "a results folder written by cryoplan (not found)")
    if not (Path(folder) / "summary.json").is_file():
        raise CaseError(
            str(folder), "", "a results folder written by cryoplan (missing summary.json)"
        )
    if not is_complete(folder):
        raise CaseError(
            str(folder), COMPLETE_MARKER, "a whole results folder: the completion marker is "
            "missing or names missing files (the run that wrote it did not finish; rerun it)",
        )  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_leftovers(base: Path) -> None:
    """What runs that no longer live (killed mid-run) left beside their results: staging
    folders are removed; an earlier result set aside while being replaced is put back where
    it was if nothing took its place, else removed."""
    with contextlib.suppress(OSError):
        for entry in base.iterdir():
            for prefix in (STAGING_PREFIX, REPLACED_PREFIX):
                if not entry.name.startswith(prefix):
                    continue
                pid, _, rest = entry.name[len(prefix) :].partition(".")
                if not pid.isdigit() or _alive(int(pid)):
                    continue
                home = base / rest
                if prefix == REPLACED_PREFIX and rest and not home.exists():
                    entry.replace(home)
                else:
                    shutil.rmtree(entry, ignore_errors=True)


_RENAME_EXCHANGE = 2  # linux/fs.h


def _exchange(a: Path, b: Path) -> bool:
    """Swap two folders in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where
    the system cannot."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):
        return False
    at_fdcwd = -100
    result = renameat2(
        at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), ctypes.c_uint(_RENAME_EXCHANGE)
    )
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _publish(staging: Path, out: Path, in_place: bool) -> None:
    """Make the staged folder `out` (see the module docstring)."""
    if in_place:  # `out` is a mount point: the staging folder is inside it
        for entry in out.iterdir():
            if entry == staging:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        # the marker last: until it is there, `report` refuses the folder
        for entry in sorted(staging.iterdir(), key=lambda e: e.name == COMPLETE_MARKER):
            entry.replace(out / entry.name)
        return
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        staging.replace(out)  # onto nothing, or onto an empty folder: one rename
        return
    if _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)  # the old results, swapped out
        return
    # no atomic exchange: the old folder goes aside under a name that says where it lived,
    # so that a run killed between the two renames has it put back by the next one
    aside = out.parent / f"{REPLACED_PREFIX}{os.getpid()}.{out.name}"
    out.replace(aside)
    staging.replace(out)
    shutil.rmtree(aside, ignore_errors=True)


@contextmanager
def results_folder(
    out_dir: str | Path, overwrite: bool = False, check: Callable[[Path], None] | None = None
) -> Iterator[Path]:
    """Yield a staging folder to write results into; on success write the completion
    marker and publish it whole as `out_dir` (module docstring). Any failure, an interrupt
    included, removes the staging folder and leaves `out_dir` as it was; a filesystem error
    is a one-line `CaseError` on --out."""
    out = check_output_dir(out_dir, overwrite)
    in_place = out.is_dir() and os.path.ismount(out)
    base = out if in_place else out.parent
    try:
        base.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(base)
        staging = Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}.", dir=base))
    except OSError as exc:
        raise CaseError(str(out), "--out", f"a writable folder ({exc.strerror})") from None
    try:
        try:
            yield staging
            files = sorted(str(p.relative_to(staging)) for p in staging.rglob("*") if p.is_file())
            marker = {"written_by": "cryoplan", "files": files}
            (staging / COMPLETE_MARKER).write_text(json.dumps(marker, indent=1) + "\n", "utf-8")
            _publish(staging, out, in_place)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CaseError(
                str(out), "--out", f"room to write the results ({reason}); nothing written"
            ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_on_image_grid(
    folder: Path, result: SimulationResult, suffixes: tuple[str, ...] = (".nii.gz", ".nrrd"),
    with_image: bool = True,
) -> list[str]:  # fmt: skip
    """T_min and the lethal zone resampled onto the patient image's grid (NIfTI and NRRD), so
    that they overlay the input image with no manual step. Outside the simulated crop, T_min
    is body temperature and the lethal zone empty. `with_image` adds the image on the
    simulation grid (for the report) and, for a DICOM series, the lethal zone as DICOM-SEG."""
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
    for suffix in suffixes:
        write_image(
            folder / f"tmin_on_image{suffix}", tmin.astype(np.float32), tissue_map.source_grid
        )
        write_image(
            folder / f"lethal_on_image{suffix}", lethal.astype(np.uint8), tissue_map.source_grid
        )
        written += [f"tmin_on_image{suffix}", f"lethal_on_image{suffix}"]
    image = tissue_map.provenance.get("image") if with_image else None
    if image is not None:
        # the image's intensities on the simulation grid, for the report's slices to show
        # the anatomy under the isotherms (no header of the source is copied)
        from cryoplan.anatomy.images import read_volume  # noqa: PLC0415

        picture = read_volume(Path(image), "domain.image.file")
        on_grid = resample(picture, grid, nearest=False, default=float(picture.array.min()))
        write_nifti(folder / IMAGE_ON_GRID, on_grid.astype(np.float32), grid)
        written.append(IMAGE_ON_GRID)
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


def write_result(
    result: SimulationResult,
    out_dir: str | Path,
    vtk: bool = False,
    overwrite: bool = False,
    report: Callable[[Path], object] | None = None,
) -> Path:
    """Write the result files into `out_dir`, published whole (`results_folder`); return its
    path. `vtk` adds the ParaView files (`write_vtk`); `report(folder)` writes a report into
    the staged folder before it is published, so that it is part of the whole."""
    with results_folder(out_dir, overwrite) as staging:
        summary = result.summary()
        (staging / "summary.json").write_text(json_text(summary), "utf-8")
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
        organs = result.prepared.tissue_map.organs
        if organs is not None:  # the label map's organs; summary.json's organ_labels names them
            write_nifti(staging / ORGANS_ON_GRID, organs.labels, grid)
        write_on_image_grid(staging, result)
        write_markups(staging / "probes.mrk.json", result)
        if vtk:
            write_vtk(staging, result)
        for time_s, field in sorted(result.history.snapshots_c.items()):
            write_nifti(staging / snapshot_file_name(time_s), field.astype(np.float32), grid)
        if report is not None:
            report(staging)
    return Path(out_dir)
