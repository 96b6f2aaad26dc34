"""The planning objective: does a minimum-temperature field destroy the target with margin,
while every critical structure stays above its limit?

The default objective is the procedure's (docs/planning.md):

- every target voxel is in the lethal zone (the case's injury model, p ≥ 0.5);
- the ice ball (T_min ≤ 0 °C) reaches at least `margin_mm` beyond the target surface
  everywhere it can: every voxel of the margin shell (the target grown by margin_mm,
  `metrics.dilate_mm`) is frozen, except the lumen of large vessels (held at blood
  temperature, they never freeze: the margin there ends at the vessel wall). The least
  signed distance from the target's surface to the 0 °C surface (marching cubes) is
  reported beside it;
- optionally (`planning.lethal_margin_mm`), the lethal zone reaches that far beyond it too;
- each critical structure's coldest voxel stays above its `keep_above_c` (hard);

and among plans that meet it, less lethal volume outside the target is better.

`shortfall` folds the misses into one number ≥ 0 that a search can reduce: the share of the
target not lethal, plus the share of the margin shell (target grown by margin_mm) not frozen,
plus the worst limit overshoot in kelvin over 10 K. It is 0 exactly when the objective is met
(up to the margin's surface-distance test, which `met` applies on top).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from cryoplan import metrics
from cryoplan.injury import LETHAL_PROBABILITY, injury_model
from cryoplan.preparation import PreparedCase

# one kelvin of a broken limit weighs as much as 10 % of the target left alive
LIMIT_KELVIN_PER_UNIT = 10.0


@dataclass(frozen=True, eq=False)
class TargetGeometry:
    """What every evaluation on one prepared grid reuses: the target, its surface, the
    margin shells, the critical structures' masks and limits."""

    target: np.ndarray
    surface: metrics.Surface
    ice_shell: np.ndarray  # target grown by margin_mm, target excluded
    lethal_shell: np.ndarray | None
    limits: dict[str, tuple[np.ndarray, float]]  # structure → (mask, keep above °C)


def part_geometry(whole: TargetGeometry, part: np.ndarray, cell: np.ndarray) -> TargetGeometry:
    """The objective of one session of a staged plan: `part` of the target lethal, and the
    margin frozen where it lies in the part's `cell` (the voxels whose nearest target voxel
    is in the part), measured from the target surface in that cell. The sessions' parts and
    cells tile the target and its margin, so that sessions meeting their parts' objectives
    meet the whole one together (the coldest temperature over the sessions)."""
    vertices = whole.surface.vertices_index
    at = np.clip(np.rint(vertices).astype(int), 0, np.asarray(cell.shape) - 1)
    surface = metrics.Surface(vertices[cell[tuple(at.T)]])
    lethal_shell = None if whole.lethal_shell is None else whole.lethal_shell & cell
    return TargetGeometry(part, surface, whole.ice_shell & cell, lethal_shell, whole.limits)


def target_geometry(
    prepared: PreparedCase, lethal_margin_mm: float | None, limit_guard_mm: float = 0.0
) -> TargetGeometry:
    """The objective's masks on `prepared`'s grid. With `limit_guard_mm`, each critical
    structure's limit is checked over the structure grown by that much: a coarse search
    model smooths a thin structure's coldest voxel away, and must judge it cautiously."""
    case = prepared.case
    spacing = prepared.grid.spacing_mm
    target = prepared.tissue_mask(case.target)  # type: ignore[arg-type]
    # the margin is wanted in tissue that can freeze, not in a vessel's lumen
    ice_shell = metrics.dilate_mm(target, case.margin_mm, spacing) & ~target & ~prepared.fixed
    lethal_shell = None
    if lethal_margin_mm is not None:
        lethal_shell = metrics.dilate_mm(target, lethal_margin_mm, spacing) & ~target
    limits = {}
    for c in case.critical_structures:
        if c.tissue in prepared.tissue_names and c.tissue != case.target:
            mask = prepared.tissue_mask(c.tissue)
            free = mask & ~prepared.fixed  # a vessel held at blood temperature cannot fail
            if limit_guard_mm > 0.0 and free.any():
                grown = metrics.dilate_mm(free, limit_guard_mm, spacing)
                mask = free | (grown & ~prepared.fixed & ~target)
            limits[c.tissue] = (mask, c.keep_above_c)
    return TargetGeometry(target, metrics.region_surface(target), ice_shell, lethal_shell, limits)


@dataclass(frozen=True)
class PlanScore:
    """How one field meets the objective (module docstring)."""

    lethal_coverage_percent: float
    ice_margin_mm: float  # least distance the 0 °C surface reaches beyond the target surface
    ice_margin_side_lps: list[float] | None  # where it is least (LPS mm)
    margin_shell_frozen_percent: float
    lethal_margin_mm: float  # least distance the lethal zone reaches beyond the target surface
    structures: dict[str, dict[str, float]]  # coldest °C and limit of each critical structure
    collateral_lethal_ml: float
    shortfall: float
    met: bool
    reasons: list[str] = field(default_factory=list)  # what is missed, one phrase each
    # the structure in the way: a limit broken, or the unfrozen margin next to it (None: the
    # miss is the probes' reach, which more probes or sessions may close)
    limited_by: str | None = None

    def slack_mm(self, margin_mm: float, lethal_margin_mm: float | None) -> float:
        """How far the plan could shift before it misses: the least of the ice margin's
        surplus over `margin_mm` and the lethal zone's reach beyond the target (or its
        surplus over `lethal_margin_mm`) [mm]."""
        lethal_surplus = self.lethal_margin_mm - (lethal_margin_mm or 0.0)
        return min(self.ice_margin_mm - margin_mm, lethal_surplus)

    def as_dict(self) -> dict[str, Any]:
        return {
            "met": self.met,
            "lethal_coverage_percent": self.lethal_coverage_percent,
            "ice_margin_mm": self.ice_margin_mm,
            "ice_margin_least_at_lps_mm": self.ice_margin_side_lps,
            "margin_shell_frozen_percent": self.margin_shell_frozen_percent,
            "lethal_margin_mm": self.lethal_margin_mm,
            "critical_structures": self.structures,
            "collateral_lethal_ml": self.collateral_lethal_ml,
            "missed": self.reasons,
            "limited_by": self.limited_by,
        }


def death_probability(
    prepared: PreparedCase, minimum_temperature_c: np.ndarray, freeze_thaw_cycles: np.ndarray
) -> np.ndarray:
    """The case's injury model on a T_min field of `prepared`'s grid (p in [0, 1])."""
    model = injury_model(prepared.case.injury.model)
    return model.probability_of_death(
        minimum_temperature_c, freeze_thaw_cycles, prepared.material, prepared.tissues
    )


def score(
    prepared: PreparedCase,
    geometry: TargetGeometry,
    minimum_temperature_c: np.ndarray,
    freeze_thaw_cycles: np.ndarray,
    lethal_margin_mm: float | None,
    probability_of_death: np.ndarray | None = None,
) -> PlanScore:
    """Score a T_min field on `prepared`'s grid against the objective. The case's injury
    model gives the probability of death unless the caller has it already."""
    case = prepared.case
    grid = prepared.grid
    tmin = minimum_temperature_c
    p = probability_of_death
    if p is None:
        p = death_probability(prepared, tmin, freeze_thaw_cycles)
    lethal = p >= LETHAL_PROBABILITY
    target = geometry.target
    covered = metrics.coverage_percent(target, lethal)
    frozen_shell = metrics.coverage_percent(geometry.ice_shell, tmin <= 0.0)
    ice = metrics.signed_distances(geometry.surface, -tmin, 0.0, grid.spacing_mm)
    ice_margin = ice.minimum_mm
    side = None
    if ice.distance_mm.size and np.isfinite(ice_margin):
        side = grid.lps_from_index(ice.argmin_index()).tolist()
    # how far the lethal zone reaches beyond the target surface (negative: falls short)
    lethal_margin = metrics.signed_distances(
        geometry.surface, p, LETHAL_PROBABILITY, grid.spacing_mm
    ).minimum_mm
    reasons = []
    short = (100.0 - covered) / 100.0 + (100.0 - frozen_shell) / 100.0
    if covered < 100.0 - 1e-9:
        reasons.append(f"{100.0 - covered:.1f} % of the target is not in the lethal zone")
    limited_by = None
    if frozen_shell < 100.0 - 1e-9:
        limited_by = _limited_by(prepared, geometry, tmin)
        reasons.append(
            f"{100.0 - frozen_shell:.1f} % of the {case.margin_mm:g} mm margin is not frozen "
            f"(the ice reaches {ice_margin:.1f} mm beyond the target at its least"
            + ("" if limited_by is None else f", next to {limited_by}")
            + ")"
        )
    if lethal_margin_mm is not None and geometry.lethal_shell is not None:
        lethal_shell = metrics.coverage_percent(geometry.lethal_shell, lethal)
        short += (100.0 - lethal_shell) / 100.0
        if lethal_shell < 100.0 - 1e-9:
            reasons.append(
                f"the lethal zone reaches {lethal_margin:.1f} mm beyond the target, "
                f"not {lethal_margin_mm:g}"
            )
    structures = {}
    for name, (mask, limit) in geometry.limits.items():
        coldest = float(tmin[mask].min()) if mask.any() else float("inf")
        structures[name] = {"minimum_temperature_c": coldest, "keep_above_c": limit}
        if not coldest > limit:
            short += (limit - coldest + 1.0) / LIMIT_KELVIN_PER_UNIT
            reasons.append(f"{name} reaches {coldest:.1f} °C (kept above {limit:g} °C)")
            limited_by = limited_by or name
    collateral = float((lethal & ~target).sum()) * grid.voxel_volume_ml
    met = not reasons
    return PlanScore(
        lethal_coverage_percent=covered,
        ice_margin_mm=float(ice_margin),
        ice_margin_side_lps=side,
        margin_shell_frozen_percent=frozen_shell,
        lethal_margin_mm=float(lethal_margin),
        structures=structures,
        collateral_lethal_ml=collateral,
        shortfall=0.0 if met else max(short, 1e-6),
        met=met,
        reasons=reasons,
        limited_by=limited_by,
    )


def _limited_by(prepared: PreparedCase, geometry: TargetGeometry, tmin: np.ndarray) -> str | None:
    """The tissue the case holds at blood temperature or protects that the unfrozen part of
    the margin touches most (the structure in the way), else None."""
    missed = geometry.ice_shell & (tmin > 0.0)
    if not missed.any():
        return None
    grown = ndimage.binary_dilation(missed, iterations=2)
    limited = {c.tissue for c in prepared.case.critical_structures}
    contact = {}
    for index, tissue in enumerate(prepared.tissues):
        if tissue.name != prepared.case.target and (tissue.blood_vessel or tissue.name in limited):
            contact[tissue.name] = int((grown & (prepared.material == index)).sum())
    touching = {name: n for name, n in contact.items() if n > 0}
    if not touching:
        return None
    return max(touching, key=touching.get)  # type: ignore[arg-type]
