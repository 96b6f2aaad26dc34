"""Freeze–thaw protocol → the solver's schedule of segments with one drive per probe.

Phases run one after another. A phase applies to every probe unless it names some; probes it
does not name exchange no heat during it (as in a passive thaw).

- freeze: the probe's cooling model (catalogue wall curve or gas, or the inline wall
  temperature), its curve restarting at the beginning of each freeze phase;
- passive_thaw: no exchange through the probe wall;
- active_thaw: the wall held at the probe's active-thaw temperature (helium or electrical).
"""

from __future__ import annotations

from cryoplan.case import Case, ProbeSpec
from cryoplan.errors import CaseError
from cryoplan.probes.catalogue import GasCooling, load_catalogue
from cryoplan.thermal.problem import DriveKind, ProbeDrive, Segment


def freeze_drive(probe: ProbeSpec, phase_start_s: float) -> ProbeDrive:
    """The drive of one probe during a freeze phase."""
    if probe.model is None:
        return ProbeDrive(
            DriveKind.WALL, ((0.0, float(probe.wall_temperature_c)),), phase_start_s=phase_start_s
        )  # type: ignore[arg-type]
    cooling = load_catalogue().probes[probe.model].cooling
    if isinstance(cooling, GasCooling):
        return ProbeDrive(
            DriveKind.GAS,
            ((0.0, cooling.gas_temperature_c),),
            film_coefficient_w_m2k=cooling.heat_transfer_w_m2k,
            phase_start_s=phase_start_s,
        )
    return ProbeDrive(DriveKind.WALL, tuple(cooling.wall_curve_c), phase_start_s=phase_start_s)


def active_thaw_temperature_c(case: Case, index: int, phase_index: int) -> float:
    probe = case.probes[index]
    if probe.active_thaw_temperature_c is not None:
        return probe.active_thaw_temperature_c
    if probe.model is not None:
        return load_catalogue().probes[probe.model].active_thaw_temperature_c
    raise CaseError(
        case.source,
        f"probes[{index}].active_thaw_temperature_c",
        f"an inline probe used in an active_thaw phase (protocol[{phase_index}]) "
        "needs its thaw wall temperature",
    )


def build_schedule(case: Case) -> tuple[Segment, ...]:
    """One segment per protocol phase, in order, starting at t = 0."""
    names = case.probe_names()
    segments = []
    t = 0.0
    for k, phase in enumerate(case.protocol):
        end = t + phase.seconds
        drives = []
        for i, probe in enumerate(case.probes):
            applies = phase.probes is None or names[i] in phase.probes
            if not applies or phase.phase == "passive_thaw":
                drives.append(ProbeDrive(DriveKind.OFF, phase_start_s=t))
            elif phase.phase == "freeze":
                drives.append(freeze_drive(probe, t))
            else:
                temp = active_thaw_temperature_c(case, i, k)
                drives.append(ProbeDrive(DriveKind.WALL, ((0.0, temp),), phase_start_s=t))
        segments.append(Segment(t, end, tuple(drives), label=f"{k + 1}:{phase.phase}"))
        t = end
    return tuple(segments)
