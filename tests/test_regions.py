"""The multirate back end's regions (boxes per x-slab): the geometry its face book and its
far-field bookkeeping rely on, on shapes with known answers."""

from __future__ import annotations

import numba
import numpy as np

from cryoplan.thermal import kernels
from cryoplan.thermal.backend import Region
from cryoplan.thermal.enthalpy import kirchhoff_from_temperature
from cryoplan.thermal.materials import MaterialRow, material_table
from cryoplan.thermal.multirate import _as_region, _grown, _union, _x_intervals

SHAPE = np.array([12, 10, 10])


@numba.njit
def _flux_from_neighbour(n_mat, n_kirchhoff, props, mat, phi_v, factor) -> float:
    return kernels._flux_from_neighbour(n_mat, n_kirchhoff, props, mat, phi_v, factor)


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


def test_the_face_book_holds_every_flux_across_the_region_faces() -> None:
    """`advance_enthalpy` books the flux across each face between a region voxel and a free
    voxel outside it (uniform voxels per row, the others per voxel): against a sum over all
    faces, on a region whose slabs differ, with a second material and fixed voxels."""
    rng = np.random.default_rng(5)
    shape = tuple(SHAPE)
    material = np.zeros(shape, np.uint8)
    material[6:9, 2:5, 3:7] = 1  # a second tissue across the region's edge
    fixed = np.zeros(shape, np.bool_)
    fixed[3, 5, 2] = fixed[7, 7, 6] = True
    rows = [
        MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8.0, -1.0, 2000.0, 400.0, -40.0),
        MaterialRow(2.2, 0.6, 1.9e6, 3.7e6, 2.6e8, -7.0, -1.0, 0.0, 0.0, -40.0),
    ]
    props = material_table(rows)
    temperature = rng.uniform(-30.0, 37.0, shape)
    enthalpy = kernels.enthalpy_field(temperature, material, props)
    kirchhoff = np.array(
        [
            kirchhoff_from_temperature(t, props[m])
            for t, m in zip(temperature.ravel(), material.ravel(), strict=True)
        ]
    ).reshape(shape)
    region = _as_region(
        _bounds({2: (3, 6, 4, 7), 3: (2, 8, 1, 9), 4: (1, 9, 1, 9), 5: (1, 9, 2, 8),
                 6: (2, 9, 1, 9), 7: (3, 7, 3, 8), 8: (4, 6, 5, 6)})
    )  # fmt: skip
    spacing = np.array([1e-3, 1e-3, 1e-3])
    factors = [1e-3, 1e-3, 1e-3]
    book = np.zeros((6, 12, 12))
    outside_w = kernels.advance_enthalpy(
        enthalpy, kirchhoff, material, fixed, kernels.uniform_voxels(material, fixed),
        np.zeros(shape, np.bool_), props, spacing, np.zeros(6, np.int64), np.zeros(6), 37.0,
        0.1, region.x_lo, region.x_hi, region.bounds, 0, 0, Region.empty(SHAPE[0]).bounds,
        book, 2.0,
    )[4]  # fmt: skip

    inside = _mask(region)
    expected_book = np.zeros_like(book)
    expected_w = 0.0
    for v in zip(*np.nonzero(inside & ~fixed), strict=True):
        for face in range(6):
            axis, step = face // 2, 2 * (face % 2) - 1
            n = list(v)
            n[axis] += step
            if not 0 <= n[axis] < shape[axis]:
                continue
            n = tuple(n)
            if inside[n] or fixed[n]:
                continue
            f = _flux_from_neighbour(
                material[n], kirchhoff[n], props, material[v], kirchhoff[v], factors[axis]
            )
            a, b = [v[k] for k in range(3) if k != axis]
            expected_book[face, a, b] += 2.0 * f
            expected_w += f
    assert np.allclose(book, expected_book, rtol=1e-12, atol=1e-15)
    assert np.count_nonzero(expected_book) > 50  # every kind of face was crossed
    assert np.isclose(outside_w, expected_w, rtol=1e-12)


def test_disturbed_bounds_are_the_bounding_boxes_of_the_disturbed_voxels() -> None:
    """`kernels.disturbed_bounds` searches each slab from its edges inwards: against the
    bounding box of all voxels off their basal temperature, slab by slab, on scattered
    disturbances (fixed voxels never count)."""
    rng = np.random.default_rng(11)
    shape = tuple(SHAPE)
    props = material_table(
        [MaterialRow(2.0, 0.5, 1.8e6, 3.6e6, 2.5e8, -8.0, -1.0, 2000.0, 400.0, -40.0)]
    )
    material = np.zeros(shape, np.uint8)
    basal = rng.uniform(30.0, 37.0, shape)
    temperature = basal.copy()
    moved = rng.random(shape) < 0.03
    moved[4] = False  # a slab with nothing disturbed
    temperature[moved] += rng.choice([-1.0, 1.0], moved.sum()) * rng.uniform(0.02, 5.0, moved.sum())
    fixed = np.zeros(shape, np.bool_)
    fixed[6, 0, 0] = True
    temperature[6, 0, 0] = 0.0  # far off, but fixed
    enthalpy = kernels.enthalpy_field(temperature, material, props)
    region = Region.box(np.array([1, 0, 0]), np.array([11, 10, 10]), SHAPE[0])
    out = np.full((SHAPE[0], 4), -7, np.int64)
    kernels.disturbed_bounds(
        enthalpy, material, props, basal, fixed, region.x_lo, region.x_hi, region.bounds, 0.01,
        out,
    )  # fmt: skip
    for i in range(region.x_lo, region.x_hi):
        j, m = np.nonzero(moved[i] & ~fixed[i])
        if j.size:
            assert list(out[i]) == [j.min(), j.max() + 1, m.min(), m.max() + 1], i
        else:
            assert out[i, 1] <= out[i, 0], i
    assert np.all(out[0] == -7)  # outside the region: untouched


def _uniform_mask(material: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Free voxels whose six neighbours exist, are free and share their material."""
    inner = np.zeros(material.shape, bool)
    inner[1:-1, 1:-1, 1:-1] = True
    out = inner & ~fixed
    for axis in range(3):
        for step in (-1, 1):
            out &= ~np.roll(fixed, step, axis) & (np.roll(material, step, axis) == material)
    return out & inner


def test_uniform_voxels_hold_the_length_of_their_run_along_z() -> None:
    """`kernels.uniform_voxels`: the uniform voxels' run lengths along z (0 elsewhere),
    capped at 255, on a grid with a second material, fixed voxels and a 298-voxel row."""
    shape = (6, 5, 300)
    material = np.zeros(shape, np.uint8)
    material[2:4, 1:3, 40:60] = 1
    fixed = np.zeros(shape, np.bool_)
    fixed[3, 3, 100] = True
    runs = kernels.uniform_voxels(material, fixed)
    mask = _uniform_mask(material, fixed)
    expected = np.zeros(shape, np.int64)
    for m in range(shape[2] - 2, -1, -1):
        expected[:, :, m] = np.where(mask[:, :, m], expected[:, :, m + 1] + 1, 0)
    assert runs.dtype == np.uint8
    assert np.array_equal(runs, np.minimum(expected, 255))
    assert runs[1, 3, 1] == 255  # a 298-voxel row, capped
    assert runs[3, 3, 99] == 0  # beside the fixed voxel
