"""The basal state: tissue temperatures before the first freeze (Pennes steady state).

Before the procedure, tissue sits at the steady state of the bioheat equation with the
probes off,

    ∇·(k_l ∇T) + w_b ρ_b c_b (T_a − T) + q_m = 0,

which is T_a + q_m/(w_b ρ_b c_b) deep inside a perfused tissue (37.08 °C in liver), and
bends towards the held outer faces and the vessels held at T_a. Starting from it rather than
from a uniform 37 °C removes a drift of metabolising tissue that has nothing to do with the
freeze (up to 0.5 K in 25 min in a weakly perfused tumour), and lets the multirate back end
leave the undisturbed far field alone.

The discrete equations are those of `kernels.advance_enthalpy` for unfrozen voxels, where
they are linear: within one material the Kirchhoff flux A/h (Φ_n − Φ_v) is A/h k_l (T_n −
T_v); across materials the harmonic mean of the two k_l. They are solved by conjugate
gradients (the matrix is symmetric positive definite once any face is held or any tissue
perfused) with a Jacobi preconditioner, matrix-free and in place: besides the temperature
the solve keeps three fields (residual, direction, its image), 24 bytes a voxel, and
computes right-hand side and diagonal voxel by voxel (scipy's `cg` kept about ten).
"""

from __future__ import annotations

import numba
import numpy as np

from cryoplan.thermal import jit, materials
from cryoplan.thermal.jit import entry, helper, inline, voxel_helper
from cryoplan.thermal.materials import K_UNFROZEN, METABOLIC, PERFUSION, T_LIQUIDUS
from cryoplan.thermal.numba_cache import drop_stale_cache
from cryoplan.thermal.problem import FIXED_TEMPERATURE, ThermalProblem

# its kernels use materials' column numbers, and jit's compile options
drop_stale_cache(__file__, materials.__file__, jit.__file__)

# Relative residual of the solve, against the free voxels' source terms (perfusion towards
# T_a, metabolism, held faces, fixed neighbours). The residual heat rate r [W] makes a voxel
# drift by r·t/(C V): at 1e-12 of the sources that is far below a microkelvin over a protocol.
RELATIVE_TOLERANCE = 1e-12
MAX_ITERATIONS_PER_VOXEL = 10  # as scipy's cg; the solve stops far sooner (~100–2000 steps)


@inline
def _neighbour(i: int, j: int, m: int, face: int, shape: tuple[int, int, int]):
    """(inside, n_i, n_j, n_m) of the neighbour of (i, j, m) across face 0..5 (x−, x+, …)."""
    axis = face // 2
    step = 2 * (face % 2) - 1
    n_i = np.int64(i) + step if axis == 0 else np.int64(i)
    n_j = np.int64(j) + step if axis == 1 else np.int64(j)
    n_m = np.int64(m) + step if axis == 2 else np.int64(m)
    inside = 0 <= n_i < shape[0] and 0 <= n_j < shape[1] and 0 <= n_m < shape[2]
    return inside, n_i, n_j, n_m


@inline
def _face_conductance(mat_v: int, mat_n: int, k_unfrozen: np.ndarray, factor: float) -> float:
    k_v = k_unfrozen[mat_v]
    k_n = k_unfrozen[mat_n]
    if mat_v == mat_n:
        return factor * k_v
    return factor * 2.0 * k_v * k_n / (k_v + k_n)


@voxel_helper
def _diagonal(
    i: int, j: int, m: int, material: np.ndarray, k_l: np.ndarray, pv: np.ndarray,
    factors: np.ndarray, held: np.ndarray,
) -> float:  # fmt: skip
    """A_vv of free voxel v [W/K]: P V + Σ_faces G + Σ_held faces 2 A/h k_l."""
    mat = material[i, j, m]
    d = pv[mat]
    for face in range(6):
        inside, n_i, n_j, n_m = _neighbour(i, j, m, face, material.shape)
        if inside:
            d += _face_conductance(mat, material[n_i, n_j, n_m], k_l, factors[face // 2])
        elif held[face]:
            d += 2.0 * factors[face // 2] * k_l[mat]
    return d


@helper
def _residual_slab(
    i: int, x: np.ndarray, material: np.ndarray, fixed: np.ndarray, k_l: np.ndarray,
    pv: np.ndarray, source: np.ndarray, factors: np.ndarray, held: np.ndarray,
    held_c: np.ndarray, blood_c: float, r: np.ndarray, partial: np.ndarray,
) -> None:  # fmt: skip
    """r = b − A x on slab i, the net heat rate [W] into each free voxel at temperatures x:

        P V (T_a − x_v) + q_m V + Σ_held faces 2 A/h k_l (T_b − x_v) + Σ_faces G (x_n − x_v),

    with fixed neighbours at their prescribed x; r = 0 on fixed voxels. partial[i] gets
    (Σ r², Σ b²) over the slab's free voxels, b being the part that does not depend on the
    free x."""
    for j in range(x.shape[1]):
        for m in range(x.shape[2]):
            if fixed[i, j, m]:
                r[i, j, m] = 0.0
                continue
            mat = material[i, j, m]
            x_v = x[i, j, m]
            b = pv[mat] * blood_c + source[mat]
            balance = pv[mat] * (blood_c - x_v) + source[mat]
            for face in range(6):
                inside, n_i, n_j, n_m = _neighbour(i, j, m, face, x.shape)
                factor = factors[face // 2]
                if inside:
                    g = _face_conductance(mat, material[n_i, n_j, n_m], k_l, factor)
                    balance += g * (x[n_i, n_j, n_m] - x_v)
                    if fixed[n_i, n_j, n_m]:
                        b += g * x[n_i, n_j, n_m]
                elif held[face]:
                    g = 2.0 * factor * k_l[mat]
                    balance += g * (held_c[face] - x_v)
                    b += g * held_c[face]
            r[i, j, m] = balance
            partial[i, 0] += balance * balance
            partial[i, 1] += b * b


@helper
def _apply_slab(
    i: int, p: np.ndarray, material: np.ndarray, fixed: np.ndarray, k_l: np.ndarray,
    pv: np.ndarray, factors: np.ndarray, held: np.ndarray, q: np.ndarray, partial: np.ndarray,
) -> None:  # fmt: skip
    """q = A p on slab i for a direction p that is 0 on fixed voxels: (P V + Σ_held
    2 A/h k_l) p_v + Σ_faces G (p_v − p_n) on free voxels, 0 on fixed ones; partial[i, 0]
    gets the slab's part of p·q."""
    for j in range(p.shape[1]):
        for m in range(p.shape[2]):
            if fixed[i, j, m]:
                q[i, j, m] = 0.0
                continue
            mat = material[i, j, m]
            p_v = p[i, j, m]
            acc = pv[mat] * p_v
            for face in range(6):
                inside, n_i, n_j, n_m = _neighbour(i, j, m, face, p.shape)
                factor = factors[face // 2]
                if inside:
                    g = _face_conductance(mat, material[n_i, n_j, n_m], k_l, factor)
                    acc += g * (p_v - p[n_i, n_j, n_m])
                elif held[face]:
                    acc += 2.0 * factor * k_l[mat] * p_v
            q[i, j, m] = acc
            partial[i, 0] += p_v * acc


@helper
def _update_solution_slab(
    i: int, alpha: float, x: np.ndarray, r: np.ndarray, p: np.ndarray, q: np.ndarray,
    material: np.ndarray, fixed: np.ndarray, k_l: np.ndarray, pv: np.ndarray,
    factors: np.ndarray, held: np.ndarray, partial: np.ndarray,
) -> None:  # fmt: skip
    """x += α p, r −= α q on slab i; partial[i] gets (r·D⁻¹r, r·r) over its free voxels."""
    for j in range(x.shape[1]):
        for m in range(x.shape[2]):
            if fixed[i, j, m]:
                continue
            x[i, j, m] += alpha * p[i, j, m]
            r_v = r[i, j, m] - alpha * q[i, j, m]
            r[i, j, m] = r_v
            d = _diagonal(i, j, m, material, k_l, pv, factors, held)
            partial[i, 0] += r_v * r_v / d
            partial[i, 1] += r_v * r_v


@helper
def _update_direction_slab(
    i: int, beta: float, r: np.ndarray, p: np.ndarray, material: np.ndarray,
    fixed: np.ndarray, k_l: np.ndarray, pv: np.ndarray, factors: np.ndarray, held: np.ndarray,
) -> None:  # fmt: skip
    """p = D⁻¹ r + β p on the free voxels of slab i (p stays 0 on fixed ones)."""
    for j in range(r.shape[1]):
        for m in range(r.shape[2]):
            if fixed[i, j, m]:
                p[i, j, m] = 0.0
                continue
            d = _diagonal(i, j, m, material, k_l, pv, factors, held)
            p[i, j, m] = r[i, j, m] / d + beta * p[i, j, m]


# The passes of one conjugate-gradient iteration, run by `cg_pass`
RESIDUAL, APPLY, UPDATE_SOLUTION, UPDATE_DIRECTION = 0, 1, 2, 3


@entry(
    "(i8, f8, f8[:, :, ::1], f8[:, :, ::1], f8[:, :, ::1], f8[:, :, ::1], u1[:, :, ::1], "
    "b1[:, :, ::1], f8[::1], f8[::1], f8[::1], f8[::1], b1[::1], f8[::1], f8)",
    parallel=True,
    cost_s=4.5,
)
def cg_pass(
    kind: int, scalar: float, x: np.ndarray, r: np.ndarray, p: np.ndarray, q: np.ndarray,
    material: np.ndarray, fixed: np.ndarray, k_l: np.ndarray, pv: np.ndarray,
    source: np.ndarray, factors: np.ndarray, held: np.ndarray, held_c: np.ndarray,
    blood_c: float,
) -> tuple[float, float]:  # fmt: skip
    """One pass of the solve over the grid, slab by slab in parallel (one compiled parallel
    loop for the four passes: each costs about a second to compile):

    - RESIDUAL: r = b − A x (`_residual_slab`); returns (r·r, b·b);
    - APPLY: q = A p (`_apply_slab`); returns (p·q, 0);
    - UPDATE_SOLUTION: x += α p, r −= α q with α = scalar (`_update_solution_slab`);
      returns (r·D⁻¹r, r·r);
    - UPDATE_DIRECTION: p = D⁻¹ r + β p with β = scalar (`_update_direction_slab`).

    The per-slab partial sums are added in slab order (deterministic)."""
    nx = x.shape[0]
    partial = np.zeros((nx, 2))
    for i in numba.prange(nx):
        slab = np.int64(i)
        if kind == RESIDUAL:
            _residual_slab(
                slab, x, material, fixed, k_l, pv, source, factors, held, held_c, blood_c, r,
                partial,
            )  # fmt: skip
        elif kind == APPLY:
            _apply_slab(slab, p, material, fixed, k_l, pv, factors, held, q, partial)
        elif kind == UPDATE_SOLUTION:
            _update_solution_slab(
                slab, scalar, x, r, p, q, material, fixed, k_l, pv, factors, held, partial
            )
        else:
            _update_direction_slab(slab, scalar, r, p, material, fixed, k_l, pv, factors, held)
    first = 0.0
    second = 0.0
    for i in range(nx):
        first += partial[i, 0]
        second += partial[i, 1]
    return first, second


def basal_temperature_c(problem: ThermalProblem) -> np.ndarray:
    """The steady state [°C] of `problem` with its probes off (see the module docstring).

    Fixed voxels keep their initial temperature; held faces are at their boundary
    temperature. Raises ValueError if the solve does not converge or the state would not be
    unfrozen everywhere (the equations used here hold only above the liquidus).
    """
    props = problem.properties
    material = np.ascontiguousarray(problem.material, np.uint8)
    fixed = np.ascontiguousarray(problem.fixed, np.bool_)
    k_l = np.ascontiguousarray(props[:, K_UNFROZEN])
    volume = problem.voxel_volume_m3
    pv = np.ascontiguousarray(props[:, PERFUSION] * volume)
    source = np.ascontiguousarray(props[:, METABOLIC] * volume)
    dx, dy, dz = problem.spacing_m
    factors = np.array([dy * dz / dx, dx * dz / dy, dx * dy / dz])
    held = np.array([k == FIXED_TEMPERATURE for k in problem.boundary_kind])
    held_c = np.asarray(problem.boundary_temperature_c, np.float64)

    # preconditioned conjugate gradients (Jacobi), from the initial temperatures
    x = np.array(problem.initial_temperature_c, np.float64)
    r = np.empty_like(x)
    p = np.zeros_like(x)
    q = np.zeros_like(x)
    fields = (x, r, p, q, material, fixed, k_l, pv, source, factors, held, held_c,
              problem.blood_temperature_c)  # fmt: skip
    rr, bb = cg_pass(RESIDUAL, 0.0, *fields)
    tolerance_sq = RELATIVE_TOLERANCE**2 * bb
    cg_pass(UPDATE_DIRECTION, 0.0, *fields)
    rz = cg_pass(UPDATE_SOLUTION, 0.0, *fields)[0]  # r·D⁻¹r, nothing moved
    converged = rr <= tolerance_sq
    for _ in range(MAX_ITERATIONS_PER_VOXEL * x.size):
        if converged:
            break
        pq = cg_pass(APPLY, 0.0, *fields)[0]
        if pq <= 0.0:
            break  # A is not positive definite here (nothing holds the temperature)
        rz_new, rr = cg_pass(UPDATE_SOLUTION, rz / pq, *fields)
        converged = rr <= tolerance_sq
        cg_pass(UPDATE_DIRECTION, rz_new / rz, *fields)
        rz = rz_new
    del r, p, q
    if not converged:
        raise ValueError("the basal steady state did not converge (conjugate gradients)")
    liquidus = props[:, T_LIQUIDUS][material]
    if np.any((x < liquidus) & ~fixed):
        raise ValueError("the basal steady state falls below a tissue's liquidus")
    return x
