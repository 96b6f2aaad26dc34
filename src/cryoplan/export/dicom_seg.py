"""The predicted lethal zone as DICOM-SEG (highdicom), referencing the input DICOM series.

Privacy follows DICOM PS3.15 Annex E's Basic Application Level Confidentiality Profile with
its Retain UIDs option: the segmentation keeps only what it needs to be placed on its images
— the study, series, frame-of-reference and SOP instance UIDs it references — and gets new
series and instance UIDs of its own. What highdicom copies from the source images is then
cleaned unless the caller asks to keep identity: patient attributes (name, ID, birth date,
…) and type-2 study attributes are emptied, descriptions, institution and people removed,
and dates and times replaced by a dummy (Annex E action D) where the object needs them.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from cryoplan import __version__
from cryoplan.errors import CaseError

# Emptied (type 2) or removed (type 3) in derived objects unless asked to keep identity.
IDENTIFYING_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                     "ReferringPhysicianName", "AccessionNumber", "StudyID")  # fmt: skip
IDENTIFYING_TYPE3 = ("PatientAge", "PatientWeight", "PatientSize", "OtherPatientIDs",
                     "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
                     "InstitutionName", "InstitutionAddress", "OperatorsName",
                     "PerformingPhysicianName", "IssuerOfPatientID", "PatientComments")  # fmt: skip

# DICOM's algorithm families (CID 7162) have no entry for a physics simulation, so a private
# coding scheme (the "99" prefix is reserved for such schemes) says honestly what made this.
SIMULATION_FAMILY = hd.sr.CodedConcept(
    value="BIOHEAT-SIM", scheme_designator="99CRYOPLAN", meaning="Bioheat simulation"
)


def read_series_datasets(folder: Path) -> list[pydicom.Dataset]:
    """The series' datasets sorted along the slice normal (the order ITK gives its slices)."""
    datasets = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        try:
            datasets.append(pydicom.dcmread(path))
        except pydicom.errors.InvalidDicomError:
            continue
    if not datasets:
        raise CaseError(str(folder), "domain.image.file", "a folder of DICOM images")
    orientation = np.asarray(datasets[0].ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    return sorted(datasets, key=lambda d: float(np.dot(normal, d.ImagePositionPatient)))


# Annex E: dates and times are removed, emptied or replaced by a dummy; a SEG needs some of
# them (type 1 or 2), so all present become this dummy (action D) or are removed (type 3).
DATES_TYPE3 = ("SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
               "AcquisitionDateTime", "InstanceCreationDate", "InstanceCreationTime",
               "PatientBirthTime")  # fmt: skip
DATES_KEPT_AS_DUMMY = {"StudyDate": "19000101", "StudyTime": "000000",
                       "ContentDate": "19000101", "ContentTime": "000000"}  # fmt: skip
DESCRIPTIONS_TYPE3 = ("StudyDescription", "RequestingPhysician", "PhysiciansOfRecord",
                      "NameOfPhysiciansReadingStudy", "AdmittingDiagnosesDescription",
                      "InstitutionalDepartmentName", "StationName", "RequestedProcedureDescription",
                      "PerformedProcedureStepDescription", "ProtocolName", "ImageComments",
                      "AdditionalPatientHistory", "EthnicGroup", "Occupation",
                      "MedicalRecordLocator", "PatientState", "PregnancyStatus")  # fmt: skip


def remove_identity(dataset: pydicom.Dataset) -> None:
    """Clean a derived object of what it copied from the source (module docstring)."""
    for keyword in IDENTIFYING_TYPE2:
        if keyword in dataset:
            setattr(dataset, keyword, "")
    for keyword in (*IDENTIFYING_TYPE3, *DATES_TYPE3, *DESCRIPTIONS_TYPE3):
        if keyword in dataset:
            delattr(dataset, keyword)
    for keyword, dummy in DATES_KEPT_AS_DUMMY.items():
        if keyword in dataset:
            setattr(dataset, keyword, dummy)
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "DICOM PS3.15 Annex E basic profile, retain UIDs (cryoplan)"


def write_lethal_seg(
    source_folder: Path, lethal_on_series: np.ndarray, out_path: Path, keep_identity: bool = False
) -> None:
    """Write the lethal zone, given [i, j, k] on the series' own grid, as a binary DICOM-SEG."""
    sources = read_series_datasets(source_folder)
    if lethal_on_series.shape[2] != len(sources):
        raise CaseError(
            str(source_folder), "domain.image.file", "one image per slice of the series"
        )
    # frame k of the source is slice k; its pixel (row r, column c) is voxel (i=c, j=r, k)
    frames = np.transpose(lethal_on_series, (2, 1, 0)).astype(bool)
    segment = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="predicted lethal zone",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Necrosis,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="cryoplan", family=SIMULATION_FAMILY, version=__version__
        ),
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=frames,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment],
        series_instance_uid=hd.UID(),
        series_number=9001,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="cryoplan",
        manufacturer_model_name="cryoplan",
        software_versions=__version__,
        device_serial_number="none",
        series_description="cryoplan predicted lethal zone (not a diagnosis)",
        omit_empty_frames=False,
    )
    if not keep_identity:
        remove_identity(seg)
    seg.save_as(out_path)
