"""Outlines for the viewer, as label maps on the image's grid: the isotherms of the minimum
temperature (one label value per isotherm) and the target's outline.

NiiVue draws a label map over the image in its 2-D slices and its 3-D rendering, but it has no
contour lines of its own. A one-voxel shell of a region is the next best thing: any slice cuts
it as a closed line around the region's section (the line widens into a patch only where the
slice grazes the shell, at the poles of an ice ball). Each shell is the region's own outermost
voxels, so nested isotherms do not overlap as long as they are a voxel or more apart.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from scipy import ndimage

from cryoplan.anatomy.grid import Grid

if TYPE_CHECKING:
    from cryoplan.case import Case


def shell(mask: np.ndarray) -> np.ndarray:
    """The voxels of `mask` with a face neighbour outside it (or on the array's edge)."""
    out = np.zeros(mask.shape, bool)
    found = ndimage.find_objects(mask.astype(np.uint8))
    if not found or found[0] is None:
        return out
    # only the mask's bounding box grown by a voxel (a whole CT is large); its faces lie
    # outside the mask, or on the array's edge, where outside is what erosion assumes
    box = tuple(slice(max(0, s.start - 1), s.stop + 1) for s in found[0])
    inside = mask[box]
    out[box] = inside & ~ndimage.binary_erosion(inside, border_value=0)
    return out


def isotherm_labels(tmin_c: np.ndarray, levels_c: tuple[float, ...]) -> np.ndarray:
    """Label k + 1 on the shell of {T_min ≤ levels_c[k]}; a colder isotherm's label wins
    where two meet (uint8, 0 elsewhere)."""
    out = np.zeros(tmin_c.shape, np.uint8)
    for k, level in enumerate(levels_c):
        out[shell(tmin_c <= level)] = k + 1
    return out


def target_mask(case: Case) -> tuple[np.ndarray, Grid] | None:
    """The voxels of an image case's target (its labels, its spheres) on the label map's
    grid, as the simulation reads them; None if the target has no voxel there."""
    from cryoplan.anatomy.patient import read_image_anatomy  # noqa: PLC0415

    anatomy = read_image_anatomy(case)
    if case.target not in anatomy.tissue_names:
        return None
    mask = anatomy.tissue_index == anatomy.tissue_names.index(case.target)
    return (mask, anatomy.labels.grid) if mask.any() else None


def nifti_bytes(array: np.ndarray, grid: Grid) -> bytes:
    """A gzipped NIfTI-1 file of `array` with the grid's affine (RAS, as `write_nifti`)."""
    image = nib.Nifti1Image(array, grid.affine_ras)
    image.set_qform(grid.affine_ras, code=1)
    image.set_sform(grid.affine_ras, code=1)
    image.header.set_xyzt_units(xyz="mm")
    return gzip.compress(image.to_bytes(), compresslevel=1)  # mostly zeros: fast is enough


def isotherms_file(tmin_path: Path, levels_c: tuple[float, ...]) -> bytes:
    """The isotherm labels of a T_min file (°C) on its own grid, as a NIfTI file."""
    from cryoplan.anatomy.images import read_volume  # noqa: PLC0415

    tmin = read_volume(tmin_path, tmin_path.name)
    return nifti_bytes(isotherm_labels(tmin.array, levels_c), tmin.grid)
