"""Peer (2): the explicit enthalpy scheme written as a user would in vectorised NumPy.

Same physics and time stepping as cryoplan's CPU back end (`cryoplan.thermal.kernels`), with
whole-array operations instead of numba loops:

    H ← H + Δt/V · [ Σ_faces G_f (T_n − T_v) + φ(1 − d)(P V (T_a − T) + q V) − Wᵀ Q ]

- within a material the face flux is A/h·(Φ_n − Φ_v) with the Kirchhoff potential Φ(T);
  across materials A/h·2k_v k_n/(k_v + k_n)·(T_n − T_v), k from φ(T);
- an outer face held at T_b passes 2A/h·(Φ(T_b) − Φ_v); fixed voxels keep their temperature;
- perfusion and metabolism scale with the liquid fraction φ(H) and stop for good once a voxel
  has reached its lethal temperature;
- probes: W is the (samples × voxels) CSR matrix of kernel weights, T_s = W T, k_s = W k(φ(H)),
  Q_s = G_s (T_s − T_drive) with G_s = k_s·shape_factor in series with the wall film.

The step is cryoplan's stable step; steps are equal within each schedule segment and the probe
drives are taken at the start of each step.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import sparse

from cryoplan.thermal.backend import StepFlows, stable_time_step_s
from cryoplan.thermal.materials import (
    C_FROZEN,
    C_UNFROZEN,
    H_LIQUIDUS,
    K_FROZEN,
    K_UNFROZEN,
    METABOLIC,
    PERFUSION,
    T_LETHAL,
    T_LIQUIDUS,
    T_SOLIDUS,
)
from cryoplan.thermal.problem import FIXED_TEMPERATURE, ThermalProblem
from cryoplan.thermal.stepping import EnergyLedger

from .common import PeerResult, drive_arrays, schedule_steps


class Material:
    """Per-voxel property arrays and the enthalpy relations of `cryoplan.thermal.enthalpy`."""

    def __init__(self, properties: np.ndarray, material: np.ndarray) -> None:
        def column(c: int) -> np.ndarray:
            return properties[:, c][material]

        self.k_s, self.k_l = column(K_FROZEN), column(K_UNFROZEN)
        self.c_s, self.c_l = column(C_FROZEN), column(C_UNFROZEN)
        self.t_s, self.t_l = column(T_SOLIDUS), column(T_LIQUIDUS)
        self.h_l = column(H_LIQUIDUS)
        self.perfusion, self.metabolic = column(PERFUSION), column(METABOLIC)
        self.lethal = column(T_LETHAL)
        self.range = self.t_l - self.t_s  # ΔT (0 for a sharp front)
        self.safe_range = np.where(self.range > 0, self.range, 1.0)
        self.phi_l = 0.5 * (self.k_s + self.k_l) * self.range  # Φ at the liquidus

    def enthalpy(self, t: np.ndarray) -> np.ndarray:
        mushy = self.h_l * (t - self.t_s) / self.safe_range
        h = np.where(t >= self.t_l, self.h_l + self.c_l * (t - self.t_l), mushy)
        return np.where(t <= self.t_s, self.c_s * (t - self.t_s), h)

    def temperature(self, h: np.ndarray) -> np.ndarray:
        mushy = self.t_s + h / self.h_l * self.range
        t = np.where(h >= self.h_l, self.t_l + (h - self.h_l) / self.c_l, mushy)
        return np.where(h <= 0.0, self.t_s + h / self.c_s, t)

    def liquid_fraction(self, h: np.ndarray) -> np.ndarray:
        return np.clip(h / self.h_l, 0.0, 1.0)

    def conductivity(self, phi: np.ndarray) -> np.ndarray:
        return self.k_s + phi * (self.k_l - self.k_s)

    def kirchhoff(self, t: np.ndarray) -> np.ndarray:
        d = t - self.t_s
        mushy = self.k_s * d + (self.k_l - self.k_s) * d * d / (2.0 * self.safe_range)
        phi = np.where(t >= self.t_l, self.phi_l + self.k_l * (t - self.t_l), mushy)
        return np.where(t <= self.t_s, self.k_s * d, phi)


def _axis_slices(axis: int) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[axis], hi[axis] = slice(None, -1), slice(1, None)
    return tuple(lo), tuple(hi)


def _face_slice(axis: int, upper: bool) -> tuple[slice | int, ...]:
    s: list[slice | int] = [slice(None)] * 3
    s[axis] = -1 if upper else 0
    return tuple(s)


def solve_numpy(problem: ThermalProblem, dt_s: float | None = None) -> PeerResult:
    """Run the whole schedule of `problem` with the vectorised NumPy explicit enthalpy scheme."""
    started = time.perf_counter()
    dt_max = stable_time_step_s(problem) if dt_s is None else dt_s
    m = Material(problem.properties, problem.material)
    dx, dy, dz = problem.spacing_m
    volume = dx * dy * dz
    factors = (dy * dz / dx, dx * dz / dy, dx * dy / dz)  # A/h per axis
    fixed = problem.fixed
    free = ~fixed
    t_blood = problem.blood_temperature_c

    temperature = problem.initial_temperature_c.astype(np.float64).copy()
    fixed_index = np.flatnonzero(fixed)
    if problem.fixed_temperature_fn is not None:
        temperature.reshape(-1)[fixed_index] = problem.fixed_temperature_fn(0.0)
    enthalpy = m.enthalpy(temperature)
    kirchhoff = m.kirchhoff(temperature)
    t_min = temperature.copy()
    destroyed = temperature <= m.lethal

    # per axis: faces between two voxels of one material, and faces next to fixed voxels
    same_material = []
    fixed_lo_free_hi, free_lo_fixed_hi = [], []
    for axis in range(3):
        lo, hi = _axis_slices(axis)
        same_material.append(problem.material[lo] == problem.material[hi])
        fixed_lo_free_hi.append(fixed[lo] & free[hi])
        free_lo_fixed_hi.append(free[lo] & fixed[hi])
    all_same = all(s.all() for s in same_material)
    # held outer faces: Φ(T_b) of each boundary voxel's own material (constant in time)
    held_faces = []
    for face, kind in enumerate(problem.boundary_kind):
        if kind == FIXED_TEMPERATURE:
            axis, upper = divmod(face, 2)
            sl = _face_slice(axis, bool(upper))
            t_b = np.full(m.k_s[sl].shape, problem.boundary_temperature_c[face])
            phi_b = _kirchhoff_slice(m, sl, t_b)
            held_faces.append((sl, 2.0 * factors[axis], phi_b, free[sl]))

    p = problem.probes
    n_vox = temperature.size
    weights = sparse.csr_matrix(
        (p.weight, p.voxel_index, p.sample_start), shape=(p.n_samples, n_vox)
    )
    spread = weights.T.tocsr()  # voxels × samples

    ledger = EnergyLedger(initial_enthalpy_j=float(enthalpy[free].sum() * volume))
    n_steps = 0
    for step in schedule_steps(problem, dt_max):
        dt = step.dt_s
        if problem.fixed_temperature_fn is not None:
            temperature.reshape(-1)[fixed_index] = problem.fixed_temperature_fn(step.t_s)
            kirchhoff = m.kirchhoff(temperature)
        phi_h = m.liquid_fraction(enthalpy)

        # probe exchange on the temperatures at the start of the step
        probes_w = 0.0
        q_probe = None
        if p.n_samples:
            drive_t, films, active = drive_arrays(step.segment, step.t_s)
            sp = p.probe_of_sample
            t_sample = weights @ temperature.reshape(-1)
            k_sample = weights @ m.conductivity(phi_h).reshape(-1)
            g = k_sample * p.shape_factor_m
            h = films[sp]
            gas = np.isfinite(h)
            g_film = h[gas] * p.wall_area_m2[gas]
            g[gas] = g[gas] * g_film / (g[gas] + g_film)
            heat_out = np.where(active[sp], g * (t_sample - drive_t[sp]), 0.0)
            q_probe = (spread @ heat_out).reshape(temperature.shape)
            probes_w = -float(heat_out.sum())

        # conduction: one flux per interior face, from the upper voxel into the lower one
        q = np.zeros_like(temperature)
        fixed_w = 0.0
        k_t = None if all_same else m.conductivity(m.liquid_fraction(m.enthalpy(temperature)))
        for axis in range(3):
            lo, hi = _axis_slices(axis)
            flux = factors[axis] * (kirchhoff[hi] - kirchhoff[lo])
            if k_t is not None:
                k_lo, k_hi = k_t[lo], k_t[hi]
                harmonic = factors[axis] * 2.0 * k_lo * k_hi / (k_lo + k_hi)
                flux = np.where(
                    same_material[axis], flux, harmonic * (temperature[hi] - temperature[lo])
                )
            q[lo] += flux
            q[hi] -= flux
            fixed_w += float(flux[free_lo_fixed_hi[axis]].sum())
            fixed_w -= float(flux[fixed_lo_free_hi[axis]].sum())
        boundary_w = 0.0
        for sl, factor, phi_b, free_face in held_faces:
            flux = factor * (phi_b - kirchhoff[sl])
            q[sl] += flux
            boundary_w += float(flux[free_face].sum())

        # perfusion and metabolism, off where frozen (φ = 0) or destroyed
        alive_phi = np.where(destroyed, 0.0, phi_h)
        q_perf = alive_phi * m.perfusion * volume * (t_blood - temperature)
        q_met = alive_phi * m.metabolic * volume
        q += q_perf + q_met

        update = dt / volume * q
        if q_probe is not None:
            update -= dt / volume * q_probe
        enthalpy = np.where(fixed, enthalpy, enthalpy + update)

        temperature = np.where(fixed, temperature, m.temperature(enthalpy))
        kirchhoff = m.kirchhoff(temperature)
        np.minimum(t_min, temperature, out=t_min)
        destroyed |= temperature <= m.lethal
        ledger.add(
            StepFlows(
                probes_w, float(q_perf[free].sum()), float(q_met[free].sum()), boundary_w, fixed_w
            ),
            dt,
        )
        n_steps += 1

    ledger.final_enthalpy_j = float(enthalpy[free].sum() * volume)
    return PeerResult(
        solver="numpy-explicit",
        minimum_temperature_c=t_min,
        final_temperature_c=temperature,
        n_steps=n_steps,
        time_step_s=dt_max,
        wall_time_s=time.perf_counter() - started,
        ledger_relative_error=ledger.relative_error,
        ledger=ledger.as_dict(),
    )


def _kirchhoff_slice(m: Material, sl: tuple[slice | int, ...], t: np.ndarray) -> np.ndarray:
    """Φ(t) with the material of the voxels in slice `sl`."""
    d = t - m.t_s[sl]
    k_s, k_l = m.k_s[sl], m.k_l[sl]
    mushy = k_s * d + (k_l - k_s) * d * d / (2.0 * m.safe_range[sl])
    phi = np.where(t >= m.t_l[sl], m.phi_l[sl] + k_l * (t - m.t_l[sl]), mushy)
    return np.where(t <= m.t_s[sl], k_s * d, phi)
