"""A uniform grid in patient LPS millimetres, and label volumes on it.

The affine maps voxel indices (i, j, k) to LPS millimetres of the voxel *centre*:

    p_lps = origin_mm + direction · diag(spacing_mm) · (i, j, k)

as DICOM and ITK define it. NIfTI stores RAS; `affine_ras` converts at the I/O boundary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True)
class Grid:
    """Shape, spacing (mm), origin (LPS mm of voxel 0's centre) and direction cosines."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))

    @staticmethod
    def centred_box(size_mm: tuple[float, float, float], spacing_mm: float) -> Grid:
        """A box of about `size_mm` centred on the LPS origin (whole voxels: n = round(size/h))."""
        shape = tuple(max(1, round(s / spacing_mm)) for s in size_mm)
        origin = tuple(-(n - 1) * spacing_mm / 2.0 for n in shape)
        return Grid(shape, (spacing_mm,) * 3, origin)  # type: ignore[arg-type]

    @property
    def spacing_m(self) -> tuple[float, float, float]:
        return tuple(s * 1e-3 for s in self.spacing_mm)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) * 1e-3

    @property
    def affine_lps(self) -> np.ndarray:
        """4×4 index → LPS mm."""
        a = np.eye(4)
        a[:3, :3] = self.direction @ np.diag(self.spacing_mm)
        a[:3, 3] = self.origin_mm
        return a

    @property
    def affine_ras(self) -> np.ndarray:
        """4×4 index → RAS mm (what NIfTI stores)."""
        return LPS_TO_RAS @ self.affine_lps

    def index_from_lps(self, points_mm: np.ndarray) -> np.ndarray:
        """Fractional voxel indices of LPS points (…, 3)."""
        pts = np.asarray(points_mm, float)
        inv = np.linalg.inv(self.affine_lps)
        return pts @ inv[:3, :3].T + inv[:3, 3]

    def lps_from_index(self, index: np.ndarray) -> np.ndarray:
        """LPS mm of fractional voxel indices (…, 3)."""
        idx = np.asarray(index, float)
        a = self.affine_lps
        return idx @ a[:3, :3].T + a[:3, 3]

    def centres_lps(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LPS coordinates (x, y, z arrays of the grid's shape) of every voxel centre."""
        ii = np.indices(self.shape).reshape(3, -1).T
        pts = self.lps_from_index(ii)
        return tuple(pts[:, c].reshape(self.shape) for c in range(3))  # type: ignore[return-value]

    def contains_index(self, index: np.ndarray) -> bool:
        """True if the point lies inside the domain (within half a voxel of the outer centres)."""
        idx = np.asarray(index, float)
        return bool(np.all(idx >= -0.5) and np.all(idx <= np.asarray(self.shape) - 0.5))

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS bounding box of the domain's outer faces (axis-aligned grids)."""
        lo = self.lps_from_index(np.full(3, -0.5))
        hi = self.lps_from_index(np.asarray(self.shape) - 0.5)
        return np.minimum(lo, hi), np.maximum(lo, hi)


@dataclass(frozen=True, eq=False)  # arrays: compared by identity
class OrganMap:
    """The patient's label map on the simulation grid, each label value with its organ name.

    Tissues group labels for the physics (every unmapped organ is the default tissue); organs
    keep them apart for the report: the right adrenal is not "muscle" there. `names_from`
    says where the names come from (the label map's own names, TotalSegmentator's 'total'
    table, or the case's tissue names for a map known by values only).
    """

    labels: np.ndarray  # integer (grid.shape), 0 = unlabelled
    names: dict[int, str]  # label value → organ name, for every value present but 0
    names_from: str


@dataclass(frozen=True)
class TissueMap:
    """A label volume on a grid with the tissue name of each label (meaning in the type)."""

    grid: Grid
    labels: np.ndarray  # integer (grid.shape)
    tissue_of_label: dict[int, str]
    source_grid: Grid | None = None  # the patient image's grid, when the map came from one
    provenance: dict[str, Any] = field(default_factory=dict)
    organs: OrganMap | None = None  # image domains: the label map's organs on this grid
