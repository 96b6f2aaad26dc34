"""Each sample's inputs, from the sweep file, the seed and the sample's number alone.

A run of a sweep is one `Sample`: a case (`case_index`), a sample number `sample`, and a
protocol variant (`protocol_index`, or -1 for the case's own protocol). Its inputs:

- the parameters' factors: each parameter's unit value u ∈ [0, 1] mapped through the
  inverse distribution function of its factor. In a Monte Carlo sweep u comes from the
  random stream seeded with (seed, 1, sample); in a sensitivity design it is row `sample`
  of SALib's Morris or Sobol' design, itself a function of the seed and `samples` alone.
  Every case and protocol of the sweep runs the same factors for the same sample number
  (common random numbers: differences between protocols or patients are not sampling noise);
- each probe's placement error: Gaussian, σ `lateral` in each of two directions across the
  shaft and σ `depth` along it (deeper positive), the whole probe moved (tip and entry),
  from the stream seeded with (seed, 2, case, block), where a block is one Monte Carlo
  sample, or the design rows whose outputs a sensitivity index compares (a Morris
  trajectory, a Sobol' base sample with its cross rows: `SweepSpec.design_block`). Within a
  block the probes stay put, so that an index measures the parameters, not placement noise.

None of it depends on the number of workers or the order in which samples run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from cryoplan.case import Case, ProbeSpec
from cryoplan.planning.layout import across
from cryoplan.sweep.spec import (
    TRUNCATE_SD,
    Distribution,
    LogNormal,
    Normal,
    SweepSpec,
    Triangular,
    Uniform,
)

FACTOR_STREAM = 1
PLACEMENT_STREAM = 2


@dataclass(frozen=True)
class Sample:
    """One run of the sweep and everything that makes it differ from its base case."""

    case_index: int
    sample: int
    protocol_index: int  # -1: the case's own protocol
    factors: tuple[tuple[str, float], ...]  # (parameter name, factor), in the spec's order
    shifts_mm: tuple[tuple[float, float, float], ...]  # per probe of the case, LPS mm

    @property
    def key(self) -> str:
        """The sample's name in the results folder and the cluster: case-sample-protocol."""
        return f"c{self.case_index:03d}-s{self.sample:06d}-p{self.protocol_index + 1:02d}"

    def probes(self, case: Case) -> list[ProbeSpec]:
        """The case's probes moved by this sample's placement error."""
        out = []
        for probe, shift in zip(case.probes or [], self.shifts_mm, strict=True):
            s = np.asarray(shift)
            out.append(
                probe.model_copy(
                    update={
                        "tip_mm": tuple((np.asarray(probe.tip_mm) + s).tolist()),
                        "entry_mm": tuple((np.asarray(probe.entry_mm) + s).tolist()),
                    }
                )
            )
        return out


def factor_of(distribution: Distribution, u: float) -> float:
    """The factor at unit value u ∈ [0, 1] (inverse distribution function; normal and
    log-normal factors cut at ± TRUNCATE_SD σ, u spread over what is left)."""
    if isinstance(distribution, Uniform):
        low, high = distribution.uniform
        return low + u * (high - low)
    if isinstance(distribution, Triangular):
        low, mode, high = distribution.triangular
        return float(stats.triang.ppf(u, (mode - low) / (high - low), loc=low, scale=high - low))
    tail = stats.norm.cdf(-TRUNCATE_SD)
    z = float(stats.norm.ppf(tail + u * (1.0 - 2.0 * tail)))  # |z| ≤ TRUNCATE_SD
    if isinstance(distribution, Normal):
        mean, sd = distribution.normal
        return mean + sd * z
    assert isinstance(distribution, LogNormal)
    median, sigma = distribution.lognormal
    return median * math.exp(sigma * z)


def factor_range(distribution: Distribution) -> tuple[float, float]:
    """The least and greatest factor the distribution gives."""
    return factor_of(distribution, 0.0), factor_of(distribution, 1.0)


def unit_design(spec: SweepSpec) -> np.ndarray | None:
    """The sensitivity design's unit values, (runs, parameters), or None for Monte Carlo."""
    if spec.sensitivity is None:
        return None
    from SALib.sample import morris, sobol  # noqa: PLC0415  (only sensitivity sweeps need it)

    names = [p.name for p in spec.vary.parameters]
    problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}
    if spec.sensitivity.method == "morris":
        return morris.sample(problem, spec.samples, num_levels=spec.sensitivity.levels,
                             seed=spec.seed)  # fmt: skip
    return sobol.sample(problem, spec.samples, calc_second_order=False, seed=spec.seed)


def unit_values(spec: SweepSpec, design: np.ndarray | None, sample: int) -> np.ndarray:
    """The parameters' unit values of sample `sample`."""
    if design is not None:
        return design[sample]
    rng = np.random.default_rng([spec.seed, FACTOR_STREAM, sample])
    return rng.random(len(spec.vary.parameters))


def placement_shifts(spec: SweepSpec, case: Case, case_index: int, sample: int) -> np.ndarray:
    """(probes, 3) displacements [mm] of the case's probes in this sample."""
    probes = case.probes or []
    error = spec.vary.placement_error_mm
    if error is None:
        return np.zeros((len(probes), 3))
    block = sample // spec.design_block  # module docstring
    rng = np.random.default_rng([spec.seed, PLACEMENT_STREAM, case_index, block])
    lateral = rng.normal(0.0, error.lateral, size=(len(probes), 2))
    depth = rng.normal(0.0, error.depth, size=len(probes))
    shifts = []
    for probe, (a, b), s in zip(probes, lateral, depth, strict=True):
        deeper = np.asarray(probe.tip_mm, float) - np.asarray(probe.entry_mm, float)
        deeper /= np.linalg.norm(deeper)
        e1, e2 = across(deeper)
        shifts.append(a * e1 + b * e2 + s * deeper)
    return np.asarray(shifts).reshape(-1, 3)


def samples_of(spec: SweepSpec, cases: list[Case]) -> list[Sample]:
    """Every run of the sweep, in its fixed order (case, sample, protocol)."""
    design = unit_design(spec)
    protocols = range(len(spec.vary.protocols)) if spec.vary.protocols else [-1]
    runs = spec.runs_per_sample_set
    factors_of = []
    for i in range(runs):
        u = unit_values(spec, design, i)
        factors_of.append(
            tuple(
                (p.name, factor_of(p.factor, float(ui)))
                for p, ui in zip(spec.vary.parameters, u, strict=True)
            )
        )
    out = []
    for c, case in enumerate(cases):
        for i in range(runs):
            shifts = tuple(tuple(map(float, s)) for s in placement_shifts(spec, case, c, i))
            out.extend(Sample(c, i, p, factors_of[i], shifts) for p in protocols)  # type: ignore[arg-type]
    return out


def inputs_row(sample: Sample, spec: SweepSpec, case_names: list[str]) -> dict[str, Any]:
    """The table's input columns of a sample."""
    row: dict[str, Any] = {
        "key": sample.key,
        "case": case_names[sample.case_index],
        "case_index": sample.case_index,
        "sample": sample.sample,
        "protocol": spec.vary.protocols[sample.protocol_index].name
        if spec.vary.protocols
        else "case",
    }
    row |= {f"factor_{name}": value for name, value in sample.factors}
    for j, shift in enumerate(sample.shifts_mm):
        row |= {f"shift_p{j + 1}_{axis}_mm": v for axis, v in zip("xyz", shift, strict=True)}
    return row
