"""Test helper: write a volume as a DICOM series (SimpleITK), with made-up patient identity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk  # noqa: N813

# every identity a source series may carry (made up), each value unique enough to grep for
FAKE_PATIENT = {
    "0010|0010": "Doe^Jane",
    "0010|0020": "PID-12345",
    "0010|0030": "19600101",
    "0010|0040": "F",
    "0010|1010": "064Y",
    "0010|1000": "OTHERPID-777",
    "0008|0020": "20250314",  # study date
    "0008|0030": "101530",  # study time
    "0008|0021": "20250315",  # series date
    "0008|0031": "111530",  # series time
    "0008|1030": "CT ABDOMEN Doe Jane",  # study description
    "0008|103e": "Portal venous Doe",  # series description
    "0008|0050": "ACC-98765",  # accession number
    "0008|0080": "Saint Elsewhere Hospital",  # institution
    "0008|0090": "Smith^Referring",  # referring physician
    "0008|1070": "Operator^Olga",  # operators' name
    "0020|0010": "STUDYID-4242",  # study ID
}
# the values that must not appear in any output byte (the sex, a single letter, is too short
# to grep; it is checked on the DICOM attribute)
IDENTITY_STRINGS = [v.split("^")[0] for k, v in FAKE_PATIENT.items() if len(v) > 1]


def write_series(image: sitk.Image, folder: Path, series_uid: str, study_uid: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    d = image.GetDirection()
    orientation = "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        frame = sitk.Cast(image[:, :, k], sitk.sitkInt16)
        tags = {
            "0008|0060": "CT",
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
            "0008|0018": f"{series_uid}.{k + 1}",
            "0020|000d": study_uid,
            "0020|000e": series_uid,
            "0020|0052": f"{study_uid}.9",  # frame of reference
            "0020|0037": orientation,
            "0020|0032": "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k))),
            "0020|0013": str(k + 1),
            "0018|0050": str(image.GetSpacing()[2]),
            **FAKE_PATIENT,
        }
        for tag, value in tags.items():
            frame.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(frame)


def ct_subvolume(path: Path, k_range: tuple[int, int]) -> sitk.Image:
    """A few slices of a NIfTI CT (keeps the tests small)."""
    image = sitk.ReadImage(str(path))
    return image[:, :, k_range[0] : k_range[1]]


def as_array(image: sitk.Image) -> np.ndarray:
    return np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
