"""The body's outline on a patient image, and the skin layer inside it.

The outline is what lies above a threshold (a CT: `ct_threshold_hu`; another image, such as
an MRI: `share_of_p99` × its 99th percentile), holes filled slice by slice, its largest
piece; a label map given alone: the outline of its labelled voxels. The values and their
sources are in body.yaml. The planner takes skin entry points on this outline; a case's
`domain.image.skin` makes its outer `thickness_mm` the skin tissue.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan.yamlio import load_yaml


@lru_cache(maxsize=1)
def body_settings() -> dict[str, Any]:
    text = resources.files("cryoplan.anatomy").joinpath("body.yaml").read_text("utf-8")
    return load_yaml(text)


def body_outline(intensity: np.ndarray | None, labels: np.ndarray) -> tuple[np.ndarray, str]:
    """The body mask on the image's grid and one sentence saying how it was found."""
    settings = body_settings()
    if intensity is None:
        return ndimage.binary_fill_holes(
            labels != 0
        ), "skin: the outline of the labelled voxels (no image to threshold)"
    if float(intensity.min()) < float(settings["ct_if_minimum_below_hu"]):
        threshold = float(settings["ct_threshold_hu"])
        return _above(intensity, threshold), f"skin: the CT above {threshold:g} HU, holes filled"
    share = float(settings["share_of_p99"])
    threshold = share * float(np.percentile(intensity, 99))
    body = _above(intensity, threshold) | (labels != 0)
    return body, (
        f"skin: the image above {share:g} × its 99th percentile ({threshold:.4g}), holes "
        "filled (not a CT: no calibrated threshold)"
    )


def skin_layer(body: np.ndarray, thickness_mm: float, spacing_mm: tuple[float, ...]) -> np.ndarray:
    """The body's voxels within `thickness_mm` of the air around it (centre to the nearest
    outside voxel's centre, less half a voxel). The image's own edges are not skin: a crop's
    cut face lies inside the patient."""
    padded = np.pad(body, 1, mode="edge")  # beyond the image's edge: as at the edge
    depth = ndimage.distance_transform_edt(padded, sampling=spacing_mm)[1:-1, 1:-1, 1:-1]
    return body & (depth - 0.5 * float(np.mean(spacing_mm)) < thickness_mm)


def _above(intensity: np.ndarray, threshold: float) -> np.ndarray:
    body = intensity > threshold
    for k in range(body.shape[2]):
        body[:, :, k] = ndimage.binary_fill_holes(body[:, :, k])
    pieces, n = ndimage.label(body)
    if n > 1:
        sizes = np.bincount(pieces.ravel())
        sizes[0] = 0
        body = pieces == int(np.argmax(sizes))
    return body
