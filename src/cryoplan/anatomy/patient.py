"""A patient's label map → the simulation's tissue map: map labels to tissues, add synthetic
lesions, crop to what matters and resample to the case's spacing.

The simulation grid keeps the image's direction (so an oblique image stays oblique, with no
resampling across its axes) and covers the target, the case's own probes' active lengths (if
it has probes) and the planning region `grid.region_mm` (if given), grown by
`grid.crop_margin_mm` and clipped to the image. It is fixed when the case is prepared: runs
that move the probes later reuse it (a probe must then fall inside). Labels are resampled by
nearest neighbour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cryoplan.anatomy.body import body_outline, skin_layer
from cryoplan.anatomy.grid import Grid, OrganMap, TissueMap
from cryoplan.anatomy.images import (
    Volume,
    dicom_modality,
    grid_of,
    read_labels,
    read_sitk,
    read_volume,
    resample,
    same_grid,
    totalsegmentator_names,
)
from cryoplan.anatomy.rtstruct import read_rtstruct
from cryoplan.budget import check_case_grid
from cryoplan.case import Case, Lesion
from cryoplan.errors import CaseError
from cryoplan.probes.geometry import probe_geometry

DEFAULT_CROP_MARGIN_MM = 30.0  # beyond the −40 °C zone, an ice ball rarely reaches 2–3 cm


def lesion_mask(grid: Grid, lesion: Lesion) -> np.ndarray:
    """Voxels whose centres lie inside the lesion's ellipsoid (LPS axes)."""
    x, y, z = grid.centres_lps()
    c = lesion.centre_mm
    rx, ry, rz = lesion.radii_mm
    return ((x - c[0]) / rx) ** 2 + ((y - c[1]) / ry) ** 2 + ((z - c[2]) / rz) ** 2 <= 1.0


def add_lesion(labels: Volume, lesion: Lesion, value: int) -> Volume:
    """A copy of a label map with a synthetic lesion written in as `value` (the API of
    `cryoplan lesion add`)."""
    out = labels.array.copy()
    out[lesion_mask(labels.grid, lesion)] = value
    return Volume(out, labels.grid)


def _label_value(
    case: Case, key: int | str, present: set[int], own_names: dict[int, str] | None
) -> int:
    """A label given by value, by the label map's own names (DICOM-SEG segment labels), or by
    TotalSegmentator 'total' name."""
    field = f"domain.image.tissues.{key}"
    if isinstance(key, str) and not key.lstrip("-").isdigit():
        names = {n: v for v, n in (own_names or {}).items()} or totalsegmentator_names()
        names = {**names, **{n: v for v, n in case.domain.image.label_names.items()}}  # type: ignore[union-attr]
        if key not in names:
            what = (
                "one of the label map's names" if own_names else "a TotalSegmentator 'total' name"
            )
            raise CaseError(case.source, field, f"a label value or {what}")
        value = names[key]
    else:
        value = int(key)
    if value not in present:
        raise CaseError(
            case.source, field, f"a label that occurs in the label map (label {value} does not)"
        )
    return value


def _tissue_volume(
    case: Case, labels: Volume, body: np.ndarray | None
) -> tuple[np.ndarray, list[str]]:
    """Tissue index per image voxel, and the tissue names in index order: the label map's
    tissues, then the skin layer over default-tissue voxels, then the lesions."""
    image = case.domain.image
    assert image is not None
    present = {int(v) for v in np.unique(labels.array)}
    names = [image.default_tissue]
    index = np.zeros(labels.array.shape, np.uint8)
    for key, tissue in image.tissues.items():
        value = _label_value(case, key, present, labels.label_names)
        if tissue not in names:
            names.append(tissue)
        index[labels.array == value] = names.index(tissue)
    if image.skin is not None:
        assert body is not None  # read_image_anatomy finds the body where a skin is asked
        skin = skin_layer(body, image.skin.thickness_mm, labels.grid.spacing_mm) & (index == 0)
        if not skin.any():
            raise CaseError(
                case.source,
                "domain.image.skin",
                "an image with air around the body (no body surface found for the skin layer)",
            )
        if image.skin.tissue not in names:
            names.append(image.skin.tissue)
        index[skin] = names.index(image.skin.tissue)
    for lesion in image.lesions:
        if lesion.tissue not in names:
            names.append(lesion.tissue)
        mask = lesion_mask(labels.grid, lesion)
        if not mask.any():
            raise CaseError(case.source, "domain.image.lesions", "a lesion inside the image")
        index[mask] = names.index(lesion.tissue)
    return index, names


def _crop_grid(case: Case, image_grid: Grid, focus_index: np.ndarray) -> Grid:
    """The simulation grid: the focus points' box grown by the crop margin, in image axes."""
    margin = case.grid.crop_margin_mm
    margin = DEFAULT_CROP_MARGIN_MM if margin is None else margin
    spacing = np.asarray(image_grid.spacing_mm)
    lo = np.floor(focus_index.min(axis=0) - margin / spacing)
    hi = np.ceil(focus_index.max(axis=0) + margin / spacing)
    lo = np.maximum(lo, 0) - 0.5  # voxel edges, clipped to the image
    hi = np.minimum(hi, np.asarray(image_grid.shape) - 1) + 0.5
    h = case.grid.spacing_mm
    shape = tuple(max(1, math.ceil((hi[a] - lo[a]) * spacing[a] / h - 1e-9)) for a in range(3))
    first_centre = lo + 0.5 * h / spacing
    return Grid(
        shape,  # type: ignore[arg-type]
        (h, h, h),
        tuple(image_grid.lps_from_index(first_centre)),  # type: ignore[arg-type]
        np.asarray(image_grid.direction),
    )


def _focus_index(case: Case, image_grid: Grid, index: np.ndarray, names: list[str]) -> np.ndarray:
    """Image voxel indices (n, 3) the simulation grid must cover: the target's voxels, the
    ends of the case's own probes' active lengths, the corners of `grid.region_mm`."""
    focus = [np.argwhere(index == names.index(case.target))] if case.target in names else []
    if case.target is not None and (not focus or focus[0].size == 0):
        raise CaseError(
            case.source,
            "target",
            f"a tissue with voxels in the label map ({case.target!r} has none)",
        )
    for spec in case.probes or []:
        g = probe_geometry(spec, case.probe_models)
        focus.append(image_grid.index_from_lps(np.stack([g.tip_mm, g.active_end_mm])))
    region = case.grid.region_mm
    if region is not None:
        corners = image_grid.index_from_lps(np.asarray(region.corners_mm()))
        upper = np.asarray(image_grid.shape) - 0.5
        if np.any(corners.max(axis=0) < -0.5) or np.any(corners.min(axis=0) > upper):
            lo, hi = image_grid.bounds_mm()
            raise CaseError(
                case.source,
                "grid.region_mm",
                f"a box that overlaps the image (LPS {np.round(lo, 2).tolist()} to "
                f"{np.round(hi, 2).tolist()} mm)",
            )
        focus.append(corners)
    if not focus:
        raise CaseError(
            case.source,
            "grid.region_mm",
            "a region to simulate: an image case with neither a target nor probes needs one",
        )
    return np.concatenate(focus)


def _read_label_map(case: Case, path: Path, image_grid: Grid | None) -> Volume:
    """The label map on the image's grid: volumes must share it, a DICOM-SEG (which may
    cover some frames only) is resampled onto it, an RTSTRUCT's contours are rasterised on it."""
    if dicom_modality(path) == "RTSTRUCT":
        if image_grid is None:
            raise CaseError(
                case.source, "domain.image.file", "the image an RTSTRUCT's contours belong to"
            )
        rt_labels, rt_names = read_rtstruct(path, image_grid)
        return Volume(rt_labels.array, image_grid, rt_names)
    labels = read_labels(path, "domain.image.labels")
    if image_grid is None:
        return labels
    if labels.label_names is not None:
        on_image = resample(labels, image_grid, nearest=True).astype(np.int32)
        return Volume(on_image, image_grid, labels.label_names)
    if not same_grid(image_grid, labels.grid):
        raise CaseError(
            str(path),
            "domain.image.labels",
            f"a label map on the grid of {case.domain.image.file} "  # type: ignore[union-attr]
            "(their shape, spacing, origin or direction differ)",
        )
    return labels


def is_vessel(case: Case, tissue: str) -> bool:
    """Whether a tissue is a large vessel (held at blood temperature)."""
    return case.resolved_tissues[tissue].blood_vessel


def keep_thin_vessels(
    case: Case,
    index: np.ndarray,
    names: list[str],
    image_grid: Grid,
    simulation: np.ndarray,
    grid: Grid,
) -> None:
    """Vessels thinner than a simulation voxel still act as heat sinks.

    Nearest-neighbour resampling drops a vessel that misses every simulation voxel's centre,
    and a vessel that disappears stops cooling the ice ball's edge. So each vessel's share of
    every simulation voxel is measured, and a voxel becomes vessel (outside the target) when
    the share reaches half that of a line one image voxel wide, (s_image/h)²/2: the thinnest
    vessel a label map can hold. Thin vessels stay connected at the price of widening to
    whole voxels (their sink is then overstated, not lost).
    """
    target = names.index(case.target) if case.target in names else -1
    # the share of each simulation voxel a vessel fills: average the fine mask over a
    # simulation voxel's extent, then sample it at the simulation voxels' centres
    window = [
        max(1, round(h / s)) for h, s in zip(grid.spacing_mm, image_grid.spacing_mm, strict=True)
    ]
    thinnest = 0.5 * (min(image_grid.spacing_mm) / max(grid.spacing_mm)) ** 2
    for k, tissue in enumerate(names):
        if not is_vessel(case, tissue) or not (index == k).any():
            continue
        share = ndimage.uniform_filter((index == k).astype(np.float32), size=window)
        fraction = resample(Volume(share, image_grid), grid, nearest=False)
        simulation[(fraction >= min(thinnest, 0.5)) & (simulation != target)] = k


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class ImageAnatomy:
    """A patient's anatomy on the image's own grid, before any crop.

    `labels` is the label map as read (its values; `label_names` where the map names them),
    `tissue_index` each voxel's index into `tissue_names` (the case's mapping, skin and
    lesions written in), `body` the body's outline (`anatomy.body`; None unless asked for
    or needed for a skin layer) with `body_note` saying how it was found.
    """

    labels: Volume
    tissue_index: np.ndarray
    tissue_names: list[str]
    body: np.ndarray | None = None
    body_note: str = ""


def read_image_anatomy(case: Case, with_body: bool = False) -> ImageAnatomy:
    """The case's image domain on the image grid: labels, tissues and (if asked, or for a
    skin layer) the body's outline, found once from the image's intensities."""
    image = case.domain.image
    assert image is not None
    labels_path = case.resolve_path(image.labels)
    image_grid = None
    intensity = None
    with_body = with_body or image.skin is not None
    if image.file is not None and with_body:
        picture = read_volume(case.resolve_path(image.file), "domain.image.file")
        image_grid, intensity = picture.grid, picture.array
    elif image.file is not None:
        image_grid = grid_of(read_sitk(case.resolve_path(image.file), "domain.image.file"))
    labels = _read_label_map(case, labels_path, image_grid)
    body, note = body_outline(intensity, labels.array) if with_body else (None, "")
    index, names = _tissue_volume(case, labels, body)
    return ImageAnatomy(labels, index, names, body, note)


def build_patient_anatomy(case: Case) -> TissueMap:
    image = case.domain.image
    assert image is not None
    labels_path = case.resolve_path(image.labels)
    anatomy = read_image_anatomy(case)
    labels, index, names = anatomy.labels, anatomy.tissue_index, anatomy.tissue_names
    grid = _crop_grid(case, labels.grid, _focus_index(case, labels.grid, index, names))
    check_case_grid(case, grid.shape)
    simulation = resample(Volume(index, labels.grid), grid, nearest=True).astype(np.uint8)
    keep_thin_vessels(case, index, names, labels.grid, simulation, grid)
    return TissueMap(
        grid,
        simulation,
        dict(enumerate(names)),
        source_grid=labels.grid,
        organs=organ_map(case, labels, grid),
        provenance={
            "labels": str(labels_path),
            "image": str(case.resolve_path(image.file)) if image.file else None,
            "synthetic_lesions": [lesion.model_dump() for lesion in image.lesions],
        },
    )


def organ_names(case: Case, labels: Volume, values: list[int]) -> tuple[dict[int, str], str]:
    """An organ name for each label value, and where the names come from: the label map's
    own names (DICOM-SEG, RTSTRUCT); else TotalSegmentator's 'total' names when the case maps
    labels by those names (the map is then TotalSegmentator's); else the tissue a value is
    mapped to, or "label N". The case's `label_names` come before all of these."""
    image = case.domain.image
    assert image is not None
    by_value = {key: tissue for key, tissue in image.tissues.items() if isinstance(key, int)}
    if labels.label_names:
        known, source = dict(labels.label_names), "the label map's own names"
    elif any(isinstance(key, str) and key not in image.label_names.values()
             for key in image.tissues):  # fmt: skip
        known = {value: name for name, value in totalsegmentator_names().items()}
        source = "TotalSegmentator 'total' label names"
    else:
        known, source = {}, "the case's tissues (the label map names no labels)"
    if image.label_names:
        known = {**known, **image.label_names}
        source += ", and the case's label_names"
    names = {v: known.get(v) or by_value.get(v) or f"label {v}" for v in values}
    return names, source


def organ_map(case: Case, labels: Volume, grid: Grid) -> OrganMap:
    """The label map resampled (nearest neighbour) onto the simulation grid, with names.

    An organ thinner than a simulation voxel may miss every voxel centre and vanish here; the
    physics keeps thin vessels (`keep_thin_vessels`), the organ list reports what is left.
    """
    on_grid = resample(labels, grid, nearest=True)
    values = sorted(int(v) for v in np.unique(on_grid) if v != 0)
    dtype = np.uint8 if not values or max(values) < 256 else np.int32
    names, source = organ_names(case, labels, values)
    return OrganMap(on_grid.astype(dtype), names, source)
