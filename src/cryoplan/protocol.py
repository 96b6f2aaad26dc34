"""Freeze–thaw protocol → the solver's schedule of segments with one drive per probe.

Phases run one after another. A phase applies to every probe unless it names some; probes it
does not name exchange no heat during it (as in a passive thaw).

- freeze: the probe's cooling model (catalogue wall curve or gas, or the inline wall
  temperature), its curve restarting at the beginning of each freeze phase;
- passive_thaw: no exchange through the probe wall;
- active_thaw: the wall held at the probe's active-thaw temperature (helium or electrical).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryoplan.case import Case, Phase, ProbeSpec, probe_names
from cryoplan.errors import CaseError
from cryoplan.probes.catalogue import GasCooling, ProbeModel
from cryoplan.thermal.problem import DriveKind, ProbeDrive, Segment


def freeze_drive(
    probe: ProbeSpec, models: Mapping[str, ProbeModel], phase_start_s: float
) -> ProbeDrive:
    """The drive of one probe during a freeze phase (`models`: the case's catalogue)."""
    if probe.model is None:
        return ProbeDrive(
            DriveKind.WALL, ((0.0, float(probe.wall_temperature_c)),), phase_start_s=phase_start_s
        )  # type: ignore[arg-type]
    cooling = models[probe.model].cooling
    if isinstance(cooling, GasCooling):
        return ProbeDrive(
            DriveKind.GAS,
            ((0.0, cooling.gas_temperature_c),),
            film_coefficient_w_m2k=cooling.heat_transfer_w_m2k,
            phase_start_s=phase_start_s,
        )
    return ProbeDrive(DriveKind.WALL, tuple(cooling.wall_curve_c), phase_start_s=phase_start_s)


def active_thaw_temperature_c(
    probe: ProbeSpec,
    models: Mapping[str, ProbeModel],
    source: str,
    index: int,
    phase_index: int,
) -> float:
    """The wall temperature [°C] of probe `index` during an active thaw (its own, else its
    catalogue model's); an inline probe without one is a `CaseError`."""
    if probe.active_thaw_temperature_c is not None:
        return probe.active_thaw_temperature_c
    if probe.model is not None:
        return models[probe.model].active_thaw_temperature_c
    raise CaseError(
        source,
        f"probes[{index}].active_thaw_temperature_c",
        f"an inline probe used in an active_thaw phase (protocol[{phase_index}]) "
        "needs its thaw wall temperature",
    )


def build_schedule(
    case: Case,
    probes: Sequence[ProbeSpec] | None = None,
    protocol: Sequence[Phase] | None = None,
) -> tuple[Segment, ...]:
    """One segment per protocol phase, in order, starting at t = 0.

    `probes` and `protocol` default to the case's own; the probe models come from the case's
    catalogue and errors name the case's file.
    """
    if probes is None or protocol is None:
        own_probes, own_protocol = case.require_plan()
        probes = own_probes if probes is None else probes
        protocol = own_protocol if protocol is None else protocol
    names = probe_names(probes)
    models = case.probe_models
    segments = []
    t = 0.0
    for k, phase in enumerate(protocol):
        end = t + phase.seconds
        drives = []
        for i, probe in enumerate(probes):
            applies = phase.probes is None or names[i] in phase.probes
            if not applies or phase.phase == "passive_thaw":
                drives.append(ProbeDrive(DriveKind.OFF, phase_start_s=t))
            elif phase.phase == "freeze":
                drives.append(freeze_drive(probe, models, t))
            else:
                temp = active_thaw_temperature_c(probe, models, case.source, i, k)
                drives.append(ProbeDrive(DriveKind.WALL, ((0.0, temp),), phase_start_s=t))
        segments.append(Segment(t, end, tuple(drives), label=f"{k + 1}:{phase.phase}"))
        t = end
    return tuple(segments)
