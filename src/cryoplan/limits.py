"""Plausible ranges of a case's physical values (`limits.yaml`, each with its source).

`implausible(case)` lists the values outside their ranges as (field, what was expected). The
case loader refuses the first of them in one line, unless the case sets `allow_unphysical:
true`; then the run goes on and every result's warnings name them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from cryoplan.yamlio import load_yaml

if TYPE_CHECKING:
    from cryoplan.case import Case


@dataclass(frozen=True)
class Range:
    min: float
    max: float
    source: str


@lru_cache(maxsize=1)
def ranges() -> dict[str, Range]:
    text = resources.files("cryoplan").joinpath("limits.yaml").read_text("utf-8")
    return {name: Range(**entry) for name, entry in load_yaml(text)["ranges"].items()}


def _values(case: Case) -> Iterator[tuple[str, str, float, str]]:
    """(range name, field, value, unit) of every physical value the case itself gives."""
    if case.body_temperature_c is not None:
        yield "body_temperature_c", "body_temperature_c", case.body_temperature_c, "°C"
    for i, p in enumerate(case.probes or []):
        for name, field, unit in (
            ("probe_diameter_mm", "diameter_mm", "mm"),
            ("probe_active_length_mm", "active_length_mm", "mm"),
            ("probe_wall_temperature_c", "wall_temperature_c", "°C"),
            ("active_thaw_temperature_c", "active_thaw_temperature_c", "°C"),
        ):
            value = getattr(p, field)
            if value is not None:
                yield name, f"probes[{i}].{field}", value, unit
    if case.domain.image is not None:
        for i, lesion in enumerate(case.domain.image.lesions):
            sizes = [lesion.diameter_mm] if lesion.diameter_mm is not None else []
            sizes += list(lesion.diameters_mm or ())
            field = "diameter_mm" if lesion.diameter_mm is not None else "diameters_mm"
            for size in sizes:
                yield "lesion_diameter_mm", f"domain.image.lesions[{i}].{field}", size, "mm"
    total_min = 0.0
    for i, phase in enumerate(case.protocol or []):
        minutes = phase.seconds / 60.0
        total_min += minutes
        field = "duration_min" if phase.duration_min is not None else "duration_s"
        yield "phase_duration_min", f"protocol[{i}].{field}", minutes, "min"
    if case.protocol:
        yield "protocol_duration_min", "protocol", total_min, "min in all"
    for name, spec in case.tissues.items():
        for key, unit in (("conductivity_w_mk", "W/(m·K)"), ("heat_capacity_j_m3k", "J/(m³·K)")):
            pair = getattr(spec, key)
            if pair is not None:
                yield key, f"tissues.{name}.{key}.unfrozen", pair.unfrozen, unit
                yield key, f"tissues.{name}.{key}.frozen", pair.frozen, unit
        for key, unit in (
            ("latent_heat_j_m3", "J/m³"),
            ("perfusion_1_s", "1/s"),
            ("metabolic_w_m3", "W/m³"),
            ("lethal_temperature_c", "°C"),
        ):
            value = getattr(spec, key)
            if value is not None:
                yield key, f"tissues.{name}.{key}", value, unit
        if spec.freezing_range_c is not None:
            for end, value in zip(("[0]", "[1]"), spec.freezing_range_c, strict=True):
                yield "freezing_range_c", f"tissues.{name}.freezing_range_c{end}", value, "°C"
    yield "sensor_interval_s", "output.sensor_interval_s", case.output.sensor_interval_s, "s"


@dataclass(frozen=True)
class Outside:
    """A value outside its plausible range: the field, the value and the range, in words."""

    field: str
    value: float
    unit: str
    range: Range

    def expected(self) -> str:
        """The error's "what was expected" (`CaseError`)."""
        return (
            f"a value from {self.range.min:g} to {self.range.max:g} {self.unit} (got "
            f"{self.value:g}; cryoplan/limits.yaml gives the reason; allow_unphysical: true "
            "runs it anyway)"
        )

    def note(self) -> str:
        """The warning's words when `allow_unphysical` let it through."""
        return (
            f"{self.field} = {self.value:g} {self.unit} (plausible {self.range.min:g} to "
            f"{self.range.max:g})"
        )


def implausible(case: Case) -> list[Outside]:
    """Each value the case gives outside its plausible range."""
    return [
        Outside(field, value, unit, ranges()[name])
        for name, field, value, unit in _values(case)
        if not ranges()[name].min <= value <= ranges()[name].max
    ]
