"""Compiled arithmetic on per-slab regions (`backend.Region`'s bounds).

A region's bounds are an int64 (nx, 4) array: slab i holds rows [b[i, 0], b[i, 1]) and
columns [b[i, 2], b[i, 3]); a slab whose rows or columns are empty holds no voxel. The
multirate back end re-draws its regions every step from a handful of these operations; in
NumPy on arrays of ~100 × 4 each one cost 10–30 µs, together ~0.5 s of case M's wall, so
they are compiled. Pure geometry: no physics reaches this module.
"""

from __future__ import annotations

import numpy as np

from cryoplan.thermal import jit
from cryoplan.thermal.jit import entry, inline
from cryoplan.thermal.numba_cache import drop_stale_cache

drop_stale_cache(__file__, jit.__file__)  # compiled with jit.py's options


@inline
def _empty(b: np.ndarray) -> bool:
    return b[1] <= b[0] or b[3] <= b[2]


@entry("(i8[:, ::1],)")
def trimmed(bounds: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(bounds with empty slabs zeroed, the first and one past the last non-empty slab;
    0, 0 if none)."""
    out = bounds.copy()
    x_lo, x_hi = 0, 0
    first = True
    for i in range(out.shape[0]):
        if _empty(out[i]):
            out[i, :] = 0
        else:
            if first:
                x_lo, first = i, False
            x_hi = i + 1
    return out, x_lo, x_hi


@entry("(i8[:, ::1], i8, i8)")
def voxel_count(bounds: np.ndarray, x_lo: int, x_hi: int) -> int:
    """Voxels of the region's slabs [x_lo, x_hi)."""
    n = 0
    for i in range(x_lo, x_hi):
        b = bounds[i]
        n += max(b[1] - b[0], 0) * max(b[3] - b[2], 0)
    return n


@entry("(i8[:, ::1], i8, i8, i8)")
def grown_bounds(bounds: np.ndarray, by: int, ny: int, nz: int) -> np.ndarray:
    """Per-slab bounds [j_lo, j_hi, m_lo, m_hi) grown by `by` voxels along all three axes:
    slab i holds the union of the non-empty slabs i − by … i + by, widened by `by` rows and
    columns and clipped to [0, ny) × [0, nz); slabs with none stay empty (zeros)."""
    nx = bounds.shape[0]
    out = np.zeros_like(bounds)
    for i in range(nx):
        lo_j, hi_j, lo_m, hi_m = ny, -1, nz, -1
        for n in range(max(i - by, 0), min(i + by + 1, nx)):
            b = bounds[n]
            if _empty(b):
                continue
            lo_j, hi_j = min(lo_j, b[0]), max(hi_j, b[1])
            lo_m, hi_m = min(lo_m, b[2]), max(hi_m, b[3])
        if hi_j > lo_j:
            out[i, 0], out[i, 1] = max(lo_j - by, 0), min(hi_j + by, ny)
            out[i, 2], out[i, 3] = max(lo_m - by, 0), min(hi_m + by, nz)
    return out


@entry("(i8[:, ::1], i8[:, ::1])")
def union_bounds(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Slab by slab, the bounds holding both."""
    out = np.zeros_like(a)
    for i in range(a.shape[0]):
        ea, eb = _empty(a[i]), _empty(b[i])
        if ea and eb:
            continue
        if ea or eb:  # copy the other one, element by element (a row copy costs 3 s to compile)
            src = a if eb else b
            for c in range(4):
                out[i, c] = src[i, c]
        else:
            out[i, 0], out[i, 1] = min(a[i, 0], b[i, 0]), max(a[i, 1], b[i, 1])
            out[i, 2], out[i, 3] = min(a[i, 2], b[i, 2]), max(a[i, 3], b[i, 3])
    return out


@entry("(i8[:, ::1], i8, i8)")
def x_interval_bounds(bounds: np.ndarray, x_lo: int, x_hi: int) -> np.ndarray:
    """The smallest bounds holding `bounds` (slabs [x_lo, x_hi)) whose rows along x are
    intervals: slab bounds that widen up to the widest slab and narrow after it (each slab
    takes the union of itself and all slabs further from the widest; the widest, the
    middle one of equally wide slabs so that a region symmetric along x stays symmetric,
    takes all)."""
    out = bounds.copy()
    if x_hi <= x_lo:
        return out
    widest_area = -1
    for i in range(x_lo, x_hi):
        b = bounds[i]
        widest_area = max(widest_area, max(b[1] - b[0], 0) * max(b[3] - b[2], 0))
    n_tied = 0
    for i in range(x_lo, x_hi):
        b = bounds[i]
        n_tied += max(b[1] - b[0], 0) * max(b[3] - b[2], 0) == widest_area
    widest, seen = x_lo, 0  # the middle one of the tied slabs (the lower of two middles)
    for i in range(x_lo, x_hi):
        b = bounds[i]
        if max(b[1] - b[0], 0) * max(b[3] - b[2], 0) == widest_area:
            if seen == (n_tied - 1) // 2:
                widest = i
                break
            seen += 1
    big = np.int64(2**62)
    # running unions from each end towards the widest slab
    for start, stop, step in ((x_lo, widest, 1), (x_hi - 1, widest, -1)):
        lo_j, hi_j, lo_m, hi_m = big, -big, big, -big
        i = start
        while i != stop + step:
            b = bounds[i]
            if not _empty(b):
                lo_j, hi_j = min(lo_j, b[0]), max(hi_j, b[1])
                lo_m, hi_m = min(lo_m, b[2]), max(hi_m, b[3])
            if i != widest:
                out[i, 0], out[i, 1], out[i, 2], out[i, 3] = lo_j, hi_j, lo_m, hi_m
            i += step
    all_j_lo, all_j_hi, all_m_lo, all_m_hi = big, -big, big, -big
    for i in range(x_lo, x_hi):
        b = bounds[i]
        if not _empty(b):
            all_j_lo, all_j_hi = min(all_j_lo, b[0]), max(all_j_hi, b[1])
            all_m_lo, all_m_hi = min(all_m_lo, b[2]), max(all_m_hi, b[3])
    out[widest, 0], out[widest, 1] = all_j_lo, all_j_hi
    out[widest, 2], out[widest, 3] = all_m_lo, all_m_hi
    return out


@entry("(i8[:, ::1], i8, i8, i8, i8)")
def touches_faces(bounds: np.ndarray, x_lo: int, x_hi: int, ny: int, nz: int) -> bool:
    """Does a non-empty region reach a face of the (nx, ny, nz) domain, nx = len(bounds)?"""
    if x_hi <= x_lo:
        return False
    if x_lo == 0 or x_hi == bounds.shape[0]:
        return True
    for i in range(x_lo, x_hi):
        b = bounds[i]
        if _empty(b):
            continue
        if b[0] == 0 or b[1] == ny or b[2] == 0 or b[3] == nz:
            return True
    return False
