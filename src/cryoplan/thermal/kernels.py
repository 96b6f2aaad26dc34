"""Numba kernels of the explicit enthalpy scheme (CPU back end).

One time step of length Δt for every free voxel v (volume V) is

    H_v ← H_v + Δt/V · [ Σ_faces G_f (T_n − T_v)                       conduction
                         + φ_v (1 − d_v) (P_v V (T_a − T_v) + q_m,v V)  perfusion, metabolism
                         − Σ_s w_sv Q_s ]                                probes

where the face flux G_f (T_n − T_v) is A/h·(Φ_n − Φ_v) with the Kirchhoff potential
Φ(T) = ∫k dT between voxels of one material, and uses the harmonic mean of the two
conductivities between different materials (see `advance_enthalpy`); φ is the liquid
fraction, d_v = 1 once the voxel has reached its lethal temperature (perfusion stays off in
destroyed tissue), P = w_b ρ_b c_b and Q_s the probe sample exchange of `ProbeCoupling`. An
outer face held at T_b passes 2A/h·(Φ(T_b) − Φ_v). Fixed voxels keep their prescribed
temperature.

The state is H and Φ only: T is derived where it is needed — from H for a voxel's own
perfusion, records and probes, from Φ for a neighbour across a material boundary (H is being
overwritten during a sweep, Φ is not). A fixed voxel holds H(T) of its prescribed T. Not
storing T saves 8 bytes a voxel and 16 bytes of memory traffic a voxel update.

The sweeping kernels work on a region — a slab range and a box per x-slab (`_in_region`,
`backend.Region`) — minus a hole region: the whole grid for the reference back end, the
fine and active regions of the multirate one. Each kernel also returns the heat [W] it
moved across each kind of boundary, so that the energy ledger can be closed independently
of the update itself.
"""

from __future__ import annotations

import numba
import numpy as np

from cryoplan.thermal import enthalpy, jit, materials
from cryoplan.thermal.enthalpy import (
    conductivity_from_enthalpy,
    conductivity_from_temperature,
    depth_below_solidus_from_enthalpy,
    enthalpy_bound_at_or_below,
    enthalpy_from_temperature,
    frozen_kirchhoff,
    kirchhoff_from_temperature,
    liquid_fraction_from_enthalpy,
    temperature_from_enthalpy,
    temperature_from_kirchhoff,
)
from cryoplan.thermal.jit import (
    entry,
    helper,
    helper_numpy_errors,
    inline,
    voxel_helper,
)
from cryoplan.thermal.materials import (
    C_FROZEN,
    C_FROZEN_SLOPE,
    C_UNFROZEN,
    H_LIQUIDUS,
    K_FROZEN,
    K_FROZEN_SLOPE,
    K_UNFROZEN,
    METABOLIC,
    PERFUSION,
    T_LETHAL,
    T_LIQUIDUS,
    T_SOLIDUS,
)
from cryoplan.thermal.numba_cache import drop_stale_cache

# the kernels inline enthalpy.py's relations and materials.py's column numbers, and are
# compiled with jit.py's options
drop_stale_cache(__file__, enthalpy.__file__, materials.__file__, jit.__file__)


@inline
def _perfusion_constants(props: np.ndarray) -> tuple[float, float, float, float, float]:
    """(H_l, 1/H_l, T_s, ΔT/H_l, 1/C_l) of a material, for `_live_fraction` and
    `_perfused_temperature`: read once before a loop, so that the loop holds no division
    and no load the compiler must repeat after every store."""
    h_l = props[H_LIQUIDUS]
    return (
        h_l, 1.0 / h_l, props[T_SOLIDUS], (props[T_LIQUIDUS] - props[T_SOLIDUS]) / h_l,
        1.0 / props[C_UNFROZEN],
    )  # fmt: skip


@inline
def _live_fraction(enthalpy_j_m3: float, inverse_h_l: float) -> float:
    """The liquid fraction clip(H/H_l, 0, 1) as perfusion and metabolism see it."""
    return min(max(enthalpy_j_m3 * inverse_h_l, 0.0), 1.0)


@inline
def _perfused_temperature(
    enthalpy_j_m3: float, h_l: float, t_s: float, slope_k_m3_j: float, inverse_c_l: float
) -> float:
    """T(H) [°C] of a voxel with H ≥ 0 (not fully frozen: the only voxels perfusion
    reaches), without branches: T_s + min(H, H_l)·ΔT/H_l + max(H − H_l, 0)/C_l. Finite
    for any H, so that a frozen voxel's perfusion can be switched off by a factor 0."""
    sensible = max(enthalpy_j_m3 - h_l, 0.0) * inverse_c_l
    return t_s + min(enthalpy_j_m3, h_l) * slope_k_m3_j + sensible


@inline
def _row_segment(
    segment: int, i: int, j: int, m_lo: int, m_hi: int, hole_x_lo: int, hole_x_hi: int,
    hole: np.ndarray,
) -> tuple[int, int]:  # fmt: skip
    """The m-range of row (i, j) in [m_lo, m_hi) before (segment 0) or after (1) the hole,
    a region (slabs [hole_x_lo, hole_x_hi), per-slab bounds `hole`, see `_in_region`)."""
    in_hole = (
        hole_x_lo <= i < hole_x_hi and hole[i, 0] <= j < hole[i, 1] and hole[i, 2] < hole[i, 3]
    )
    if not in_hole:
        return (m_lo, m_hi) if segment == 0 else (m_hi, m_hi)
    if segment == 0:
        return m_lo, max(m_lo, min(hole[i, 2], m_hi))
    return max(m_lo, min(hole[i, 3], m_hi)), m_hi


@inline
def _in_region(i: int, j: int, m: int, x_lo: int, x_hi: int, region: np.ndarray) -> bool:
    """Is voxel (i, j, m) in the region: slabs [x_lo, x_hi), slab i holding the rows
    [region[i, 0], region[i, 1]) × columns [region[i, 2], region[i, 3])?"""
    return (
        x_lo <= i < x_hi and region[i, 0] <= j < region[i, 1] and region[i, 2] <= m < region[i, 3]
    )


@helper_numpy_errors
def _refresh_run(
    h_row: np.ndarray, phi_row: np.ndarray, t_min_row: np.ndarray, t_row: np.ndarray,
    start: int, stop: int, props: np.ndarray,
) -> None:  # fmt: skip
    """T(H), Φ(T) and T_min on a run [start, stop) of one row of one material, T kept in
    the scratch row t_row[0 : stop − start]. The arithmetic of `temperature_from_enthalpy`
    (one division, its operands chosen by the part of the curve) and of
    `kirchhoff_from_temperature` (the mushy part's 1/(2ΔT) taken before the loop, 0 on a
    sharp front), written with selects instead of branches and on rows sliced to the run,
    so that the compiler vectorises it (see `_advance_uniform_run`)."""
    t_s = props[T_SOLIDUS]
    t_l = props[T_LIQUIDUS]
    h_l = props[H_LIQUIDUS]
    c_s = props[C_FROZEN]
    c_l = props[C_UNFROZEN]
    k_s = props[K_FROZEN]
    k_l = props[K_UNFROZEN]
    span = t_l - t_s
    phi_l = 0.5 * (k_s + k_l) * span
    curvature = (k_l - k_s) * (0.5 / span) if span > 0.0 else 0.0
    h = h_row[start:stop]
    phi = phi_row[start:stop]
    t_min = t_min_row[start:stop]
    n_frozen = 0
    for k in range(stop - start):
        h_v = h[k]
        frozen = h_v <= 0.0
        n_frozen += frozen
        unfrozen = h_v >= h_l
        numerator = h_v - h_l if unfrozen else h_v
        denominator = c_s if frozen else (c_l if unfrozen else h_l)
        q = numerator / denominator
        d_mushy = q * span
        t = t_s + q if frozen else (t_l + q if unfrozen else t_s + d_mushy)
        d = t - t_s
        mushy_phi = k_s * d + curvature * d * d
        phi[k] = k_s * d if frozen else (phi_l + k_l * (t - t_l) if unfrozen else mushy_phi)
        t_min[k] = min(t_min[k], np.float32(t))
        t_row[k] = t
    if n_frozen and (props[K_FROZEN_SLOPE] > 0.0 or props[C_FROZEN_SLOPE] > 0.0):
        # frozen voxels of a material whose frozen k and C follow T: the loop above took
        # them as constant (T_s + H/C_s, k_s (T − T_s)); redo them on their own, so that the
        # common case keeps its vectorised loop. The true T is at or below that estimate
        # (C(T) ≤ C_s), so T_min only needs the new value.
        for k in range(stop - start):
            if h[k] <= 0.0:
                depth_k = depth_below_solidus_from_enthalpy(h[k], props)
                t = t_s - depth_k
                phi[k] = frozen_kirchhoff(depth_k, props)
                t_min[k] = min(t_min[k], np.float32(t))
                t_row[k] = t


@helper
def _record_run(
    t_row: np.ndarray, props: np.ndarray, fixed_row: np.ndarray, destroyed_row: np.ndarray,
    frozen_row: np.ndarray, cycles_row: np.ndarray, start: int, stop: int,
) -> tuple[int, int]:  # fmt: skip
    """The records of a run [start, stop) of one row of one material at temperatures
    t_row[0 : stop − start] (see `refresh_from_enthalpy`): destroyed once at or below
    T_lethal; frozen below T_s, counting a cycle, until above T_l. Written with selects
    instead of nested branches (the fine region's refresh with records, case M at 500 s:
    156 -> 115 µs). Returns the first and last column of the run's free voxels below T_l
    (last < first if none)."""
    t_l, t_s, t_lethal = props[T_LIQUIDUS], props[T_SOLIDUS], props[T_LETHAL]
    fixed = fixed_row[start:stop]
    destroyed = destroyed_row[start:stop]
    frozen = frozen_row[start:stop]
    cycles = cycles_row[start:stop]
    first, last = stop, start - 1
    for k in range(stop - start):
        t = t_row[k]
        was_frozen = frozen[k]
        freezes = (not was_frozen) and t < t_s
        frozen[k] = (was_frozen and not t > t_l) or freezes
        destroyed[k] = destroyed[k] or t <= t_lethal
        cycles[k] += np.uint8(freezes and cycles[k] < 255)
        cold = t < t_l and not fixed[k]
        first = min(first, start + k if cold else stop)
        last = max(last, start + k if cold else start - 1)
    return first, last


@helper
def _any_to_record(
    t_row: np.ndarray, frozen_row: np.ndarray, start: int, stop: int, threshold_c: float
) -> bool:
    """Might a run [start, stop) of one material, at temperatures t_row[0 : stop − start],
    change a record? Not if no voxel is flagged frozen and all are above threshold_c =
    max(T_l, T_lethal): then none is cold, none reaches T_lethal, none freezes or thaws.
    Two counts over the run; most runs of a coarse step need no more."""
    n_cold = 0
    n_frozen = 0
    flags = frozen_row[start:stop]
    for k in range(stop - start):
        n_cold += t_row[k] <= threshold_c
        n_frozen += flags[k]
    return n_cold + n_frozen > 0


@helper_numpy_errors
def _refresh_slab(
    i: int, enthalpy: np.ndarray, kirchhoff: np.ndarray, material: np.ndarray,
    fixed: np.ndarray, properties: np.ndarray, minimum_temperature: np.ndarray,
    destroyed: np.ndarray, frozen: np.ndarray, freeze_cycles: np.ndarray, region: np.ndarray,
    hole_x_lo: int, hole_x_hi: int, hole: np.ndarray, cold_bounds: np.ndarray, record: bool,
    t_row: np.ndarray,
) -> None:  # fmt: skip
    """Φ(T(H)) and T_min of every voxel (a fixed one holds H of its prescribed T); if
    `record`, also the destroyed and frozen flags, cycles and cold_bounds.

    Works on slab i of a region (slabs [x_lo, x_hi), slab i's rows and columns in
    region[i], see `_in_region`) outside the region `hole` (slabs [hole_x_lo, hole_x_hi)).
    Widens cold_bounds[i] = [j_lo, j_hi, m_lo, m_hi) of each slab to hold the free voxels it
    saw below their liquidus (empty bounds, hi ≤ lo, hold none).

    A freeze–thaw cycle is counted when a voxel becomes fully frozen (T < T_s) after having
    been unfrozen; it counts as unfrozen again once T > T_l. The gap between the two
    thresholds keeps a voxel on the freezing range from counting twice.

    Compiled with numba's NumPy error model (no check for a division by zero, which would
    keep `_refresh_run` from being vectorised; its divisors are capacities and H_l > 0).
    """
    ny, nz = enthalpy.shape[1], enthalpy.shape[2]
    c_lo1, c_lo2, c_hi1, c_hi2 = ny, nz, -1, -1
    for j in range(region[i, 0], region[i, 1]):
        for segment in range(2):
            m_start, m_end = _row_segment(
                segment, i, j, region[i, 2], region[i, 3], hole_x_lo, hole_x_hi, hole
            )
            m = m_start
            while m < m_end:  # runs of one material
                mat = material[i, j, m]
                stop = m + 1
                while stop < m_end and material[i, j, stop] == mat:
                    stop += 1
                props = properties[mat]
                _refresh_run(
                    enthalpy[i, j], kirchhoff[i, j], minimum_temperature[i, j], t_row, m,
                    stop, props,
                )  # fmt: skip
                if record and _any_to_record(
                    t_row, frozen[i, j], m, stop,
                    max(props[T_LIQUIDUS], props[T_LETHAL]),
                ):  # fmt: skip
                    first, last = _record_run(
                        t_row, props, fixed[i, j], destroyed[i, j], frozen[i, j],
                        freeze_cycles[i, j], m, stop,
                    )  # fmt: skip
                    if last >= first:
                        c_lo1, c_hi1 = min(c_lo1, j), max(c_hi1, j)
                        c_lo2, c_hi2 = min(c_lo2, first), max(c_hi2, last)
                m = stop
    if c_hi1 >= 0:  # this slab had cold voxels
        if cold_bounds[i, 1] <= cold_bounds[i, 0]:
            cold_bounds[i, 0], cold_bounds[i, 1] = c_lo1, c_hi1 + 1
            cold_bounds[i, 2], cold_bounds[i, 3] = c_lo2, c_hi2 + 1
        else:
            cold_bounds[i, 0] = min(cold_bounds[i, 0], c_lo1)
            cold_bounds[i, 1] = max(cold_bounds[i, 1], c_hi1 + 1)
            cold_bounds[i, 2] = min(cold_bounds[i, 2], c_lo2)
            cold_bounds[i, 3] = max(cold_bounds[i, 3], c_hi2 + 1)


@voxel_helper
def _disturbed(
    enthalpy: np.ndarray, material: np.ndarray, properties: np.ndarray,
    basal_temperature: np.ndarray, fixed: np.ndarray, i: int, j: int, m: int,
    tolerance_k: float,
) -> bool:  # fmt: skip
    """Is free voxel (i, j, m) more than tolerance_k from its basal temperature?
    |T(H) − T_b| > tolerance is tested on H (T(H) is non-decreasing): no division. A basal
    state lies above the liquidus (thermal.steady), where H is linear in T:
    H_b = H_l + C_l (T_b − T_l), and the test is |H − H_b| > C_l·tolerance."""
    if fixed[i, j, m]:
        return False
    props = properties[material[i, j, m]]
    h = enthalpy[i, j, m]
    t_b = basal_temperature[i, j, m]
    t_l = props[T_LIQUIDUS]
    if t_b - tolerance_k >= t_l:
        c_l = props[C_UNFROZEN]
        return abs(h - (props[H_LIQUIDUS] + c_l * (t_b - t_l))) > c_l * tolerance_k
    low = enthalpy_from_temperature(t_b - tolerance_k, props)
    high = enthalpy_bound_at_or_below(t_b + tolerance_k, props)
    return h < low or h > high


@helper
def _disturbed_slab(
    i: int, enthalpy: np.ndarray, material: np.ndarray, properties: np.ndarray,
    basal_temperature: np.ndarray, fixed: np.ndarray, region: np.ndarray,
    tolerance_k: float, disturbed: np.ndarray,
) -> None:  # fmt: skip
    """`disturbed_bounds` on slab i."""
    h, mat, basal = enthalpy, material, basal_temperature
    j0, j1, m0, m1 = region[i, 0], region[i, 1], region[i, 2], region[i, 3]
    first_row, first_col, last_col = -1, m1, m0 - 1
    for j in range(j0, j1):
        for m in range(m0, m1):
            if _disturbed(h, mat, properties, basal, fixed, i, j, m, tolerance_k):
                first_row, first_col, last_col = j, m, m
                break
        if first_row >= 0:
            break
    if first_row < 0:
        disturbed[i, 0], disturbed[i, 1], disturbed[i, 2], disturbed[i, 3] = 0, 0, 0, 0
        return
    last_row = first_row
    for j in range(j1 - 1, first_row, -1):
        for m in range(m0, m1):
            if _disturbed(h, mat, properties, basal, fixed, i, j, m, tolerance_k):
                last_row = j
                break
        if last_row > first_row:
            break
    for j in range(first_row, last_row + 1):
        for m in range(m0, first_col):  # left of the columns found so far
            if _disturbed(h, mat, properties, basal, fixed, i, j, m, tolerance_k):
                first_col = m
                break
        for m in range(m1 - 1, last_col, -1):  # right of them
            if _disturbed(h, mat, properties, basal, fixed, i, j, m, tolerance_k):
                last_col = m
                break
    disturbed[i, 0], disturbed[i, 1] = first_row, last_row + 1
    disturbed[i, 2], disturbed[i, 3] = first_col, last_col + 1


@entry(
    "(f8[:, :, ::1], u1[:, :, ::1], f8[:, ::1], f8[:, :, ::1], b1[:, :, ::1], i8, i8, "
    "i8[:, ::1], f8, i8[:, ::1])",
    parallel=True,
    cost_s=1.7,
)
def disturbed_bounds(
    enthalpy: np.ndarray,
    material: np.ndarray,
    properties: np.ndarray,
    basal_temperature: np.ndarray,
    fixed: np.ndarray,
    x_lo: int,
    x_hi: int,
    region: np.ndarray,
    tolerance_k: float,
    disturbed: np.ndarray,
) -> None:
    """disturbed[i] = the bounds [j_lo, j_hi, m_lo, m_hi) of the free voxels of slab i of the
    region (see `_in_region`) whose T(H) differs from basal_temperature by more than
    tolerance_k (`_disturbed`; empty bounds, hi ≤ lo, where there are none).

    Only the bounds are wanted, so each slab is searched from its edges inwards: the first
    and last rows holding a disturbed voxel, then in each row between them only the columns
    outside the bounds found so far. The disturbed tissue fills the region but for its
    margin, so most of its voxels are never looked at."""
    for i in numba.prange(x_lo, x_hi):
        _disturbed_slab(
            i, enthalpy, material, properties, basal_temperature, fixed, region, tolerance_k,
            disturbed,
        )  # fmt: skip


@inline
def _temperature_and_conductivity(kirchhoff_w_m: float, props: np.ndarray) -> tuple[float, float]:
    """(T [°C], k [W/(m·K)]) of a voxel from its Kirchhoff potential Φ."""
    t = temperature_from_kirchhoff(kirchhoff_w_m, props)
    return t, conductivity_from_temperature(t, props)


@voxel_helper
def _flux_from_neighbour(
    n_mat: int,
    n_kirchhoff: float,
    properties: np.ndarray,
    mat: int,
    phi_v: float,
    factor: float,
) -> float:
    """Heat rate [W] from a neighbour into voxel v across one face (A/h = factor).

    Across materials both sides take T and k from Φ, never from H: H is being overwritten
    during the sweep, and a face must see the same T and k from both of its sides or the
    flux stops being antisymmetric and energy leaks (found by the ledger on a CT case).
    """
    if n_mat == mat:
        return factor * (n_kirchhoff - phi_v)
    t_v, k_v = _temperature_and_conductivity(phi_v, properties[mat])
    t_n, k_n = _temperature_and_conductivity(n_kirchhoff, properties[n_mat])
    return factor * 2.0 * k_v * k_n / (k_v + k_n) * (t_n - t_v)


@inline
def _flux_from_boundary(
    kind: int, temperature_c: float, props: np.ndarray, phi_v: float, factor: float
) -> float:
    """Heat rate [W] through an outer face held at temperature_c (0 if insulated)."""
    if kind != 1:
        return 0.0
    return 2.0 * factor * (kirchhoff_from_temperature(temperature_c, props) - phi_v)


@entry("(u1[:, :, ::1], b1[:, :, ::1])")
def uniform_voxels(material: np.ndarray, fixed: np.ndarray) -> np.ndarray:
    """Per voxel, the length of the run of *uniform* voxels that starts there along z (0 if
    it is not uniform; capped at 255, uint8). A voxel is uniform where it is free and its six
    neighbours exist, are free and share its material: there every face flux is
    A/h · (Φ_n − Φ_v) and `advance_enthalpy` takes its short path, a run at a time (the
    length saves it a scan per row). Static over a run (materials and the fixed mask do not
    change)."""
    nx, ny, nz = material.shape
    out = np.zeros(material.shape, np.uint8)
    for i in range(1, nx - 1):
        for j in range(1, ny - 1):
            for m in range(nz - 2, 0, -1):
                mat = material[i, j, m]
                uniform = not (
                    fixed[i, j, m] or fixed[i - 1, j, m] or fixed[i + 1, j, m]
                    or fixed[i, j - 1, m] or fixed[i, j + 1, m]
                    or fixed[i, j, m - 1] or fixed[i, j, m + 1]
                    or material[i - 1, j, m] != mat or material[i + 1, j, m] != mat
                    or material[i, j - 1, m] != mat or material[i, j + 1, m] != mat
                    or material[i, j, m - 1] != mat or material[i, j, m + 1] != mat
                )  # fmt: skip
                if uniform:
                    out[i, j, m] = min(np.int64(out[i, j, m + 1]) + 1, 255)
    return out


@inline
def _book_outside_flux(
    n_i: int, n_j: int, n_m: int, x_lo: int, x_hi: int, region: np.ndarray, face: int,
    a: int, b: int, f: float, face_heat_j: np.ndarray, face_weight_s: float,
) -> float:  # fmt: skip
    """Book flux f [W] from the free neighbour (n_i, n_j, n_m): if it lies outside the
    region, add face_weight_s·f to face_heat_j[face, a, b] (when the weight is not 0) and
    return f, else return 0."""
    if _in_region(n_i, n_j, n_m, x_lo, x_hi, region):
        return 0.0
    if face_weight_s != 0.0:
        face_heat_j[face, a, b] += face_weight_s * f
    return f


@helper
def _book_uniform_range(
    phi_n: np.ndarray, phi_v: np.ndarray, uniform_row: np.ndarray, lo: int, hi: int,
    factor: float, book: np.ndarray, face_weight_s: float,
) -> float:  # fmt: skip
    """Σ factor·(Φ_n − Φ_v) [W] over the uniform voxels m in [lo, hi) of a row, phi_n being
    the row of their neighbours across one face; face_weight_s × each added to book[m] if
    the weight is not 0."""
    total = 0.0
    for m in range(lo, hi):
        if uniform_row[m] != 0:
            f = factor * (phi_n[m] - phi_v[m])
            total += f
            if face_weight_s != 0.0:
                book[m] += face_weight_s * f
    return total


@helper
def _book_uniform_faces(
    i: int, j: int, m_start: int, m_end: int, kirchhoff: np.ndarray, uniform: np.ndarray,
    fx: float, fy: float, fz: float, x_lo: int, x_hi: int, region: np.ndarray,
    face_heat_j: np.ndarray, face_weight_s: float,
) -> float:  # fmt: skip
    """`_book_outside_flux` for the uniform voxels of row (i, j), columns [m_start, m_end):
    the flux [W] across each of their faces to a neighbour outside the region (slabs
    [x_lo, x_hi), per-slab bounds `region`, see `_in_region`), booked as in
    `advance_enthalpy`, and the sum returned. The region being a box per slab, the voxels
    whose x-neighbour is outside form at most two ranges of the row (all of it if the
    neighbour slab lacks the row), those whose y-neighbour is outside all or none of it, and
    only the row's end voxels have a z-neighbour outside."""
    nx, ny = kirchhoff.shape[0], kirchhoff.shape[1]
    if i == 0 or i == nx - 1 or j == 0 or j == ny - 1:
        return 0.0  # no uniform voxel lies on the domain's faces
    phi = kirchhoff[i, j]
    u = uniform[i, j]
    m_lo, m_hi = region[i, 2], region[i, 3]
    total = 0.0
    for side in range(2):
        n = i - 1 if side == 0 else i + 1
        # the columns whose x-neighbour is outside: [lo1, hi1) and [lo2, hi2), most often
        # both empty (only the calls with a range to book cost anything)
        lo1, hi1, lo2, hi2 = m_start, m_end, m_end, m_end  # the neighbour slab lacks the row
        if x_lo <= n < x_hi:
            b = region[n]
            if b[0] <= j < b[1] and b[2] < b[3]:
                lo1, hi1 = m_start, min(m_end, b[2])
                lo2, hi2 = max(m_start, b[3]), m_end
        if hi1 > lo1:
            total += _book_uniform_range(
                kirchhoff[n, j], phi, u, lo1, hi1, fx, face_heat_j[side, j], face_weight_s
            )
        if hi2 > lo2:
            total += _book_uniform_range(
                kirchhoff[n, j], phi, u, lo2, hi2, fx, face_heat_j[side, j], face_weight_s
            )
    for side in range(2):
        n = j - 1 if side == 0 else j + 1
        if not (region[i, 0] <= n < region[i, 1]):
            total += _book_uniform_range(
                kirchhoff[i, n], phi, u, m_start, m_end, fy, face_heat_j[2 + side, i],
                face_weight_s,
            )  # fmt: skip
    for side in range(2):
        m = m_lo if side == 0 else m_hi - 1
        n = m - 1 if side == 0 else m + 1
        if m_start <= m < m_end and u[m] != 0:
            f = fz * (phi[n] - phi[m])
            total += f
            if face_weight_s != 0.0:
                face_heat_j[4 + side, i, j] += face_weight_s * f
    return total


@helper
def _advance_uniform_run(
    h_row: np.ndarray, phi_row: np.ndarray, phi_xm: np.ndarray,
    phi_xp: np.ndarray, phi_ym: np.ndarray, phi_yp: np.ndarray, destroyed_row: np.ndarray,
    start: int, stop: int, props: np.ndarray, fx: float, fy: float, fz: float,
    volume: float, dt_s: float, blood_temperature_c: float, perf_row: np.ndarray,
    live_row: np.ndarray,
) -> tuple[float, float]:  # fmt: skip
    """`advance_enthalpy` on a run [start, stop) of one row of uniform voxels (one material,
    all faces Kirchhoff faces to free voxels): the same sum in the same order, with the
    perfusion switch as arithmetic. Returns (perf, met) W.

    Written so that the compiler vectorises it: the rows are sliced to the run and indexed
    from 0 (an index that may be negative makes numba check for wrap-around, a branch), and
    the perfusion heat and live fractions go to the scratch rows perf_row, live_row and are
    summed after the loop (`_sum`; a running sum would chain each voxel to the one before).
    """
    h_l, inverse_h_l, t_s, slope, inverse_c_l = _perfusion_constants(props)
    perfusion = props[PERFUSION] * volume
    metabolic = props[METABOLIC] * volume
    dt_per_volume = dt_s / volume
    h = h_row[start:stop]
    phi = phi_row[start:stop]
    phi_zm = phi_row[start - 1 : stop - 1]
    phi_zp = phi_row[start + 1 : stop + 1]
    xm, xp = phi_xm[start:stop], phi_xp[start:stop]
    ym, yp = phi_ym[start:stop], phi_yp[start:stop]
    dead = destroyed_row[start:stop]
    perf = perf_row[: stop - start]
    alive = live_row[: stop - start]
    for k in range(stop - start):
        phi_v = phi[k]
        q_cond = fx * (xm[k] - phi_v)
        q_cond += fy * (ym[k] - phi_v)
        q_cond += fz * (phi_zm[k] - phi_v)
        q_cond += fx * (xp[k] - phi_v)
        q_cond += fy * (yp[k] - phi_v)
        q_cond += fz * (phi_zp[k] - phi_v)
        h_v = h[k]
        # liquid fraction clip(H/H_l, 0, 1), 0 once destroyed: perfusion and metabolism off
        live = _live_fraction(h_v, inverse_h_l) * (1.0 - dead[k])
        t_v = _perfused_temperature(h_v, h_l, t_s, slope, inverse_c_l)
        q_perf = live * perfusion * (blood_temperature_c - t_v)
        h[k] = h_v + dt_per_volume * (q_cond + q_perf + live * metabolic)
        perf[k] = q_perf
        alive[k] = live
    return _sum(perf), metabolic * _sum(alive)


@helper
def _sum(values: np.ndarray) -> float:
    """Σ values in four interleaved partial sums (the additions overlap instead of waiting
    for each other; the ledger's sums need no particular order)."""
    s0 = s1 = s2 = s3 = 0.0
    n = values.size
    k = 0
    while k + 4 <= n:
        s0 += values[k]
        s1 += values[k + 1]
        s2 += values[k + 2]
        s3 += values[k + 3]
        k += 4
    while k < n:
        s0 += values[k]
        k += 1
    return (s0 + s1) + (s2 + s3)


@helper
def _column_sums5(
    partial: np.ndarray, lo: int, hi: int
) -> tuple[float, float, float, float, float]:
    """Σ over rows [lo, hi) of the five columns of partial, in row order (deterministic)."""
    s0 = s1 = s2 = s3 = s4 = 0.0
    for i in range(lo, hi):
        s0 += partial[i, 0]
        s1 += partial[i, 1]
        s2 += partial[i, 2]
        s3 += partial[i, 3]
        s4 += partial[i, 4]
    return s0, s1, s2, s3, s4


@helper
def _advance_slab(
    i: int, enthalpy: np.ndarray, kirchhoff: np.ndarray, material: np.ndarray,
    fixed: np.ndarray, uniform: np.ndarray, destroyed: np.ndarray, properties: np.ndarray,
    spacing_m: np.ndarray, boundary_kind: np.ndarray, boundary_temperature_c: np.ndarray,
    blood_temperature_c: float, dt_s: float, x_lo: int, x_hi: int, region: np.ndarray,
    hole_x_lo: int, hole_x_hi: int, hole: np.ndarray, face_heat_j: np.ndarray,
    face_weight_s: float, partial: np.ndarray, perf_row: np.ndarray, live_row: np.ndarray,
) -> None:  # fmt: skip
    """One explicit step of conduction, perfusion and metabolism for the free voxels of the
    region (slabs [x_lo, x_hi), slab i's rows and columns in region[i], see `_in_region`)
    outside the region `hole` (slabs [hole_x_lo, hole_x_hi)).

    Face flux [W] into voxel v from neighbour n across area A at distance h:
      same material:       A/h · (Φ_n − Φ_v)                     (Kirchhoff, exact for k(T))
      different materials: A/h · 2 k_v k_n/(k_v + k_n) · (T_n − T_v) (series resistances,
                           T and k from Φ)
      outer face held at T_b: 2A/h · (Φ_v(T_b) − Φ_v)               (half a voxel away)

    Neighbours outside the region are read as they are. The flux F from each free neighbour
    outside the region is summed (the multirate back end's far-field heat), and, if
    face_weight_s is not 0, face_weight_s·F is added to face_heat_j[face, a, b], indexed as
    in `add_interface_heat` (the multirate back end's book of its fine region's faces; a
    region whose rows along x are intervals has one face per entry, written by one slab).

    Voxels marked `uniform` (see `uniform_voxels`) take a short path with the same arithmetic
    in the same order: a row of tissue has no branch but the perfusion switch. Their faces to
    neighbours outside the region are booked apart, per row (`_book_uniform_faces`), so that
    a region's edge voxels take the short path too (12 % of the multirate fine region's
    voxels).

    Slab i of the region (`sweep` runs the slabs in parallel). Writes to partial[i, 0:5] the
    heat rates [W] into the updated voxels from perfusion, metabolism, the outer
    boundary, the fixed voxels and the free voxels outside the region, each evaluated on the
    temperatures the step used.
    """
    nx, ny, nz = enthalpy.shape
    dx, dy, dz = spacing_m[0], spacing_m[1], spacing_m[2]
    volume = dx * dy * dz
    dt_per_volume = dt_s / volume
    fx, fy, fz = dy * dz / dx, dx * dz / dy, dx * dy / dz  # A/h per axis
    bk = boundary_kind
    bt = boundary_temperature_c
    slab_perf = slab_met = slab_bnd = slab_fixed = slab_out = 0.0
    j_lo, j_hi, m_lo, m_hi = region[i, 0], region[i, 1], region[i, 2], region[i, 3]
    for j in range(j_lo, j_hi):
        for segment in range(2):
            m_start, m_end = _row_segment(segment, i, j, m_lo, m_hi, hole_x_lo, hole_x_hi, hole)
            if m_end <= m_start:
                continue
            # the uniform voxels' faces to neighbours outside the region, booked apart
            # so that the voxels themselves take the short path
            slab_out += _book_uniform_faces(
                i, j, m_start, m_end, kirchhoff, uniform, fx, fy, fz, x_lo, x_hi, region,
                face_heat_j, face_weight_s,
            )  # fmt: skip
            m = m_start
            while m < m_end:
                if uniform[i, j, m]:
                    stop = min(m + np.int64(uniform[i, j, m]), m_end)
                    perf, met = _advance_uniform_run(
                        enthalpy[i, j], kirchhoff[i, j],
                        kirchhoff[i - 1, j], kirchhoff[i + 1, j], kirchhoff[i, j - 1],
                        kirchhoff[i, j + 1], destroyed[i, j], m, stop,
                        properties[material[i, j, m]], fx, fy, fz, volume, dt_s,
                        blood_temperature_c, perf_row, live_row,
                    )  # fmt: skip
                    slab_perf += perf
                    slab_met += met
                    m = stop
                    continue
                if fixed[i, j, m]:
                    m += 1
                    continue
                mat = material[i, j, m]
                props = properties[mat]
                h_v = enthalpy[i, j, m]
                phi_v = kirchhoff[i, j, m]
                q_cond = 0.0  # from free neighbours
                q_fixed = 0.0  # from fixed neighbours
                q_bnd = 0.0  # through the outer boundary
                # The three axes are written out rather than looped over: a loop over
                # six face offsets measured 83 against 105 M voxel-updates/s.
                for d in (-1, 1):
                    side = 0 if d < 0 else 1
                    n = i + d
                    if 0 <= n < nx:
                        f = _flux_from_neighbour(
                            material[n, j, m], kirchhoff[n, j, m],
                            properties, mat, phi_v, fx,
                        )  # fmt: skip
                        if fixed[n, j, m]:
                            q_fixed += f
                        else:
                            q_cond += f
                            slab_out += _book_outside_flux(
                                n, j, m, x_lo, x_hi, region, side, j, m, f,
                                face_heat_j, face_weight_s,
                            )  # fmt: skip
                    else:
                        q_bnd += _flux_from_boundary(bk[side], bt[side], props, phi_v, fx)
                    n = j + d
                    if 0 <= n < ny:
                        f = _flux_from_neighbour(
                            material[i, n, m], kirchhoff[i, n, m],
                            properties, mat, phi_v, fy,
                        )  # fmt: skip
                        if fixed[i, n, m]:
                            q_fixed += f
                        else:
                            q_cond += f
                            slab_out += _book_outside_flux(
                                i, n, m, x_lo, x_hi, region, 2 + side, i, m, f,
                                face_heat_j, face_weight_s,
                            )  # fmt: skip
                    else:
                        q_bnd += _flux_from_boundary(bk[2 + side], bt[2 + side], props, phi_v, fy)
                    n = m + d
                    if 0 <= n < nz:
                        f = _flux_from_neighbour(
                            material[i, j, n], kirchhoff[i, j, n],
                            properties, mat, phi_v, fz,
                        )  # fmt: skip
                        if fixed[i, j, n]:
                            q_fixed += f
                        else:
                            q_cond += f
                            slab_out += _book_outside_flux(
                                i, j, n, x_lo, x_hi, region, 4 + side, i, j, f,
                                face_heat_j, face_weight_s,
                            )  # fmt: skip
                    else:
                        q_bnd += _flux_from_boundary(bk[4 + side], bt[4 + side], props, phi_v, fz)

                q_perf = 0.0
                q_met = 0.0
                if not destroyed[i, j, m]:
                    h_l, inverse_h_l, t_s, slope, inverse_c_l = _perfusion_constants(props)
                    phi = _live_fraction(h_v, inverse_h_l)
                    if phi > 0.0:
                        t_v = _perfused_temperature(h_v, h_l, t_s, slope, inverse_c_l)
                        q_perf = phi * props[PERFUSION] * volume * (blood_temperature_c - t_v)
                        q_met = phi * props[METABOLIC] * volume
                enthalpy[i, j, m] = h_v + dt_per_volume * (
                    q_cond + q_fixed + q_bnd + q_perf + q_met
                )
                slab_perf += q_perf
                slab_met += q_met
                slab_bnd += q_bnd
                slab_fixed += q_fixed
                m += 1
    partial[i, 0], partial[i, 1] = slab_perf, slab_met
    partial[i, 2], partial[i, 3] = slab_bnd, slab_fixed
    partial[i, 4] = slab_out


@entry("(f8[:, :, ::1], i8, i8, i8[:, ::1], f8[:, :, ::1], f8)", cost_s=1.0)
def add_interface_heat(
    enthalpy: np.ndarray,
    x_lo: int,
    x_hi: int,
    region: np.ndarray,
    heat_j: np.ndarray,
    voxel_volume_m3: float,
) -> None:
    """Add heat_j[face, a, b] [J] to the voxel just outside each face of the region (slabs
    [x_lo, x_hi), per-slab bounds, see `_in_region`), whose rows along x are intervals.
    Faces: 0/1 = x−/x+ at (j, m), 2/3 = y−/y+ at (i, m), 4/5 = z−/z+ at (i, j)."""
    nx, ny, nz = enthalpy.shape
    for i in range(x_lo, x_hi):
        j_lo, j_hi, m_lo, m_hi = region[i, 0], region[i, 1], region[i, 2], region[i, 3]
        if j_hi <= j_lo or m_hi <= m_lo:
            continue
        # x faces: the columns of slab i's rows that the slab before (after) does not hold
        for side in range(2):
            n = i - 1 if side == 0 else i + 1
            if n < 0 or n >= nx:
                continue
            for j in range(j_lo, j_hi):
                a1, b1, a2, b2 = m_lo, m_hi, m_hi, m_hi  # row j of slab n outside the region
                if _in_region(n, j, region[n, 2], x_lo, x_hi, region):
                    b1 = max(m_lo, min(region[n, 2], m_hi))
                    a2 = max(m_lo, min(region[n, 3], m_hi))
                for m in range(a1, b1):
                    enthalpy[n, j, m] += heat_j[side, j, m] / voxel_volume_m3
                for m in range(a2, b2):
                    enthalpy[n, j, m] += heat_j[side, j, m] / voxel_volume_m3
        for m in range(m_lo, m_hi):
            if j_lo > 0:
                enthalpy[i, j_lo - 1, m] += heat_j[2, i, m] / voxel_volume_m3
            if j_hi < ny:
                enthalpy[i, j_hi, m] += heat_j[3, i, m] / voxel_volume_m3
        for j in range(j_lo, j_hi):
            if m_lo > 0:
                enthalpy[i, j, m_lo - 1] += heat_j[4, i, j] / voxel_volume_m3
            if m_hi < nz:
                enthalpy[i, j, m_hi] += heat_j[5, i, j] / voxel_volume_m3


@helper
def probe_exchange(
    enthalpy_flat: np.ndarray,
    material_flat: np.ndarray,
    properties: np.ndarray,
    sample_start: np.ndarray,
    weight: np.ndarray,
    shape_factor_m: np.ndarray,
    wall_area_m2: np.ndarray,
    drive_temperature_c: np.ndarray,
    film_coefficient_w_m2k: np.ndarray,
    active: np.ndarray,
    probe_voxels: np.ndarray,
    entry_voxel: np.ndarray,
    voxel_scratch: np.ndarray,
    heat_out_w: np.ndarray,
) -> None:
    """Q_s = G_s (T_s − T_probe) [W, heat leaving the tissue] for every sample s, with
    T_s = Σ_e w_e T_v(e) and k_s = Σ_e w_e k_v(e) over its kernel's entries e.

    G_s is the tissue's well-index conductance k_s·shape_factor_s, in series with the film
    conductance h·wall_area_s when the sample is gas-cooled (finite h).

    T and k are taken once per probe voxel (probe_voxels, flat indices; entry e lies on
    voxel probe_voxels[entry_voxel[e]]) into voxel_scratch (2 × n voxels): a voxel lies in
    about ten samples' kernels (case M: 26,928 entries on 2,856 voxels).

    One thread: 70 µs a substep on case M, against 33 µs for two threads whose two parallel
    loops cost two wake-ups each (~0.1 ms each on a virtual machine, see `threads`).
    """
    for u in range(probe_voxels.size):
        v = probe_voxels[u]
        props = properties[material_flat[v]]
        voxel_scratch[0, u] = temperature_from_enthalpy(enthalpy_flat[v], props)
        # probe kernels never include fixed voxels (see probes.coupling)
        voxel_scratch[1, u] = conductivity_from_enthalpy(enthalpy_flat[v], props)
    for s in range(shape_factor_m.size):
        if not active[s]:
            heat_out_w[s] = 0.0
            continue
        t_s = 0.0
        k_s = 0.0
        for e in range(sample_start[s], sample_start[s + 1]):
            t_s += weight[e] * voxel_scratch[0, entry_voxel[e]]
            k_s += weight[e] * voxel_scratch[1, entry_voxel[e]]
        g = k_s * shape_factor_m[s]
        h = film_coefficient_w_m2k[s]
        if h < np.inf:
            g_film = h * wall_area_m2[s]
            g = g * g_film / (g + g_film)
        heat_out_w[s] = g * (t_s - drive_temperature_c[s])


@helper
def spread_probe_heat(
    enthalpy_flat: np.ndarray,
    heat_out_w: np.ndarray,
    probe_voxels: np.ndarray,
    voxel_entry_start: np.ndarray,
    voxel_entry_sample: np.ndarray,
    voxel_entry_weight: np.ndarray,
    dt_s: float,
    voxel_volume_m3: float,
) -> float:
    """Take each sample's heat from its voxels with its kernel weights: probe voxel u loses
    dt_s/V · Σ_r w_r Q_s(r) over its kernel entries r in [voxel_entry_start[u],
    voxel_entry_start[u + 1]) of voxel_entry_sample and voxel_entry_weight (the entries
    sorted by voxel). Returns Σ −Q_s [W]."""
    for u in range(probe_voxels.size):
        q = 0.0
        for r in range(voxel_entry_start[u], voxel_entry_start[u + 1]):
            q += voxel_entry_weight[r] * heat_out_w[voxel_entry_sample[r]]
        enthalpy_flat[probe_voxels[u]] -= dt_s / voxel_volume_m3 * q
    total_in_w = 0.0
    for s in range(heat_out_w.size):
        total_in_w -= heat_out_w[s]
    return total_in_w


@entry("(f8[:, :, ::1], u1[:, :, ::1], f8[:, ::1])")
def enthalpy_field(
    temperature: np.ndarray, material: np.ndarray, properties: np.ndarray
) -> np.ndarray:
    """H(T) for a whole field (initial conditions and prescribed voxels)."""
    out = np.empty(temperature.shape)
    nx, ny, nz = temperature.shape
    for i in range(nx):
        for j in range(ny):
            for m in range(nz):
                out[i, j, m] = enthalpy_from_temperature(
                    temperature[i, j, m], properties[material[i, j, m]]
                )
    return out


@entry("(f8[:, :, ::1], u1[:, :, ::1], f8[:, ::1], f8[:, :, ::1])")
def temperature_field(
    enthalpy: np.ndarray, material: np.ndarray, properties: np.ndarray, out: np.ndarray
) -> None:
    """out = T(H) for a whole field (out may be any float array of the grid's shape)."""
    nx, ny, nz = enthalpy.shape
    for i in range(nx):
        for j in range(ny):
            for m in range(nz):
                out[i, j, m] = temperature_from_enthalpy(
                    enthalpy[i, j, m], properties[material[i, j, m]]
                )


@entry("(f8[::1], u1[::1], f8[:, ::1], i8[::1])")
def temperature_of_voxels(
    enthalpy_flat: np.ndarray, material_flat: np.ndarray, properties: np.ndarray,
    flat_index: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """T(H) [°C] of the voxels at the given flat indices."""
    out = np.empty(flat_index.size)
    for e in range(flat_index.size):
        v = flat_index[e]
        out[e] = temperature_from_enthalpy(enthalpy_flat[v], properties[material_flat[v]])
    return out


@entry("(f8[::1], u1[::1], f8[:, ::1], i8[::1], f8[::1])")
def set_temperature_of_voxels(
    enthalpy_flat: np.ndarray, material_flat: np.ndarray, properties: np.ndarray,
    flat_index: np.ndarray, temperature_c: np.ndarray,
) -> None:  # fmt: skip
    """H ← H(T) at the given flat indices (prescribed voxels)."""
    for e in range(flat_index.size):
        v = flat_index[e]
        enthalpy_flat[v] = enthalpy_from_temperature(temperature_c[e], properties[material_flat[v]])


@voxel_helper
def _stability_rate(
    i: int, j: int, m: int, material: np.ndarray, k_max: np.ndarray, c_min: np.ndarray,
    perfusion: np.ndarray, factors: np.ndarray, held: np.ndarray, volume: float, extra: float,
) -> float:  # fmt: skip
    """(Σ_faces G + P V + extra)/(C V) [1/s] of free voxel (i, j, m): faces at the harmonic
    mean of the two k_max, a held outer face at 2A/h k_max."""
    nx, ny, nz = material.shape
    mat = material[i, j, m]
    k_v = k_max[mat]
    g = perfusion[mat] * volume + extra
    for face in range(6):
        axis = face // 2
        step = 2 * (face % 2) - 1
        n_i = np.int64(i) + step if axis == 0 else np.int64(i)
        n_j = np.int64(j) + step if axis == 1 else np.int64(j)
        n_m = np.int64(m) + step if axis == 2 else np.int64(m)
        if 0 <= n_i < nx and 0 <= n_j < ny and 0 <= n_m < nz:
            k_n = k_max[material[n_i, n_j, n_m]]
            g += factors[axis] * 2.0 * k_v * k_n / (k_v + k_n)
        elif held[face]:
            g += 2.0 * factors[axis] * k_v
    return g / (c_min[mat] * volume)


@entry(
    "(u1[:, :, ::1], b1[:, :, ::1], f8[::1], f8[::1], f8[::1], f8[::1], b1[::1], f8, i8[::1], "
    "f8[::1])",
    cost_s=1.1,
)
def worst_stability_rates(
    material: np.ndarray,
    fixed: np.ndarray,
    k_max: np.ndarray,
    c_min: np.ndarray,
    perfusion: np.ndarray,
    factors: np.ndarray,
    held: np.ndarray,
    volume: float,
    probe_voxels: np.ndarray,
    probe_g: np.ndarray,
) -> np.ndarray:
    """[largest rate over all free voxels, over the free voxels off the domain's faces] of
    `_stability_rate` (per-material k_max, c_min, perfusion), probe voxel probe_voxels[e]
    (flat index) adding probe_g[e] [W/K]."""
    nx, ny, nz = material.shape
    worst = np.zeros(2)
    for i in range(nx):
        for j in range(ny):
            for m in range(nz):
                if fixed[i, j, m]:
                    continue
                rate = _stability_rate(
                    i, j, m, material, k_max, c_min, perfusion, factors, held, volume, 0.0
                )
                worst[0] = max(worst[0], rate)
                if 0 < i < nx - 1 and 0 < j < ny - 1 and 0 < m < nz - 1:
                    worst[1] = max(worst[1], rate)
    for e in range(probe_voxels.size):
        v = probe_voxels[e]
        i, rest = divmod(v, ny * nz)
        j, m = divmod(rest, nz)
        if fixed[i, j, m]:
            continue
        rate = _stability_rate(
            i, j, m, material, k_max, c_min, perfusion, factors, held, volume, probe_g[e]
        )
        worst[0] = max(worst[0], rate)
        if 0 < i < nx - 1 and 0 < j < ny - 1 and 0 < m < nz - 1:
            worst[1] = max(worst[1], rate)
    return worst


@entry("(f8[:, :, ::1], u1[:, :, ::1], f8[:, ::1])")
def liquid_fraction_field(
    enthalpy: np.ndarray, material: np.ndarray, properties: np.ndarray
) -> np.ndarray:
    """φ(H) of every voxel (float32)."""
    out = np.empty(enthalpy.shape, np.float32)
    nx, ny, nz = enthalpy.shape
    for i in range(nx):
        for j in range(ny):
            for m in range(nz):
                out[i, j, m] = liquid_fraction_from_enthalpy(
                    enthalpy[i, j, m], properties[material[i, j, m]]
                )
    return out


@entry("(f8[:, :, ::1], b1[:, :, ::1], f8)")
def total_enthalpy_j(enthalpy: np.ndarray, fixed: np.ndarray, voxel_volume_m3: float) -> float:
    """Σ H V over the free voxels [J] (fixed voxels' energy is supplied from outside)."""
    nx, ny, nz = enthalpy.shape
    total = 0.0
    for i in range(nx):
        for j in range(ny):
            for m in range(nz):
                if not fixed[i, j, m]:
                    total += enthalpy[i, j, m]
    return total * voxel_volume_m3


# which voxels `count_at_or_below` counts
COUNT_ALL, COUNT_FREE, COUNT_FIXED = 0, 1, 2


@entry(
    "(f8[:, :, ::1], u1[:, :, ::1], b1[:, :, ::1], f8[:, ::1], f8[::1], i8, i8, i8[:, ::1], i8)",
    cost_s=1.0,
)
def count_at_or_below(
    enthalpy: np.ndarray,
    material: np.ndarray,
    fixed: np.ndarray,
    properties: np.ndarray,
    thresholds_c: np.ndarray,
    x_lo: int,
    x_hi: int,
    region: np.ndarray,
    which: int,
) -> np.ndarray:
    """Number of voxels of the region (see `_in_region`): all, the free or the fixed ones
    (which = COUNT_ALL, COUNT_FREE, COUNT_FIXED), whose T(H) is at or below each threshold
    [°C], counted on H against each material's `enthalpy_bound_at_or_below` (no T computed
    per voxel)."""
    n_thr = thresholds_c.size
    bound = np.empty((properties.shape[0], n_thr))
    for mat in range(properties.shape[0]):
        for c in range(n_thr):
            bound[mat, c] = enthalpy_bound_at_or_below(thresholds_c[c], properties[mat])
    counts = np.zeros(n_thr, np.int64)
    for i in range(x_lo, x_hi):
        for j in range(region[i, 0], region[i, 1]):
            for m in range(region[i, 2], region[i, 3]):
                if which != COUNT_ALL and fixed[i, j, m] != (which == COUNT_FIXED):
                    continue
                h = enthalpy[i, j, m]
                mat = material[i, j, m]
                for c in range(n_thr):
                    counts[c] += h <= bound[mat, c]
    return counts


# What `sweep` does in each of its n_sub substeps
SUBSTEPS = 0  # probe exchange, advance (booking the region's faces), probe heat, refresh
ADVANCE = 1  # advance only (the multirate coarse step)
REFRESH = 2  # refresh only, with records (initial state, prescribed voxels, after a step)


@entry(
    "(i8, i8, f8, f8, f8[:, :, ::1], f8[:, :, ::1], u1[:, :, ::1], b1[:, :, ::1], "
    "u1[:, :, ::1], b1[:, :, ::1], b1[:, :, ::1], u1[:, :, ::1], f4[:, :, ::1], f8[:, ::1], "
    "f8[::1], i8[::1], f8[::1], f8, i8, i8, i8[:, ::1], i8, i8, i8[:, ::1], f8[:, :, ::1], "
    "i8[:, ::1], i8[::1], f8[::1], f8[::1], f8[::1], f8[::1], f8[::1], b1[::1], "
    "Tuple((i8[::1], i8[::1], i8[::1], i8[::1], f8[::1])), f8[:, ::1], f8[::1])",
    parallel=True,
    cost_s=13.0,
)
def sweep(
    mode: int,
    n_sub: int,
    step_s: float,
    face_weight_s: float,
    enthalpy: np.ndarray,
    kirchhoff: np.ndarray,
    material: np.ndarray,
    fixed: np.ndarray,
    uniform: np.ndarray,
    destroyed: np.ndarray,
    frozen: np.ndarray,
    freeze_cycles: np.ndarray,
    minimum_temperature: np.ndarray,
    properties: np.ndarray,
    spacing_m: np.ndarray,
    boundary_kind: np.ndarray,
    boundary_temperature_c: np.ndarray,
    blood_temperature_c: float,
    x_lo: int,
    x_hi: int,
    region: np.ndarray,
    hole_x_lo: int,
    hole_x_hi: int,
    hole: np.ndarray,
    face_heat_j: np.ndarray,
    cold_bounds: np.ndarray,
    sample_start: np.ndarray,
    weight: np.ndarray,
    shape_factor_m: np.ndarray,
    wall_area_m2: np.ndarray,
    drive_temperature_c: np.ndarray,
    film_coefficient_w_m2k: np.ndarray,
    drive_active: np.ndarray,
    probe_index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    voxel_scratch: np.ndarray,
    heat_out_w: np.ndarray,
) -> np.ndarray:
    """The solver's one compiled entry for its sweeps: n_sub substeps of step_s/n_sub over
    the region (slabs [x_lo, x_hi), per-slab bounds, see `_in_region`) minus the hole, on
    the caller's `numba.set_num_threads` (set from Python: a call to it from compiled code
    would keep the function out of numba's cache), each substep doing, by `mode`:

    - SUBSTEPS: the probes' exchange on the temperatures at the substep's start
      (`probe_exchange`), conduction, perfusion and metabolism (`_advance_slab`, booking
      (step_s − sub_s)·F on the first substep and −sub_s·F after into face_heat_j for the
      region's faces), the probes' heat (`spread_probe_heat`), and the refresh of Φ and
      T_min (`_refresh_slab`). The destroyed and frozen flags, cycles and cold_bounds
      (reset first) are refreshed on the last substep only: the destroyed flag then stops
      perfusion up to one step late, which moved no isotherm of the test presets (T_min
      itself must be taken every substep: sampled once a step it moved the 0 °C isotherm
      of a preset from 0.048 to 0.103 mm off the reference path, minima at the onset of a
      thaw being sharp).
    - ADVANCE: conduction, perfusion and metabolism only, booking face_weight_s·F.
    - REFRESH: the refresh only, with the records, widening cold_bounds.

    Returns the energy [J] the region received: (perfusion, metabolism, outer boundary,
    fixed voxels, free voxels outside the region, probes).

    One entry instead of one per sweep: each compiled function carries a copy of what it
    calls, so separate entries compiled the slab code several times over (the cold start
    was several minutes), and one call per step instead of four per substep keeps
    Python's dispatch out of the fine region's short substeps.
    """
    energy = np.zeros(6)
    nx, nz = enthalpy.shape[0], enthalpy.shape[2]
    sub_s = step_s / n_sub
    enthalpy_flat = enthalpy.reshape(-1)
    material_flat = material.reshape(-1)
    volume = spacing_m[0] * spacing_m[1] * spacing_m[2]
    probe_voxels, entry_voxel, voxel_entry_start, voxel_entry_sample, voxel_entry_weight = (
        probe_index
    )
    with_probes = mode == SUBSTEPS and heat_out_w.size > 0
    partial = np.zeros((nx, 5))  # per-slab heat rates (deterministic sums)
    for k in range(n_sub):
        if with_probes:
            probe_exchange(
                enthalpy_flat, material_flat, properties, sample_start, weight,
                shape_factor_m, wall_area_m2, drive_temperature_c, film_coefficient_w_m2k,
                drive_active, probe_voxels, entry_voxel, voxel_scratch, heat_out_w,
            )  # fmt: skip
        if mode != REFRESH:
            book_s = face_weight_s
            if mode == SUBSTEPS:
                book_s = step_s - sub_s if k == 0 else -sub_s
            for i in numba.prange(x_lo, x_hi):
                # scratch rows allocated here: the helpers are compiled without NRT
                _advance_slab(
                    i, enthalpy, kirchhoff, material, fixed, uniform, destroyed, properties,
                    spacing_m, boundary_kind, boundary_temperature_c, blood_temperature_c,
                    sub_s, x_lo, x_hi, region, hole_x_lo, hole_x_hi, hole, face_heat_j,
                    book_s, partial, np.empty(nz), np.empty(nz),
                )  # fmt: skip
            flows = _column_sums5(partial, x_lo, x_hi)
            for q in range(5):
                energy[q] += flows[q] * sub_s
        if with_probes:
            energy[5] += sub_s * spread_probe_heat(
                enthalpy_flat, heat_out_w, probe_voxels, voxel_entry_start,
                voxel_entry_sample, voxel_entry_weight, sub_s, volume,
            )  # fmt: skip
        if mode != ADVANCE:
            record = k == n_sub - 1  # flags, cycles and cold bounds once, at the end
            if record and mode == SUBSTEPS:
                cold_bounds[:, :] = 0
            for i in numba.prange(x_lo, x_hi):
                _refresh_slab(
                    i, enthalpy, kirchhoff, material, fixed, properties, minimum_temperature,
                    destroyed, frozen, freeze_cycles, region, hole_x_lo, hole_x_hi, hole,
                    cold_bounds, record, np.empty(nz),
                )  # fmt: skip
    return energy


def advance_enthalpy(
    enthalpy: np.ndarray,
    kirchhoff: np.ndarray,
    material: np.ndarray,
    fixed: np.ndarray,
    uniform: np.ndarray,
    destroyed: np.ndarray,
    properties: np.ndarray,
    spacing_m: np.ndarray,
    boundary_kind: np.ndarray,
    boundary_temperature_c: np.ndarray,
    blood_temperature_c: float,
    dt_s: float,
    x_lo: int,
    x_hi: int,
    region: np.ndarray,
    hole_x_lo: int,
    hole_x_hi: int,
    hole: np.ndarray,
    face_heat_j: np.ndarray,
    face_weight_s: float,
) -> tuple[float, float, float, float, float]:
    """One explicit step of conduction, perfusion and metabolism of the region minus the
    hole (`sweep` in ADVANCE mode), for callers that hold no back end: the
    heat rates [W] (perfusion, metabolism, boundary, fixed voxels, outside the region), and
    face_weight_s × the flux across the region's faces added to face_heat_j (see
    `_advance_slab`)."""
    shape = enthalpy.shape
    no_i8, no_f8 = np.zeros(0, np.int64), np.zeros(0)
    energy = sweep(
        ADVANCE, 1, dt_s, face_weight_s, enthalpy, kirchhoff,
        material, fixed, uniform, destroyed, np.zeros(shape, np.bool_),
        np.zeros(shape, np.uint8), np.full(shape, np.inf, np.float32), properties,
        spacing_m, boundary_kind, boundary_temperature_c, blood_temperature_c, x_lo, x_hi,
        region, hole_x_lo, hole_x_hi, hole, face_heat_j, np.zeros((shape[0], 4), np.int64),
        np.zeros(1, np.int64), no_f8, no_f8, no_f8, no_f8, no_f8, np.zeros(0, np.bool_),
        (no_i8, no_i8, np.zeros(1, np.int64), no_i8, no_f8), np.zeros((2, 0)), no_f8,
    )  # fmt: skip
    perf, met, bnd, fix, outside = energy[:5] / dt_s
    return perf, met, bnd, fix, outside
