"""Solver back ends: the one interface a CPU, GPU or implicit solver implements.

A back end owns the state arrays of one `ThermalProblem` and advances them by a given step.
The time loop, the schedule and the recording live in `thermal.stepping`, so a new back end
only has to implement `ThermalBackend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numba
import numpy as np

from cryoplan.thermal import kernels, regions
from cryoplan.thermal.materials import (
    C_FROZEN,
    C_FROZEN_SLOPE,
    C_MUSHY,
    C_UNFROZEN,
    K_FROZEN,
    K_FROZEN_SLOPE,
    K_UNFROZEN,
    LATENT,
    PERFUSION,
    T_LIQUIDUS,
    T_SOLIDUS,
)
from cryoplan.thermal.problem import FIXED_TEMPERATURE, ThermalProblem
from cryoplan.thermal.threads import solver_threads, threads_for

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
    far_field_w: float = 0.0  # from voxels a back end left at rest (multirate active region)


class Region(NamedTuple):
    """Voxels the CPU kernels sweep: slabs x_lo ≤ i < x_hi, slab i holding rows
    bounds[i, 0] ≤ j < bounds[i, 1] and columns bounds[i, 2] ≤ m < bounds[i, 3] (a slab
    with empty bounds holds none). A box is the case of equal bounds in every slab; the
    multirate back end's active region follows the disturbed tissue slab by slab."""

    x_lo: int
    x_hi: int
    bounds: np.ndarray  # int64 (nx, 4)

    @classmethod
    def box(cls, lo: np.ndarray, hi: np.ndarray, nx: int) -> Region:
        bounds = np.zeros((nx, 4), np.int64)
        bounds[lo[0] : hi[0]] = [lo[1], hi[1], lo[2], hi[2]]
        return cls(int(lo[0]), int(hi[0]), bounds)

    @classmethod
    def empty(cls, nx: int) -> Region:
        return cls(0, 0, np.zeros((nx, 4), np.int64))

    def voxels(self) -> int:
        return regions.voxel_count(self.bounds, self.x_lo, self.x_hi)


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

    def temperature_c(self) -> np.ndarray:
        """A new field of the temperatures [°C] now."""
        ...

    def temperature_at_voxels_c(self, flat_index: np.ndarray) -> np.ndarray:
        """The temperatures [°C] of the voxels at these flat (C-order) indices."""
        ...

    def final_temperature_c(self) -> np.ndarray:
        """The temperature field at the end of the run; the back end may reuse storage it no
        longer needs, and cannot be stepped afterwards."""
        ...

    def minimum_temperature_c(self) -> np.ndarray: ...

    def destroyed(self) -> np.ndarray: ...

    def freeze_thaw_cycles(self) -> np.ndarray: ...

    def liquid_fraction(self) -> np.ndarray: ...

    def total_enthalpy_j(self) -> float: ...

    def volume_at_or_below_m3(self, thresholds_c: np.ndarray) -> np.ndarray: ...


def stable_time_step_s(
    problem: ThermalProblem, safety: float = STABILITY_SAFETY, *, frozen: bool = True
) -> float:
    """Largest explicit step [s] that keeps every free voxel's update monotone.

    For free voxel v: Δt ≤ safety · C_v V / (Σ_faces G_v + P_v V + Σ_s w_sv G_s),
    with conductances at the larger of the frozen and unfrozen conductivities and the
    smaller capacity (`frozen=True`, any state), or, for voxels that start the step unfrozen
    or on their freezing range (`frozen=False`, the multirate back end's coarse step), with
    the worse of the unfrozen pair (k_l, C_l) and the mushy pair (k_s, C_m + L/ΔT): such a
    voxel cannot lose its latent heat, and so become fully frozen, within one step.
    """
    worst, _ = worst_stability_rates_per_s(problem, frozen=frozen)
    return safety / worst if worst > 0.0 else float("inf")


def worst_stability_rates_per_s(
    problem: ThermalProblem, *, frozen: bool = True
) -> tuple[float, float]:
    """The largest (Σ G + P V + Σ_s w G_s)/(C V) [1/s] of `stable_time_step_s` over all free
    voxels, and over the free voxels off the domain's faces (a held outer face doubles a
    face's conductance there). Computed voxel by voxel: no field of rates is kept."""
    props = problem.properties
    if frozen:
        # a frozen voxel's k rises and C falls below the solidus: take both at the coldest
        # temperature the run can reach
        depth_k = np.maximum(props[:, T_SOLIDUS] - problem.coldest_temperature_c(), 0.0)
        k_coldest = props[:, K_FROZEN] + props[:, K_FROZEN_SLOPE] * depth_k
        c_coldest = props[:, C_FROZEN] - props[:, C_FROZEN_SLOPE] * depth_k
        k_max = np.maximum(k_coldest, props[:, K_UNFROZEN])
        c_min = np.minimum(c_coldest, props[:, C_UNFROZEN])
    else:
        freezing_range = props[:, T_LIQUIDUS] - props[:, T_SOLIDUS]
        with np.errstate(divide="ignore"):
            c_mushy = props[:, C_MUSHY] + props[:, LATENT] / freezing_range
        # the pair with the larger diffusivity k/C sets the limit
        use_mushy = props[:, K_FROZEN] * props[:, C_UNFROZEN] > props[:, K_UNFROZEN] * c_mushy
        k_max = np.where(use_mushy, props[:, K_FROZEN], props[:, K_UNFROZEN])
        c_min = np.where(use_mushy, c_mushy, props[:, C_UNFROZEN])
    dx, dy, dz = problem.spacing_m
    factors = np.array([dy * dz / dx, dx * dz / dy, dx * dy / dz])
    held = np.array([kind == FIXED_TEMPERATURE for kind in problem.boundary_kind])
    material = np.ascontiguousarray(problem.material, np.uint8)
    fixed = np.ascontiguousarray(problem.fixed, np.bool_)
    # probe samples add w_sv G_s to their voxels' conductance (probes sit in the multirate
    # fine region, never in the coarse one)
    probes = problem.probes
    probe_voxels, probe_g = np.zeros(0, np.int64), np.zeros(0)
    if probes.n_samples and frozen:
        k_flat = k_max[material.reshape(-1)[probes.voxel_index]]
        per_entry_sample = np.repeat(np.arange(probes.n_samples), np.diff(probes.sample_start))
        k_sample = np.zeros(probes.n_samples)
        np.maximum.at(k_sample, per_entry_sample, k_flat)
        g_entry = probes.weight * (k_sample * probes.shape_factor_m)[per_entry_sample]
        probe_voxels, where = np.unique(probes.voxel_index, return_inverse=True)
        probe_g = np.bincount(where, weights=g_entry)
    worst = kernels.worst_stability_rates(
        material, fixed, k_max, c_min, props[:, PERFUSION].copy(), factors, held,
        problem.voxel_volume_m3, probe_voxels, probe_g,
    )  # fmt: skip
    return float(worst[0]), float(worst[1])


def probe_voxel_index(
    sample_start: np.ndarray, voxel_index: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The probe kernels' entries by voxel, for `kernels.probe_exchange` and
    `kernels.spread_probe_heat`: (the distinct voxels u (flat indices), each entry's u, and,
    with the entries sorted by voxel, where each u's entries start (n + 1), their samples
    and their weights)."""
    voxels, entry_voxel = np.unique(voxel_index, return_inverse=True)
    by_voxel = np.argsort(entry_voxel, kind="stable")
    starts = np.searchsorted(entry_voxel[by_voxel], np.arange(voxels.size + 1))
    entry_sample = np.repeat(np.arange(sample_start.size - 1), np.diff(sample_start))
    return (
        voxels.astype(np.int64), entry_voxel.astype(np.int64), starts.astype(np.int64),
        entry_sample[by_voxel].astype(np.int64), np.ascontiguousarray(weight[by_voxel]),
    )  # fmt: skip


class CpuStateBackend:
    """The state arrays of the CPU back ends (float64) and what the time loop reads of them.

    The state is H and Φ: T is derived from H where it is needed (see `kernels`), so a
    voxel costs 8 bytes less and a voxel update moves 16 bytes less.

    Subclasses implement `step` and `stable_time_step_s`.
    """

    name = "cpu-state"
    # the compiled functions it calls (`jit.compile_entries` compiles them before a run),
    # the costliest first
    entries = (
        kernels.sweep, kernels.uniform_voxels, kernels.enthalpy_field, kernels.temperature_field,
        kernels.temperature_of_voxels, kernels.liquid_fraction_field, kernels.total_enthalpy_j,
        kernels.count_at_or_below, kernels.worst_stability_rates,
    )  # fmt: skip

    def __init__(self, problem: ThermalProblem) -> None:
        self.problem = problem
        self.threads = solver_threads()
        shape = problem.shape
        self._material = np.ascontiguousarray(problem.material, dtype=np.uint8)
        self._fixed = np.ascontiguousarray(problem.fixed, dtype=np.bool_)
        self._fixed_flat_index = np.flatnonzero(self._fixed)
        self._uniform = kernels.uniform_voxels(self._material, self._fixed)
        self._no_faces = np.zeros((6, 1, 1))  # face book of calls that keep none
        self._props = np.ascontiguousarray(problem.properties, dtype=np.float64)
        self._spacing = np.asarray(problem.spacing_m, dtype=np.float64)
        self._bkind = np.asarray(problem.boundary_kind, dtype=np.int64)
        self._btemp = np.asarray(problem.boundary_temperature_c, dtype=np.float64)
        self._volume = problem.voxel_volume_m3
        # a fixed voxel holds H of its prescribed temperature
        self._enthalpy = kernels.enthalpy_field(
            np.ascontiguousarray(problem.initial_temperature_c, np.float64),
            self._material,
            self._props,
        )
        self._kirchhoff = np.empty(shape)
        # T_min and φ are records, not state the scheme reads: float32 (7 digits, a
        # microkelvin at body temperature) keeps 4 bytes a voxel each off the peak.
        self._tmin = np.full(shape, np.inf, np.float32)
        self._destroyed = np.zeros(shape, np.bool_)
        self._frozen = np.zeros(shape, np.bool_)
        self._cycles = np.zeros(shape, np.uint8)
        p = problem.probes
        self._sample_probe = p.probe_of_sample
        self._heat_out = np.zeros(p.n_samples)
        self._probe_index = probe_voxel_index(p.sample_start, p.voxel_index, p.weight)
        self._probe_voxel_scratch = np.empty((2, self._probe_index[0].size))
        n = p.n_samples
        self._no_drives = (np.zeros(n), np.zeros(n), np.zeros(n, bool))  # sweeps with no probes
        self._whole = Region.box(np.zeros(3, np.int64), np.asarray(shape, np.int64), shape[0])
        self._no_hole = Region.empty(shape[0])
        # per slab, bounds [j_lo, j_hi, m_lo, m_hi) of the voxels below their liquidus
        self._cold_bounds = np.zeros((shape[0], 4), np.int64)
        self._refresh(self._whole, self._no_hole)

    def _sweep(
        self,
        mode: int,
        region: Region,
        hole: Region,
        n_sub: int = 1,
        step_s: float = 0.0,
        face_heat_j: np.ndarray | None = None,
        face_weight_s: float = 0.0,
        drives: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> np.ndarray:
        """`kernels.sweep` of the region minus the hole on this back end's state, on one
        thread if the region is small (`threads.threads_for`); the energy [J] it moved:
        (perfusion, metabolism, boundary, fixed voxels, outside, probes)."""
        p = self.problem.probes
        if drives is None:
            drive_c, film, active = self._no_drives
        else:
            sp = self._sample_probe
            drive_c, film, active = (np.ascontiguousarray(d[sp]) for d in drives)
        threads = threads_for(region.voxels(), self.threads)
        if numba.get_num_threads() != threads:
            numba.set_num_threads(threads)  # this thread's setting (numba keeps one a thread)
        return kernels.sweep(
            mode, n_sub, step_s, face_weight_s,
            self._enthalpy, self._kirchhoff, self._material, self._fixed, self._uniform,
            self._destroyed, self._frozen, self._cycles, self._tmin, self._props,
            self._spacing, self._bkind, self._btemp, self.problem.blood_temperature_c,
            region.x_lo, region.x_hi, region.bounds, hole.x_lo, hole.x_hi, hole.bounds,
            self._no_faces if face_heat_j is None else face_heat_j, self._cold_bounds,
            p.sample_start, p.weight, p.shape_factor_m, p.wall_area_m2, drive_c, film, active,
            self._probe_index, self._probe_voxel_scratch, self._heat_out,
        )  # fmt: skip

    def _refresh(self, region: Region, hole: Region) -> None:
        """Refresh T, Φ and the records in the region minus the hole; widen `_cold_bounds`
        to the voxels found below their liquidus."""
        self._sweep(kernels.REFRESH, region, hole)

    def _advance(
        self,
        dt_s: float,
        region: Region,
        hole: Region,
        face_heat_j: np.ndarray | None = None,
        face_weight_s: float = 0.0,
    ) -> tuple[float, float, float, float, float]:
        """Conduction, perfusion, metabolism in the region minus the hole: (perf, met, bnd,
        fix, outside) W, and face_weight_s × the flux across the region's faces added to
        face_heat_j (see `kernels._advance_slab`)."""
        energy = self._sweep(
            kernels.ADVANCE, region, hole, 1, dt_s, face_heat_j,
            face_weight_s if face_heat_j is not None else 0.0,
        )  # fmt: skip
        perf, met, bnd, fix, outside = energy[:5] / dt_s
        return perf, met, bnd, fix, outside

    def _substeps(
        self,
        region: Region,
        n_sub: int,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
        face_heat_j: np.ndarray,
    ) -> np.ndarray:
        """n_sub reference steps of dt_s/n_sub over the region (`kernels.sweep` SUBSTEPS:
        probe exchange on the temperatures at the start of each, conduction, probe heat,
        refresh; the region's faces booked into face_heat_j); the energy [J] the region
        received: (perfusion, metabolism, boundary, fixed voxels, probes)."""
        energy = self._sweep(
            kernels.SUBSTEPS, region, self._no_hole, n_sub, dt_s, face_heat_j,
            drives=(drive_temperature_c, film_coefficient_w_m2k, drive_active),
        )  # fmt: skip
        return energy[[0, 1, 2, 3, 5]]

    def set_fixed_temperature(self, values_c: np.ndarray) -> None:
        kernels.set_temperature_of_voxels(
            self._enthalpy.reshape(-1), self._material.reshape(-1), self._props,
            self._fixed_flat_index, np.ascontiguousarray(values_c, np.float64),
        )  # fmt: skip
        self._refresh(self._whole, self._no_hole)

    def temperature_c(self) -> np.ndarray:
        out = np.empty(self.problem.shape)
        kernels.temperature_field(self._enthalpy, self._material, self._props, out)
        return out

    def temperature_at_voxels_c(self, flat_index: np.ndarray) -> np.ndarray:
        return kernels.temperature_of_voxels(
            self._enthalpy.reshape(-1), self._material.reshape(-1), self._props,
            np.ascontiguousarray(flat_index, np.int64),
        )  # fmt: skip

    def final_temperature_c(self) -> np.ndarray:
        # Φ is not needed once the run is over: T takes its place (no new field at the peak)
        out, self._kirchhoff = self._kirchhoff, None
        kernels.temperature_field(self._enthalpy, self._material, self._props, out)
        return out

    def minimum_temperature_c(self) -> np.ndarray:
        return self._tmin

    def destroyed(self) -> np.ndarray:
        return self._destroyed

    def freeze_thaw_cycles(self) -> np.ndarray:
        return self._cycles

    def liquid_fraction(self) -> np.ndarray:
        return kernels.liquid_fraction_field(self._enthalpy, self._material, self._props)

    def total_enthalpy_j(self) -> float:
        return float(kernels.total_enthalpy_j(self._enthalpy, self._fixed, self._volume))

    def volume_at_or_below_m3(self, thresholds_c: np.ndarray) -> np.ndarray:
        whole = self._whole
        counts = kernels.count_at_or_below(
            self._enthalpy, self._material, self._fixed, self._props,
            np.asarray(thresholds_c, float), whole.x_lo, whole.x_hi, whole.bounds,
            kernels.COUNT_ALL,
        )  # fmt: skip
        return counts * self._volume


class CpuExplicitBackend(CpuStateBackend):
    """The reference path: one explicit step of the whole domain at the global stable step.

    Probe heat is computed on the temperatures at the start of the step, like conduction.
    """

    name = "cpu-explicit"

    def stable_time_step_s(self) -> float:
        return stable_time_step_s(self.problem)

    def step(
        self,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
    ) -> StepFlows:
        # the probe exchange reads T before conduction changes H; T is refreshed after both
        energy = self._substeps(
            self._whole, 1, dt_s, drive_temperature_c, film_coefficient_w_m2k, drive_active,
            self._no_faces,
        )  # fmt: skip
        perf, met, bnd, fix, probes = energy / dt_s
        return StepFlows(probes, perf, met, bnd, fix)
