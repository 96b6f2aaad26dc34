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
perfused) with a Jacobi preconditioner, matrix-free, so that a 0.5 mm grid needs no matrix.
"""

from __future__ import annotations

import numba
import numpy as np
from scipy.sparse.linalg import LinearOperator, cg

from cryoplan.thermal.materials import K_UNFROZEN, METABOLIC, PERFUSION, T_LIQUIDUS
from cryoplan.thermal.problem import FIXED_TEMPERATURE, ThermalProblem

# Relative residual of the solve. The residual heat rate r [W] makes a voxel drift by
# r·t/(C V): at 1e-12 of the source terms that is far below a microkelvin over a protocol.
RELATIVE_TOLERANCE = 1e-12


@numba.njit(inline="always", cache=True)
def _face_conductance(mat_v: int, mat_n: int, k_unfrozen: np.ndarray, factor: float) -> float:
    k_v = k_unfrozen[mat_v]
    k_n = k_unfrozen[mat_n]
    if mat_v == mat_n:
        return factor * k_v
    return factor * 2.0 * k_v * k_n / (k_v + k_n)


@numba.njit(parallel=True, cache=True)
def _apply(
    x: np.ndarray,
    material: np.ndarray,
    fixed: np.ndarray,
    k_unfrozen: np.ndarray,
    perfusion_volume: np.ndarray,
    factors: np.ndarray,
    held: np.ndarray,
    free_only: bool,
) -> np.ndarray:
    """y = A x on the grid: for a free voxel Σ_faces G (x_v − x_n) + (Σ_held 2G + P V) x_v.

    With free_only, neighbours that are fixed contribute nothing (they belong to the
    right-hand side); without, it is the full operator (used for the right-hand side).
    Fixed voxels: y = x (an identity row).
    """
    nx, ny, nz = x.shape
    y = np.empty_like(x)
    for i in numba.prange(nx):
        for j in range(ny):
            for m in range(nz):
                if fixed[i, j, m]:
                    y[i, j, m] = x[i, j, m]
                    continue
                mat = material[i, j, m]
                x_v = x[i, j, m]
                acc = perfusion_volume[mat] * x_v
                for face in range(6):
                    axis = face // 2
                    step = 2 * (face % 2) - 1
                    # prange's index is unsigned: signed arithmetic keeps indices integer
                    n_i = np.int64(i) + step if axis == 0 else np.int64(i)
                    n_j = j + step if axis == 1 else j
                    n_m = m + step if axis == 2 else m
                    if not (0 <= n_i < nx and 0 <= n_j < ny and 0 <= n_m < nz):
                        if held[face]:
                            acc += 2.0 * factors[axis] * k_unfrozen[mat] * x_v
                        continue
                    g = _face_conductance(mat, material[n_i, n_j, n_m], k_unfrozen, factors[axis])
                    acc += g * x_v
                    if not (free_only and fixed[n_i, n_j, n_m]):
                        acc -= g * x[n_i, n_j, n_m]
                y[i, j, m] = acc
    return y


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
    dx, dy, dz = problem.spacing_m
    factors = np.array([dy * dz / dx, dx * dz / dy, dx * dy / dz])
    held = np.array([k == FIXED_TEMPERATURE for k in problem.boundary_kind])
    shape = problem.shape
    t0 = np.array(problem.initial_temperature_c, np.float64)

    # right-hand side: perfusion towards T_a, metabolism, held faces, fixed neighbours
    b = (pv * problem.blood_temperature_c + props[:, METABOLIC] * volume)[material]
    for axis in range(3):
        for side in range(2):
            if not held[2 * axis + side]:
                continue
            face = [slice(None)] * 3
            face[axis] = slice(0, 1) if side == 0 else slice(-1, None)
            t_b = problem.boundary_temperature_c[2 * axis + side]
            b[tuple(face)] += 2.0 * factors[axis] * k_l[material[tuple(face)]] * t_b
    fixed_only = np.where(fixed, t0, 0.0)
    coupling = _apply(fixed_only, material, fixed, k_l, pv, factors, np.zeros(6, bool), False)
    # A(fixed values) on free voxels = −Σ G·T_fixed (diagonal part is 0 as x_v = 0 there)
    b -= np.where(fixed, 0.0, coupling)
    b[fixed] = t0[fixed]

    def matvec(x: np.ndarray) -> np.ndarray:
        return _apply(x.reshape(shape), material, fixed, k_l, pv, factors, held, True).ravel()

    diagonal = _diagonal(material, fixed, k_l, pv, factors, held)
    n = t0.size
    a_op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    m_op = LinearOperator((n, n), matvec=lambda r: r / diagonal.ravel(), dtype=np.float64)
    x, info = cg(a_op, b.ravel(), x0=t0.ravel(), rtol=RELATIVE_TOLERANCE, atol=0.0, M=m_op)
    if info != 0:
        raise ValueError(f"the basal steady state did not converge (scipy cg info {info})")
    temperature = x.reshape(shape)
    temperature[fixed] = t0[fixed]
    liquidus = props[:, T_LIQUIDUS][material]
    if np.any(temperature[~fixed] < liquidus[~fixed]):
        raise ValueError("the basal steady state falls below a tissue's liquidus")
    return temperature


def _diagonal(
    material: np.ndarray,
    fixed: np.ndarray,
    k_l: np.ndarray,
    pv: np.ndarray,
    factors: np.ndarray,
    held: np.ndarray,
) -> np.ndarray:
    """The diagonal of A (1 on fixed voxels): the Jacobi preconditioner."""
    diag = pv[material].astype(np.float64)
    for axis in range(3):
        a = np.moveaxis(material, axis, 0)
        d = np.moveaxis(diag, axis, 0)  # view
        k_lo, k_hi = k_l[a[:-1]], k_l[a[1:]]
        g = factors[axis] * np.where(a[:-1] == a[1:], k_lo, 2 * k_lo * k_hi / (k_lo + k_hi))
        d[:-1] += g
        d[1:] += g
        if held[2 * axis]:
            d[0] += 2.0 * factors[axis] * k_l[a[0]]
        if held[2 * axis + 1]:
            d[-1] += 2.0 * factors[axis] * k_l[a[-1]]
    diag[fixed] = 1.0
    return diag
