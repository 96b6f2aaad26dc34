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
The coarse step itself covers only an **active box**: voxels still at their basal state
(`thermal.steady`, to within `FAR_FIELD_TOLERANCE_K`) are left at rest, and the heat they
pass to the box is booked as the ledger's far-field term. The box starts around the fine
box and grows by `ACTIVE_PAD_VOXELS` on a side as soon as a voxel `CHECK_DEPTH_VOXELS`
inside that side departs from its basal temperature; a disturbance travels at most one voxel
per explicit step, so it is caught before it reaches the edge.

Probe drives are those given for the start of Δt (the reference re-evaluates a ramped drive
every step; the catalogue's drives are constant within a phase).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from cryoplan.thermal import kernels
from cryoplan.thermal.backend import (
    STABILITY_SAFETY,
    CpuStateBackend,
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
ACTIVE_PAD_VOXELS = 8
CHECK_DEPTH_VOXELS = 2
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
        at_rest = (
            problem.fixed_temperature_fn is None
            and self._drift_at_rest_k() <= FAR_FIELD_TOLERANCE_K
        )
        self._active = np.zeros(6, np.int64) if at_rest else np.concatenate(self._whole)
        self.voxel_updates = 0  # fine voxels count once per substep

    def _drift_at_rest_k(self) -> float:
        """Largest |T change| [K] the initial state would undergo over the whole schedule
        with the probes off, at its initial rate. One slab of voxels at a time, each put back
        as it was, so that the check needs no second copy of the field."""
        capacity = np.minimum(self._props[:, C_FROZEN], self._props[:, C_UNFROZEN])
        lo, hi = (a.copy() for a in self._whole)
        worst_k_s = 0.0
        for start in range(0, int(self._shape[0]), DRIFT_CHECK_SLABS):
            lo[0], hi[0] = start, min(start + DRIFT_CHECK_SLABS, int(self._shape[0]))
            saved = self._enthalpy[lo[0] : hi[0]].copy()
            self._advance(1.0, lo, hi, *self._no_hole)
            change = np.abs(self._enthalpy[lo[0] : hi[0]] - saved)
            rate = change / capacity[self._material[lo[0] : hi[0]]]
            worst_k_s = max(worst_k_s, float(rate.max(initial=0.0)))
            self._enthalpy[lo[0] : hi[0]] = saved
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

    def active_box(self) -> tuple[np.ndarray, np.ndarray]:
        """[lo, hi) of the voxels the coarse step updates."""
        return self._active[:3], self._active[3:]

    def _grow(self, box: np.ndarray, by: int) -> np.ndarray:
        return np.concatenate(
            [np.maximum(box[:3] - by, 0), np.minimum(box[3:] + by, self._shape)]
        ).astype(np.int64)

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
        box = self._active
        if np.prod(np.maximum(hi - lo, 0)):
            box = _union(box, self._grow(np.concatenate([lo, hi]), ACTIVE_PAD_VOXELS))
        touches = np.any(box[:3] == 0) or np.any(box[3:] == self._shape)
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
        whole_lo, whole_hi = self._whole
        no_lo, no_hi = self._no_hole
        if n_sub == 1 or fine_voxels == int(np.prod(self._shape)):
            # the fine box is everything: n_sub reference steps of the whole domain
            sub = dt_s / n_sub
            energy = np.zeros(5)
            for _ in range(n_sub):
                self._probe_exchange(drive_temperature_c, film_coefficient_w_m2k, drive_active)
                flows = self._advance(sub, whole_lo, whole_hi, no_lo, no_hi)
                energy[:4] += np.array(flows[:4]) * sub
                energy[4] += self._spread_probe_heat(sub) * sub
                self._cold_box = self._refresh(whole_lo, whole_hi, no_lo, no_hi)
            self.voxel_updates += int(np.prod(self._shape)) * n_sub
            perf, met, bnd, fix, probes = energy / dt_s
            return StepFlows(probes, perf, met, bnd, fix)

        # the active box holds the fine box with room to spare
        if fine_voxels:
            self._active = _union(
                self._active, self._grow(np.concatenate([lo, hi]), ACTIVE_PAD_VOXELS)
            )
        alo, ahi = self.active_box()
        # coarse: one long step on the state at the start of Δt (T is refreshed at the end);
        # what it receives from voxels at rest beyond the active box is the far-field heat
        *coarse, far_field_w = self._advance(dt_s, alo, ahi, lo, hi)
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
                sub, lo, hi, no_lo, no_hi, correction_j, (dt_s - sub) if k == 0 else -sub
            )
            energy += np.array(flows[:4]) * sub
            probes_j += self._spread_probe_heat(sub) * sub
            cold = self._refresh(lo, hi, no_lo, no_hi)
        kernels.add_interface_heat(self._enthalpy, lo, hi, correction_j, self._volume)
        self._cold_box = _union(cold, self._refresh(alo, ahi, lo, hi))
        active_voxels = int(np.prod(ahi - alo))
        self.voxel_updates += active_voxels - fine_voxels + fine_voxels * n_sub
        grow = kernels.disturbed_faces(
            self._temperature, self._basal, self._fixed, alo, ahi,
            CHECK_DEPTH_VOXELS, FAR_FIELD_TOLERANCE_K,
        )  # fmt: skip
        for face in np.flatnonzero(grow):
            axis, upper = divmod(int(face), 2)
            if upper:
                self._active[3 + axis] = min(ahi[axis] + ACTIVE_PAD_VOXELS, self._shape[axis])
            else:
                self._active[axis] = max(alo[axis] - ACTIVE_PAD_VOXELS, 0)
        perf, met, bnd, fix = energy / dt_s
        return StepFlows(probes_j / dt_s, perf, met, bnd, fix, far_field_w)
