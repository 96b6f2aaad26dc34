"""Calibration of catalogue probe models on published ice-ball measurements.

`python -m cryoplan.calibration` re-runs the fits and prints the table measurement /
simulation / difference (docs/validation.md records the result and every assumption).

The measurements (../shared/reference/calibration.md) are phantom ice balls:

- Littrup et al. 2009 (PMC2762356): 2.4 mm argon probes in agar at 39 °C, one 15-min freeze;
  −30 °C zone diameter 1.2 cm for one probe (fitted) and 3.3 cm across a pair 2 cm apart
  (predicted, a validation).
- Shah et al. (PMC4850244): 17G argon needle in body-temperature gel; the ≤ −40 °C core
  extends about 1 cm from the needle (fitted) and 0 °C lies about 1 cm further out (predicted).

How a quantity is read off a simulation (all on T_min, the lowest temperature each voxel
reached, the quantity an isotherm "zone" of a phantom study reports):

- ``radius``: the mean, over 16 directions, of the isotherm's distance from the probe axis in
  the plane perpendicular to the probe through the middle of its active length. T_min is
  sampled trilinearly along each ray at 0.01 mm steps and the crossing interpolated linearly
  (the approach of tests/test_probes.py).
- ``diameter``: twice that mean radius.
- ``pair_extent``: two parallel probes in that plane; the isotherm's extent along the line
  through both probe axes, from the outer crossing beyond one probe to the outer crossing
  beyond the other ("diameter across the pair").

Probes stand along z with the middle of their active length in the plane z = 0; the box is
sized so that the outer boundary (held at the phantom temperature) stays out of the ice ball's
way: `boundary_cooling_k` reports how far the outermost voxel layer cooled (the evidence that
the box is large enough is that the figures do not move when it grows: docs/validation.md).
"""

from __future__ import annotations

import argparse
import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import ndimage, optimize

from cryoplan.case import case_from_dict
from cryoplan.probes.catalogue import (
    GasCooling,
    ProbeModel,
    WallTemperatureCooling,
    load_catalogue,
)
from cryoplan.simulation import SimulationResult, simulate

GRID_SPACING_MM = 1.0
RAYS = 16
RAY_STEP_MM = 0.01

Quantity = Literal["radius", "diameter", "pair_extent"]


@dataclass(frozen=True)
class Measurement:
    """One published ice-ball figure and the simulated set-up that reproduces it.

    Layout: probes of `probe_model` parallel to z at the x positions `probe_x_mm` (y = 0),
    the middle of each active length at z = 0, in a box of `tissue` held at
    `phantom_temperature_c` on its outer faces and initially at that temperature.
    """

    name: str
    source: str
    probe_model: str
    probe_x_mm: tuple[float, ...]
    protocol: tuple[dict[str, Any], ...]
    phantom_temperature_c: float
    tissue: str
    box_mm: tuple[float, float, float]
    quantity: Quantity
    isotherm_c: float
    measured_mm: float
    tolerance_mm: float
    tolerance_basis: str
    role: Literal["fit", "validation"]
    notes: str = ""

    def describe(self) -> str:
        what = {
            "radius": "radius",
            "diameter": "diameter",
            "pair_extent": "extent across the pair",
        }[self.quantity]
        return f"{self.isotherm_c:g} °C {what}"


LITTRUP_PROTOCOL = ({"phase": "freeze", "duration_min": 15},)
SHAH_PROTOCOL = ({"phase": "freeze", "duration_min": 10},)  # [A] duration not published

LITTRUP_SINGLE = Measurement(
    name="littrup-1probe",
    source="Littrup et al., J Vasc Interv Radiol 20:1343 (2009), PMC2762356",
    probe_model="argon-2.4mm",
    probe_x_mm=(0.0,),
    protocol=LITTRUP_PROTOCOL,
    phantom_temperature_c=39.0,
    tissue="agar",
    box_mm=(56.0, 56.0, 96.0),
    quantity="diameter",
    isotherm_c=-30.0,
    measured_mm=12.0,
    tolerance_mm=1.0,
    tolerance_basis=(
        "±1 mm: stated to 0.1 cm (±0.5 mm) and read between thermocouples at 0.5 cm "
        "spacing (placement ±0.5 mm)"
    ),
    role="fit",
)
LITTRUP_PAIR = Measurement(
    name="littrup-2probes",
    source=LITTRUP_SINGLE.source,
    probe_model="argon-2.4mm",
    probe_x_mm=(-10.0, 10.0),
    protocol=LITTRUP_PROTOCOL,
    phantom_temperature_c=39.0,
    tissue="agar",
    box_mm=(84.0, 64.0, 96.0),
    quantity="pair_extent",
    isotherm_c=-30.0,
    measured_mm=33.0,
    tolerance_mm=1.0,
    tolerance_basis="±1 mm, as for the single probe",
    role="validation",
)
SHAH_CORE = Measurement(
    name="shah-17g-core",
    source="Shah et al., PMC4850244",
    probe_model="argon-17g",
    probe_x_mm=(0.0,),
    protocol=SHAH_PROTOCOL,
    phantom_temperature_c=37.0,
    tissue="gel",
    box_mm=(64.0, 64.0, 72.0),
    quantity="radius",
    isotherm_c=-40.0,
    measured_mm=10.0,
    tolerance_mm=2.5,
    tolerance_basis="±2.5 mm: 'about 1 cm' is a figure at 0.5 cm resolution at best",
    role="fit",
    notes="freeze duration not published: 10 min assumed (the vendors' chart time)",
)
SHAH_EDGE = Measurement(
    name="shah-17g-edge",
    source=SHAH_CORE.source,
    probe_model="argon-17g",
    probe_x_mm=(0.0,),
    protocol=SHAH_PROTOCOL,
    phantom_temperature_c=37.0,
    tissue="gel",
    box_mm=SHAH_CORE.box_mm,
    quantity="radius",
    isotherm_c=0.0,
    measured_mm=20.0,
    tolerance_mm=5.0,
    tolerance_basis="±5 mm: the sum of two 'about 1 cm' distances, each ±2.5 mm",
    role="validation",
    notes=SHAH_CORE.notes,
)

MEASUREMENTS: tuple[Measurement, ...] = (LITTRUP_SINGLE, LITTRUP_PAIR, SHAH_CORE, SHAH_EDGE)


# --- simulating a measurement ---------------------------------------------------------------


def case_dict(
    m: Measurement, spacing_mm: float = GRID_SPACING_MM, model: ProbeModel | None = None
) -> dict[str, Any]:
    """The case of a measurement (see `Measurement` for the layout), with `model` in place of
    the catalogue's entry (its active length places the probes)."""
    model = model if model is not None else load_catalogue().probes[m.probe_model]
    half = model.active_length_mm / 2
    return {
        "name": m.name,
        "body_temperature_c": m.phantom_temperature_c,
        "outer_boundary": "body_temperature",
        "domain": {"box": {"size_mm": list(m.box_mm), "tissue": m.tissue}},
        "grid": {"spacing_mm": spacing_mm},
        "probes": [
            {"model": m.probe_model, "tip_mm": [x, 0.0, -half], "entry_mm": [x, 0.0, 200.0]}
            for x in m.probe_x_mm
        ],
        "protocol": [dict(p) for p in m.protocol],
        "output": {"sensor_interval_s": 60},
    }


def run(
    m: Measurement,
    model: ProbeModel | None = None,
    spacing_mm: float = GRID_SPACING_MM,
    protocol: tuple[dict[str, Any], ...] | None = None,
) -> SimulationResult:
    """Simulate a measurement's set-up, with `model` in place of the catalogue's entry (for
    this case only: the case carries it, the packaged catalogue is not changed)."""
    overrides = {m.probe_model: model} if model is not None else {}
    data = case_dict(m, spacing_mm, model)
    if protocol is not None:
        data["protocol"] = [dict(p) for p in protocol]
    return simulate(case_from_dict(data, f"calibration:{m.name}", probe_models=overrides))


def _plane_axes(result: SimulationResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit vectors (a, b) spanning the plane ⟂ probe 0, and the axis u."""
    probe = result.probes[0]
    u = probe.active_end_mm - probe.tip_mm
    u = u / np.linalg.norm(u)
    a = np.cross(u, [0.0, 0.0, 1.0] if abs(u[2]) < 0.9 else [1.0, 0.0, 0.0])
    a /= np.linalg.norm(a)
    return a, np.cross(u, a), u


def _tmin_along(result: SimulationResult, points_mm: np.ndarray) -> np.ndarray:
    grid = result.grid
    return ndimage.map_coordinates(
        result.history.minimum_temperature_c, grid.index_from_lps(points_mm).T, order=1
    )


def _first_crossing(s: np.ndarray, tmin: np.ndarray, isotherm_c: float) -> float:
    """Distance along a ray (from a point inside the isotherm) where T_min rises above it."""
    above = tmin > isotherm_c
    if above[0]:
        return 0.0  # the isotherm is not reached on the axis
    if not above.any():
        return math.nan
    k = int(np.argmax(above))
    s0, s1, t0, t1 = s[k - 1], s[k], tmin[k - 1], tmin[k]
    return float(s0 + (isotherm_c - t0) * (s1 - s0) / (t1 - t0))


def isotherm_radii_mm(
    result: SimulationResult, isotherm_c: float, probe_index: int = 0
) -> np.ndarray:
    """The isotherm's distance from a probe's axis along 16 rays in its mid-active plane."""
    probe = result.probes[probe_index]
    mid = 0.5 * (probe.tip_mm + probe.active_end_mm)
    a, b, _ = _plane_axes(result)
    half = 0.5 * float(min(result.grid.shape)) * min(result.grid.spacing_mm)
    s = np.arange(0.0, half, RAY_STEP_MM)
    out = []
    for phi in np.linspace(0.0, 2 * np.pi, RAYS, endpoint=False):
        d = np.cos(phi) * a + np.sin(phi) * b
        out.append(_first_crossing(s, _tmin_along(result, mid + s[:, None] * d), isotherm_c))
    return np.asarray(out)


def pair_extent_mm(result: SimulationResult, isotherm_c: float) -> float:
    """Extent of the isotherm along the line through probes 0 and 1 (outer crossing to outer)."""
    p0, p1 = result.probes[:2]
    m0 = 0.5 * (p0.tip_mm + p0.active_end_mm)
    m1 = 0.5 * (p1.tip_mm + p1.active_end_mm)
    d = (m1 - m0) / np.linalg.norm(m1 - m0)
    s = np.arange(0.0, 60.0, RAY_STEP_MM)
    out0 = _first_crossing(s, _tmin_along(result, m0 - s[:, None] * d), isotherm_c)
    out1 = _first_crossing(s, _tmin_along(result, m1 + s[:, None] * d), isotherm_c)
    return float(np.linalg.norm(m1 - m0) + out0 + out1)


def pair_merged(result: SimulationResult, isotherm_c: float) -> bool:
    """Whether the isotherm is continuous between the two probes (T_min at their midpoint)."""
    p0, p1 = result.probes[:2]
    mid = 0.25 * (p0.tip_mm + p0.active_end_mm + p1.tip_mm + p1.active_end_mm)
    return bool(_tmin_along(result, mid[None, :])[0] <= isotherm_c)


def boundary_cooling_k(result: SimulationResult) -> float:
    """How far below the phantom temperature the outermost voxel layer's T_min went (K)."""
    tmin = result.history.minimum_temperature_c
    t_body = float(result.case.body_temperature_c)  # type: ignore[arg-type]
    faces = (tmin[0], tmin[-1], tmin[:, 0], tmin[:, -1], tmin[:, :, 0], tmin[:, :, -1])
    return float(max(t_body - f.min() for f in faces))


def measure(result: SimulationResult, m: Measurement) -> float:
    """The measurement's quantity on a simulated result (mm)."""
    if m.quantity == "pair_extent":
        return pair_extent_mm(result, m.isotherm_c)
    radius = float(np.mean(isotherm_radii_mm(result, m.isotherm_c)))
    return 2 * radius if m.quantity == "diameter" else radius


def simulate_measurement(
    m: Measurement, model: ProbeModel | None = None, spacing_mm: float = GRID_SPACING_MM
) -> float:
    """Simulate one measurement and return the simulated value (mm); see the module doc."""
    return measure(run(m, model, spacing_mm), m)


# --- fitting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeParameter:
    """How one scalar parameter maps onto a probe model, and its physically plausible range."""

    name: str
    unit: str
    lower: float
    upper: float
    apply: Callable[[ProbeModel, float], ProbeModel]
    xtol: float  # on the parameter, or on its logarithm when log_scale
    log_scale: bool = False


def with_film_coefficient(model: ProbeModel, h: float) -> ProbeModel:
    cooling = GasCooling(
        model="gas",
        gas_temperature_c=model.cooling.gas_temperature_c,  # type: ignore[union-attr]
        heat_transfer_w_m2k=h,
    )
    return model.model_copy(update={"cooling": cooling})


def with_wall_temperature(model: ProbeModel, t_c: float) -> ProbeModel:
    cooling = WallTemperatureCooling(model="wall_temperature", wall_curve_c=[(0.0, t_c)])
    return model.model_copy(update={"cooling": cooling})


@dataclass
class FitResult:
    measurement: Measurement
    parameter: FreeParameter
    value: float
    simulated_mm: float
    at_bound: str | None
    evaluations: list[tuple[float, float]]


def fit(
    m: Measurement,
    parameter: FreeParameter,
    base: ProbeModel,
    bracket: tuple[float, float],
    report: Callable[[str], None] = print,
) -> FitResult:
    """Find the parameter value whose simulation reproduces `m` (bracket, then Brent's root).

    The simulated quantity is monotonic in the parameter. The bracket is checked first and
    widened to the parameter's plausible range if needed; if the measurement lies outside
    what the plausible range can give, the nearest bound is returned and flagged.
    """
    evaluations: list[tuple[float, float]] = []
    to_x: Callable[[float], float] = math.log if parameter.log_scale else float
    from_x: Callable[[float], float] = math.exp if parameter.log_scale else float

    cache: dict[float, float] = {}

    def residual(x: float) -> float:
        if x in cache:  # brentq evaluates the bracket's ends again
            return cache[x]
        value = from_x(x)
        simulated = simulate_measurement(m, parameter.apply(base, value))
        evaluations.append((value, simulated))
        cache[x] = simulated - m.measured_mm
        report(
            f"  {parameter.name} = {value:.6g} {parameter.unit}: {m.describe()} {simulated:.3f} mm"
        )
        return simulated - m.measured_mm

    lo, hi = to_x(bracket[0]), to_x(bracket[1])
    f_lo, f_hi = residual(lo), residual(hi)
    if f_lo * f_hi > 0:  # widen the end nearer the root out to the plausible bound
        if abs(f_lo) < abs(f_hi) and lo != to_x(parameter.lower):
            lo, f_lo = to_x(parameter.lower), residual(to_x(parameter.lower))
        elif abs(f_hi) <= abs(f_lo) and hi != to_x(parameter.upper):
            hi, f_hi = to_x(parameter.upper), residual(to_x(parameter.upper))
    if f_lo * f_hi > 0:
        x, at = (lo, "lower") if abs(f_lo) < abs(f_hi) else (hi, "upper")
        value = from_x(x)
        return FitResult(
            m, parameter, value, m.measured_mm + min(f_lo, f_hi, key=abs), at, evaluations
        )
    x = optimize.brentq(residual, lo, hi, xtol=parameter.xtol, rtol=1e-6, maxiter=12)
    simulated = m.measured_mm + residual(x)  # (cached: brentq returns an evaluated point)
    return FitResult(m, parameter, from_x(x), simulated, None, evaluations)


FILM_COEFFICIENT = FreeParameter(
    name="heat_transfer_w_m2k",
    unit="W/(m²·K)",
    lower=50.0,
    upper=1.0e5,
    apply=with_film_coefficient,
    xtol=0.01,  # 1 % in h, about 0.08 mm in the Littrup diameter
    log_scale=True,
)
WALL_TEMPERATURE = FreeParameter(
    name="wall_temperature_c",
    unit="°C",
    lower=-186.0,  # the argon Joule–Thomson temperature: a wall cannot be colder than the gas
    upper=-20.0,
    apply=with_wall_temperature,
    xtol=0.5,
)


# --- the table -------------------------------------------------------------------------------


def table(rows: list[tuple[Measurement, float]]) -> str:
    head = (
        f"{'measurement':<18} {'quantity':<28} {'role':<10} {'measured':>9} "
        f"{'simulated':>9} {'diff':>7} {'tol':>5}  ok"
    )
    lines = [head, "-" * len(head)]
    for m, sim in rows:
        diff = sim - m.measured_mm
        ok = "yes" if abs(diff) <= m.tolerance_mm else "NO"
        lines.append(
            f"{m.name:<18} {m.describe():<28} {m.role:<10} {m.measured_mm:>9.2f} "
            f"{sim:>9.2f} {diff:>+7.2f} {m.tolerance_mm:>5.1f}  {ok}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cryoplan.calibration", description=__doc__)
    parser.add_argument(
        "--no-fit", action="store_true", help="only simulate the catalogue values (no fitting)"
    )
    parser.add_argument("--only", help="fit only this probe model")
    args = parser.parse_args(argv)
    catalogue = load_catalogue().probes
    print(f"cryoplan calibration, {datetime.date.today().isoformat()}, grid {GRID_SPACING_MM} mm")
    models: dict[str, ProbeModel] = {}
    if not args.no_fit:
        for m, param, bracket in FITS:
            if args.only and m.probe_model != args.only:
                continue
            print(
                f"fitting {m.probe_model} {param.name} on {m.name} "
                f"({m.describe()} {m.measured_mm} mm)"
            )
            r = fit(m, param, catalogue[m.probe_model], bracket)
            flag = f" (at its {r.at_bound} bound)" if r.at_bound else ""
            print(
                f"  -> {param.name} = {r.value:.4g} {param.unit}{flag}; catalogue has "
                f"{_parameter_value(catalogue[m.probe_model], param):.4g}; "
                f"{len(r.evaluations)} simulations"
            )
            models[m.probe_model] = param.apply(catalogue[m.probe_model], r.value)
    rows = []
    done: dict[tuple[str, tuple[float, ...]], SimulationResult] = {}
    for m in MEASUREMENTS:
        key = (m.probe_model, m.probe_x_mm)
        if key not in done:
            done[key] = run(m, models.get(m.probe_model))
            cooling = boundary_cooling_k(done[key])
            print(f"{m.name}: outermost voxel layer cooled by {cooling:.3f} K")
        rows.append((m, measure(done[key], m)))
    print()
    print(table(rows))
    return 0


def _parameter_value(model: ProbeModel, param: FreeParameter) -> float:
    cooling = model.cooling
    if isinstance(cooling, GasCooling):
        return cooling.heat_transfer_w_m2k if param is FILM_COEFFICIENT else math.nan
    return cooling.wall_curve_c[0][1] if param is WALL_TEMPERATURE else math.nan


# (measurement fitted, free parameter, starting bracket from the exploration in validation.md)
FITS: tuple[tuple[Measurement, FreeParameter, tuple[float, float]], ...] = (
    (LITTRUP_SINGLE, FILM_COEFFICIENT, (100.0, 2000.0)),
    (SHAH_CORE, WALL_TEMPERATURE, (-186.0, -140.0)),
)

if __name__ == "__main__":
    raise SystemExit(main())
