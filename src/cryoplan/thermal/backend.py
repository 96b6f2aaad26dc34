"""Solver back ends: the one interface a CPU, GPU or implicit solver implements.

A back end owns the state arrays of one `ThermalProblem` and advances them by a given step.
The time loop, the schedule and the recording live in `thermal.stepping`, so a new back end
only has to implement `ThermalBackend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from cryoplan.thermal import kernels
from cryoplan.thermal.materials import (
    C_FROZEN,
    C_UNFROZEN,
    K_FROZEN,
    K_UNFROZEN,
    PERFUSION,
)
from cryoplan.thermal.problem import FIXED_TEMPERATURE, ThermalProblem

# Fraction of the explicit stability limit used as the time step. The limit
# Δt·(Σ G + P V)/(C_min V) ≤ 1 keeps the update monotone (a discrete maximum principle)
# for any enthalpy curve whose slope dT/dH is at most 1/C_min; 0.9 leaves room for the
# conductivity changing within a step.
STABILITY_SAFETY = 0.9


@dataclass
class StepFlows:
    """Heat rates [W] into the free voxels during one step, by where the heat came from."""

    probes_w: float
    perfusion_w: float
    metabolic_w: float
    boundary_w: float
    fixed_w: float


class ThermalBackend(Protocol):
    """What the time loop needs from a solver back end."""

    name: str

    def stable_time_step_s(self) -> float: ...

    def step(
        self,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
    ) -> StepFlows:
        """Advance by dt_s with per-probe drive arrays (temperature, film coefficient, on/off)."""
        ...

    def set_fixed_temperature(self, values_c: np.ndarray) -> None: ...

    def temperature_c(self) -> np.ndarray: ...

    def minimum_temperature_c(self) -> np.ndarray: ...

    def destroyed(self) -> np.ndarray: ...

    def freeze_thaw_cycles(self) -> np.ndarray: ...

    def liquid_fraction(self) -> np.ndarray: ...

    def total_enthalpy_j(self) -> float: ...

    def volume_at_or_below_m3(self, thresholds_c: np.ndarray) -> np.ndarray: ...


def stable_time_step_s(problem: ThermalProblem, safety: float = STABILITY_SAFETY) -> float:
    """Largest explicit step [s] that keeps every free voxel's update monotone.

    For free voxel v: Δt ≤ safety · C_min,v V / (Σ_faces G_max + P_v V + Σ_s w_sv G_s,max),
    with conductances at the larger of the frozen and unfrozen conductivities.
    """
    props = problem.properties
    mat = problem.material
    k_max = np.maximum(props[:, K_FROZEN], props[:, K_UNFROZEN])[mat]
    c_min = np.minimum(props[:, C_FROZEN], props[:, C_UNFROZEN])[mat]
    dx, dy, dz = problem.spacing_m
    volume = dx * dy * dz
    factors = (dy * dz / dx, dx * dz / dy, dx * dy / dz)
    conductance = np.zeros(mat.shape)
    for axis, factor in enumerate(factors):
        a = np.moveaxis(k_max, axis, 0)
        g = np.moveaxis(conductance, axis, 0)  # view: writes land in `conductance`
        face = factor * 2.0 * a[1:] * a[:-1] / (a[1:] + a[:-1])
        g[1:] += face
        g[:-1] += face
        if problem.boundary_kind[2 * axis] == FIXED_TEMPERATURE:
            g[0] += 2.0 * factor * a[0]
        if problem.boundary_kind[2 * axis + 1] == FIXED_TEMPERATURE:
            g[-1] += 2.0 * factor * a[-1]
    conductance += props[:, PERFUSION][mat] * volume
    probes = problem.probes
    if probes.n_samples:
        k_flat = k_max.ravel()
        per_entry_sample = np.repeat(np.arange(probes.n_samples), np.diff(probes.sample_start))
        k_sample = np.zeros(probes.n_samples)
        np.maximum.at(k_sample, per_entry_sample, k_flat[probes.voxel_index])
        g_sample = k_sample * probes.shape_factor_m
        np.add.at(
            conductance.reshape(-1),
            probes.voxel_index,
            probes.weight * g_sample[per_entry_sample],
        )
    rate = conductance / (c_min * volume)
    rate[problem.fixed] = 0.0
    worst = float(rate.max())
    if worst <= 0.0:
        return float("inf")
    return safety / worst


class CpuExplicitBackend:
    """Explicit enthalpy scheme on the CPU with numba kernels (float64 state)."""

    name = "cpu-explicit"

    def __init__(self, problem: ThermalProblem) -> None:
        self.problem = problem
        shape = problem.shape
        self._material = np.ascontiguousarray(problem.material, dtype=np.uint8)
        self._fixed = np.ascontiguousarray(problem.fixed, dtype=np.bool_)
        self._fixed_flat_index = np.flatnonzero(self._fixed)
        self._props = np.ascontiguousarray(problem.properties, dtype=np.float64)
        self._spacing = np.asarray(problem.spacing_m, dtype=np.float64)
        self._bkind = np.asarray(problem.boundary_kind, dtype=np.int64)
        self._btemp = np.asarray(problem.boundary_temperature_c, dtype=np.float64)
        self._volume = problem.voxel_volume_m3
        self._temperature = np.array(problem.initial_temperature_c, dtype=np.float64, order="C")
        self._enthalpy = kernels.enthalpy_field(self._temperature, self._material, self._props)
        self._kirchhoff = np.empty(shape)
        self._tmin = np.full(shape, np.inf)
        self._destroyed = np.zeros(shape, np.bool_)
        self._frozen = np.zeros(shape, np.bool_)
        self._cycles = np.zeros(shape, np.uint8)
        p = problem.probes
        self._sample_probe = p.probe_of_sample
        self._heat_out = np.zeros(p.n_samples)
        self._refresh()

    def _refresh(self) -> None:
        kernels.refresh_temperature(
            self._enthalpy,
            self._temperature,
            self._kirchhoff,
            self._material,
            self._fixed,
            self._props,
            self._tmin,
            self._destroyed,
            self._frozen,
            self._cycles,
        )

    def stable_time_step_s(self) -> float:
        return stable_time_step_s(self.problem)

    def set_fixed_temperature(self, values_c: np.ndarray) -> None:
        self._temperature.reshape(-1)[self._fixed_flat_index] = values_c
        self._refresh()

    def step(
        self,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
    ) -> StepFlows:
        p = self.problem.probes
        t_flat = self._temperature.reshape(-1)
        h_flat = self._enthalpy.reshape(-1)
        if p.n_samples:
            sp = self._sample_probe
            kernels.probe_exchange(
                t_flat,
                h_flat,
                self._material.reshape(-1),
                self._props,
                p.sample_start,
                p.voxel_index,
                p.weight,
                p.shape_factor_m,
                p.wall_area_m2,
                drive_temperature_c[sp],
                film_coefficient_w_m2k[sp],
                drive_active[sp],
                self._heat_out,
            )
        perf, met, bnd, fix = kernels.advance_enthalpy(
            self._enthalpy,
            self._temperature,
            self._kirchhoff,
            self._material,
            self._fixed,
            self._destroyed,
            self._props,
            self._spacing,
            self._bkind,
            self._btemp,
            self.problem.blood_temperature_c,
            dt_s,
        )
        probes_w = 0.0
        if p.n_samples:
            probes_w = kernels.spread_probe_heat(
                h_flat, self._heat_out, p.sample_start, p.voxel_index, p.weight, dt_s, self._volume
            )
        self._refresh()
        return StepFlows(probes_w, perf, met, bnd, fix)

    def temperature_c(self) -> np.ndarray:
        return self._temperature

    def minimum_temperature_c(self) -> np.ndarray:
        return self._tmin

    def destroyed(self) -> np.ndarray:
        return self._destroyed

    def freeze_thaw_cycles(self) -> np.ndarray:
        return self._cycles

    def liquid_fraction(self) -> np.ndarray:
        return kernels.liquid_fraction_field(
            self._enthalpy, self._temperature, self._material, self._fixed, self._props
        )

    def total_enthalpy_j(self) -> float:
        return float(kernels.total_enthalpy_j(self._enthalpy, self._fixed, self._volume))

    def volume_at_or_below_m3(self, thresholds_c: np.ndarray) -> np.ndarray:
        counts = kernels.count_at_or_below(self._temperature, np.asarray(thresholds_c, float))
        return counts * self._volume
