"""The tissue library: `tissues.yaml` (values with sources), merged with a case's overrides."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]

# The value fields every tissue must define, each with a source.
VALUE_FIELDS = (
    "conductivity_w_mk",
    "heat_capacity_j_m3k",
    "latent_heat_j_m3",
    "freezing_range_c",
    "perfusion_1_s",
    "metabolic_w_m3",
    "lethal_temperature_c",
)


class FrozenUnfrozen(BaseModel):
    """A property with one value per phase."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    unfrozen: PositiveFloat
    frozen: PositiveFloat


class TissueSpec(BaseModel):
    """Tissue values as written in the library or a case file (any subset in a case)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    description: str | None = None
    like: str | None = None  # a case's new tissue may start from a library tissue's values
    blood_vessel: bool | None = None
    conductivity_w_mk: FrozenUnfrozen | None = None
    heat_capacity_j_m3k: FrozenUnfrozen | None = None
    latent_heat_j_m3: NonNegativeFloat | None = None
    freezing_range_c: tuple[float, float] | None = None
    perfusion_1_s: NonNegativeFloat | None = None
    metabolic_w_m3: NonNegativeFloat | None = None
    lethal_temperature_c: float | None = None
    sources: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _solidus_below_liquidus(self) -> TissueSpec:
        if self.freezing_range_c is not None:
            solidus, liquidus = self.freezing_range_c
            if solidus > liquidus:
                raise ValueError(
                    f"freezing_range_c must be [solidus, liquidus] with solidus ≤ liquidus, "
                    f"got [{solidus}, {liquidus}]"
                )
        return self

    def missing(self) -> list[str]:
        return [f for f in VALUE_FIELDS if getattr(self, f) is None]


class Tissue(BaseModel):
    """A complete tissue: every value present, with where each came from."""

    model_config = ConfigDict(frozen=True)
    name: str
    description: str
    blood_vessel: bool
    conductivity_w_mk: FrozenUnfrozen
    heat_capacity_j_m3k: FrozenUnfrozen
    latent_heat_j_m3: float
    freezing_range_c: tuple[float, float]
    perfusion_1_s: float
    metabolic_w_m3: float
    lethal_temperature_c: float
    sources: dict[str, str]


class Blood(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    volumetric_heat_capacity_j_m3k: PositiveFloat
    temperature_c: float
    sources: dict[str, str]


class Library(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    blood: Blood
    tissues: dict[str, TissueSpec]


@lru_cache(maxsize=1)
def load_library() -> Library:
    """The packaged tissue library (validated once)."""
    text = resources.files("cryoplan.tissues").joinpath("tissues.yaml").read_text("utf-8")
    return Library.model_validate(yaml.safe_load(text))


def merge_tissue(name: str, base: TissueSpec | None, override: TissueSpec | None) -> TissueSpec:
    """Case values over library values; sources of overridden values say 'case file'."""
    if base is None and override is None:
        raise KeyError(name)
    if override is None:
        return base  # type: ignore[return-value]
    given = override.model_dump(exclude_none=True, exclude={"sources", "like"})
    sources = dict(base.sources) if base is not None else {}
    sources.update({k: override.sources.get(k, "case file") for k in given if k in VALUE_FIELDS})
    merged = (base.model_dump() if base is not None else {}) | given | {"sources": sources}
    return TissueSpec.model_validate(merged)


def complete_tissue(name: str, spec: TissueSpec) -> Tissue:
    """A `Tissue` from a spec that defines every value (caller checks `spec.missing()`)."""
    return Tissue(
        name=name,
        description=spec.description or name,
        blood_vessel=bool(spec.blood_vessel),
        conductivity_w_mk=spec.conductivity_w_mk,  # type: ignore[arg-type]
        heat_capacity_j_m3k=spec.heat_capacity_j_m3k,  # type: ignore[arg-type]
        latent_heat_j_m3=spec.latent_heat_j_m3,  # type: ignore[arg-type]
        freezing_range_c=spec.freezing_range_c,  # type: ignore[arg-type]
        perfusion_1_s=spec.perfusion_1_s,  # type: ignore[arg-type]
        metabolic_w_m3=spec.metabolic_w_m3,  # type: ignore[arg-type]
        lethal_temperature_c=spec.lethal_temperature_c,  # type: ignore[arg-type]
        sources=spec.sources,
    )
