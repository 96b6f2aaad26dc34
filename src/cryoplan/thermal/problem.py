"""The thermal Problem: plain arrays and a schedule, nothing about files, images or probes.

A `ThermalProblem` is what every solver back end accepts. It is produced by
`cryoplan.discretise` from a case, or built directly by tests from exact-solution set-ups.

Grid convention: arrays are indexed [i, j, k] along x, y, z with spacings `spacing_m`; voxel
centres sit at (i + ½)·dx from the lower face of the domain. Temperatures are °C; everything
else SI.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

# Outer-boundary face order and kinds (one entry per face of the box).
FACES = ("x-", "x+", "y-", "y+", "z-", "z+")
INSULATED = 0  # zero flux
FIXED_TEMPERATURE = 1  # Dirichlet at the face (half a voxel from the boundary voxel's centre)
ABSOLUTE_ZERO_C = -273.15


class DriveKind(IntEnum):
    """How a probe exchanges heat during a schedule segment."""

    OFF = 0  # passive thaw or idle: no exchange through the probe wall
    WALL = 1  # wall temperature prescribed (curve in time)
    GAS = 2  # gas temperature behind a film coefficient on the wall


@dataclass(frozen=True)
class ProbeDrive:
    """The cooling (or warming) applied to one probe during one segment.

    `curve_s_c` is a temperature curve [(seconds since the phase started, °C), …], linear
    between points and held after the last; for WALL it is the wall temperature, for GAS the
    gas temperature. `film_coefficient_w_m2k` is the gas-to-wall coefficient (GAS only).
    `phase_start_s` is when the phase this segment belongs to began.
    """

    kind: DriveKind
    curve_s_c: tuple[tuple[float, float], ...] = ()
    film_coefficient_w_m2k: float = float("inf")
    phase_start_s: float = 0.0

    def temperature_at(self, time_s: float) -> float:
        """The driving temperature [°C] at absolute time `time_s`."""
        if self.kind == DriveKind.OFF:
            return float("nan")
        times = np.array([p[0] for p in self.curve_s_c])
        temps = np.array([p[1] for p in self.curve_s_c])
        return float(np.interp(time_s - self.phase_start_s, times, temps))


@dataclass(frozen=True)
class Segment:
    """An interval of the schedule during which each probe's drive is fixed."""

    start_s: float
    end_s: float
    drives: tuple[ProbeDrive, ...]  # one per probe
    label: str = ""


@dataclass(frozen=True)
class ProbeCoupling:
    """Probes as sampled line sinks, spread on the grid by a smooth kernel.

    Sample s stands for a piece of length ds of a probe's active length. It sees the
    kernel-weighted tissue temperature T_s = Σ_v w_sv T_v and conductivity k_s = Σ_v w_sv k_v,
    and exchanges heat with the probe through a well-index conductance

        G_s = k_s · shape_factor_s,   shape_factor_s = 2π ds / ln(r_e / r_w)      [W/K]

    in series with a wall film h·2π r_w ds for gas cooling. The heat it extracts,
    Q_s = G_s (T_s − T_probe), is taken from the voxels with the same weights w_sv, so the
    exchange conserves energy exactly. r_e is the equivalent radius of the discrete kernel.
    """

    sample_start: np.ndarray  # int64, (n_samples + 1,): CSR row pointer into voxel_index/weight
    voxel_index: np.ndarray  # int64, flat (C-order) voxel indices
    weight: np.ndarray  # float64, sums to 1 per sample
    shape_factor_m: np.ndarray  # float64 (n_samples,): 2π ds / ln(r_e/r_w), m
    wall_area_m2: np.ndarray  # float64 (n_samples,): 2π r_w ds, m²
    probe_of_sample: np.ndarray  # int64 (n_samples,)
    n_probes: int

    @property
    def n_samples(self) -> int:
        return int(self.shape_factor_m.size)

    @staticmethod
    def empty() -> ProbeCoupling:
        return ProbeCoupling(
            sample_start=np.zeros(1, np.int64),
            voxel_index=np.zeros(0, np.int64),
            weight=np.zeros(0),
            shape_factor_m=np.zeros(0),
            wall_area_m2=np.zeros(0),
            probe_of_sample=np.zeros(0, np.int64),
            n_probes=0,
        )


@dataclass(frozen=True)
class ThermalProblem:
    """Everything a solver back end needs, as arrays.

    `fixed` marks voxels whose temperature is prescribed (large vessels at blood temperature,
    or exact values in verification tests); their temperature is `initial_temperature_c`
    unless `fixed_temperature_fn(t)` gives new values (in the order of `np.flatnonzero(fixed)`).
    """

    spacing_m: tuple[float, float, float]
    material: np.ndarray  # uint8 (nx, ny, nz): row of `properties`
    properties: np.ndarray  # (n_materials, N_PROPS), see thermal.materials
    initial_temperature_c: np.ndarray  # float64 (nx, ny, nz)
    fixed: np.ndarray  # bool (nx, ny, nz)
    boundary_kind: tuple[int, int, int, int, int, int]
    boundary_temperature_c: tuple[float, float, float, float, float, float]
    blood_temperature_c: float
    schedule: tuple[Segment, ...]
    probes: ProbeCoupling = field(default_factory=ProbeCoupling.empty)
    fixed_temperature_fn: Callable[[float], np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.material.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_m3(self) -> float:
        dx, dy, dz = self.spacing_m
        return dx * dy * dz

    @property
    def duration_s(self) -> float:
        return self.schedule[-1].end_s if self.schedule else 0.0

    def coldest_temperature_c(self) -> float:
        """A lower bound [°C] on any temperature of the run: the coldest of the initial
        field, the held outer faces and the probes' drive curves (heat conduction makes
        nothing colder than its coldest source). Time-varying fixed voxels are not known in
        advance: with them the bound is absolute zero."""
        if self.fixed_temperature_fn is not None:
            return ABSOLUTE_ZERO_C
        coldest = float(self.initial_temperature_c.min(initial=np.inf))
        for kind, temperature_c in zip(
            self.boundary_kind, self.boundary_temperature_c, strict=True
        ):
            if kind == FIXED_TEMPERATURE:
                coldest = min(coldest, temperature_c)
        for segment in self.schedule:
            for drive in segment.drives:
                if drive.kind != DriveKind.OFF:
                    coldest = min(coldest, *(c for _, c in drive.curve_s_c))
        return max(coldest, ABSOLUTE_ZERO_C)


@dataclass(frozen=True)
class RecordingPlan:
    """What to record while solving (physics-free: positions in voxel index space)."""

    snapshot_times_s: tuple[float, ...] = ()
    # also the liquid fraction φ at the snapshot times (where a sharp front lies: T alone
    # cannot tell a voxel at the freezing point frozen from unfrozen)
    snapshot_liquid_fraction: bool = False
    sensor_index_xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    sensor_interval_s: float = 5.0
    volume_thresholds_c: tuple[float, ...] = (0.0, -20.0, -40.0)
