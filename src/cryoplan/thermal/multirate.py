"""Multirate explicit back end: short steps where there is ice, long steps everywhere else.

The explicit step is limited by the most diffusive state a voxel can be in. Frozen tissue
conducts about four times better than unfrozen tissue and stores half the heat per kelvin,
so the global step (`stable_time_step_s(problem)`) is set by ice, yet ice fills a few
percent of a planning domain. This back end splits each step Δt of the time loop:

* the **fine box**: the bounding box of every voxel below its liquidus and of every probe's
  coupling kernel, grown by `HALO_VOXELS`, advanced in n equal substeps δ = Δt/n, each no
  longer than the frozen-state stable step;
* the **coarse region**: all other voxels, unfrozen or on their freezing range at the start
  of the step, advanced in one step Δt, no longer than `stable_time_step_s(problem,
  frozen=False)` (a voxel that starts a step unfrozen cannot lose its latent heat within it).

Coupling keeps energy exact. The coarse voxels take their one step first, on the state at
the start of Δt, including the face fluxes F₀ they exchange with the fine box. The fine
voxels then see their coarse neighbours as they were at the start of Δt (the coarse
temperatures are refreshed only at the end) and receive the fluxes F_k of their own current
state in every substep; `kernels.advance_enthalpy` books those, and the coarse neighbours
are finally given the difference Δt·F₀ − Σ δ·F_k, so that over Δt each side of every face
receives exactly what the other gave. The coupling is first order in time across the box
faces, which lie in unfrozen tissue at least `HALO_VOXELS` from any ice; inside the box the
scheme is the reference scheme.
The coarse step itself covers only an **active region**: voxels still at their basal state
(`thermal.steady`, to within `FAR_FIELD_TOLERANCE_K`) are left at rest, and the heat they
pass to the region is booked as the ledger's far-field term. The region is a box per slab
(`backend.Region`): after every step, each slab's box is the bounding box of its disturbed
voxels and of those of the slabs within `REGION_MARGIN_VOXELS`, grown by that margin, and
it always holds the fine box grown by `FINE_PAD_VOXELS`. A disturbance travels at most one
voxel per explicit step, so the margin keeps it inside. Per slab, the region follows the
round shape of the disturbed tissue (on case M about half the voxels of one bounding box).

Probe drives are those given for the start of Δt (the reference re-evaluates a ramped drive
every step; the catalogue's drives are constant within a phase).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from scipy import ndimage

from cryoplan.thermal import kernels
from cryoplan.thermal.backend import (
    STABILITY_SAFETY,
    CpuStateBackend,
    Region,
    StepFlows,
    worst_stability_rates_per_s,
)
from cryoplan.thermal.materials import C_FROZEN, C_UNFROZEN
from cryoplan.thermal.problem import ThermalProblem

# Unfrozen voxels kept in the fine box around the ice. The ice front moves well under a
# voxel per coarse step (about 0.1 mm/s against 1 mm per ~1 s), so three voxels keep every
# face between fine and coarse voxels in unfrozen tissue with room to spare.
HALO_VOXELS = 3
# A voxel within this of its basal temperature counts as undisturbed. The isotherms lie
# where gradients exceed 1 K/mm, and what the box leaves out decays over the perfusion length
# (~3 mm in liver) before it reaches them: on case M, 10 mK moved no isotherm by more than
# 0.0035 mm against the reference path, the same as 1 mK did, with 28 % fewer voxels stepped.
FAR_FIELD_TOLERANCE_K = 1e-2
REGION_MARGIN_VOXELS = 3  # around the disturbed voxels, re-drawn every step
FINE_PAD_VOXELS = 3  # coarse voxels around the fine box (they receive its face book)
DRIFT_CHECK_SLABS = 8  # slabs per chunk of the at-rest check (memory, not accuracy)


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bounding box [lo_xyz, hi_xyz) of two boxes (an empty box has hi ≤ lo on an axis)."""
    if np.any(a[3:] <= a[:3]):
        return b
    if np.any(b[3:] <= b[:3]):
        return a
    return np.concatenate([np.minimum(a[:3], b[:3]), np.maximum(a[3:], b[3:])])


def _step_limits_s(rates_per_s: tuple[float, float]) -> tuple[float, float]:
    """Stable step [s] over all voxels, and over the voxels off the domain's faces, from
    `worst_stability_rates_per_s`."""

    def limit(rate: float) -> float:
        return STABILITY_SAFETY / rate if rate > 0 else np.inf

    edge = limit(rates_per_s[0])
    return edge, max(edge, limit(rates_per_s[1]))


class CpuMultirateBackend(CpuStateBackend):
    """The reference scheme inside a fine box around the ice and probes, substepped; one long
    explicit step for the rest (see the module docstring)."""

    name = "cpu-multirate"

    def __init__(self, problem: ThermalProblem) -> None:
        super().__init__(problem)
        # Each step has two limits: over all voxels, and over those off the domain's faces
        # (held faces double a face's conductance), used while a box keeps clear of them.
        self._fine_step_s, self._interior_fine_step_s = _step_limits_s(
            worst_stability_rates_per_s(problem)
        )
        edge, interior = _step_limits_s(worst_stability_rates_per_s(problem, frozen=False))
        self._edge_coarse_step_s = max(self._fine_step_s, edge)
        self._coarse_step_s = max(self._edge_coarse_step_s, interior)
        shape = np.asarray(problem.shape, np.int64)
        self._shape = shape
        p = problem.probes
        if p.n_samples:
            ijk = np.array(np.unravel_index(p.voxel_index, problem.shape))
            self._probe_box = np.concatenate([ijk.min(axis=1), ijk.max(axis=1) + 1])
        else:
            self._probe_box = np.zeros(6, np.int64)
        self._face_flux = np.zeros((6, int(shape.max()), int(shape.max())))
        self._basal = np.ascontiguousarray(problem.initial_temperature_c, np.float64)
        # Voxels may be left at rest only if the initial state is a steady state; and
        # time-varying fixed voxels disturb wherever they are.
        self._at_rest = (
            problem.fixed_temperature_fn is None
            and self._drift_at_rest_k() <= FAR_FIELD_TOLERANCE_K
        )
        self._active = (
            Region(0, 0, np.zeros((int(shape[0]), 4), np.int64)) if self._at_rest else self._whole
        )
        self.voxel_updates = 0  # fine voxels count once per substep

    def _drift_at_rest_k(self) -> float:
        """Largest |T change| [K] the initial state would undergo over the whole schedule
        with the probes off, at its initial rate. One slab of voxels at a time, each put back
        as it was, so that the check needs no second copy of the field."""
        capacity = np.minimum(self._props[:, C_FROZEN], self._props[:, C_UNFROZEN])
        worst_k_s = 0.0
        for start in range(0, int(self._shape[0]), DRIFT_CHECK_SLABS):
            stop = min(start + DRIFT_CHECK_SLABS, int(self._shape[0]))
            saved = self._enthalpy[start:stop].copy()
            self._advance(1.0, self._whole._replace(x_lo=start, x_hi=stop), *self._no_hole)
            change = np.abs(self._enthalpy[start:stop] - saved)
            rate = change / capacity[self._material[start:stop]]
            worst_k_s = max(worst_k_s, float(rate.max(initial=0.0)))
            self._enthalpy[start:stop] = saved
        return worst_k_s * self.problem.duration_s

    def stable_time_step_s(self) -> float:
        return self._coarse_step_s

    def fine_box(self) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) of the voxels that take short steps (grown, clipped to the domain)."""
        box = _union(self._cold_box, self._probe_box)
        if np.any(box[3:] <= box[:3]):
            return np.zeros(3, np.int64), np.zeros(3, np.int64)
        lo = np.maximum(box[:3] - HALO_VOXELS, 0)
        hi = np.minimum(box[3:] + HALO_VOXELS, self._shape)
        return lo.astype(np.int64), hi.astype(np.int64)

    def active_region(self) -> Region:
        """The voxels the coarse step updates (with the fine box as its hole)."""
        return self._active

    def _with_fine_box(self, region: Region, lo: np.ndarray, hi: np.ndarray) -> Region:
        """region ∪ the box [lo, hi) grown by FINE_PAD_VOXELS, slab by slab."""
        if not np.prod(np.maximum(hi - lo, 0)):
            return region
        pad = FINE_PAD_VOXELS
        g_lo = np.maximum(lo - pad, 0)
        g_hi = np.minimum(hi + pad, self._shape)
        bounds = region.bounds.copy()
        rows = bounds[g_lo[0] : g_hi[0]]
        empty = (rows[:, 1] <= rows[:, 0]) | (rows[:, 3] <= rows[:, 2])
        box = np.array([g_lo[1], g_hi[1], g_lo[2], g_hi[2]])
        rows[empty] = box
        rows[~empty, 0] = np.minimum(rows[~empty, 0], box[0])
        rows[~empty, 1] = np.maximum(rows[~empty, 1], box[1])
        rows[~empty, 2] = np.minimum(rows[~empty, 2], box[2])
        rows[~empty, 3] = np.maximum(rows[~empty, 3], box[3])
        if region.x_hi <= region.x_lo:
            return Region(int(g_lo[0]), int(g_hi[0]), bounds)
        return Region(min(region.x_lo, int(g_lo[0])), max(region.x_hi, int(g_hi[0])), bounds)

    def _disturbed_region(self, region: Region) -> Region:
        """The next active region: per slab, the bounds of the voxels of `region` more than
        FAR_FIELD_TOLERANCE_K from their basal temperature in the slabs within the margin,
        grown by it."""
        g = REGION_MARGIN_VOXELS
        nx = int(self._shape[0])
        d = np.zeros((nx, 4), np.int64)
        kernels.disturbed_bounds(
            self._temperature, self._basal, self._fixed, region.x_lo, region.x_hi,
            region.bounds, FAR_FIELD_TOLERANCE_K, d,
        )  # fmt: skip
        empty = (d[:, 1] <= d[:, 0]) | (d[:, 3] <= d[:, 2])
        width = 2 * g + 1
        big = np.iinfo(np.int64).max // 2

        def window_min(a: np.ndarray) -> np.ndarray:  # over slabs i − g … i + g
            return ndimage.minimum_filter1d(
                np.where(empty, big, a), width, mode="constant", cval=big
            )

        def window_max(a: np.ndarray) -> np.ndarray:
            return ndimage.maximum_filter1d(
                np.where(empty, -big, a), width, mode="constant", cval=-big
            )

        lo_j, hi_j = window_min(d[:, 0]), window_max(d[:, 1])
        lo_m, hi_m = window_min(d[:, 2]), window_max(d[:, 3])
        bounds = np.zeros((nx, 4), np.int64)
        held = hi_j > lo_j
        bounds[held, 0] = np.maximum(lo_j[held] - g, 0)
        bounds[held, 1] = np.minimum(hi_j[held] + g, self._shape[1])
        bounds[held, 2] = np.maximum(lo_m[held] - g, 0)
        bounds[held, 3] = np.minimum(hi_m[held] + g, self._shape[2])
        slabs = np.flatnonzero(held)
        if not slabs.size:
            return Region(0, 0, bounds)
        return Region(int(slabs[0]), int(slabs[-1]) + 1, bounds)

    def _touches_domain_faces(self, region: Region) -> bool:
        b = region.bounds[region.x_lo : region.x_hi]
        held = (b[:, 1] > b[:, 0]) & (b[:, 3] > b[:, 2])
        b = b[held]
        return bool(
            region.x_lo == 0
            or region.x_hi == self._shape[0]
            or np.any(b[:, 0] == 0)
            or np.any(b[:, 1] == self._shape[1])
            or np.any(b[:, 2] == 0)
            or np.any(b[:, 3] == self._shape[2])
        )

    def step(
        self,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
    ) -> StepFlows:
        """Advance by dt_s (≤ `stable_time_step_s()`), in parts no longer than the edge limit
        if the active box, grown around the fine box, reaches a face of the domain."""
        lo, hi = self.fine_box()
        touches = self._touches_domain_faces(self._with_fine_box(self._active, lo, hi))
        parts = max(1, math.ceil(dt_s / self._edge_coarse_step_s - 1e-9)) if touches else 1
        if parts == 1:
            return self._step(dt_s, drive_temperature_c, film_coefficient_w_m2k, drive_active)
        total = np.zeros(6)
        for _ in range(parts):
            flows = self._step(
                dt_s / parts, drive_temperature_c, film_coefficient_w_m2k, drive_active
            )
            total += np.array(dataclasses.astuple(flows))
        return StepFlows(*(total / parts))

    def _step(
        self,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
    ) -> StepFlows:
        lo, hi = self.fine_box()
        clear = bool(np.all(lo > 0) and np.all(hi < self._shape))
        fine_step = self._interior_fine_step_s if clear else self._fine_step_s
        n_sub = max(1, math.ceil(dt_s / fine_step - 1e-9))
        fine_voxels = int(np.prod(np.maximum(hi - lo, 0)))
        whole = self._whole
        no_lo, no_hi = self._no_hole
        if n_sub == 1 or fine_voxels == int(np.prod(self._shape)):
            # the fine box is everything: n_sub reference steps of the whole domain
            sub = dt_s / n_sub
            energy = np.zeros(5)
            for _ in range(n_sub):
                self._probe_exchange(drive_temperature_c, film_coefficient_w_m2k, drive_active)
                flows = self._advance(sub, whole, no_lo, no_hi)
                energy[:4] += np.array(flows[:4]) * sub
                energy[4] += self._spread_probe_heat(sub) * sub
                self._cold_box = self._refresh(whole, no_lo, no_hi)
            self.voxel_updates += int(np.prod(self._shape)) * n_sub
            perf, met, bnd, fix, probes = energy / dt_s
            return StepFlows(probes, perf, met, bnd, fix)

        # the active region holds the fine box with room to spare
        active = self._active = self._with_fine_box(self._active, lo, hi)
        fine = Region.box(lo, hi, int(self._shape[0]))
        # coarse: one long step on the state at the start of Δt (T is refreshed at the end);
        # what it receives from voxels at rest beyond the active region is the far-field heat
        *coarse, far_field_w = self._advance(dt_s, active, lo, hi)
        energy = np.array(coarse) * dt_s
        probes_j = 0.0
        sub = dt_s / n_sub
        # Δt·F₀ − Σ δ·F_k per face, for the coarse side. The first substep sees the state the
        # coarse step saw, so its fluxes are F₀: it books (Δt − δ)·F₀, later ones −δ·F_k.
        correction_j = self._face_flux
        correction_j[...] = 0.0
        for k in range(n_sub):
            self._probe_exchange(drive_temperature_c, film_coefficient_w_m2k, drive_active)
            flows = self._advance(
                sub, fine, no_lo, no_hi, correction_j, (dt_s - sub) if k == 0 else -sub
            )
            energy += np.array(flows[:4]) * sub
            probes_j += self._spread_probe_heat(sub) * sub
            cold = self._refresh(fine, no_lo, no_hi)
        kernels.add_interface_heat(self._enthalpy, lo, hi, correction_j, self._volume)
        self._cold_box = _union(cold, self._refresh(active, lo, hi))
        if self._at_rest:
            self._active = self._disturbed_region(active)
        self.voxel_updates += active.voxels() - fine_voxels + fine_voxels * n_sub
        perf, met, bnd, fix = energy / dt_s
        return StepFlows(probes_j / dt_s, perf, met, bnd, fix, far_field_w)
