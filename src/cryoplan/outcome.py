"""Thermal history → outcome: lethal zone, coverage, margins, collateral damage, verdict.

`evaluate(run, prepared, objectives)` applies the case's injury model to a run and measures
what is asked of it against the case's target, margin and critical structures. Every number
here is a function of the arrays on the prepared grid (see `cryoplan.metrics`).

What each objective costs, so that a planner or a sweep asks only for what it needs:

- (always) the probability of death and the lethal zone: one pass over the grid;
- `coverage`: the target's share in the lethal zone and the −20 / 0 °C isotherms: masks;
- `margin`: the target grown by the margins, signed surface-to-surface distances: marching
  cubes of the target and the lethal zone;
- `verdict`: complete ablation with margin or not (computes coverage and margin);
- `structures`: per other tissue: volumes, coldest point, clearance (a surface each);
- `organs`: per organ of an image's label map: volumes, coldest point, distance to the ice
  (two distance transforms for all organs);
- `reach`: each vessel's heat sink, the reach of the cold towards it and away (rays);
- `histograms`: temperature–volume histograms per tissue (a sort each);
- `time_series`: the recorded volumes against time (copies);
- `warnings`: uncalibrated probes, cold at the domain's edge, energy balance, limits.

`evaluate(run, prepared, ALL_OBJECTIVES)` is the full outcome of summary.json.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from scipy import ndimage

from cryoplan import metrics
from cryoplan.injury import LETHAL_PROBABILITY, injury_model

if TYPE_CHECKING:
    from cryoplan.preparation import PreparedCase
    from cryoplan.probes.catalogue import ProbeValidation
    from cryoplan.simulator import Run

Objective = Literal[
    "coverage",
    "margin",
    "verdict",
    "structures",
    "organs",
    "reach",
    "histograms",
    "time_series",
    "warnings",
]
OBJECTIVES: tuple[Objective, ...] = get_args(Objective)
ALL_OBJECTIVES: frozenset[Objective] = frozenset(OBJECTIVES)

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


@dataclass(frozen=True, eq=False)  # arrays: compared by identity, not elementwise
class Outcome:
    """What a run destroys, as numbers (see `as_dict` for the summary.json form).

    The injury model's probability of death and lethal zone are always there. Every other
    field belongs to one objective and is None unless it was asked for; `coverage` and
    `margin` are also None when the case names no target.
    """

    injury_model: str
    probability_of_death: np.ndarray
    lethal_zone: np.ndarray  # bool, p ≥ 0.5
    notes: list[str]
    coverage: dict[str, Any] | None = None
    margin: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    structures: dict[str, dict[str, Any]] | None = None
    organs: dict[str, dict[str, Any]] | None = None  # image domains: per organ of the labels
    reach: dict[str, dict[str, Any]] | None = None  # vessel tissue → its heat sink
    histograms: dict[str, list[float]] | None = None
    time_series: dict[str, list[float]] | None = None
    warnings: list[str] | None = None

    @property
    def target(self) -> dict[str, Any] | None:
        """The target's metrics as summary.json has them: coverage and margin together."""
        if self.coverage is None and self.margin is None:
            return None
        return {**(self.coverage or {}), **(self.margin or {})}

    def structures_with_heat_sinks(self) -> dict[str, dict[str, Any]] | None:
        """`structures` with each vessel's `heat_sink` (from `reach`) in its entry."""
        if self.structures is None and self.reach is None:
            return None
        sinks = self.reach or {}
        if self.structures is None:
            return {name: {"heat_sink": sink} for name, sink in sinks.items()}
        out = {}
        for name, entry in self.structures.items():
            if name not in sinks:
                out[name] = entry
                continue
            limit_keys = {"keep_above_c", "constraint_met", "constraint_note"}
            measured = {k: v for k, v in entry.items() if k not in limit_keys}
            limits = {k: v for k, v in entry.items() if k in limit_keys}
            out[name] = measured | {"heat_sink": sinks[name]} | limits
        return out

    def as_dict(self) -> dict[str, Any]:
        structures = self.structures_with_heat_sinks()
        return {
            "injury_model": self.injury_model,
            "verdict": self.verdict,
            "target": self.target,
            "structures": structures,
            "organs": self.organs,
            "collateral_damage_ml": None
            if self.structures is None
            else {name: s["lethal_volume_ml"] for name, s in self.structures.items()},
            "temperature_volume_histogram": self.histograms,
            "time_series": self.time_series,
            "warnings": self.warnings,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class _Zone:
    """What every measure reads: T_min, the probability of death and the lethal zone."""

    tmin_c: np.ndarray
    p: np.ndarray
    lethal: np.ndarray


def _target_coverage(prepared: PreparedCase, zone: _Zone) -> dict[str, Any]:
    case = prepared.case
    grid = prepared.grid
    target = prepared.tissue_mask(case.target)  # type: ignore[arg-type]
    centre_index = np.argwhere(target).mean(axis=0)
    return {
        "tissue": case.target,
        "volume_ml": int(target.sum()) * grid.voxel_volume_ml,
        "centre_lps_mm": grid.lps_from_index(centre_index).tolist(),
        "coverage_percent": {
            "lethal": metrics.coverage_percent(target, zone.lethal),
            "-20": metrics.coverage_percent(target, zone.tmin_c <= -20.0),
            "0": metrics.coverage_percent(target, zone.tmin_c <= 0.0),
        },
    }


def _target_margin(prepared: PreparedCase, zone: _Zone) -> dict[str, Any]:
    case = prepared.case
    grid = prepared.grid
    target = prepared.tissue_mask(case.target)  # type: ignore[arg-type]
    spacing = grid.spacing_mm
    margins = {}
    for m in sorted({case.margin_mm, SECOND_MARGIN_MM}):
        grown = metrics.dilate_mm(target, m, spacing)
        margins[f"{m:g}"] = metrics.coverage_percent(grown, zone.lethal)
    distances = metrics.signed_distances(
        metrics.region_surface(target), zone.p, LETHAL_PROBABILITY, spacing
    )
    out: dict[str, Any] = {
        "margin_coverage_percent": margins,
        "required_margin_mm": case.margin_mm,
        "margin_mm": {"minimum": distances.minimum_mm, "mean": distances.mean_mm},
    }
    if distances.distance_mm.size and np.isfinite(distances.minimum_mm):
        centre_index = np.argwhere(target).mean(axis=0)
        where = grid.lps_from_index(distances.argmin_index())
        out["margin_mm"]["minimum_at_lps_mm"] = where.tolist()
        out["margin_mm"]["minimum_side"] = direction_words(
            where - grid.lps_from_index(centre_index)
        )
    return out


def _limits(prepared: PreparedCase, zone: _Zone) -> dict[str, tuple[float, float]]:
    """Critical structures present (other than the target): name → (coldest T_min °C, the
    limit it must stay above), in material order."""
    case = prepared.case
    limits = {c.tissue: c.keep_above_c for c in case.critical_structures}
    out = {}
    for index, tissue in enumerate(prepared.tissues):
        if tissue.name == case.target or tissue.name not in limits:
            continue
        coldest = float(zone.tmin_c[prepared.material == index].min())
        out[tissue.name] = (coldest, limits[tissue.name])
    return out


def _structure_metrics(prepared: PreparedCase, zone: _Zone) -> dict[str, dict[str, Any]]:
    case = prepared.case
    grid = prepared.grid
    tmin = zone.tmin_c
    limits = {c.tissue: c.keep_above_c for c in case.critical_structures}
    out = {}
    for index, tissue in enumerate(prepared.tissues):
        if tissue.name == case.target:
            continue
        region = prepared.material == index
        surface = metrics.region_surface(region)
        clearance = metrics.signed_distances(surface, zone.p, LETHAL_PROBABILITY, grid.spacing_mm)
        # the same to the visible ice ball {T_min ≤ 0 °C}
        ice = metrics.signed_distances(surface, -tmin, 0.0, grid.spacing_mm)
        entry: dict[str, Any] = {
            "volume_ml": int(region.sum()) * grid.voxel_volume_ml,
            "lethal_volume_ml": int((region & zone.lethal).sum()) * grid.voxel_volume_ml,
            "frozen_volume_ml": int((region & (tmin <= 0.0)).sum()) * grid.voxel_volume_ml,
            "minimum_temperature_c": float(tmin[region].min()),
            # distance from the structure to the lethal zone (negative: the zone reaches in)
            "clearance_from_lethal_zone_mm": -float(clearance.distance_mm.max())
            if clearance.distance_mm.size
            else None,
            # distance from the structure to the ice ball's edge (negative: the ice reaches in)
            "clearance_from_ice_mm": _finite_or_none(-float(ice.distance_mm.max()))
            if ice.distance_mm.size
            else None,
        }
        if tissue.name in limits:
            entry["keep_above_c"] = limits[tissue.name]
            if tissue.blood_vessel:
                # held at blood temperature by the model: a temperature limit cannot fail,
                # so the test is not made; the ice's distance to the wall says what it would
                entry["constraint_met"] = None
                entry["constraint_note"] = (
                    "held at blood temperature by the model: see clearance_from_ice_mm"
                )
            else:
                entry["constraint_met"] = bool(entry["minimum_temperature_c"] > limits[tissue.name])
        out[tissue.name] = entry
    return out


def _finite_or_none(value: float) -> float | None:
    """JSON has no infinity: a structure the ice never nears (or wholly holds) gives None."""
    return value if np.isfinite(value) else None


def _heat_sinks(prepared: PreparedCase, tmin_c: np.ndarray) -> dict[str, dict[str, Any]]:
    """`reach_toward` for every vessel tissue other than the target (none without a target)."""
    case = prepared.case
    if case.target is None:
        return {}
    return {
        tissue.name: reach_toward(tmin_c, prepared, prepared.material == index)
        for index, tissue in enumerate(prepared.tissues)
        if tissue.blood_vessel and tissue.name != case.target
    }


def reach_toward(
    minimum_temperature_c: np.ndarray, prepared: PreparedCase, vessel: np.ndarray
) -> dict[str, Any]:
    """How far the cold reaches from the target's centre towards the nearest point of a
    vessel, and in the opposite direction (mm): a heat sink shortens the first.

    Measured on T_min (continuous, so finer than a voxel) at the target tissue's lethal
    temperature and at 0 °C (the visible ice edge).
    """
    grid = prepared.grid
    target_index = prepared.tissue_names.index(prepared.case.target)  # type: ignore[arg-type]
    lethal_c = prepared.tissues[target_index].lethal_temperature_c
    target = prepared.material == target_index
    centre = grid.lps_from_index(np.argwhere(target).mean(axis=0))
    vessel_points = grid.lps_from_index(np.argwhere(vessel))
    nearest = vessel_points[np.argmin(np.linalg.norm(vessel_points - centre, axis=1))]
    direction = (nearest - centre) / np.linalg.norm(nearest - centre)
    radii = np.arange(0.0, np.linalg.norm(nearest - centre) + 40.0, 0.02 * min(grid.spacing_mm))
    tmin = minimum_temperature_c

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
    coverage: dict[str, Any] | None,
    margin: dict[str, Any] | None,
    violated: list[str],
    freeze_cycles: int,
    repeat_cycle_credit_c: float,
) -> dict[str, Any]:
    """The headline: complete ablation with margin or not, after how many freeze–thaw
    cycles, and what the injury model credits a repeated cycle with (injury.yaml: no
    sourced figure, so nothing by default)."""
    cycles = {"freeze_thaw_cycles": freeze_cycles, "repeat_cycle_credit_c": repeat_cycle_credit_c}
    if coverage is None or margin is None:
        return {
            "complete_ablation_with_margin": None,
            "text": "no target given",
            "violated": violated,
        } | cycles
    covered = coverage["coverage_percent"]["lethal"]
    minimum = margin["margin_mm"]["minimum"]
    required = margin["required_margin_mm"]
    side = margin["margin_mm"].get("minimum_side", "?")
    complete = covered >= 100.0 - 1e-9 and minimum >= required
    if complete:
        text = f"complete ablation with ≥ {required:g} mm margin (minimum {minimum:.1f} mm)"
    elif covered >= 100.0 - 1e-9:
        text = (
            f"whole tumour inside the lethal zone, but the margin falls to {minimum:.1f} mm "
            f"< {required:g} mm on the {side} side"
        )
    else:
        text = (
            f"INCOMPLETE: {100 - covered:.1f} % of the target survives; the lethal zone falls "
            f"{-minimum:.1f} mm short on the {side} side"
        )
    text += f", after {freeze_cycles} freeze cycle{'s' if freeze_cycles != 1 else ''}"
    if freeze_cycles > 1:
        text += (
            " (no extra kill credited to repeated cycles: none is sourced)"
            if repeat_cycle_credit_c == 0.0
            else f" (repeated cycles credited: lethal {repeat_cycle_credit_c:g} K warmer)"
        )
    if violated:
        text += "; critical structure limit exceeded: " + ", ".join(violated)
    return {"complete_ablation_with_margin": complete, "text": text, "violated": violated} | cycles


def _histograms(prepared: PreparedCase, tmin_c: np.ndarray) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"temperature_c": DVH_TEMPERATURES_C.tolist()}
    for index, tissue in enumerate(prepared.tissues):
        out[tissue.name] = metrics.cumulative_temperature_volume(
            tmin_c, prepared.material == index, DVH_TEMPERATURES_C
        ).tolist()
    return out


def _time_series(run: Run) -> dict[str, list[float]]:
    h = run.history
    series = {"time_s": h.record_time_s.tolist()}
    for k, threshold in enumerate(h.volume_thresholds_c):
        series[f"volume_at_or_below_{threshold:g}_c_ml"] = (h.volume_m3[:, k] * 1e6).tolist()
    series["lethal_temperature_reached_ml"] = (h.destroyed_volume_m3 * 1e6).tolist()
    return series


def validation_warning(model: str, checked: ProbeValidation, frozen_properties: str) -> str:
    """The uncertainty of a probe model's figures, from its validation residuals."""
    low, high = checked.residual_range_mm
    n = len(checked.points)
    if n == 1:
        by = f"by {low:+.1f} mm"
    else:
        by = f"by {low:+.1f} to {high:+.1f} mm (mean |error| {checked.mean_abs_residual_mm:.1f} mm)"
    text = (
        f"{model}: on its {n} validation point{'s' if n > 1 else ''} (docs/validation.md) "
        f"simulated zones differ from the measured ones {by}; negative: smaller than "
        "measured. Sizes here carry that uncertainty"
    )
    if frozen_properties != checked.frozen_properties:
        text += (
            f" (residuals taken with frozen_properties {checked.frozen_properties}, this case "
            f"uses {frozen_properties})"
        )
    return text


def _warnings(
    run: Run, prepared: PreparedCase, zone: _Zone, organs: dict[str, dict[str, Any]] | None
) -> list[str]:
    models = prepared.case.probe_models
    warnings = []
    uncalibrated = sorted(
        {p.model or "inline" for p in run.probes if not (p.model and models[p.model].calibrated)}
    )
    if uncalibrated:
        named = [
            f"{name} ({models[name].calibration_note})"
            if name in models and models[name].calibration_note
            else name
            for name in uncalibrated
        ]
        warnings.append(
            "probe models not calibrated on measured ice balls: "
            + ", ".join(named)
            + "; sizes are for comparing plans, not absolute predictions"
        )
    if prepared.case.unphysical:
        warnings.append(
            "allow_unphysical: values outside their plausible ranges were used: "
            + "; ".join(prepared.case.unphysical)
        )
    for name in sorted({p.model for p in run.probes if p.model}):
        checked = models[name].validation
        if checked is not None:
            warnings.append(validation_warning(name, checked, prepared.case.frozen_properties))
    lethal = zone.lethal
    if (
        lethal[0].any()
        or lethal[-1].any()
        or lethal[:, 0].any()
        or lethal[:, -1].any()
        or (lethal[:, :, 0].any() or lethal[:, :, -1].any())
    ):
        warnings.append("the lethal zone reaches the domain's edge: enlarge the domain")
    ledger = run.history.ledger
    if ledger.relative_error > 0.005:
        warnings.append(f"energy balance error {ledger.relative_error:.2%} exceeds 0.5 %")
    for name, (coldest_c, limit_c) in _limits(prepared, zone).items():
        if not coldest_c > limit_c:
            warnings.append(f"{name} reaches {coldest_c:.1f} °C, below its limit {limit_c:g} °C")
    for name, organ in (organs or {}).items():
        if organ["role"] == "nearby" and organ["frozen_volume_ml"] > 0.0:
            warnings.append(
                f"{name} freezes: {organ['frozen_volume_ml']:.2f} mL at or below 0 °C, "
                f"{organ['lethal_volume_ml']:.2f} mL in the lethal zone, coldest "
                f"{organ['minimum_temperature_c']:.1f} °C"
            )
    return warnings


def _organ_metrics(prepared: PreparedCase, zone: _Zone) -> dict[str, dict[str, Any]] | None:
    """Per organ of the label map on the grid (image domains; None otherwise).

    `role`: "target" (mostly target voxels), "host" (the organ around the target,
    `metrics.surrounding_label`, as the planner finds it: its freezing is the margin),
    "vessel" (a large vessel, held at blood temperature: it never freezes in the model, so
    its distance to the ice is what matters), or "nearby".
    `ice_clearance_mm` is the distance from the organ to the visible ice ball {T_min ≤ 0 °C}
    to a voxel: the distance between the nearest voxel centres less one voxel (0 when they
    touch), negative as deep as the ice reaches into the organ; None with no ice.
    """
    organs = prepared.tissue_map.organs
    if organs is None:
        return None
    grid = prepared.grid
    spacing = grid.spacing_mm
    voxel_mm = float(np.mean(spacing))
    ice = zone.tmin_c <= 0.0
    to_ice = ndimage.distance_transform_edt(~ice, sampling=spacing) if ice.any() else None
    into_ice = ndimage.distance_transform_edt(ice, sampling=spacing)
    target = (
        prepared.tissue_mask(prepared.case.target)
        if prepared.case.target in prepared.tissue_names
        else np.zeros(grid.shape, bool)
    )
    host = metrics.surrounding_label(target, organs.labels) if target.any() else None
    out: dict[str, dict[str, Any]] = {}
    for value, name in organs.names.items():
        region = organs.labels == value
        voxels = int(region.sum())
        if voxels == 0:
            continue
        tissue = prepared.tissues[int(np.bincount(prepared.material[region]).argmax())]
        if (region & target).sum() * 2 > voxels:
            role = "target"
        elif value == host:
            role = "host"
        elif tissue.blood_vessel:
            role = "vessel"
        else:
            role = "nearby"
        clearance = None
        if to_ice is not None:
            depth = float(into_ice[region].max())
            clearance = -depth if depth > 0.0 else float(to_ice[region].min()) - voxel_mm
        out[name] = {
            "label": value,
            "tissue": tissue.name,
            "role": role,
            "volume_in_grid_ml": voxels * grid.voxel_volume_ml,
            "frozen_volume_ml": int((region & ice).sum()) * grid.voxel_volume_ml,
            "lethal_volume_ml": int((region & zone.lethal).sum()) * grid.voxel_volume_ml,
            "minimum_temperature_c": float(zone.tmin_c[region].min()),
            "ice_clearance_mm": clearance,
        }
    return out


def evaluate(
    run: Run, prepared: PreparedCase, objectives: Iterable[Objective] = ALL_OBJECTIVES
) -> Outcome:
    """Apply the case's injury model to a run and measure the objectives asked for (see the
    module docstring); the other fields of the `Outcome` are None."""
    asked = frozenset(objectives)
    unknown = asked - ALL_OBJECTIVES
    if unknown:
        raise ValueError(
            f"unknown objectives {sorted(unknown)}; choose from {', '.join(OBJECTIVES)}"
        )
    case = prepared.case
    h = run.history
    model = injury_model(case.injury.model)
    p = model.probability_of_death(
        h.minimum_temperature_c, h.freeze_thaw_cycles, prepared.material, prepared.tissues
    )
    zone = _Zone(h.minimum_temperature_c, p, p >= LETHAL_PROBABILITY)
    has_target = case.target is not None
    coverage = margin = None
    if has_target and asked & {"coverage", "verdict"}:
        coverage = _target_coverage(prepared, zone)
    if has_target and asked & {"margin", "verdict"}:
        margin = _target_margin(prepared, zone)
    organs = _organ_metrics(prepared, zone) if asked & {"organs", "warnings"} else None
    verdict = None
    if "verdict" in asked:
        violated = [n for n, (cold, limit) in _limits(prepared, zone).items() if not cold > limit]
        freezes = sum(1 for phase in run.protocol if phase.phase == "freeze")
        credit = float(getattr(model, "second_cycle_shift_c", 0.0))  # threshold model: none
        verdict = _verdict(coverage, margin, violated, freezes, credit)
    return Outcome(
        injury_model=model.name,
        probability_of_death=p,
        lethal_zone=zone.lethal,
        notes=model.notes(prepared.tissues),
        coverage=coverage if "coverage" in asked else None,
        margin=margin if "margin" in asked else None,
        verdict=verdict,
        structures=_structure_metrics(prepared, zone) if "structures" in asked else None,
        organs=organs if "organs" in asked else None,
        reach=_heat_sinks(prepared, zone.tmin_c) if "reach" in asked else None,
        histograms=_histograms(prepared, zone.tmin_c) if "histograms" in asked else None,
        time_series=_time_series(run) if "time_series" in asked else None,
        warnings=_warnings(run, prepared, zone, organs) if "warnings" in asked else None,
    )
