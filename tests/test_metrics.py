"""Outcome metrics on shapes with known answers.

Tolerances are set by the voxelisation: a binary region's surface (marching cubes at 0.5)
lies within half a voxel (h/2) of the true surface, so a single distance is good to h/2
(+0.1 mm for the nearest-vertex search) and a mean over a sphere to 0.3 mm at h = 1 mm.
"""

from __future__ import annotations

import numpy as np
import pytest

from cryoplan import metrics
from cryoplan.outcome import direction_words

H = 1.0
SPACING = (H, H, H)
N = 51
C = (N - 1) / 2
SINGLE = H / 2 + 0.1
MEAN = 0.3


def radius_from(centre_mm=(0.0, 0.0, 0.0)) -> np.ndarray:
    idx = np.indices((N, N, N)).astype(float)
    return np.sqrt(sum(((idx[a] - C) * H - centre_mm[a]) ** 2 for a in range(3)))


def margins(target_radius: float, zone_radius: float, zone_centre=(0.0, 0.0, 0.0)):
    target = radius_from() <= target_radius
    zone_field = zone_radius - radius_from(zone_centre)  # ≥ 0 inside the zone
    return metrics.signed_distances(metrics.region_surface(target), zone_field, 0.0, SPACING)


def test_sphere_inside_a_sphere_has_a_uniform_margin() -> None:
    d = margins(10.0, 15.0)
    assert d.mean_mm == pytest.approx(5.0, abs=MEAN)
    assert d.minimum_mm == pytest.approx(5.0, abs=SINGLE)


def test_shifted_sphere_has_its_minimum_margin_on_the_near_side() -> None:
    # zone of radius 15 shifted 3 mm to the patient's left (+x): 2 mm margin on the right
    d = margins(10.0, 15.0, zone_centre=(3.0, 0.0, 0.0))
    assert d.minimum_mm == pytest.approx(2.0, abs=SINGLE)
    where = (d.argmin_index() - C) * H
    assert where[0] == pytest.approx(-10.0, abs=1.0)
    assert direction_words(where) == "right"
    assert d.distance_mm.max() == pytest.approx(8.0, abs=SINGLE)


def test_target_larger_than_the_zone_has_a_negative_margin() -> None:
    d = margins(10.0, 8.0)
    assert d.minimum_mm == pytest.approx(-2.0, abs=SINGLE)
    assert d.mean_mm == pytest.approx(-2.0, abs=MEAN)


def test_structure_at_a_known_distance_from_the_zone() -> None:
    """A slab structure whose near face lies 7 mm beyond a zone of radius 12 mm."""
    idx = np.indices((N, N, N)).astype(float)
    x = (idx[0] - C) * H
    structure = x >= 19.0  # face at x = 18.5 (half-way between voxel centres 18 and 19)
    zone_field = 12.0 - radius_from()
    d = metrics.signed_distances(metrics.region_surface(structure), zone_field, 0.0, SPACING)
    clearance = -d.distance_mm.max()
    assert clearance == pytest.approx(18.5 - 12.0, abs=SINGLE)


def test_coverage_and_dilation() -> None:
    target = radius_from() <= 10.0
    assert metrics.coverage_percent(target, radius_from() <= 15.0) == 100.0
    # on an even grid the centre lies between voxel planes: a half-space holds exactly half
    even = np.indices((50, 50, 50)).astype(float) - 24.5
    ball = np.sqrt((even**2).sum(axis=0)) <= 10.0
    assert metrics.coverage_percent(ball, even[0] > 0) == 50.0
    grown = metrics.dilate_mm(target, 5.0, SPACING)
    assert grown.sum() == pytest.approx(4 / 3 * np.pi * 15.0**3, rel=0.03)


def test_cumulative_temperature_volume_histogram() -> None:
    r = radius_from()
    region = r <= 10.0
    # T_min = r − 20 °C: the coldest at the centre; T ≤ −15 °C inside r ≤ 5 mm: 1/8 of the ball
    curve = metrics.cumulative_temperature_volume(r - 20.0, region, np.array([-25.0, -15.0, -5.0]))
    assert curve[0] == 0.0
    assert curve[1] == pytest.approx(12.5, abs=1.5)
    assert curve[2] == 100.0
