"""Outlines for the viewer, as label maps on the image's grid: the isotherms of the minimum
temperature (one label value per isotherm) and the target's outline; and a still picture of
the image for the page to show while its viewer starts.

NiiVue draws a label map over the image in its 2-D slices and its 3-D rendering, but it has no
contour lines of its own. A one-voxel shell of a region is the next best thing: any slice cuts
it as a closed line around the region's section (the line widens into a patch only where the
slice grazes the shell, at the poles of an ice ball). Each shell is the region's own outermost
voxels, so nested isotherms do not overlap as long as they are a voxel or more apart.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
from scipy import ndimage

from cryoplan.anatomy.grid import Grid

if TYPE_CHECKING:
    from cryoplan.anatomy.images import Volume
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


CT_SOFT_TISSUE_HU = (40.0, 400.0)  # level, width: the viewer's "CT soft tissue" preset
CT_BELOW_HU = -500.0  # an image with values below this is a CT (as the viewer decides)
STILL_HEIGHT_PX = 480


def still_png(volume: Volume, centre_lps: np.ndarray, height_px: int = STILL_HEIGHT_PX) -> bytes:
    """The axial slice of an image through `centre_lps` as a greyscale PNG, as the viewer
    shows it: the patient's right on the left, anterior up, square millimetres; windowed
    with the viewer's CT soft-tissue preset, or (an MRI) the slice's 2nd to 98th percentiles.

    What the page shows while NiiVue's WebGL set-up runs (a second or more without a GPU),
    replaced by the viewer's own slices once they are drawn."""
    from PIL import Image  # noqa: PLC0415

    grid = volume.grid
    # each index axis's direction in LPS, and which of x (R→L), y (A→P), z (I→S) it follows
    axes = np.asarray(grid.direction)
    follows = np.argmax(np.abs(axes), axis=0)  # for each index axis a: the LPS axis
    if sorted(follows.tolist()) != [0, 1, 2]:  # oblique beyond 45°: the index axes as they are
        follows = np.arange(3)
    index = np.rint(grid.index_from_lps(np.asarray(centre_lps, float)[None]))[0].astype(int)
    by_lps = [int(np.where(follows == lps)[0][0]) for lps in range(3)]  # LPS axis → index axis
    k = int(np.clip(index[by_lps[2]], 0, grid.shape[by_lps[2]] - 1))
    plane = np.take(volume.array, k, axis=by_lps[2]).astype(np.float32)
    # rows along y (anterior first), columns along x (the patient's right first)
    in_plane = [a for a in range(3) if a != by_lps[2]]
    if in_plane.index(by_lps[1]) != 0:
        plane = plane.T
    if axes[1, by_lps[1]] < 0:
        plane = plane[::-1, :]
    if axes[0, by_lps[0]] < 0:
        plane = plane[:, ::-1]
    if float(np.min(volume.array)) < CT_BELOW_HU:
        level, width = CT_SOFT_TISSUE_HU
        low, high = level - width / 2, level + width / 2
    else:
        low, high = np.percentile(plane, [2, 98])
    grey = np.clip((plane - low) / max(float(high - low), 1e-6), 0, 1) * 255
    rows_mm = plane.shape[0] * grid.spacing_mm[by_lps[1]]
    columns_mm = plane.shape[1] * grid.spacing_mm[by_lps[0]]
    size = (max(1, round(height_px * columns_mm / rows_mm)), height_px)
    picture = Image.fromarray(grey.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    out = io.BytesIO()
    picture.save(out, format="PNG", compress_level=1)
    return out.getvalue()
