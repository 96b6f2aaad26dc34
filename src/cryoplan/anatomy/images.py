"""Patient images in: volumes and label maps (NIfTI, NRRD, MHA, DICOM series) via SimpleITK.

SimpleITK works in LPS millimetres, as cryoplan does (NIfTI's RAS is converted by ITK on
read and write). Arrays here are indexed [i, j, k] along the image's own axes; the grid's
direction matrix carries any obliquity.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import SimpleITK as sitk  # noqa: N813 (the library's own convention)

from cryoplan.anatomy.grid import Grid
from cryoplan.errors import CaseError
from cryoplan.yamlio import load_yaml

# ITK prints multi-line warnings to stderr (e.g. a folder with no DICOM series) before the
# reader fails; the one-line error this module raises says it better.
sitk.ProcessObject.SetGlobalWarningDisplay(False)

READABLE = "a readable image (NIfTI, NRRD, MHA, or a folder with one DICOM series)"


@dataclass(frozen=True)
class Volume:
    """An image or label array on a grid (LPS mm); label maps may name their labels."""

    array: np.ndarray  # [i, j, k]
    grid: Grid
    label_names: dict[int, str] | None = None  # e.g. DICOM-SEG segment labels


def grid_of_affine(affine: np.ndarray, shape: tuple[int, ...]) -> Grid:
    """A grid from a 4×4 index → LPS affine (any axis order, oblique or not)."""
    columns = np.asarray(affine, float)[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    return Grid(
        tuple(int(n) for n in shape[:3]),  # type: ignore[arg-type]
        tuple(float(s) for s in spacing),  # type: ignore[arg-type]
        tuple(float(o) for o in np.asarray(affine)[:3, 3]),  # type: ignore[arg-type]
        columns / spacing,
    )


def dicom_modality(path: Path) -> str | None:
    """The Modality of a single DICOM file (SEG, RTSTRUCT, CT, …), None if it is not one."""
    if not path.is_file():
        return None
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError):
        return None
    return str(getattr(header, "Modality", "")) or None


def read_dicom_seg(path: Path, field: str) -> Volume:
    """A DICOM-SEG as a label map (label = segment number) named by its segment labels."""
    try:
        seg = hd.seg.segread(path)
        volume = seg.get_volume(combine_segments=True, relabel=False)
    except (ValueError, RuntimeError, AttributeError, KeyError) as exc:
        raise CaseError(str(path), field, f"a DICOM-SEG of a regular 3-D volume ({exc})") from None
    names = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    return Volume(
        np.asarray(volume.array).astype(np.int32),
        grid_of_affine(volume.affine, volume.shape),
        names,
    )


def grid_of(image: sitk.Image) -> Grid:
    return Grid(
        shape=tuple(int(n) for n in image.GetSize()),  # type: ignore[arg-type]
        spacing_mm=tuple(float(s) for s in image.GetSpacing()),  # type: ignore[arg-type]
        origin_mm=tuple(float(o) for o in image.GetOrigin()),  # type: ignore[arg-type]
        direction=np.asarray(image.GetDirection(), float).reshape(3, 3),
    )


def to_sitk(array: np.ndarray, grid: Grid) -> sitk.Image:
    """An [i, j, k] array on a grid as a SimpleITK image (which stores [k, j, i])."""
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing(tuple(float(s) for s in grid.spacing_mm))
    image.SetOrigin(tuple(float(o) for o in grid.origin_mm))
    image.SetDirection(tuple(float(d) for d in np.asarray(grid.direction).ravel()))
    return image


def _check_compressed_stream(path: Path, field: str) -> None:
    """ITK reads a truncated .gz without complaint (what is missing comes back as zeros), so
    a compressed file's stream is checked to its end first."""
    if path.suffix.lower() != ".gz":
        return
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 24):
                pass
    except (EOFError, OSError, zlib.error) as exc:
        raise CaseError(
            str(path), field, f"{READABLE}; the compressed data is truncated or corrupt ({exc})"
        ) from None


def read_sitk(path: Path, field: str) -> sitk.Image:
    """Read a file or a DICOM series folder; a clear `CaseError` for anything wrong."""
    if not path.exists():
        raise CaseError(str(path), field, f"{READABLE}; the path does not exist")
    try:
        if path.is_dir():
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
            if not ids:
                raise CaseError(str(path), field, f"{READABLE}; the folder holds no DICOM series")
            if len(ids) > 1:
                raise CaseError(
                    str(path), field, f"a folder with one DICOM series (found {len(ids)})"
                )
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), ids[0]))
            image = reader.Execute()
        else:
            _check_compressed_stream(path, field)
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:  # ITK's exceptions: truncated, corrupt, unknown format
        reason = str(exc).strip().splitlines()[-1][:160]
        raise CaseError(str(path), field, f"{READABLE} ({reason})") from None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(str(path), field, "a 3-D scalar volume")
    return image


def read_volume(path: Path, field: str) -> Volume:
    image = read_sitk(path, field)
    array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
    return Volume(array, grid_of(image))


def read_labels(path: Path, field: str) -> Volume:
    """A label map: integer values (a float map with fractional values is refused), from a
    NIfTI/NRRD/MHA volume or a DICOM-SEG."""
    if dicom_modality(path) == "SEG":
        return read_dicom_seg(path, field)
    volume = read_volume(path, field)
    a = volume.array
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise CaseError(str(path), field, "a label map of whole numbers")
        a = a.astype(np.int64)
    return Volume(a.astype(np.int32), volume.grid)


def same_grid(a: Grid, b: Grid, tolerance_mm: float = 1e-3) -> bool:
    """Grids that agree in shape and in every voxel's position (to `tolerance_mm`)."""
    if a.shape != b.shape:
        return False
    corners = np.array([[0, 0, 0], np.asarray(a.shape) - 1])
    return bool(
        np.allclose(a.lps_from_index(corners), b.lps_from_index(corners), atol=tolerance_mm)
    )


@lru_cache(maxsize=1)
def totalsegmentator_names() -> dict[str, int]:
    """TotalSegmentator 'total' label names → label values."""
    text = (
        resources.files("cryoplan.anatomy")
        .joinpath("totalsegmentator_total.yaml")
        .read_text("utf-8")
    )
    return {name: int(value) for value, name in load_yaml(text)["total"].items()}


def resample(volume: Volume, grid: Grid, nearest: bool, default: float = 0.0) -> np.ndarray:
    """A volume resampled onto another grid (nearest neighbour for labels, else linear)."""
    interpolator = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    image = to_sitk(volume.array, volume.grid)
    reference = to_sitk(np.zeros(grid.shape, np.uint8), grid)
    out = sitk.Resample(image, reference, sitk.Transform(), interpolator, default)
    return np.transpose(sitk.GetArrayFromImage(out), (2, 1, 0))


def write_image(path: Path, array: np.ndarray, grid: Grid) -> None:
    """Write with the grid's geometry; the format follows the suffix (.nii.gz, .nrrd, .mha)."""
    sitk.WriteImage(to_sitk(array, grid), str(path), useCompression=True)
