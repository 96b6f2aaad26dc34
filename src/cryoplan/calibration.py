"""Calibration of catalogue probe models on published ice-ball measurements.

`python -m cryoplan.calibration` re-runs the fits and prints the table measurement /
simulation / difference (docs/validation.md records the result and every assumption).

The measurements (../shared/reference/calibration.md) are phantom ice balls:

- Littrup et al. 2009 (PMC2762356): 2.4 mm argon probes in agar at 39 °C, one 15-min freeze;
  −30 °C zone diameter 1.2 cm for one probe (fitted), and, predicted as validations, 3.3 cm
  across a pair 2 cm apart, 4.1 and 4.9 cm for three and four probes 2 cm apart, and 84 % of
  the 2.4 mm figures for 1.7 mm probes.
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
- ``cluster_diameter``: a cluster of parallel probes; twice the mean, over 16 directions, of
  the isotherm's distance from the cluster's centre (the mean of the probe axes) in that
  plane ("average diameter").

Probes stand along z with the middle of their active length in the plane z = 0; the box is
sized so that the outer boundary (held at the phantom temperature) stays out of the ice ball's
way: `boundary_cooling_k` reports how far the outermost voxel layer cooled (the evidence that
the box is large enough is that the figures do not move when it grows: docs/validation.md).
"""

from __future__ import annotations

import argparse
import dataclasses
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

Quantity = Literal["radius", "diameter", "pair_extent", "cluster_diameter"]


@dataclass(frozen=True)
class Measurement:
    """One published ice-ball figure and the simulated set-up that reproduces it.

    Layout: probes of `probe_model` parallel to z at the (x, y) positions `probe_xy_mm`,
    the middle of each active length at z = 0, in a box of `tissue` held at
    `phantom_temperature_c` on its outer faces and initially at that temperature.
    """

    name: str
    source: str
    probe_model: str
    probe_xy_mm: tuple[tuple[float, float], ...]
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
    # the published zone lies this far inside the simulated isotherm on each side (an
    # in-vivo ablation zone inside the ice ball's 0 °C edge): subtracted twice
    rim_mm: float = 0.0

    def setup(self) -> tuple[Any, ...]:
        """What the simulation depends on: measurements with equal set-ups share one run."""
        return (
            self.probe_model, self.probe_xy_mm,
            tuple(tuple(sorted(phase.items())) for phase in self.protocol),
            self.phantom_temperature_c, self.tissue, self.box_mm,
        )  # fmt: skip

    def describe(self) -> str:
        what = {
            "radius": "radius",
            "diameter": "diameter",
            "pair_extent": "extent across the pair",
            "cluster_diameter": f"diameter of {len(self.probe_xy_mm)} probes",
        }[self.quantity]
        return f"{self.isotherm_c:g} °C {what}"


LITTRUP_PROTOCOL = ({"phase": "freeze", "duration_min": 15},)
SHAH_PROTOCOL = ({"phase": "freeze", "duration_min": 10},)  # [A] duration not published

LITTRUP_SINGLE = Measurement(
    name="littrup-1probe",
    source="Littrup et al., J Vasc Interv Radiol 20:1343 (2009), PMC2762356",
    probe_model="argon-2.4mm",
    probe_xy_mm=((0.0, 0.0),),
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
    probe_xy_mm=((-10.0, 0.0), (10.0, 0.0)),
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
    probe_xy_mm=((0.0, 0.0),),
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
    probe_xy_mm=((0.0, 0.0),),
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

# Three and four probes 2 cm apart: the layouts are not in the abstract; [A] an equilateral
# triangle and a square of 20 mm sides (the study's 2 cm spacing), centred on the origin.
_TRIANGLE_MM = tuple(
    (round(20.0 / math.sqrt(3) * math.cos(a), 4), round(20.0 / math.sqrt(3) * math.sin(a), 4))
    for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
)
_SQUARE_MM = ((-10.0, -10.0), (10.0, -10.0), (10.0, 10.0), (-10.0, 10.0))
_LITTRUP_LAYOUT_NOTE = (
    "layout not in the abstract: an equilateral triangle / square of 20 mm sides assumed; "
    "'average lethal ice diameter' read as twice the mean radius about the cluster's centre"
)
LITTRUP_TRIPLE = Measurement(
    name="littrup-3probes",
    source=LITTRUP_SINGLE.source,
    probe_model="argon-2.4mm",
    probe_xy_mm=_TRIANGLE_MM,
    protocol=LITTRUP_PROTOCOL,
    phantom_temperature_c=39.0,
    tissue="agar",
    box_mm=(100.0, 100.0, 96.0),
    quantity="cluster_diameter",
    isotherm_c=-30.0,
    measured_mm=41.0,
    tolerance_mm=1.0,
    tolerance_basis="±1 mm, as for the single probe",
    role="validation",
    notes=_LITTRUP_LAYOUT_NOTE,
)
LITTRUP_QUADRUPLE = dataclasses.replace(
    LITTRUP_TRIPLE,
    name="littrup-4probes",
    probe_xy_mm=_SQUARE_MM,
    box_mm=(108.0, 108.0, 96.0),
    measured_mm=49.0,
)
LITTRUP_THIN = dataclasses.replace(
    LITTRUP_SINGLE,
    name="littrup-1probe-1.7mm",
    probe_model="argon-1.7mm",
    measured_mm=10.1,
    tolerance_basis=(
        "±1 mm, as for the single probe; the figure is [D] 84 % × 12 mm (the study gives the "
        "1.7 mm probes' lethal diameters as 84 % of the 2.4 mm probes', over its layouts)"
    ),
    role="validation",
    notes="the 84 % is the study's average over probe counts, applied here to one probe",
)

# In vivo: CVIR 2018 (doi 10.1007/s00270-018-1950-z; SIR 2018 abstract no. 344 for the
# single-freeze arm), 5 swine, 2 probes per ablation, one 15-min freeze: ablation zone width
# liver 4.3 ± 0.28 cm, kidney 4.00 ± 0.44 cm; viable rim inside the ice ball ≈ 1 mm. Probe
# model, spacing and active length are not in the abstracts: [A] argon-2.4mm, 20 mm apart
# (Littrup's spacing); "width" read as the extent across the pair, the 0 °C edge less the
# 1 mm rim on each side. The lengths (6.85 / 4.96 cm along the probes) are not compared:
# they follow the assumed active length.
_CVIR_SOURCE = "CVIR 41:1089 (2018), doi 10.1007/s00270-018-1950-z; SIR 2018 abstract 344"
_CVIR_NOTES = (
    "probe model, spacing and active length not published: argon-2.4mm 20 mm apart assumed; "
    "ablation zone = 0 °C edge less the paper's 1 mm viable rim on each side"
)
CVIR_LIVER = Measurement(
    name="cvir2018-liver",
    source=_CVIR_SOURCE,
    probe_model="argon-2.4mm",
    probe_xy_mm=((-10.0, 0.0), (10.0, 0.0)),
    protocol=LITTRUP_PROTOCOL,
    phantom_temperature_c=37.0,
    tissue="liver",
    box_mm=(100.0, 80.0, 110.0),
    quantity="pair_extent",
    isotherm_c=0.0,
    measured_mm=43.0,
    tolerance_mm=2.8,
    tolerance_basis="±2.8 mm: one standard deviation over the 5 swine",
    role="validation",
    notes=_CVIR_NOTES,
    rim_mm=1.0,
)
CVIR_KIDNEY = dataclasses.replace(
    CVIR_LIVER,
    name="cvir2018-kidney",
    tissue="kidney",
    measured_mm=40.0,
    tolerance_mm=4.4,
    tolerance_basis="±4.4 mm: one standard deviation over the 5 swine",
)

MEASUREMENTS: tuple[Measurement, ...] = (
    LITTRUP_SINGLE, LITTRUP_PAIR, LITTRUP_TRIPLE, LITTRUP_QUADRUPLE, LITTRUP_THIN, SHAH_CORE,
    SHAH_EDGE, CVIR_LIVER, CVIR_KIDNEY,
)  # fmt: skip


# --- simulating a measurement ---------------------------------------------------------------


def case_dict(
    m: Measurement,
    spacing_mm: float = GRID_SPACING_MM,
    model: ProbeModel | None = None,
    frozen_properties: str = "constant",
) -> dict[str, Any]:
    """The case of a measurement (see `Measurement` for the layout), with `model` in place of
    the catalogue's entry (its active length places the probes). `frozen_properties` is the
    case's model of the frozen phase (`Case.frozen_properties`)."""
    model = model if model is not None else load_catalogue().probes[m.probe_model]
    half = model.active_length_mm / 2
    data: dict[str, Any] = {
        "name": m.name,
        "body_temperature_c": m.phantom_temperature_c,
        "outer_boundary": "body_temperature",
        "frozen_properties": frozen_properties,
        "domain": {"box": {"size_mm": list(m.box_mm), "tissue": m.tissue}},
        "grid": {"spacing_mm": spacing_mm},
        "probes": [
            {"model": m.probe_model, "tip_mm": [x, y, -half], "entry_mm": [x, y, 200.0]}
            for x, y in m.probe_xy_mm
        ],
        "protocol": [dict(p) for p in m.protocol],
        "output": {"sensor_interval_s": 60},
    }
    return data


def run(
    m: Measurement,
    model: ProbeModel | None = None,
    spacing_mm: float = GRID_SPACING_MM,
    protocol: tuple[dict[str, Any], ...] | None = None,
    frozen_properties: str = "constant",
) -> SimulationResult:
    """Simulate a measurement's set-up, with `model` in place of the catalogue's entry (for
    this case only: the case carries it, the packaged catalogue is not changed)."""
    overrides = {m.probe_model: model} if model is not None else {}
    data = case_dict(m, spacing_mm, model, frozen_properties)
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
    result: SimulationResult, isotherm_c: float, probe_index: int | None = 0
) -> np.ndarray:
    """The isotherm's distance from a probe's axis (`probe_index`), or from the probes' centre
    (None), along 16 rays in the plane through the middle of the active lengths."""
    probes = result.probes if probe_index is None else [result.probes[probe_index]]
    mid = np.mean([0.5 * (p.tip_mm + p.active_end_mm) for p in probes], axis=0)
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
        return pair_extent_mm(result, m.isotherm_c) - 2 * m.rim_mm
    if m.quantity == "cluster_diameter":
        return 2 * float(np.mean(isotherm_radii_mm(result, m.isotherm_c, probe_index=None)))
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
    frozen_properties: str = "constant",
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
        simulated = measure(
            run(m, parameter.apply(base, value), frozen_properties=frozen_properties), m
        )
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
    parser.add_argument(
        "--measurements", help="simulate only these measurements (comma-separated names)"
    )
    parser.add_argument(
        "--frozen-properties",
        choices=("constant", "temperature_dependent"),
        default="constant",
        help="the cases' model of the frozen phase (default: constant, as the case default)",
    )
    args = parser.parse_args(argv)
    catalogue = load_catalogue().probes
    print(f"cryoplan calibration, {datetime.date.today().isoformat()}, grid {GRID_SPACING_MM} mm")
    frozen = args.frozen_properties
    models: dict[str, ProbeModel] = {}
    if not args.no_fit:
        for m, param, bracket in FITS:
            if args.only and m.probe_model != args.only:
                continue
            print(
                f"fitting {m.probe_model} {param.name} on {m.name} "
                f"({m.describe()} {m.measured_mm} mm)"
            )
            r = fit(m, param, catalogue[m.probe_model], bracket, frozen_properties=frozen)
            flag = f" (at its {r.at_bound} bound)" if r.at_bound else ""
            print(
                f"  -> {param.name} = {r.value:.4g} {param.unit}{flag}; catalogue has "
                f"{_parameter_value(catalogue[m.probe_model], param):.4g}; "
                f"{len(r.evaluations)} simulations"
            )
            models[m.probe_model] = param.apply(catalogue[m.probe_model], r.value)
            for model_name, film_from in FILM_SHARED_WITH.items():
                if film_from == m.probe_model and param is FILM_COEFFICIENT:
                    models[model_name] = param.apply(catalogue[model_name], r.value)
    wanted = set(args.measurements.split(",")) if args.measurements else None
    rows = []
    done: dict[tuple[Any, ...], SimulationResult] = {}
    for m in MEASUREMENTS:
        if wanted is not None and m.name not in wanted:
            continue
        key = m.setup()
        if key not in done:
            done[key] = run(m, models.get(m.probe_model), frozen_properties=frozen)
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
# Models not fitted on their own that take another's fitted film coefficient (same gas, same
# study): model → the model it follows.
FILM_SHARED_WITH = {"argon-1.7mm": "argon-2.4mm"}

if __name__ == "__main__":
    raise SystemExit(main())
