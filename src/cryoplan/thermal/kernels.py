"""Numba kernels of the explicit enthalpy scheme (CPU back end).

One time step of length Δt for every free voxel v (volume V) is

    H_v ← H_v + Δt/V · [ Σ_faces G_f (T_n − T_v)                       conduction
                         + φ_v (1 − d_v) (P_v V (T_a − T_v) + q_m,v V)  perfusion, metabolism
                         − Σ_s w_sv Q_s ]                                probes

where G_f = A_f/h_f · 2 k_v k_n/(k_v + k_n) is the face conductance (harmonic mean of the
two voxels' conductivities), φ the liquid fraction, d_v = 1 once the voxel has reached its
lethal temperature (perfusion stays off in destroyed tissue), P = w_b ρ_b c_b and Q_s the
probe sample exchange of `ProbeCoupling`. A face on the outer boundary held at T_b has
G = A/(h/2) · k_v. Fixed voxels keep their prescribed temperature.

Each kernel also returns the heat [W] it moved across each kind of boundary, so that the
energy ledger can be closed independently of the update itself.
"""

from __future__ import annotations

import numba
import numpy as np

from cryoplan.thermal.enthalpy import (
    conductivity_from_liquid_fraction,
    enthalpy_from_temperature,
    liquid_fraction_from_enthalpy,
    liquid_fraction_from_temperature,
    temperature_from_enthalpy,
)
from cryoplan.thermal.materials import METABOLIC, PERFUSION, T_LETHAL


@numba.njit(parallel=True, cache=True)
def refresh_temperature(
    enthalpy: np.ndarray,
    temperature: np.ndarray,
    conductivity: np.ndarray,
    material: np.ndarray,
    fixed: np.ndarray,
    properties: np.ndarray,
    minimum_temperature: np.ndarray,
    destroyed: np.ndarray,
) -> None:
    """T, k from H (free voxels) or from the prescribed T (fixed); update T_min and d."""
    nx, ny, nz = enthalpy.shape
    for i in numba.prange(nx):
        for j in range(ny):
            for m in range(nz):
                props = properties[material[i, j, m]]
                if fixed[i, j, m]:
                    t = temperature[i, j, m]
                    phi = liquid_fraction_from_temperature(t, props)
                else:
                    h = enthalpy[i, j, m]
                    t = temperature_from_enthalpy(h, props)
                    phi = liquid_fraction_from_enthalpy(h, props)
                    temperature[i, j, m] = t
                conductivity[i, j, m] = conductivity_from_liquid_fraction(phi, props)
                minimum_temperature[i, j, m] = min(minimum_temperature[i, j, m], t)
                if t <= props[T_LETHAL]:
                    destroyed[i, j, m] = True


@numba.njit(inline="always", cache=True)
def _face_conductance(factor: float, k_a: float, k_b: float) -> float:
    """A/h · harmonic mean of two conductivities [W/K]."""
    return factor * 2.0 * k_a * k_b / (k_a + k_b)


@numba.njit(parallel=True, cache=True)
def advance_enthalpy(
    enthalpy: np.ndarray,
    temperature: np.ndarray,
    conductivity: np.ndarray,
    material: np.ndarray,
    fixed: np.ndarray,
    destroyed: np.ndarray,
    properties: np.ndarray,
    spacing_m: np.ndarray,
    boundary_kind: np.ndarray,
    boundary_temperature_c: np.ndarray,
    blood_temperature_c: float,
    dt_s: float,
) -> tuple[float, float, float, float]:
    """One explicit step of conduction, perfusion and metabolism for the free voxels.

    Returns the heat rates [W] into the free voxels from perfusion, metabolism, the outer
    boundary and the fixed voxels, each evaluated on the temperatures the step used.
    """
    nx, ny, nz = enthalpy.shape
    dx, dy, dz = spacing_m[0], spacing_m[1], spacing_m[2]
    volume = dx * dy * dz
    # A/h per axis, and A/(h/2) for a boundary face
    fx, fy, fz = dy * dz / dx, dx * dz / dy, dx * dy / dz
    perfusion_w = 0.0
    metabolic_w = 0.0
    boundary_w = 0.0
    fixed_w = 0.0
    for i in numba.prange(nx):
        for j in range(ny):
            for m in range(nz):
                if fixed[i, j, m]:
                    continue
                tc = temperature[i, j, m]
                kc = conductivity[i, j, m]
                q_in = 0.0  # conduction into this voxel, W
                q_fixed = 0.0  # part of q_in that comes from fixed neighbours
                q_bnd = 0.0  # part of q_in that comes through the outer boundary
                # -x / +x
                if i > 0:
                    f = _face_conductance(fx, kc, conductivity[i - 1, j, m]) * (
                        temperature[i - 1, j, m] - tc
                    )
                    q_in += f
                    if fixed[i - 1, j, m]:
                        q_fixed += f
                elif boundary_kind[0] == 1:
                    q_bnd += 2.0 * fx * kc * (boundary_temperature_c[0] - tc)
                if i < nx - 1:
                    f = _face_conductance(fx, kc, conductivity[i + 1, j, m]) * (
                        temperature[i + 1, j, m] - tc
                    )
                    q_in += f
                    if fixed[i + 1, j, m]:
                        q_fixed += f
                elif boundary_kind[1] == 1:
                    q_bnd += 2.0 * fx * kc * (boundary_temperature_c[1] - tc)
                # -y / +y
                if j > 0:
                    f = _face_conductance(fy, kc, conductivity[i, j - 1, m]) * (
                        temperature[i, j - 1, m] - tc
                    )
                    q_in += f
                    if fixed[i, j - 1, m]:
                        q_fixed += f
                elif boundary_kind[2] == 1:
                    q_bnd += 2.0 * fy * kc * (boundary_temperature_c[2] - tc)
                if j < ny - 1:
                    f = _face_conductance(fy, kc, conductivity[i, j + 1, m]) * (
                        temperature[i, j + 1, m] - tc
                    )
                    q_in += f
                    if fixed[i, j + 1, m]:
                        q_fixed += f
                elif boundary_kind[3] == 1:
                    q_bnd += 2.0 * fy * kc * (boundary_temperature_c[3] - tc)
                # -z / +z
                if m > 0:
                    f = _face_conductance(fz, kc, conductivity[i, j, m - 1]) * (
                        temperature[i, j, m - 1] - tc
                    )
                    q_in += f
                    if fixed[i, j, m - 1]:
                        q_fixed += f
                elif boundary_kind[4] == 1:
                    q_bnd += 2.0 * fz * kc * (boundary_temperature_c[4] - tc)
                if m < nz - 1:
                    f = _face_conductance(fz, kc, conductivity[i, j, m + 1]) * (
                        temperature[i, j, m + 1] - tc
                    )
                    q_in += f
                    if fixed[i, j, m + 1]:
                        q_fixed += f
                elif boundary_kind[5] == 1:
                    q_bnd += 2.0 * fz * kc * (boundary_temperature_c[5] - tc)

                q_perf = 0.0
                q_met = 0.0
                if not destroyed[i, j, m]:
                    props = properties[material[i, j, m]]
                    phi = liquid_fraction_from_enthalpy(enthalpy[i, j, m], props)
                    if phi > 0.0:
                        q_perf = phi * props[PERFUSION] * volume * (blood_temperature_c - tc)
                        q_met = phi * props[METABOLIC] * volume
                enthalpy[i, j, m] += dt_s / volume * (q_in + q_bnd + q_perf + q_met)
                perfusion_w += q_perf
                metabolic_w += q_met
                boundary_w += q_bnd
                fixed_w += q_fixed
    return perfusion_w, metabolic_w, boundary_w, fixed_w


@numba.njit(cache=True)
def probe_exchange(
    temperature_flat: np.ndarray,
    conductivity_flat: np.ndarray,
    sample_start: np.ndarray,
    voxel_index: np.ndarray,
    weight: np.ndarray,
    shape_factor_m: np.ndarray,
    wall_area_m2: np.ndarray,
    drive_temperature_c: np.ndarray,
    film_coefficient_w_m2k: np.ndarray,
    active: np.ndarray,
    heat_out_w: np.ndarray,
) -> None:
    """Q_s = G_s (T_s − T_probe) [W, heat leaving the tissue] for every sample s.

    G_s is the tissue's well-index conductance k_s·shape_factor_s, in series with the film
    conductance h·wall_area_s when the sample is gas-cooled (finite h).
    """
    for s in range(shape_factor_m.size):
        if not active[s]:
            heat_out_w[s] = 0.0
            continue
        t_s = 0.0
        k_s = 0.0
        for e in range(sample_start[s], sample_start[s + 1]):
            v = voxel_index[e]
            t_s += weight[e] * temperature_flat[v]
            k_s += weight[e] * conductivity_flat[v]
        g = k_s * shape_factor_m[s]
        h = film_coefficient_w_m2k[s]
        if h < np.inf:
            g_film = h * wall_area_m2[s]
            g = g * g_film / (g + g_film)
        heat_out_w[s] = g * (t_s - drive_temperature_c[s])


@numba.njit(cache=True)
def spread_probe_heat(
    enthalpy_flat: np.ndarray,
    heat_out_w: np.ndarray,
    sample_start: np.ndarray,
    voxel_index: np.ndarray,
    weight: np.ndarray,
    dt_s: float,
    voxel_volume_m3: float,
) -> float:
    """Take each sample's heat from its voxels with its kernel weights; return Σ −Q_s [W]."""
    total_in_w = 0.0
    for s in range(heat_out_w.size):
        q = heat_out_w[s]
        if q == 0.0:
            continue
        for e in range(sample_start[s], sample_start[s + 1]):
            enthalpy_flat[voxel_index[e]] -= dt_s / voxel_volume_m3 * weight[e] * q
        total_in_w -= q
    return total_in_w


@numba.njit(parallel=True, cache=True)
def enthalpy_field(
    temperature: np.ndarray, material: np.ndarray, properties: np.ndarray
) -> np.ndarray:
    """H(T) for a whole field (initial conditions and prescribed voxels)."""
    out = np.empty(temperature.shape)
    nx, ny, nz = temperature.shape
    for i in numba.prange(nx):
        for j in range(ny):
            for m in range(nz):
                out[i, j, m] = enthalpy_from_temperature(
                    temperature[i, j, m], properties[material[i, j, m]]
                )
    return out


@numba.njit(parallel=True, cache=True)
def total_enthalpy_j(enthalpy: np.ndarray, fixed: np.ndarray, voxel_volume_m3: float) -> float:
    """Σ H V over the free voxels [J] (fixed voxels' energy is supplied from outside)."""
    nx, ny, nz = enthalpy.shape
    total = 0.0
    for i in numba.prange(nx):
        for j in range(ny):
            for m in range(nz):
                if not fixed[i, j, m]:
                    total += enthalpy[i, j, m]
    return total * voxel_volume_m3


@numba.njit(parallel=True, cache=True)
def count_at_or_below(temperature: np.ndarray, thresholds_c: np.ndarray) -> np.ndarray:
    """Number of voxels at or below each threshold [°C]."""
    nx = temperature.shape[0]
    n_thr = thresholds_c.size
    partial = np.zeros((nx, n_thr), np.int64)
    for i in numba.prange(nx):
        for j in range(temperature.shape[1]):
            for m in range(temperature.shape[2]):
                t = temperature[i, j, m]
                for c in range(n_thr):
                    if t <= thresholds_c[c]:
                        partial[i, c] += 1
    return partial.sum(axis=0)
