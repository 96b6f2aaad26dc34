"""What a simulation grid will cost, known before anything of its size is allocated.

A case whose grid would not fit the machine is refused in one line that says what to change,
instead of failing after minutes with an allocation error (or overflowing a voxel count).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryoplan.errors import CaseError
from cryoplan.tissues import load_library

if TYPE_CHECKING:
    from cryoplan.case import Case

# [D] the solve peaks at 37–39 bytes a voxel (benchmarks/README.md, cases S, M, L); the result
# fields written after it (T_min and the lethal zone in float32 and bytes, resampled onto a
# patient image) bring a run to about this.
BYTES_PER_VOXEL = 64
# About 50 bytes of state per voxel: 250 million voxels is ~12 GB, half the machine.
MAX_VOXELS = 250_000_000
MIN_VOXELS_PER_AXIS = 4  # fewer cannot hold a probe's kernel and an ice ball
MEMORY_LIMIT_ENV = "CRYOPLAN_MEMORY_LIMIT_GB"
TIME_LIMIT_ENV = "CRYOPLAN_TIME_LIMIT_H"
DEFAULT_TIME_LIMIT_H = 24.0
# [S] benchmarks/README.md: the fast path's reference-equivalent throughput (voxels × the
# reference scheme's steps per second of wall time) was 5.6–8.2 G updates/s on cases S, M, L.
# The fastest is taken, so that the estimate is a lower bound on the run time and a refusal
# is never spurious (small domains, where ice fills more of the grid, run slower than this).
REFERENCE_UPDATES_PER_S = 8.2e9


def available_memory_bytes() -> int:
    """The memory a run may use: $CRYOPLAN_MEMORY_LIMIT_GB if set, else what the system
    reports available (Linux MemAvailable), else the physical memory."""
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if limit:
        try:
            return int(float(limit) * 1024**3)
        except ValueError:
            pass
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def record_bytes(case: Case, voxels: int) -> int:
    """What a run's records will hold [bytes]: a row of sensor temperatures and isotherm
    volumes every sensor interval, and a float64 field per temperature snapshot."""
    duration_s = case.total_duration_s()
    rows = math.ceil(duration_s / case.output.sensor_interval_s) + 2
    columns = len(case.sensors) + 5  # time, three isotherm volumes, the lethal volume
    return 8 * rows * columns + 8 * voxels * len(case.output.snapshot_times_min)


def estimated_run_s(case: Case, voxels: int) -> float:
    """At least how long the case's protocol takes to simulate on this grid [s]: voxels ×
    reference steps (the explicit limit Δt = 0.9 h²/(6 α_max), α_max the largest k/C of the
    case's tissues, frozen ones at −196 °C when their properties follow temperature) at the
    reference-equivalent throughput the fast path reaches."""
    h_m = case.grid.spacing_mm * 1e-3
    coldest_c = -196.0
    ice = load_library().ice if case.frozen_properties == "temperature_dependent" else None
    alpha = 0.0
    for tissue in case.resolved_tissues.values():
        k_s, c_s = tissue.conductivity_w_mk.frozen, tissue.heat_capacity_j_m3k.frozen
        if ice is not None:
            kappa, gamma = tissue.frozen_slopes(ice)
            depth = max(tissue.freezing_range_c[0] - coldest_c, 0.0)
            k_s, c_s = k_s + kappa * depth, max(c_s - gamma * depth, 1.0)
        unfrozen = tissue.conductivity_w_mk.unfrozen / tissue.heat_capacity_j_m3k.unfrozen
        alpha = max(alpha, k_s / c_s, unfrozen)
    step_s = 0.9 * h_m * h_m / (6.0 * alpha)
    return voxels * (case.total_duration_s() / step_s) / REFERENCE_UPDATES_PER_S


def check_case_grid(case: Case, shape: Sequence[int]) -> None:
    """`check_grid` for the case's grid, its records counted in, and its estimated run time
    within $CRYOPLAN_TIME_LIMIT_H (default 24 h)."""
    voxels = math.prod(int(n) for n in shape)
    check_grid(
        case.source, "grid.spacing_mm", shape, case.grid.spacing_mm, record_bytes(case, voxels)
    )
    limit_h = _float_env(TIME_LIMIT_ENV, DEFAULT_TIME_LIMIT_H)
    hours = estimated_run_s(case, voxels) / 3600.0
    if hours > limit_h:
        raise CaseError(
            case.source, "grid.spacing_mm", f"a run that ends: at least {hours:,.0f} h at "
            f"{case.grid.spacing_mm:g} mm for {case.total_duration_s() / 60:g} min of protocol, "
            f"over the {limit_h:g} h limit (a coarser spacing, a smaller domain, or "
            f"${TIME_LIMIT_ENV})",
        )  # fmt: skip


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def check_grid(
    source: str, field: str, shape: Sequence[int], spacing_mm: float, extra_bytes: int = 0
) -> None:
    """Refuse a grid with too few voxels along a side, or too many for the memory (with
    `extra_bytes` of records besides), before it is allocated (`shape` in Python integers:
    no overflow)."""
    shape = [int(n) for n in shape]
    if min(shape) < MIN_VOXELS_PER_AXIS:
        raise CaseError(
            source, field, f"a spacing that puts at least {MIN_VOXELS_PER_AXIS} voxels along "
            f"each side of the domain ({spacing_mm:g} mm gives {' × '.join(map(str, shape))})",
        )  # fmt: skip
    voxels = math.prod(shape)
    if voxels > MAX_VOXELS:
        raise CaseError(
            source, field, f"a spacing that gives at most {MAX_VOXELS:,} voxels; "
            f"{spacing_mm:g} mm gives {voxels:,}",
        )  # fmt: skip
    need = voxels * BYTES_PER_VOXEL + extra_bytes
    have = available_memory_bytes()
    if need > have:
        raise CaseError(
            source, field, f"a grid that fits in memory: {voxels:,} voxels and their records "
            f"need about {need / 1024**3:.1f} GB and {have / 1024**3:.1f} GB are available "
            f"(a coarser spacing or a smaller domain; ${MEMORY_LIMIT_ENV} sets the limit)",
        )  # fmt: skip
