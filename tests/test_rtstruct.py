"""RTSTRUCT in: synthetic structure sets of known geometry, rasterised and measured.

Tolerance, stated up front: a voxel is counted when its centre lies inside the contour, so
only voxels whose cells the boundary crosses can be miscounted. For a disc of radius r those
lie in a ring about one voxel wide around the circle, so the rasterised area must match πr²
within that ring's area, 2πr·h, with h the larger in-plane spacing (and an annulus within
the rings of both its circles). Polygons of 180 vertices are within 0.02 % of their circles.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from cryoplan.anatomy.grid import Grid
from cryoplan.anatomy.rtstruct import read_rtstruct
from cryoplan.errors import CaseError

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
N_VERTICES = 180

# In-plane spacing deliberately unequal, slices thicker: i and j must not be swapped.
GRID = Grid((64, 56, 6), (0.8, 1.0, 2.5), (-25.0, -27.0, 10.0))
SLICES = (1, 2, 3, 4)
DISC = {"centre": (-12.0, -10.0), "r": 8.0}
RING = {"centre": (11.0, 12.0), "outer": 9.0, "inner": 4.0}


def circle(centre_xy: tuple[float, float], r: float, z: float) -> list[float]:
    """A closed planar contour (flat x, y, z list, as ContourData) approximating a circle."""
    t = np.linspace(0.0, 2.0 * np.pi, N_VERTICES, endpoint=False)
    pts = np.column_stack(
        [centre_xy[0] + r * np.cos(t), centre_xy[1] + r * np.sin(t), np.full_like(t, z)]
    )
    return [round(float(v), 4) for v in pts.ravel()]


def contour_item(data: list[float], kind: str = "CLOSED_PLANAR") -> Dataset:
    item = Dataset()
    item.ContourGeometricType = kind
    item.NumberOfContourPoints = len(data) // 3
    item.ContourData = data
    return item


def write_rtstruct(
    path: Path,
    rois: list[tuple[int, str]],
    contours: dict[int, list[Dataset]],
    modality: str = "RTSTRUCT",
) -> Path:
    """An RTSTRUCT with the ROIs `rois` (number, name) and their contour items; written to path."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RT_STRUCTURE_SET_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = RT_STRUCTURE_SET_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = "Phantom^Disc"
    ds.StructureSetLabel = "test"
    frame = generate_uid()
    ssroi = []
    for number, name in rois:
        roi = Dataset()
        roi.ROINumber = number
        roi.ReferencedFrameOfReferenceUID = frame
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = "MANUAL"
        ssroi.append(roi)
    ds.StructureSetROISequence = Sequence(ssroi)
    roi_contours = []
    for number, items in contours.items():
        rc = Dataset()
        rc.ReferencedROINumber = number
        rc.ROIDisplayColor = [255, 0, 0]
        rc.ContourSequence = Sequence(items)
        roi_contours.append(rc)
    ds.ROIContourSequence = Sequence(roi_contours)
    ds.save_as(path, enforce_file_format=True)
    return path


def z_of(grid: Grid, k: int) -> float:
    return float(grid.lps_from_index(np.array([0.0, 0.0, k]))[2])


def two_rois(tmp_path: Path) -> Path:
    """ROI 7 'tumour' (a disc on four slices) and ROI 3 'vessel wall' (an annulus: a hole),
    listed ring first in the structure set, contours tumour first, plus an ROI with none."""
    disc = [contour_item(circle(DISC["centre"], DISC["r"], z_of(GRID, k))) for k in SLICES]
    ring = []
    for k in SLICES[1:3]:
        z = z_of(GRID, k)
        ring.append(contour_item(circle(RING["centre"], RING["outer"], z)))
        ring.append(contour_item(circle(RING["centre"], RING["inner"], z)))
    marker = [contour_item([0.0, 0.0, z_of(GRID, 2)], kind="POINT")]
    return write_rtstruct(
        tmp_path / "rs.dcm",
        rois=[(3, "vessel wall"), (5, "external"), (9, "marker"), (7, "tumour")],
        contours={7: disc, 3: ring, 9: marker},
    )


def slice_area_mm2(mask: np.ndarray, grid: Grid) -> float:
    return float(mask.sum()) * grid.spacing_mm[0] * grid.spacing_mm[1]


def test_discs_and_a_ring_with_a_hole_have_their_areas_and_names(tmp_path: Path) -> None:
    volume, names = read_rtstruct(two_rois(tmp_path), GRID)
    assert names == {1: "vessel wall", 2: "tumour"}  # structure-set order, empty ROIs skipped
    assert volume.grid == GRID
    assert volume.array.shape == GRID.shape
    assert set(np.unique(volume.array).tolist()) == {0, 1, 2}
    h = max(GRID.spacing_mm[:2])

    r = DISC["r"]
    for k in range(GRID.shape[2]):
        area = slice_area_mm2(volume.array[:, :, k] == 2, GRID)
        if k in SLICES:
            assert area == pytest.approx(math.pi * r**2, abs=2 * math.pi * r * h)
        else:
            assert area == 0.0
    expected_ml = math.pi * r**2 * len(SLICES) * GRID.spacing_mm[2] * 1e-3
    tolerance_ml = 2 * math.pi * r * h * len(SLICES) * GRID.spacing_mm[2] * 1e-3
    tumour_ml = float((volume.array == 2).sum()) * GRID.voxel_volume_ml
    assert tumour_ml == pytest.approx(expected_ml, abs=tolerance_ml)

    big, small = RING["outer"], RING["inner"]
    for k in range(GRID.shape[2]):
        area = slice_area_mm2(volume.array[:, :, k] == 1, GRID)
        if k in SLICES[1:3]:
            expected = math.pi * (big**2 - small**2)
            assert area == pytest.approx(expected, abs=2 * math.pi * (big + small) * h)
        else:
            assert area == 0.0
    # The hole is empty and the ring around it is filled.
    centre = GRID.index_from_lps(np.array([*RING["centre"], z_of(GRID, 2)]))
    i, j = (round(c) for c in centre[:2])
    assert volume.array[i, j, 2] == 0
    mid = GRID.index_from_lps(np.array([RING["centre"][0] + 6.5, RING["centre"][1], z_of(GRID, 2)]))
    assert volume.array[round(mid[0]), round(mid[1]), 2] == 1


def test_an_oblique_reference_grid_is_filled_through_its_direction(tmp_path: Path) -> None:
    """A grid rotated 30° about z: the disc's voxels, taken back to LPS, centre on its centre."""
    angle = math.radians(30.0)
    c, s = math.cos(angle), math.sin(angle)
    rotation = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    grid = Grid((48, 40, 5), (0.8, 1.0, 2.0), (5.0, -12.0, -4.0), rotation)
    centre_index = np.array([24.0, 20.0, 2.0])
    centre = grid.lps_from_index(centre_index)
    r = 9.0
    items = [
        contour_item(circle((centre[0], centre[1]), r, float(grid.lps_from_index([0, 0, k])[2])))
        for k in (1, 2, 3)
    ]
    path = write_rtstruct(tmp_path / "oblique.dcm", [(1, "lesion")], {1: items})
    volume, names = read_rtstruct(path, grid)
    assert names == {1: "lesion"}
    h = max(grid.spacing_mm[:2])
    for k in (1, 2, 3):
        mask = volume.array[:, :, k] == 1
        assert slice_area_mm2(mask, grid) == pytest.approx(math.pi * r**2, abs=2 * math.pi * r * h)
        # Centroid of the labelled voxels in LPS: a wrong mapping (direction ignored, i and j
        # swapped) would put it millimetres away from the circle's centre.
        ii = np.argwhere(mask)
        centroid = grid.lps_from_index(np.column_stack([ii, np.full(len(ii), k)])).mean(axis=0)
        assert np.linalg.norm(centroid[:2] - centre[:2]) < 0.25 * h
    assert not volume.array[:, :, [0, 4]].any()


def expect_case_error(path: Path, grid: Grid, words: str) -> None:
    with pytest.raises(CaseError) as info:
        read_rtstruct(path, grid, field="domain.rtstruct")
    assert info.value.source == str(path)
    assert info.value.field == "domain.rtstruct"
    assert str(path) in str(info.value)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_not_an_rtstruct_is_refused(tmp_path: Path) -> None:
    items = [contour_item(circle((0.0, 0.0), 5.0, z_of(GRID, 2)))]
    path = write_rtstruct(tmp_path / "ct.dcm", [(1, "a")], {1: items}, modality="CT")
    expect_case_error(path, GRID, "a DICOM RTSTRUCT (Modality is 'CT')")


def test_a_structure_set_without_contours_is_refused(tmp_path: Path) -> None:
    marker = [contour_item([0.0, 0.0, z_of(GRID, 2)], kind="POINT")]
    path = write_rtstruct(tmp_path / "empty.dcm", [(1, "a"), (2, "b")], {2: marker})
    expect_case_error(path, GRID, "at least one ROI with contours")


def test_a_contour_between_slices_is_refused(tmp_path: Path) -> None:
    z = z_of(GRID, 2) + 0.5 * GRID.spacing_mm[2]
    items = [contour_item(circle((0.0, 0.0), 5.0, z))]
    path = write_rtstruct(tmp_path / "off.dcm", [(1, "liver")], {1: items})
    expect_case_error(path, GRID, "slice planes")


def test_a_tilted_contour_is_refused(tmp_path: Path) -> None:
    data = np.asarray(circle((0.0, 0.0), 5.0, z_of(GRID, 2))).reshape(-1, 3)
    data[:, 2] += 0.2 * data[:, 0]  # a plane tilted against the slices
    items = [contour_item([round(float(v), 4) for v in data.ravel()])]
    path = write_rtstruct(tmp_path / "tilted.dcm", [(1, "liver")], {1: items})
    expect_case_error(path, GRID, "'liver', contour 1")


def test_a_contour_beyond_the_last_slice_is_refused(tmp_path: Path) -> None:
    items = [contour_item(circle((0.0, 0.0), 5.0, z_of(GRID, GRID.shape[2] + 3)))]
    path = write_rtstruct(tmp_path / "beyond.dcm", [(1, "liver")], {1: items})
    expect_case_error(path, GRID, "within the reference image")


@pytest.mark.parametrize("kept", [0.05, 0.5, 0.97])
def test_a_truncated_file_is_refused(tmp_path: Path, kept: float) -> None:
    """pydicom reads a cut file without complaint; the missing parts must still be noticed."""
    path = two_rois(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: round(len(data) * kept)])
    expect_case_error(path, GRID, "truncated")


def test_a_file_that_is_not_dicom_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.dcm"
    text.write_text("not a DICOM file\n")
    expect_case_error(text, GRID, "a readable DICOM RTSTRUCT file")
    expect_case_error(tmp_path / "absent.dcm", GRID, "not a file")
