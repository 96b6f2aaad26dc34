"""Multirate explicit back end: short steps where there is ice, long steps everywhere else.

The explicit step is limited by the most diffusive state a voxel can be in. Frozen tissue
conducts about four times better than unfrozen tissue and stores half the heat per kelvin,
so the global step (`stable_time_step_s(problem)`) is set by ice, yet ice fills a few
percent of a planning domain. This back end splits each step Δt of the time loop:

* the **fine region**: per x-slab, the bounding box of the voxels below their liquidus and
  of the probes' coupling kernels, grown by `HALO_VOXELS` along all three axes (and widened
  so that every row along x crosses it once, see `_x_intervals`), advanced in n equal
  substeps δ = Δt/n, each no longer than the frozen-state stable step;
* the **coarse region**: all other voxels, unfrozen or on their freezing range at the start
  of the step, advanced in one step Δt, no longer than `stable_time_step_s(problem,
  frozen=False)` (a voxel that starts a step unfrozen cannot lose its latent heat within it).

Coupling keeps energy exact. The coarse voxels take their one step first, on the state at
the start of Δt, including the face fluxes F₀ they exchange with the fine region. The fine
voxels then see their coarse neighbours as they were at the start of Δt (the coarse
temperatures are refreshed only at the end) and receive the fluxes F_k of their own current
state in every substep; `kernels.advance_enthalpy` books those, and the coarse neighbours
are finally given the difference Δt·F₀ − Σ δ·F_k, so that over Δt each side of every face
receives exactly what the other gave. The coupling is first order in time across the
region's faces, which lie in unfrozen tissue at least `HALO_VOXELS` from any ice; inside
the region the scheme is the reference scheme.
The coarse step itself covers only an **active region**: voxels still at their basal state
(`thermal.steady`, to within `FAR_FIELD_TOLERANCE_K`) are left at rest, and the heat they
pass to the region is booked as the ledger's far-field term. The region is a box per slab
(`backend.Region`): every `REDRAW_EVERY_STEPS` steps, each slab's box is re-drawn as the
bounding box of its disturbed voxels and of those of the slabs within
`REGION_MARGIN_VOXELS`, grown by that margin, and it always holds the fine region grown by
`FINE_PAD_VOXELS`. A disturbance travels at most one voxel per explicit step, so the
margin keeps it inside between re-drawings. Per slab, the region follows
the round shape of the disturbed tissue (late in case M 0.44 M voxels, where one box that
only grew held 0.94 M).

Probe drives are those given for the start of Δt (the reference re-evaluates a ramped drive
every step; the catalogue's drives are constant within a phase).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cryoplan.thermal import kernels, regions
from cryoplan.thermal.backend import (
    STABILITY_SAFETY,
    CpuStateBackend,
    Region,
    StepFlows,
    worst_stability_rates_per_s,
)
from cryoplan.thermal.materials import C_FROZEN, C_UNFROZEN
from cryoplan.thermal.problem import ThermalProblem

# Unfrozen voxels kept in the fine region around the ice. The ice front moves well under a
# voxel per coarse step (about 0.1 mm/s against 1 mm per ~1 s), and a coarse voxel that
# crosses its liquidus within a step is still stable (the coarse step's mushy pair) and joins
# the fine region at the next. The coupling error grows as the faces near the front: on case
# M the isotherms moved from the reference path's by at most 0.0035 mm with 3 voxels,
# 0.0069 mm with 2 and 0.015 mm with 1 (7.1 -> 6.7 s against 2; the 2 mm test presets:
# 0.047 -> 0.051 mm), all far inside the 0.5 mm the fast path is held to.
HALO_VOXELS = 1
# A voxel within this of its basal temperature counts as undisturbed. The isotherms lie
# where gradients exceed 1 K/mm, and what the region leaves out decays over the perfusion
# length (~3 mm in liver) before it reaches them. On case M (first 900 s against the
# reference path): T_min differed by at most 0.013 K with 10 mK, 0.018 K with 50 mK and
# 0.037 K with 0.1 K, the final T by 0.07 K in all three (the fine region's coupling, not
# the far field); over the whole protocol the isotherms stayed within 0.015 mm with 0.1 K,
# and M took 5.4 s against 5.8 s with 10 mK (1 mK and 10 mK gave the same isotherms).
FAR_FIELD_TOLERANCE_K = 1e-1
# The initial state counts as steady if no voxel would drift further than this over the
# whole run with the probes off; else the whole domain stays active.
DRIFT_TOLERANCE_K = 1e-2
REGION_MARGIN_VOXELS = 3  # around the disturbed voxels
# Steps between re-drawings of the active region. A disturbance moves at most one voxel a
# step, so it stays inside the margin for REGION_MARGIN_VOXELS steps; re-drawing every other
# step keeps a voxel to spare and halves the cost of the test (0.9 s of case M's wall).
REDRAW_EVERY_STEPS = 2
assert REDRAW_EVERY_STEPS < REGION_MARGIN_VOXELS
FINE_PAD_VOXELS = 3  # coarse voxels around the fine region (they receive its face book)
DRIFT_CHECK_SLABS = 8  # slabs per chunk of the at-rest check (memory, not accuracy)


def _as_region(bounds: np.ndarray) -> Region:
    """The region of per-slab bounds (empty slabs zeroed), its slab range trimmed."""
    bounds, x_lo, x_hi = regions.trimmed(bounds)
    return Region(x_lo, x_hi, bounds)


def _region_of_voxels(flat_index: np.ndarray, shape: tuple[int, int, int]) -> Region:
    """Per slab, the bounds of the voxels at flat_index (C order in `shape`)."""
    bounds = np.zeros((shape[0], 4), np.int64)
    bounds[:, 0], bounds[:, 2] = shape[1], shape[2]  # empty until a voxel widens them
    i, j, m = np.unravel_index(flat_index, shape)
    np.minimum.at(bounds[:, 0], i, j)
    np.maximum.at(bounds[:, 1], i, j + 1)
    np.minimum.at(bounds[:, 2], i, m)
    np.maximum.at(bounds[:, 3], i, m + 1)
    return _as_region(bounds)


def _grown(bounds: np.ndarray, by: int, shape: np.ndarray) -> Region:
    """Per-slab bounds grown by `by` voxels along all three axes: slab i holds the union of
    slabs i − by … i + by, widened by `by` rows and columns, clipped to the domain."""
    return _as_region(regions.grown_bounds(bounds, by, shape[1], shape[2]))


def _union(a: Region, b: Region) -> Region:
    """Slab by slab, the bounds holding both regions."""
    return _as_region(regions.union_bounds(a.bounds, b.bounds))


def _x_intervals(region: Region) -> Region:
    """The smallest region holding `region` whose rows along x are intervals
    (`regions.x_interval_bounds`): the fine region's face book needs one x− and one x+ face
    per row (`kernels.add_interface_heat`)."""
    return _as_region(regions.x_interval_bounds(region.bounds, region.x_lo, region.x_hi))


def _step_limits_s(rates_per_s: tuple[float, float]) -> tuple[float, float]:
    """Stable step [s] over all voxels, and over the voxels off the domain's faces, from
    `worst_stability_rates_per_s`."""

    def limit(rate: float) -> float:
        return STABILITY_SAFETY / rate if rate > 0 else np.inf

    edge = limit(rates_per_s[0])
    return edge, max(edge, limit(rates_per_s[1]))


class CpuMultirateBackend(CpuStateBackend):
    """The reference scheme inside a fine region around the ice and probes, substepped; one long
    explicit step for the rest (see the module docstring)."""

    name = "cpu-multirate"
    entries = (
        *CpuStateBackend.entries, kernels.disturbed_bounds, kernels.add_interface_heat,
        regions.trimmed, regions.voxel_count, regions.grown_bounds, regions.union_bounds,
        regions.x_interval_bounds, regions.touches_faces,
    )  # fmt: skip

    def __init__(self, problem: ThermalProblem) -> None:
        super().__init__(problem)
        # Each step has two limits: over all voxels, and over those off the domain's faces
        # (held faces double a face's conductance), used while a region keeps clear of them.
        self._fine_step_s, self._interior_fine_step_s = _step_limits_s(
            worst_stability_rates_per_s(problem)
        )
        edge, interior = _step_limits_s(worst_stability_rates_per_s(problem, frozen=False))
        self._edge_coarse_step_s = max(self._fine_step_s, edge)
        self._coarse_step_s = max(self._edge_coarse_step_s, interior)
        shape = np.asarray(problem.shape, np.int64)
        self._shape = shape
        # the probes' coupling kernels (they always take short steps), and the fixed voxels
        # (counted apart in `volume_at_or_below_m3`)
        self._probe_region = _region_of_voxels(problem.probes.voxel_index, problem.shape)
        self._fixed_region = _region_of_voxels(self._fixed_flat_index, problem.shape)
        self._face_flux = np.zeros((6, int(shape.max()), int(shape.max())))
        self._basal = np.ascontiguousarray(problem.initial_temperature_c, np.float64)
        # slab by slab: a mask or copy of the whole field would raise the solve's peak memory
        slabs = zip(self._basal, self._fixed, strict=True)
        self._coolest_basal_c = min(
            (float(b[~f].min()) for b, f in slabs if not f.all()), default=np.inf
        )
        # Voxels may be left at rest only if the initial state is a steady state; and
        # time-varying fixed voxels disturb wherever they are.
        self._at_rest = (
            problem.fixed_temperature_fn is None and self._drift_at_rest_k() <= DRIFT_TOLERANCE_K
        )
        self._active = Region.empty(int(shape[0])) if self._at_rest else self._whole
        self._steps_since_redraw = 0
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
            self._advance(1.0, self._whole._replace(x_lo=start, x_hi=stop), self._no_hole)
            change = np.abs(self._enthalpy[start:stop] - saved)
            rate = change / capacity[self._material[start:stop]]
            worst_k_s = max(worst_k_s, float(rate.max(initial=0.0)))
            self._enthalpy[start:stop] = saved
        return worst_k_s * self.problem.duration_s

    def stable_time_step_s(self) -> float:
        return self._coarse_step_s

    def volume_at_or_below_m3(self, thresholds_c: np.ndarray) -> np.ndarray:
        """As the base class, but where no voxel at rest can be at or below a threshold
        (each lies within FAR_FIELD_TOLERANCE_K of a basal temperature above them all),
        only the active region's free voxels and the fixed ones are counted (case M: 0.5
        against 1.7 M voxels)."""
        thresholds = np.asarray(thresholds_c, float)
        if not (
            self._at_rest
            and thresholds.size
            and thresholds.max() < self._coolest_basal_c - FAR_FIELD_TOLERANCE_K
        ):
            return super().volume_at_or_below_m3(thresholds)
        counts = np.zeros(thresholds.size, np.int64)
        for region, which in (
            (self._active, kernels.COUNT_FREE),
            (self._fixed_region, kernels.COUNT_FIXED),
        ):
            counts += kernels.count_at_or_below(
                self._enthalpy, self._material, self._fixed, self._props, thresholds,
                region.x_lo, region.x_hi, region.bounds, which,
            )  # fmt: skip
        return counts * self._volume

    def fine_region(self) -> Region:
        """The voxels that take short steps: per slab, the voxels below their liquidus and
        the probes' kernels, grown by HALO_VOXELS, with rows along x made intervals."""
        cold = _union(_as_region(self._cold_bounds), self._probe_region)
        return _x_intervals(_grown(cold.bounds, HALO_VOXELS, self._shape))

    def active_region(self) -> Region:
        """The voxels the coarse step updates (with the fine region as its hole)."""
        return self._active

    def _with_fine_region(self, region: Region, fine: Region) -> Region:
        """region ∪ the fine region grown by FINE_PAD_VOXELS."""
        if fine.x_hi <= fine.x_lo:
            return region
        return _union(region, _grown(fine.bounds, FINE_PAD_VOXELS, self._shape))

    def _disturbed_region(self, region: Region) -> Region:
        """The next active region: the voxels of `region` more than FAR_FIELD_TOLERANCE_K
        from their basal temperature, grown by REGION_MARGIN_VOXELS."""
        d = np.zeros((int(self._shape[0]), 4), np.int64)
        kernels.disturbed_bounds(
            self._enthalpy, self._material, self._props, self._basal, self._fixed,
            region.x_lo, region.x_hi, region.bounds, FAR_FIELD_TOLERANCE_K, d,
        )  # fmt: skip
        return _grown(d, REGION_MARGIN_VOXELS, self._shape)

    def _touches_domain_faces(self, region: Region) -> bool:
        return regions.touches_faces(
            region.bounds, region.x_lo, region.x_hi, int(self._shape[1]), int(self._shape[2])
        )

    def step(
        self,
        dt_s: float,
        drive_temperature_c: np.ndarray,
        film_coefficient_w_m2k: np.ndarray,
        drive_active: np.ndarray,
    ) -> StepFlows:
        """Advance by dt_s (≤ `stable_time_step_s()`), in parts no longer than the edge limit
        if the active region, grown around the fine region, reaches a face of the domain."""
        fine = self.fine_region()
        active = self._with_fine_region(self._active, fine)
        touches = self._touches_domain_faces(active)
        parts = max(1, math.ceil(dt_s / self._edge_coarse_step_s - 1e-9)) if touches else 1
        if parts == 1:
            drives = (drive_temperature_c, film_coefficient_w_m2k, drive_active)
            return self._step(dt_s, *drives, fine, active)
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
        fine: Region | None = None,
        active: Region | None = None,
    ) -> StepFlows:
        """One step of dt_s; `fine` and `active` (the active region grown around `fine`) if
        the caller has them already."""
        fine = self.fine_region() if fine is None else fine
        clear = not self._touches_domain_faces(fine)
        fine_step = self._interior_fine_step_s if clear else self._fine_step_s
        n_sub = max(1, math.ceil(dt_s / fine_step - 1e-9))
        fine_voxels = fine.voxels()
        drives = (drive_temperature_c, film_coefficient_w_m2k, drive_active)
        if n_sub == 1 or fine_voxels == int(np.prod(self._shape)):
            # the fine region is everything: n_sub reference steps of the whole domain
            energy = self._substeps(self._whole, n_sub, dt_s, *drives, self._face_flux)
            self.voxel_updates += int(np.prod(self._shape)) * n_sub
            perf, met, bnd, fix, probes = energy / dt_s
            return StepFlows(probes, perf, met, bnd, fix)

        # the active region holds the fine region with room to spare
        if active is None:
            active = self._with_fine_region(self._active, fine)
        self._active = active
        # coarse: one long step on the state at the start of Δt (T is refreshed at the end);
        # what it receives from voxels at rest beyond the active region is the far-field heat
        *coarse, far_field_w = self._advance(dt_s, active, fine)
        energy = np.array(coarse) * dt_s
        # Δt·F₀ − Σ δ·F_k per face, for the coarse side. The first substep sees the state the
        # coarse step saw, so its fluxes are F₀: it books (Δt − δ)·F₀, later ones −δ·F_k.
        self._face_flux[...] = 0.0
        fine_energy = self._substeps(fine, n_sub, dt_s, *drives, self._face_flux)
        energy += fine_energy[:4]
        probes_j = fine_energy[4]
        kernels.add_interface_heat(
            self._enthalpy, fine.x_lo, fine.x_hi, fine.bounds, self._face_flux, self._volume
        )
        self._refresh(active, fine)
        if self._at_rest:
            self._steps_since_redraw += 1
            if self._steps_since_redraw >= REDRAW_EVERY_STEPS:
                self._active = self._disturbed_region(active)
                self._steps_since_redraw = 0
        self.voxel_updates += active.voxels() - fine_voxels + fine_voxels * n_sub
        perf, met, bnd, fix = energy / dt_s
        return StepFlows(probes_j / dt_s, perf, met, bnd, fix, far_field_w)
