"""Grids in LPS millimetres: affines, index ↔ position, NIfTI's RAS at the boundary."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from cryoplan.anatomy.grid import Grid
from cryoplan.outputs import write_nifti


def test_centred_box_is_centred_on_the_origin() -> None:
    g = Grid.centred_box((60.0, 40.0, 81.0), 2.0)
    assert g.shape == (30, 20, 40)  # whole voxels: round(size / spacing)
    lo, hi = g.bounds_mm()
    np.testing.assert_allclose(lo, -hi)


def test_index_and_lps_are_inverse() -> None:
    rng = np.random.default_rng(7)
    rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    g = Grid((10, 12, 14), (0.7, 0.8, 2.0), (-30.0, 12.5, 4.0), rotation)
    idx = rng.uniform(0, 10, size=(50, 3))
    np.testing.assert_allclose(g.index_from_lps(g.lps_from_index(idx)), idx, atol=1e-12)


def test_nifti_round_trip_puts_a_voxel_at_the_same_patient_position(tmp_path: Path) -> None:
    """RAS ↔ LPS: a voxel written by cryoplan is read back at the same LPS point."""
    g = Grid((5, 6, 7), (1.0, 1.5, 2.0), (-10.0, 20.0, -5.0))
    data = np.zeros(g.shape, np.float32)
    data[1, 2, 3] = 1.0
    write_nifti(tmp_path / "x.nii.gz", data, g)
    image = nib.load(tmp_path / "x.nii.gz")
    ijk = np.argwhere(np.asarray(image.dataobj) == 1.0)[0]
    ras = image.affine @ np.array([*ijk, 1.0])
    lps_read = ras[:3] * np.array([-1.0, -1.0, 1.0])
    np.testing.assert_allclose(lps_read, g.lps_from_index(np.array([1, 2, 3])), atol=1e-6)
    assert image.header.get_xyzt_units()[0] == "mm"
