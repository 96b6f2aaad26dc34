"""Thermal history → outcome: lethal zone, coverage, margins, collateral damage, verdict.

`evaluate(result)` applies the case's injury model to the simulation and measures the
outcome against the case's target, margin and critical structures. Every number here is a
function of the arrays on the simulation grid (see `cryoplan.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from cryoplan import metrics
from cryoplan.injury import LETHAL_PROBABILITY, injury_model
from cryoplan.probes.catalogue import load_catalogue

if TYPE_CHECKING:
    from cryoplan.simulate import SimulationResult

# Temperatures of the cumulative temperature–volume histogram, °C
DVH_TEMPERATURES_C = np.arange(-180.0, 41.0, 1.0)
SECOND_MARGIN_MM = 10.0  # the margin every report also shows (physics.md §1: 5–10 mm)
AXIS_WORDS = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))


def direction_words(vector_mm: np.ndarray) -> str:
    """Patient-direction words of an LPS vector, largest component first (e.g. 'left, anterior')."""
    v = np.asarray(vector_mm, float)
    order = np.argsort(-np.abs(v))
    words = [AXIS_WORDS[a][int(v[a] > 0)] for a in order if abs(v[a]) > 0.25 * np.abs(v).max()]
    return ", ".join(words) if words else "centre"


@dataclass
class Outcome:
    """What the plan destroys, as numbers (see `as_dict` for the summary.json form)."""

    injury_model: str
    probability_of_death: np.ndarray
    lethal_zone: np.ndarray  # bool, p ≥ 0.5
    target: dict[str, Any] | None
    structures: dict[str, dict[str, Any]]
    histograms: dict[str, list[float]]
    time_series: dict[str, list[float]]
    verdict: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "injury_model": self.injury_model,
            "verdict": self.verdict,
            "target": self.target,
            "structures": self.structures,
            "collateral_damage_ml": {
                name: s["lethal_volume_ml"] for name, s in self.structures.items()
            },
            "temperature_volume_histogram": self.histograms,
            "time_series": self.time_series,
            "warnings": self.warnings,
            "notes": self.notes,
        }


def _target_metrics(result: SimulationResult, p: np.ndarray, lethal: np.ndarray) -> dict[str, Any]:
    d = result.discretised
    case = result.case
    grid = d.grid
    names = [t.name for t in d.tissues]
    target = d.problem.material == names.index(case.target)
    tmin = result.history.minimum_temperature_c
    spacing = grid.spacing_mm
    margins = {}
    for m in sorted({case.margin_mm, SECOND_MARGIN_MM}):
        grown = metrics.dilate_mm(target, m, spacing)
        margins[f"{m:g}"] = metrics.coverage_percent(grown, lethal)
    distances = metrics.signed_distances(
        metrics.region_surface(target), p, LETHAL_PROBABILITY, spacing
    )
    centre_index = np.argwhere(target).mean(axis=0)
    out: dict[str, Any] = {
        "tissue": case.target,
        "volume_ml": int(target.sum()) * grid.voxel_volume_ml,
        "centre_lps_mm": grid.lps_from_index(centre_index).tolist(),
        "coverage_percent": {
            "lethal": metrics.coverage_percent(target, lethal),
            "-20": metrics.coverage_percent(target, tmin <= -20.0),
            "0": metrics.coverage_percent(target, tmin <= 0.0),
        },
        "margin_coverage_percent": margins,
        "required_margin_mm": case.margin_mm,
        "margin_mm": {"minimum": distances.minimum_mm, "mean": distances.mean_mm},
    }
    if distances.distance_mm.size and np.isfinite(distances.minimum_mm):
        where_index = distances.argmin_index()
        where = grid.lps_from_index(where_index)
        out["margin_mm"]["minimum_at_lps_mm"] = where.tolist()
        out["margin_mm"]["minimum_side"] = direction_words(
            where - grid.lps_from_index(centre_index)
        )
    return out


def _structure_metrics(
    result: SimulationResult, p: np.ndarray, lethal: np.ndarray
) -> dict[str, dict[str, Any]]:
    d = result.discretised
    case = result.case
    grid = d.grid
    tmin = result.history.minimum_temperature_c
    limits = {c.tissue: c.keep_above_c for c in case.critical_structures}
    out = {}
    for index, tissue in enumerate(d.tissues):
        if tissue.name == case.target:
            continue
        region = d.problem.material == index
        clearance = metrics.signed_distances(
            metrics.region_surface(region), p, LETHAL_PROBABILITY, grid.spacing_mm
        )
        entry: dict[str, Any] = {
            "volume_ml": int(region.sum()) * grid.voxel_volume_ml,
            "lethal_volume_ml": int((region & lethal).sum()) * grid.voxel_volume_ml,
            "frozen_volume_ml": int((region & (tmin <= 0.0)).sum()) * grid.voxel_volume_ml,
            "minimum_temperature_c": float(tmin[region].min()),
            # distance from the structure to the lethal zone (negative: the zone reaches in)
            "clearance_from_lethal_zone_mm": -float(clearance.distance_mm.max())
            if clearance.distance_mm.size
            else None,
        }
        if tissue.blood_vessel and case.target is not None:
            entry["heat_sink"] = reach_toward(result, region)
        if tissue.name in limits:
            entry["keep_above_c"] = limits[tissue.name]
            entry["constraint_met"] = bool(entry["minimum_temperature_c"] > limits[tissue.name])
        out[tissue.name] = entry
    return out


def reach_toward(result: SimulationResult, vessel: np.ndarray) -> dict[str, Any]:
    """How far the cold reaches from the target's centre towards the nearest point of a
    vessel, and in the opposite direction (mm): a heat sink shortens the first.

    Measured on T_min (continuous, so finer than a voxel) at the target tissue's lethal
    temperature and at 0 °C (the visible ice edge).
    """
    d = result.discretised
    grid = d.grid
    names = [t.name for t in d.tissues]
    target_index = names.index(result.case.target)
    lethal_c = d.tissues[target_index].lethal_temperature_c
    target = d.problem.material == target_index
    centre = grid.lps_from_index(np.argwhere(target).mean(axis=0))
    vessel_points = grid.lps_from_index(np.argwhere(vessel))
    nearest = vessel_points[np.argmin(np.linalg.norm(vessel_points - centre, axis=1))]
    direction = (nearest - centre) / np.linalg.norm(nearest - centre)
    radii = np.arange(0.0, np.linalg.norm(nearest - centre) + 40.0, 0.02 * min(grid.spacing_mm))
    tmin = result.history.minimum_temperature_c

    def reach(sign: float, level_c: float) -> float:
        ray = centre + sign * radii[:, None] * direction
        t = ndimage.map_coordinates(tmin, grid.index_from_lps(ray).T, order=1, mode="nearest")
        warmer = np.flatnonzero(t > level_c)
        return float(radii[warmer[0]]) if warmer.size else float(radii[-1])

    return {
        "direction_lps": direction.tolist(),
        "vessel_distance_from_target_centre_mm": float(np.linalg.norm(nearest - centre)),
        "isotherm_c": lethal_c,
        "lethal_reach_toward_mm": reach(1.0, lethal_c),
        "lethal_reach_away_mm": reach(-1.0, lethal_c),
        "ice_edge_reach_toward_mm": reach(1.0, 0.0),
        "ice_edge_reach_away_mm": reach(-1.0, 0.0),
    }


def _verdict(
    target: dict[str, Any] | None, structures: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    violated = [n for n, s in structures.items() if s.get("constraint_met") is False]
    if target is None:
        return {
            "complete_ablation_with_margin": None,
            "text": "no target given",
            "violated": violated,
        }
    covered = target["coverage_percent"]["lethal"]
    minimum = target["margin_mm"]["minimum"]
    required = target["required_margin_mm"]
    complete = covered >= 100.0 - 1e-9 and minimum >= required
    if complete:
        text = f"complete ablation with ≥ {required:g} mm margin (minimum {minimum:.1f} mm)"
    elif covered >= 100.0 - 1e-9:
        text = (
            f"whole tumour inside the lethal zone, but the margin falls to {minimum:.1f} mm "
            f"< {required:g} mm on the {target['margin_mm'].get('minimum_side', '?')} side"
        )
    else:
        text = (
            f"INCOMPLETE: {100 - covered:.1f} % of the target survives; the lethal zone falls "
            f"{-minimum:.1f} mm short on the {target['margin_mm'].get('minimum_side', '?')} side"
        )
    if violated:
        text += "; critical structure limit exceeded: " + ", ".join(violated)
    return {"complete_ablation_with_margin": complete, "text": text, "violated": violated}


def evaluate(result: SimulationResult) -> Outcome:
    """Apply the case's injury model and measure the outcome."""
    d = result.discretised
    h = result.history
    case = result.case
    model = injury_model(case.injury.model)
    p = model.probability_of_death(
        h.minimum_temperature_c, h.freeze_thaw_cycles, d.problem.material, d.tissues
    )
    lethal = p >= LETHAL_PROBABILITY
    target = _target_metrics(result, p, lethal) if case.target is not None else None
    structures = _structure_metrics(result, p, lethal)

    histograms: dict[str, list[float]] = {"temperature_c": DVH_TEMPERATURES_C.tolist()}
    for index, tissue in enumerate(d.tissues):
        region = d.problem.material == index
        histograms[tissue.name] = metrics.cumulative_temperature_volume(
            h.minimum_temperature_c, region, DVH_TEMPERATURES_C
        ).tolist()

    series = {"time_s": h.record_time_s.tolist()}
    for k, threshold in enumerate(h.volume_thresholds_c):
        series[f"volume_at_or_below_{threshold:g}_c_ml"] = (h.volume_m3[:, k] * 1e6).tolist()
    series["lethal_temperature_reached_ml"] = (h.destroyed_volume_m3 * 1e6).tolist()

    warnings = []
    uncalibrated = sorted({p.model or "inline" for p in d.probes if not _calibrated(p.model)})
    if uncalibrated:
        warnings.append(
            "probe models not calibrated on measured ice balls: "
            + ", ".join(uncalibrated)
            + "; sizes are for comparing plans, not absolute predictions"
        )
    if (
        lethal[0].any()
        or lethal[-1].any()
        or lethal[:, 0].any()
        or lethal[:, -1].any()
        or (lethal[:, :, 0].any() or lethal[:, :, -1].any())
    ):
        warnings.append("the lethal zone reaches the domain's edge: enlarge the domain")
    if h.ledger.relative_error > 0.005:
        warnings.append(f"energy balance error {h.ledger.relative_error:.2%} exceeds 0.5 %")
    for name, s in structures.items():
        if s.get("constraint_met") is False:
            warnings.append(
                f"{name} reaches {s['minimum_temperature_c']:.1f} °C, "
                f"below its limit {s['keep_above_c']:g} °C"
            )
    verdict = _verdict(target, structures)
    return Outcome(
        injury_model=model.name,
        probability_of_death=p,
        lethal_zone=lethal,
        target=target,
        structures=structures,
        histograms=histograms,
        time_series=series,
        verdict=verdict,
        warnings=warnings,
        notes=model.notes(d.tissues),
    )


def _calibrated(model: str | None) -> bool:
    return model is not None and load_catalogue().probes[model].calibrated
