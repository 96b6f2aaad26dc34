"""Probe layouts: n parallel probes across a target, seen along their common direction.

Parallel probes are how multi-probe cryoablation is placed (a template in the prostate, a
guided bundle elsewhere): their shafts never cross, and their spacing is a distance in the
plane across them. The layout of n probes is the centroidal Voronoi tessellation of the
target's cross-section (k-means of the target's voxels projected on that plane, so a
probe sits at the centre of the part of the target it is nearest to), scaled about the
target's centre by a spread factor the planner tunes with the physics. Along the probes,
each active length is centred on the depth range of the target it crosses, moved by a
depth offset the planner also tunes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from cryoplan.anatomy import Grid


def across(direction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors perpendicular to `direction` and to each other."""
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    helper = np.eye(3)[int(np.argmin(np.abs(d)))]
    e1 = np.cross(d, helper)
    e1 /= np.linalg.norm(e1)
    return e1, np.cross(d, e1)


@dataclass(frozen=True, eq=False)
class TargetFrame:
    """The target's voxels in coordinates of an insertion direction: across (a, b) and
    along it (s, growing deeper), about the target's centre [mm]."""

    centre_mm: np.ndarray
    direction: np.ndarray  # unit, from the skin towards the tip
    e1: np.ndarray
    e2: np.ndarray
    across_mm: np.ndarray  # (n, 2)
    along_mm: np.ndarray  # (n,)

    @staticmethod
    def of(target: np.ndarray, grid: Grid, direction: np.ndarray) -> TargetFrame:
        points = grid.lps_from_index(np.argwhere(target))
        centre = points.mean(axis=0)
        d = np.asarray(direction, float) / np.linalg.norm(direction)
        e1, e2 = across(d)
        rel = points - centre
        return TargetFrame(centre, d, e1, e2, np.stack([rel @ e1, rel @ e2], axis=1), rel @ d)


@dataclass(frozen=True)
class Layout:
    """n probe tips and their common direction (LPS mm)."""

    tips_mm: np.ndarray  # (n, 3)
    direction: np.ndarray  # unit, from the skin towards the tips
    spread: float
    depth_offset_mm: float
    shift_mm: tuple[float, float] = (0.0, 0.0)  # the whole layout moved across the probes

    @property
    def count(self) -> int:
        return len(self.tips_mm)

    def least_spacing_mm(self) -> float:
        """The least distance between two shafts (inf for one probe)."""
        if self.count < 2:
            return float("inf")
        d = self.direction
        flat = self.tips_mm - np.outer(self.tips_mm @ d, d)
        gaps = np.linalg.norm(flat[:, None, :] - flat[None, :, :], axis=-1)
        return float(gaps[np.triu_indices(self.count, 1)].min())


def cross_section_sites(frame: TargetFrame, count: int, seed: int = 0) -> np.ndarray:
    """(count, 2) positions across the probes: centroids of the target's cross-section split
    into `count` parts (k-means, k-means++ start from a fixed seed)."""
    if count == 1:
        return np.zeros((1, 2))
    rng = np.random.default_rng(seed)
    best, best_inertia = None, np.inf
    for _ in range(4):  # a few starts: k-means finds local optima
        centres, assigned = kmeans2(frame.across_mm, count, minit="++", seed=rng)
        if len(np.unique(assigned)) < count:
            continue
        inertia = float(((frame.across_mm - centres[assigned]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    if best is None:
        raise ValueError(f"the target's cross-section cannot be split into {count} parts")
    return best


def least_spread(sites_mm: np.ndarray, min_spacing_mm: float) -> float:
    """The spread factor below which two probes at `sites_mm` × spread come closer than
    `min_spacing_mm` (0 for one probe): a small target's layouts start there."""
    if len(sites_mm) < 2:
        return 0.0
    gaps = np.linalg.norm(sites_mm[:, None, :] - sites_mm[None, :, :], axis=-1)
    return min_spacing_mm / float(gaps[np.triu_indices(len(sites_mm), 1)].min())


def place(
    frame: TargetFrame,
    sites_mm: np.ndarray,
    active_length_mm: float,
    spread: float,
    depth_offset_mm: float,
    shift_mm: tuple[float, float] = (0.0, 0.0),
    template_mm: float | None = None,
) -> Layout:
    """Tips of probes at `sites_mm` × spread (+ `shift_mm`) across, their active lengths
    centred on the target's depth where they cross it, moved deeper by `depth_offset_mm`.
    With `template_mm`, each probe goes through the nearest hole of a square template grid
    of that pitch, centred on the target (two probes may land in one hole: the caller's
    spacing check refuses that layout)."""
    tips = []
    for site in sites_mm:
        lateral = spread * site + np.asarray(shift_mm)
        if template_mm is not None:
            lateral = np.round(lateral / template_mm) * template_mm
        # the target's depth range within 3 mm of this probe's line (else the whole target)
        near = np.linalg.norm(frame.across_mm - lateral, axis=1) <= 3.0
        along = frame.along_mm[near] if near.any() else frame.along_mm
        middle = 0.5 * (along.min() + along.max()) + depth_offset_mm
        tip = (
            frame.centre_mm
            + lateral[0] * frame.e1
            + lateral[1] * frame.e2
            + (middle + 0.5 * active_length_mm) * frame.direction
        )
        tips.append(tip)
    shift = (float(shift_mm[0]), float(shift_mm[1]))
    return Layout(np.asarray(tips), frame.direction, spread, depth_offset_mm, shift)
