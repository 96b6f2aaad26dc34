"""What every peer solver returns, and the schedule walk they share with cryoplan's `solve`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np

from cryoplan.thermal.problem import DriveKind, Segment, ThermalProblem


@dataclass
class PeerResult:
    """T_min and final T [°C] on the problem's grid, effort, and the energy ledger."""

    solver: str
    minimum_temperature_c: np.ndarray
    final_temperature_c: np.ndarray
    n_steps: int
    time_step_s: float  # the largest step taken
    wall_time_s: float
    ledger_relative_error: float  # |ΔH − Σ sources| / largest term, as cryoplan's EnergyLedger
    ledger: dict[str, float] = field(default_factory=dict)
    extra: dict[str, float] = field(default_factory=dict)  # solver-specific counters


@dataclass(frozen=True)
class Step:
    """One time step: from t_s to t_s + dt_s inside `segment` (drives taken at t_s)."""

    t_s: float
    dt_s: float
    segment: Segment


def schedule_steps(
    problem: ThermalProblem, dt_max_s: float, until_s: float | None = None
) -> Iterator[Step]:
    """Equal steps ≤ dt_max_s within each segment, as cryoplan's `solve` without sensors.

    With `until_s` the schedule is cut there (a short window of a long protocol).
    """
    t = 0.0
    for seg in problem.schedule:
        end = seg.end_s if until_s is None else min(seg.end_s, until_s)
        if end <= t:
            break
        n_sub = max(1, math.ceil((end - t) / dt_max_s - 1e-9))
        dt = (end - t) / n_sub
        for sub in range(n_sub):
            yield Step(t, dt, seg)
            t = float(end) if sub == n_sub - 1 else t + dt


def drive_arrays(segment: Segment, t_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-probe drive temperature [°C], film coefficient and on/off at time t_s."""
    active = np.array([d.kind != DriveKind.OFF for d in segment.drives], np.bool_)
    films = np.array([d.film_coefficient_w_m2k for d in segment.drives], np.float64)
    temps = np.array(
        [d.temperature_at(t_s) if a else 0.0 for d, a in zip(segment.drives, active, strict=True)],
        np.float64,
    )
    return temps, films, active


def truncated(problem: ThermalProblem, until_s: float) -> ThermalProblem:
    """The problem with its schedule cut at `until_s` (a short window of a long protocol)."""
    segments = []
    for seg in problem.schedule:
        if seg.start_s >= until_s:
            break
        segments.append(replace(seg, end_s=min(seg.end_s, until_s)))
    return replace(problem, schedule=tuple(segments))
