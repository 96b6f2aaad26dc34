"""DICOM RT Structure Sets in: ROI contours rasterised onto the grid of their image.

A treatment-planning system stores segmentations as an RTSTRUCT: for each ROI, closed
planar contours whose points are LPS millimetre triplets, drawn on the slices of the image
the structure set references. cryoplan's tissues are label volumes, so each ROI is
rasterised onto that image's grid (the `reference` passed in — cryoplan reads the image
itself, so it knows the grid; the RTSTRUCT alone does not carry it).

Rules, chosen to match what DICOM means and what planning systems draw:

- A voxel belongs to a contour when its centre lies inside the polygon (scikit-image's
  `draw.polygon`), in the (i, j) plane of the slice k the contour lies on. The contour's
  points must all sit on one slice plane of the reference grid (within 0.1 voxel along k):
  anything else means the RTSTRUCT belongs to another image, and is refused rather than
  projected.
- Several contours of one ROI on one slice combine by exclusive or: a contour inside another
  is a hole (PS3.3 C.8.8.6.3, "nested contours"), two disjoint ones are two islands.
- Labels are 1, 2, … in the order of the StructureSetROISequence (the ROI list a planning
  system shows), counting only ROIs that have closed planar contours; POINT and OPEN
  contours enclose no volume and are skipped. Where ROIs overlap, the later ROI's label
  wins (list the lesion after the organ that contains it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from skimage.draw import polygon

from cryoplan.anatomy.grid import Grid
from cryoplan.anatomy.images import Volume
from cryoplan.errors import CaseError

ON_SLICE_TOLERANCE = 0.1  # voxels along k: how far a contour point may sit off its slice plane


@dataclass(frozen=True)
class _Contour:
    """One closed planar contour: its ROI number, its item number and its LPS points (n, 3)."""

    roi_number: int
    item: int
    points_mm: np.ndarray


def _read_structure_set(path: Path, field: str) -> tuple[dict[int, str], list[_Contour]]:
    """ROI names by number, in the structure set's order, and every closed planar contour.

    Everything pydicom may throw on a damaged file (truncated data, wrong value
    representations, missing sequences) is turned into one `CaseError` line here.
    """
    if not path.is_file():
        raise CaseError(str(path), field, "a DICOM RTSTRUCT file; the path is not a file")
    try:
        ds = pydicom.dcmread(path)
        modality = str(ds.get("Modality", ""))
        if modality != "RTSTRUCT":
            raise CaseError(
                str(path), field, f"a DICOM RTSTRUCT (Modality is {modality or 'missing'!r})"
            )
        names: dict[int, str] = {}
        for roi in ds.get("StructureSetROISequence", []):
            names[int(roi.ROINumber)] = str(roi.get("ROIName", "") or f"ROI {roi.ROINumber}")
        contours: list[_Contour] = []
        for roi_contour in ds.get("ROIContourSequence", []):
            number = int(roi_contour.ReferencedROINumber)
            if number not in names:
                raise CaseError(
                    str(path),
                    field,
                    f"ROIContourSequence entries that reference ROIs of the "
                    f"StructureSetROISequence (ROI number {number} is not there)",
                )
            for item, contour in enumerate(roi_contour.get("ContourSequence", []), start=1):
                if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                    continue
                values = np.asarray([float(v) for v in contour.get("ContourData", [])], float)
                if values.size % 3 or values.size < 9:
                    raise CaseError(
                        str(path),
                        field,
                        f"ContourData of at least 3 (x, y, z) points (ROI {names[number]!r}, "
                        f"contour {item} has {values.size} numbers)",
                    )
                declared = contour.get("NumberOfContourPoints")
                if declared is not None and int(declared) * 3 != values.size:
                    raise CaseError(
                        str(path),
                        field,
                        f"ContourData of NumberOfContourPoints (x, y, z) points (ROI "
                        f"{names[number]!r}, contour {item} has {values.size} numbers for "
                        f"{int(declared)} points; the file may be truncated)",
                    )
                contours.append(_Contour(number, item, values.reshape(-1, 3)))
    except CaseError:
        raise
    except Exception as exc:  # pydicom's many errors for damaged files, one line for the user
        reason = f"{type(exc).__name__}: {exc}".strip().splitlines()[0][:160]
        raise CaseError(
            str(path), field, f"a readable DICOM RTSTRUCT file (damaged or truncated: {reason})"
        ) from None
    return names, contours


def _slice_of(contour: _Contour, name: str, reference: Grid, path: Path, field: str) -> int:
    """The slice index k a contour lies on, or a `CaseError` if it is off the slice planes."""
    k = reference.index_from_lps(contour.points_mm)[:, 2]
    slice_k = round(float(np.mean(k)))
    off = float(np.max(np.abs(k - slice_k)))
    where = f"ROI {name!r}, contour {contour.item}"
    if off > ON_SLICE_TOLERANCE:
        raise CaseError(
            str(path),
            field,
            f"contours on the slice planes of the reference image ({where} is {off:.2f} voxel "
            f"off slice {slice_k}; the RTSTRUCT may belong to another image)",
        )
    if not 0 <= slice_k < reference.shape[2]:
        raise CaseError(
            str(path),
            field,
            f"contours within the reference image ({where} is on slice {slice_k}, "
            f"the image has slices 0–{reference.shape[2] - 1})",
        )
    return slice_k


def read_rtstruct(
    path: Path, reference: Grid, field: str = "domain.image.labels"
) -> tuple[Volume, dict[int, str]]:
    """The ROIs of an RTSTRUCT as a label volume on `reference`, and {label: ROI name}.

    `reference` is the grid of the image the structure set was drawn on. Labels are 1, 2, …
    in structure-set order over the ROIs with closed planar contours (see the module notes
    for holes and overlaps). Errors are `CaseError`s naming the file: not an RTSTRUCT, no
    ROI with contours, a contour off the slice planes, an unreadable or truncated file.
    """
    path = Path(path)
    names, contours = _read_structure_set(path, field)
    by_roi: dict[int, list[_Contour]] = {}
    for contour in contours:
        by_roi.setdefault(contour.roi_number, []).append(contour)
    if not by_roi:
        raise CaseError(str(path), field, "an RTSTRUCT with at least one ROI with contours")

    shape_ij = reference.shape[:2]
    labels = np.zeros(reference.shape, np.int32)
    name_of_label: dict[int, str] = {}
    for number, name in names.items():  # the structure set's order
        if number not in by_roi:
            continue
        label = len(name_of_label) + 1
        mask = np.zeros(reference.shape, bool)
        for contour in by_roi[number]:
            k = _slice_of(contour, name, reference, path, field)
            ij = reference.index_from_lps(contour.points_mm)[:, :2]
            rr, cc = polygon(ij[:, 0], ij[:, 1], shape=shape_ij)
            mask[rr, cc, k] ^= True  # nested contours of one ROI are holes
        labels[mask] = label
        name_of_label[label] = name
    return Volume(labels, reference), name_of_label
