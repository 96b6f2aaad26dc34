"""DICOM in and out: a series read with the right geometry, and the lethal zone as DICOM-SEG
that highdicom reads back on the series' own slices, carrying no patient identity."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk  # noqa: N813
from dicom_series import IDENTITY_STRINGS, as_array, ct_subvolume, write_series
from pydicom.sr.codedict import codes
from test_rtstruct import circle, contour_item, write_rtstruct

from cryoplan.anatomy.images import read_labels, read_volume, same_grid
from cryoplan.case import case_from_dict
from cryoplan.discretise import discretise
from cryoplan.errors import CaseError
from cryoplan.export.dicom_seg import read_series_datasets
from cryoplan.outputs import write_result
from cryoplan.simulation import simulate

SHARED = Path(__file__).parent.parent.parent / "shared" / "data" / "abdomen_ct"
SLICES = (10, 28)  # z ≈ 124–178 mm: around the synthetic lesion of the CT example


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The shared CT's slices 10–27 as a DICOM series, and its labels as NIfTI on that grid."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: the DICOM tests need ../shared beside the checkout")
    root = tmp_path_factory.mktemp("dicom")
    ct = ct_subvolume(SHARED / "ct.nii.gz", SLICES)
    write_series(ct, root / "ct", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
    labels = ct_subvolume(SHARED / "labels.nii.gz", SLICES)
    sitk.WriteImage(labels, str(root / "labels.nii.gz"))
    return root / "ct", root / "labels.nii.gz"


def test_series_reads_with_the_geometry_and_values_of_the_nifti(series) -> None:
    folder, _ = series
    volume = read_volume(folder, "file")
    reference = ct_subvolume(SHARED / "ct.nii.gz", SLICES)
    ref_grid = read_labels(series[1], "labels").grid
    assert same_grid(volume.grid, ref_grid)
    np.testing.assert_array_equal(volume.array, as_array(reference))


def test_folder_with_two_series_is_refused(series, tmp_path: Path) -> None:
    folder, _ = series
    ct = ct_subvolume(SHARED / "ct.nii.gz", (0, 3))
    mixed = tmp_path / "mixed"
    write_series(ct, mixed, "1.2.826.0.1.3680043.8.498.10", "1.2.826.0.1.3680043.8.498.2")
    for p in folder.iterdir():
        (mixed / f"b_{p.name}").write_bytes(p.read_bytes())
    with pytest.raises(CaseError, match="one DICOM series"):
        read_volume(mixed, "domain.image.file")


def test_lethal_zone_as_dicom_seg_on_the_series(series, tmp_path: Path) -> None:
    folder, labels = series
    case = case_from_dict(
        {
            "name": "dicom-seg",
            "domain": {
                "image": {
                    "file": str(folder),
                    "labels": str(labels),
                    "tissues": {"liver": "liver", "inferior_vena_cava": "vessel"},
                    "lesions": [{"centre_mm": [-47.0, -161.3, 148.3], "diameter_mm": 20}],
                }
            },
            "target": "tumour",
            "grid": {"spacing_mm": 3.0, "crop_margin_mm": 15},
            "probes": [
                {
                    "model": "generic-17g",
                    "tip_mm": [-47.0, -150.3, 148.3],
                    "entry_mm": [-47.0, -400.0, 148.3],
                }
            ],
            "protocol": [{"phase": "freeze", "duration_min": 5}],
        },
        str(tmp_path / "case.yaml"),
    )
    out = write_result(simulate(case), tmp_path / "out")
    # the image's intensities on the simulation grid, for the report's slices
    image, tmin = nib.load(out / "image.nii.gz"), nib.load(out / "tmin.nii.gz")
    assert image.shape == tmin.shape
    np.testing.assert_allclose(image.affine, tmin.affine)
    assert np.ptp(np.asarray(image.dataobj)) > 100  # HU of a real CT crop, not a constant
    seg_path = out / "lethal.seg.dcm"
    seg = hd.seg.segread(seg_path)
    sources = [pydicom.dcmread(p) for p in sorted(folder.iterdir())]
    # new identity of its own, references to the series it belongs to
    assert seg.SeriesInstanceUID != sources[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID
    referenced = {
        i.ReferencedSOPInstanceUID
        for s in seg.ReferencedSeriesSequence
        for i in s.ReferencedInstanceSequence
    }
    assert referenced == {d.SOPInstanceUID for d in sources}
    # no identity anywhere: every byte of every output file (DICOM PS3.15 Annex E)
    for path in (p for p in out.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        for value in IDENTITY_STRINGS:
            assert value.encode() not in raw, (path.name, value)
    assert str(seg.PatientName) == ""
    assert seg.PatientSex == ""
    assert seg.StudyDate == "19000101"
    assert "StudyDescription" not in seg
    assert seg.PatientIdentityRemoved == "YES"
    # the same voxels as lethal_on_image, frame by frame on the source slices
    lethal = read_labels(out / "lethal_on_image.nii.gz", "lethal").array > 0
    assert lethal.any()
    positions = {tuple(np.round(d.ImagePositionPatient, 3)): k for k, d in enumerate(
        sorted(sources, key=lambda d: float(d.ImagePositionPatient[2])))}  # fmt: skip
    frames = seg.pixel_array.reshape(-1, *lethal.shape[1::-1])
    count = 0
    for f, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        pos = tuple(np.round(item.PlanePositionSequence[0].ImagePositionPatient, 3))
        k = positions[pos]
        np.testing.assert_array_equal(frames[f].astype(bool), lethal[:, :, k].T)
        count += int(frames[f].sum())
    assert count == int(lethal.sum())


def _two_segment_seg(folder: Path, labels_path: Path, out: Path) -> None:
    """A DICOM-SEG of the liver (segment 1) and the IVC (segment 2) on the series."""
    sources = read_series_datasets(folder)
    labels = read_labels(labels_path, "labels").array
    frames = np.stack([labels == 5, labels == 63], axis=-1)  # (i, j, k, segment)
    frames = np.transpose(frames, (2, 1, 0, 3))  # (frame k, row j, column i, segment)
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test", family=codes.cid7162.ManualProcessing, version="1"
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=n, segment_label=name,
            segmented_property_category=codes.SCT.Organ, segmented_property_type=code,
            algorithm_type="MANUAL" if algorithm is None else "AUTOMATIC",
            algorithm_identification=algorithm,
        )
        for n, name, code in ((1, "liver", codes.SCT.Liver), (2, "vein", codes.SCT.Vein))
    ]  # fmt: skip
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=frames, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=5,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test",
        manufacturer_model_name="test", software_versions="1", device_serial_number="1",
    )  # fmt: skip
    seg.save_as(out)


def test_dicom_seg_as_the_label_map(series, tmp_path: Path) -> None:
    folder, labels_path = series
    seg_path = tmp_path / "organs.seg.dcm"
    _two_segment_seg(folder, labels_path, seg_path)
    case = case_from_dict(
        {
            "name": "seg-in",
            "domain": {
                "image": {
                    "file": str(folder),
                    "labels": str(seg_path),
                    "tissues": {"liver": "liver", "vein": "vessel"},
                }
            },
            "grid": {"spacing_mm": 3.0, "crop_margin_mm": 10},
            "probes": [
                {
                    "model": "generic-17g",
                    "tip_mm": [-47.0, -150.3, 148.3],
                    "entry_mm": [-47.0, -400.0, 148.3],
                }
            ],
            "protocol": [{"phase": "freeze", "duration_min": 1}],
        },
        str(tmp_path / "case.yaml"),
    )
    d = discretise(case)
    names = [t.name for t in d.tissues]
    assert "liver" in names  # (the vein lies outside this small crop)
    # the same liver voxels as the NIfTI labels give, on the simulation grid
    reference = case_from_dict(
        {
            **case.model_dump(exclude_none=True, exclude={"domain"}),
            "domain": {
                "image": {
                    "file": str(folder),
                    "labels": str(labels_path),
                    "tissues": {5: "liver", 63: "vessel"},
                }
            },
        },
        str(tmp_path / "case.yaml"),
    )
    d_ref = discretise(reference)
    liver = d.problem.material == names.index("liver")
    ref_names = [t.name for t in d_ref.tissues]
    np.testing.assert_array_equal(liver, d_ref.problem.material == ref_names.index("liver"))
    bad = case.model_dump(exclude_none=True)
    bad["domain"]["image"]["tissues"] = {"kidney": "liver"}
    with pytest.raises(CaseError, match="label map's names"):
        discretise(case_from_dict(bad, str(tmp_path / "case.yaml")))


def test_rtstruct_as_the_label_map(series, tmp_path: Path) -> None:
    """An RTSTRUCT drawn on the series: its ROIs by name, rasterised on the image's grid."""
    folder, _ = series
    grid = read_volume(folder, "file").grid
    zs = [float(grid.lps_from_index(np.array([0.0, 0.0, k]))[2]) for k in range(grid.shape[2])]
    lesion_slices = [z for z in zs if abs(z - 148.3) <= 7.5]
    items = [contour_item(circle((-47.0, -161.3), 12.0, z)) for z in lesion_slices]
    rt = write_rtstruct(tmp_path / "rt.dcm", [(1, "Lesion GTV")], {1: items})
    case = case_from_dict(
        {
            "name": "rt-in",
            "domain": {"image": {"file": str(folder), "labels": str(rt),
                                 "tissues": {"Lesion GTV": "tumour"}, "default_tissue": "liver"}},
            "target": "tumour",
            "grid": {"spacing_mm": 1.5, "crop_margin_mm": 10},
            "probes": [{"model": "generic-17g", "tip_mm": [-47.0, -150.3, 148.3],
                        "entry_mm": [-47.0, -400.0, 148.3]}],
            "protocol": [{"phase": "freeze", "duration_min": 1}],
        },
        str(tmp_path / "case.yaml"),
    )  # fmt: skip
    d = discretise(case)
    names = [t.name for t in d.tissues]
    tumour = d.problem.material == names.index("tumour")
    # discs of radius 12 mm on each 3 mm slice that carries a contour
    expected_ml = np.pi * 12.0**2 * 3.0 * len(lesion_slices) / 1000.0
    assert tumour.sum() * d.grid.voxel_volume_ml == pytest.approx(expected_ml, rel=0.15)
    centre = d.grid.lps_from_index(np.argwhere(tumour).mean(axis=0))
    np.testing.assert_allclose(centre[:2], [-47.0, -161.3], atol=1.0)
