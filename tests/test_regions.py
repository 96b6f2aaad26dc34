"""The multirate back end's regions (boxes per x-slab): the geometry its face book and its
far-field bookkeeping rely on, on shapes with known answers."""

from __future__ import annotations

import numpy as np

from cryoplan.thermal.backend import Region
from cryoplan.thermal.multirate import _as_region, _grown, _union, _x_intervals

SHAPE = np.array([12, 10, 10])


def _mask(region: Region) -> np.ndarray:
    """The voxels of a region as a boolean field of SHAPE."""
    out = np.zeros(tuple(SHAPE), bool)
    for i in range(region.x_lo, region.x_hi):
        j0, j1, m0, m1 = region.bounds[i]
        out[i, j0:j1, m0:m1] = True
    return out


def _bounds(rows: dict[int, tuple[int, int, int, int]]) -> np.ndarray:
    b = np.zeros((SHAPE[0], 4), np.int64)
    for i, row in rows.items():
        b[i] = row
    return b


def test_a_box_is_a_region_of_equal_slabs() -> None:
    box = Region.box(np.array([2, 3, 4]), np.array([5, 7, 6]), SHAPE[0])
    expected = np.zeros(tuple(SHAPE), bool)
    expected[2:5, 3:7, 4:6] = True
    assert np.array_equal(_mask(box), expected)
    assert box.voxels() == 3 * 4 * 2


def test_growing_a_voxel_gives_the_cube_around_it_clipped_to_the_domain() -> None:
    grown = _grown(_bounds({1: (4, 5, 0, 1)}), 2, SHAPE)
    expected = np.zeros(tuple(SHAPE), bool)
    expected[0:4, 2:7, 0:3] = True  # i 1±2 clipped at 0, j 4±2, m 0±2 clipped at 0
    assert np.array_equal(_mask(grown), expected)
    assert (grown.x_lo, grown.x_hi) == (0, 4)


def test_union_holds_both_regions_slab_by_slab() -> None:
    a = _as_region(_bounds({2: (1, 3, 1, 3), 3: (1, 3, 1, 3)}))
    b = _as_region(_bounds({3: (5, 6, 5, 6), 7: (0, 1, 0, 1)}))
    u = _union(a, b)
    assert np.all(_mask(u) >= _mask(a))
    assert np.all(_mask(u) >= _mask(b))
    assert tuple(u.bounds[3]) == (1, 6, 1, 6)  # the slab's box around both
    assert (u.x_lo, u.x_hi) == (2, 8)
    assert tuple(u.bounds[5]) == (0, 0, 0, 0)  # a slab between them stays empty


def test_x_intervals_makes_every_row_cross_the_region_once() -> None:
    """Two separate balls along x (the gap between them would give a row two x− faces)."""
    rows = {1: (4, 6, 4, 6), 2: (3, 7, 3, 7), 3: (4, 6, 4, 6), 7: (4, 5, 4, 5), 8: (3, 6, 3, 6)}
    region = _x_intervals(_as_region(_bounds(rows)))
    mask = _mask(region)
    assert np.all(mask >= _mask(_as_region(_bounds(rows))))  # holds the input
    # along x, every row (j, m) is one interval: at most one entry and one exit
    steps = np.diff(mask.astype(np.int8), axis=0, prepend=0, append=0)
    assert np.all(np.sum(steps == 1, axis=0) <= 1)
    assert np.all(np.sum(steps == -1, axis=0) <= 1)
    # and no more than that: slabs widen up to the widest (slab 2) and narrow after it
    assert tuple(region.bounds[1]) == (4, 6, 4, 6)
    assert tuple(region.bounds[2]) == (3, 7, 3, 7)
    assert tuple(region.bounds[5]) == (3, 6, 3, 6)  # the gap takes what lies beyond it


def test_x_intervals_keeps_a_region_symmetric_along_x() -> None:
    rows = {2: (4, 6, 4, 6), 3: (3, 7, 3, 7), 4: (3, 7, 3, 7), 5: (4, 6, 4, 6)}
    mask = _mask(_x_intervals(_as_region(_bounds(rows))))
    assert np.array_equal(mask[:8], mask[:8][::-1])
