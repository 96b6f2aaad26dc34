"""Outcome metrics on the simulation grid: coverage, margins, collateral damage, histograms.

Pure functions of arrays (masks, fields, spacing in mm). Surfaces are extracted with marching
cubes (scikit-image) so that margins and distances are measured between surfaces, not
between voxel centres: a binary region's surface lies half-way between its inside and
outside voxel centres, a field's surface where it crosses the level (linear interpolation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree
from skimage import measure


def coverage_percent(region: np.ndarray, zone: np.ndarray) -> float:
    """Share of the region's volume [%] inside the zone (100 if the region is empty)."""
    n = int(region.sum())
    return 100.0 * float((region & zone).sum()) / n if n else 100.0


def dilate_mm(region: np.ndarray, margin_mm: float, spacing_mm: tuple[float, ...]) -> np.ndarray:
    """Region grown by a distance [mm] from its surface (the same marching-cubes surface the
    margins are measured from): a voxel joins when its centre lies within `margin_mm` of it.

    Distances between voxel centres (a plain distance transform) under-grow a sphere in
    directions off the axes; the distance to the surface does not.
    """
    if margin_mm <= 0:
        return region.copy()
    surface = region_surface(region)
    if surface.vertices_index.size == 0:
        return region.copy()
    spacing = np.asarray(spacing_mm, float)
    # candidates: voxels near enough that they might join (cheap distance between centres)
    centre_distance = ndimage.distance_transform_edt(~region, sampling=spacing_mm)
    candidates = np.argwhere(~region & (centre_distance <= margin_mm + spacing.max()))
    distance, _ = cKDTree(surface.vertices_mm(spacing_mm)).query(candidates * spacing)
    grown = region.copy()
    grown[tuple(candidates[distance <= margin_mm].T)] = True
    return grown


@dataclass(frozen=True)
class Surface:
    """Vertices of an isosurface in voxel index coordinates."""

    vertices_index: np.ndarray  # (n, 3)

    def vertices_mm(self, spacing_mm: tuple[float, ...]) -> np.ndarray:
        return self.vertices_index * np.asarray(spacing_mm)


def surface_of(field: np.ndarray, level: float) -> Surface:
    """Isosurface `field == level` (marching cubes); the field is padded so it closes."""
    if not (field.min() < level < field.max()):
        return Surface(np.zeros((0, 3)))
    lo = float(field.min())
    padded = np.pad(field.astype(np.float64), 1, mode="constant", constant_values=lo)
    verts, _, _, _ = measure.marching_cubes(padded, level=level)
    return Surface(verts - 1.0)


def isotherm_distance_mm(
    field_a: np.ndarray, field_b: np.ndarray, spacing_mm: tuple[float, ...], level: float
) -> float:
    """Largest distance [mm] between the surfaces {field = level} of two fields on one grid:
    the symmetric Hausdorff distance of their marching-cubes vertices (0 when neither field
    reaches the level, inf when only one does). How far apart two solvers put an isotherm."""
    a = surface_of(field_a, level).vertices_mm(spacing_mm)
    b = surface_of(field_b, level).vertices_mm(spacing_mm)
    if len(a) == 0 or len(b) == 0:
        return 0.0 if len(a) == len(b) else float("inf")
    return float(max(cKDTree(b).query(a)[0].max(), cKDTree(a).query(b)[0].max()))


def region_surface(region: np.ndarray) -> Surface:
    """The surface of a binary region (level 0.5 of its indicator)."""
    return surface_of(region.astype(np.float64), 0.5)


@dataclass(frozen=True)
class SignedDistances:
    """Signed distance [mm] from points on one surface to a zone's surface.

    Positive where the point lies inside the zone (the zone reaches beyond it by that much),
    negative where it lies outside.
    """

    points_index: np.ndarray  # (n, 3)
    distance_mm: np.ndarray  # (n,)

    @property
    def minimum_mm(self) -> float:
        return float(self.distance_mm.min()) if self.distance_mm.size else float("nan")

    @property
    def mean_mm(self) -> float:
        return float(self.distance_mm.mean()) if self.distance_mm.size else float("nan")

    def argmin_index(self) -> np.ndarray:
        return self.points_index[int(np.argmin(self.distance_mm))]


def signed_distances(
    surface: Surface, zone_field: np.ndarray, level: float, spacing_mm: tuple[float, ...]
) -> SignedDistances:
    """From each vertex of `surface` to the zone {zone_field ≥ level}'s surface."""
    pts = surface.vertices_index
    if pts.size == 0:
        return SignedDistances(pts, np.zeros(0))
    # surfaces of regions touching the domain's edge close half a voxel outside the array:
    # read the zone there from the nearest voxel, not from a fill value
    field = zone_field.astype(np.float64)
    inside = ndimage.map_coordinates(field, pts.T, order=1, mode="nearest") >= level
    zone_surface = surface_of(zone_field, level)
    if zone_surface.vertices_index.size == 0:
        # no zone boundary in the domain: all inside (+inf) or all outside (−inf)
        return SignedDistances(pts, np.where(inside, np.inf, -np.inf))
    tree = cKDTree(zone_surface.vertices_mm(spacing_mm))
    distance, _ = tree.query(surface.vertices_mm(spacing_mm))
    return SignedDistances(pts, np.where(inside, distance, -distance))


def cumulative_temperature_volume(
    minimum_temperature_c: np.ndarray, region: np.ndarray, temperatures_c: np.ndarray
) -> np.ndarray:
    """% of the region's volume whose T_min is at or below each temperature (the
    "dose–volume histogram" of cryoablation)."""
    values = np.sort(minimum_temperature_c[region])
    if values.size == 0:
        return np.zeros_like(temperatures_c, dtype=float)
    return 100.0 * np.searchsorted(values, temperatures_c, side="right") / values.size


def surrounding_label(region: np.ndarray, labels: np.ndarray) -> int | None:
    """The label that surrounds a region: the most frequent non-zero label in a shell two
    voxels thick around it (None where that shell holds no label), e.g. the organ that
    holds a tumour."""
    shell = ndimage.binary_dilation(region, iterations=2) & ~region
    around = labels[shell]
    around = around[around != 0]
    if around.size == 0:
        return None
    values, counts = np.unique(around, return_counts=True)
    return int(values[np.argmax(counts)])
