"""The time loop: walk the schedule, step a back end, record the thermal history.

Steps are equal within each interval between events (segment boundaries, sensor samples,
snapshots), each no longer than the back end's stable step, so every event is hit exactly.
Probe drive temperatures are evaluated at the start of each step (explicit in time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cryoplan.thermal import steady
from cryoplan.thermal.backend import CpuExplicitBackend, StepFlows, ThermalBackend
from cryoplan.thermal.jit import CompileProgress, CompileReport, compile_entries
from cryoplan.thermal.multirate import CpuMultirateBackend
from cryoplan.thermal.problem import DriveKind, RecordingPlan, Segment, ThermalProblem
from cryoplan.thermal.threads import available_cpus

ProgressCallback = Callable[[float, float], None]  # (simulated time s, total s)


@dataclass
class EnergyLedger:
    """Heat [J] into the free voxels by source, against their change of enthalpy.

    Conservation (verification.md f): probes + perfusion + metabolism + outer boundary +
    fixed voxels (vessels, prescribed regions) + far field = ΔH. Probe heat is negative while
    freezing. The far field is the heat that voxels a back end leaves at rest (at their basal
    state, beyond the multirate back end's active box) give to the voxels it updates.
    """

    initial_enthalpy_j: float
    final_enthalpy_j: float = 0.0
    probes_j: float = 0.0
    perfusion_j: float = 0.0
    metabolic_j: float = 0.0
    boundary_j: float = 0.0
    fixed_j: float = 0.0
    far_field_j: float = 0.0

    def add(self, flows: StepFlows, dt_s: float) -> None:
        self.probes_j += flows.probes_w * dt_s
        self.perfusion_j += flows.perfusion_w * dt_s
        self.metabolic_j += flows.metabolic_w * dt_s
        self.boundary_j += flows.boundary_w * dt_s
        self.fixed_j += flows.fixed_w * dt_s
        self.far_field_j += flows.far_field_w * dt_s

    @property
    def enthalpy_change_j(self) -> float:
        return self.final_enthalpy_j - self.initial_enthalpy_j

    @property
    def sources_j(self) -> float:
        return (
            self.probes_j
            + self.perfusion_j
            + self.metabolic_j
            + self.boundary_j
            + self.fixed_j
            + self.far_field_j
        )

    @property
    def imbalance_j(self) -> float:
        return self.enthalpy_change_j - self.sources_j

    @property
    def relative_error(self) -> float:
        """|ΔH − Σ sources| over the largest single term (0 when nothing happened)."""
        terms = (
            self.enthalpy_change_j,
            self.probes_j,
            self.perfusion_j,
            self.metabolic_j,
            self.boundary_j,
            self.fixed_j,
            self.far_field_j,
        )
        scale = max(abs(t) for t in terms)
        return abs(self.imbalance_j) / scale if scale > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "enthalpy_change_j": self.enthalpy_change_j,
            "probes_j": self.probes_j,
            "perfusion_j": self.perfusion_j,
            "metabolic_j": self.metabolic_j,
            "outer_boundary_j": self.boundary_j,
            "fixed_voxels_j": self.fixed_j,
            "far_field_j": self.far_field_j,
            "imbalance_j": self.imbalance_j,
            "relative_error": self.relative_error,
        }


@dataclass
class ThermalHistory:
    """What a solve leaves behind (arrays on the problem's grid, °C)."""

    minimum_temperature_c: np.ndarray  # float32 on the CPU back ends (a record, not state)
    final_temperature_c: np.ndarray
    final_liquid_fraction: np.ndarray  # φ: 0 frozen, 1 unfrozen (float32)
    destroyed: np.ndarray  # reached the tissue's lethal temperature (perfusion stopped)
    freeze_thaw_cycles: np.ndarray  # uint8: times each voxel froze fully
    snapshots_c: dict[float, np.ndarray]
    record_time_s: np.ndarray  # when sensors and volumes were recorded
    sensor_temperature_c: np.ndarray  # (n_times, n_sensors)
    volume_thresholds_c: tuple[float, ...]
    volume_m3: np.ndarray  # (n_times, n_thresholds): current-temperature volumes
    destroyed_volume_m3: np.ndarray  # (n_times,): volume that has reached its lethal T
    ledger: EnergyLedger
    n_steps: int
    max_time_step_s: float
    wall_time_s: float  # the solve: from the back end's set-up to the last step
    backend: str
    compile_time_s: float = 0.0  # compiling or loading the kernels first (not in wall_time_s)
    setup_time_s: float = 0.0  # the back end's set-up, the first part of wall_time_s
    # φ at the snapshot times, if the recording plan asked for it
    snapshots_liquid_fraction: dict[float, np.ndarray] = field(default_factory=dict)


def _event_times(problem: ThermalProblem, plan: RecordingPlan) -> np.ndarray:
    end = problem.duration_s
    times = {0.0, end}
    for seg in problem.schedule:
        times.update((seg.start_s, seg.end_s))
    if plan.sensor_interval_s > 0:
        n = math.floor(end / plan.sensor_interval_s + 1e-9)
        times.update(i * plan.sensor_interval_s for i in range(n + 1))
    times.update(t for t in plan.snapshot_times_s if 0.0 <= t <= end)
    return np.array(sorted(times))


class _SensorSampler:
    """Trilinear interpolation of T at sensors given in voxel index coordinates, from the
    eight voxels around each (as `scipy.ndimage.map_coordinates(order=1, mode="nearest")`:
    positions beyond the grid take the nearest edge), so that recording asks the back end
    for those voxels rather than for a whole temperature field."""

    def __init__(self, sensors_ijk: np.ndarray, shape: tuple[int, int, int]) -> None:
        n_axes = np.asarray(shape)
        p = np.clip(sensors_ijk, 0.0, n_axes - 1)
        base = np.minimum(np.floor(p), np.maximum(n_axes - 2, 0)).astype(np.int64)
        frac = p - base
        upper = np.minimum(base + 1, n_axes - 1)
        index, weight = [], []
        for corner in np.ndindex(2, 2, 2):
            c = np.array(corner)
            ijk = np.where(c == 1, upper, base)
            index.append(np.ravel_multi_index(ijk.T, shape))
            weight.append(np.prod(np.where(c == 1, frac, 1.0 - frac), axis=1))
        self.flat_index = np.stack(index, axis=1)  # (n_sensors, 8)
        self.weight = np.stack(weight, axis=1)

    def __call__(self, backend: ThermalBackend) -> np.ndarray:
        if not self.flat_index.size:
            return np.zeros(0)
        values = backend.temperature_at_voxels_c(self.flat_index.reshape(-1))
        return np.sum(values.reshape(self.flat_index.shape) * self.weight, axis=1)


class _SegmentDrives:
    """Per-probe drive arrays of one segment; temperatures re-evaluated only if they vary."""

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.films = np.array([d.film_coefficient_w_m2k for d in segment.drives], np.float64)
        self.active = np.array([d.kind != DriveKind.OFF for d in segment.drives], np.bool_)
        self.varies = any(len(d.curve_s_c) > 1 for d in segment.drives)
        self._temps = self._evaluate(segment.start_s)

    def _evaluate(self, time_s: float) -> np.ndarray:
        temps = np.array([d.temperature_at(time_s) for d in self.segment.drives], np.float64)
        temps[~self.active] = 0.0
        return temps

    def temperatures(self, time_s: float) -> np.ndarray:
        return self._evaluate(time_s) if self.varies else self._temps


def compile_solver(
    backend_factory: Callable[[ThermalProblem], ThermalBackend] = CpuMultirateBackend,
    progress: CompileProgress | None = None,
    processes: int | None = None,
) -> CompileReport:
    """Compile, or load from numba's cache, everything a run with this back end calls: its
    kernels (`entries` of the back-end class) and the basal-state solve (`thermal.steady`).

    The first run after an install or an upgrade compiles; later runs, in any process, load
    the machine code from numba's cache. `processes` (default: 2 where two CPUs are free)
    share the compiling (`jit.compile_entries`)."""
    if processes is None:
        processes = min(2, available_cpus())
    return compile_entries(solver_entries(backend_factory), progress, processes)


def solver_entries(
    backend_factory: Callable[[ThermalProblem], ThermalBackend] = CpuMultirateBackend,
) -> tuple:
    """The compiled functions a run with this back end calls (see `compile_solver`)."""
    return (*getattr(backend_factory, "entries", ()), steady.cg_pass)


def solve(
    problem: ThermalProblem,
    plan: RecordingPlan | None = None,
    backend_factory: Callable[[ThermalProblem], ThermalBackend] = CpuExplicitBackend,
    progress: ProgressCallback | None = None,
) -> ThermalHistory:
    """Run the whole schedule of `problem` and return its thermal history.

    The back end's kernels are compiled (or loaded) first, and that time is reported apart
    (`compile_time_s`), not as solving time."""
    plan = plan or RecordingPlan()
    compiled = compile_entries(getattr(backend_factory, "entries", ()))
    started = time.perf_counter()
    backend = backend_factory(problem)
    dt_max = backend.stable_time_step_s()
    thresholds = np.asarray(plan.volume_thresholds_c, float)
    sensors = np.asarray(plan.sensor_index_xyz, float).reshape(-1, 3)
    sample_sensors = _SensorSampler(sensors, problem.shape)
    events = _event_times(problem, plan)
    sensor_times = set(
        np.round(np.arange(0.0, problem.duration_s + 1e-9, plan.sensor_interval_s), 9)
        if plan.sensor_interval_s > 0
        else [0.0, problem.duration_s]
    )
    snapshot_times = {round(t, 9) for t in plan.snapshot_times_s}

    if problem.fixed_temperature_fn is not None:
        backend.set_fixed_temperature(problem.fixed_temperature_fn(0.0))
    ledger = EnergyLedger(initial_enthalpy_j=backend.total_enthalpy_j())
    setup_s = time.perf_counter() - started
    rec_t: list[float] = []
    rec_sensors: list[np.ndarray] = []
    rec_volumes: list[np.ndarray] = []
    rec_destroyed: list[float] = []
    voxel_volume = problem.voxel_volume_m3
    snapshots: dict[float, np.ndarray] = {}
    snapshots_phi: dict[float, np.ndarray] = {}

    def record(t: float) -> None:
        key = round(t, 9)
        if key in sensor_times:
            rec_t.append(t)
            rec_sensors.append(sample_sensors(backend))
            rec_volumes.append(backend.volume_at_or_below_m3(thresholds))
            rec_destroyed.append(np.count_nonzero(backend.destroyed()) * voxel_volume)
        if key in snapshot_times:
            snapshots[t] = backend.temperature_c()
            if plan.snapshot_liquid_fraction:
                snapshots_phi[t] = backend.liquid_fraction()

    record(0.0)
    n_steps = 0
    t = 0.0
    for segment in problem.schedule:
        drives = _SegmentDrives(segment)
        seg_events = events[(events > segment.start_s) & (events <= segment.end_s)]
        for target in seg_events:
            n_sub = max(1, math.ceil((target - t) / dt_max - 1e-9))
            dt = (target - t) / n_sub
            for sub in range(n_sub):
                if problem.fixed_temperature_fn is not None:
                    backend.set_fixed_temperature(problem.fixed_temperature_fn(t))
                flows = backend.step(dt, drives.temperatures(t), drives.films, drives.active)
                ledger.add(flows, dt)
                n_steps += 1
                t = float(target) if sub == n_sub - 1 else t + dt
            record(t)
            if progress is not None:
                progress(t, problem.duration_s)
    ledger.final_enthalpy_j = backend.total_enthalpy_j()

    return ThermalHistory(
        # the back end ends here: its arrays are handed over, not copied (memory per voxel)
        minimum_temperature_c=backend.minimum_temperature_c(),
        final_liquid_fraction=backend.liquid_fraction(),
        final_temperature_c=backend.final_temperature_c(),
        destroyed=backend.destroyed(),
        freeze_thaw_cycles=backend.freeze_thaw_cycles(),
        snapshots_c=snapshots,
        record_time_s=np.array(rec_t),
        sensor_temperature_c=np.array(rec_sensors).reshape(len(rec_t), len(sensors)),
        volume_thresholds_c=tuple(float(x) for x in thresholds),
        volume_m3=np.array(rec_volumes).reshape(len(rec_t), len(thresholds)),
        destroyed_volume_m3=np.array(rec_destroyed),
        ledger=ledger,
        n_steps=n_steps,
        max_time_step_s=dt_max,
        wall_time_s=time.perf_counter() - started,
        backend=backend.name,
        compile_time_s=compiled.seconds,
        setup_time_s=setup_s,
        snapshots_liquid_fraction=snapshots_phi,
    )
