"""The tissue library: `tissues.yaml` (values with sources), merged with a case's overrides."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator

from cryoplan.yamlio import load_yaml

Number = Annotated[float, Strict()]  # an int or a float, never a boolean nor a string
PositiveFloat = Annotated[Number, Field(gt=0)]
NonNegativeFloat = Annotated[Number, Field(ge=0)]
ABSOLUTE_ZERO_C = -273.15

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
    # the volume fraction that is ice once frozen; by default the tissue's latent heat over
    # that of ice (`Ice.fraction_of`)
    ice_fraction: Annotated[Number, Field(ge=0, le=1)] | None = None
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
    ice_fraction: float
    sources: dict[str, str]

    def coldest_capacity_j_m3k(self, ice: Ice) -> float:
        """C(T) = C_s − γ s at absolute zero with this ice: it must stay positive for the
        temperature-dependent frozen phase to have one T for each H."""
        return self.heat_capacity_j_m3k.frozen - self.frozen_slopes(ice)[1] * (
            self.freezing_range_c[0] - ABSOLUTE_ZERO_C
        )

    def frozen_slopes(self, ice: Ice) -> tuple[float, float]:
        """(κ [W/(m·K²)], γ [J/(m³·K²)]): below the solidus, s = T_s − T [K] below it, the
        frozen conductivity is k_s + κ s and the frozen capacity C_s − γ s. The ice in the
        tissue carries the whole change, in proportion to its volume fraction x:
        κ = x κ_ice (conductivities of parallel layers add: an upper bound among mixing
        rules), γ = x γ_ice (heat capacities add by mass, exactly)."""
        return (
            self.ice_fraction * ice.conductivity_slope_w_mk2,
            self.ice_fraction * ice.heat_capacity_slope_j_m3k2,
        )


class Ice(BaseModel):
    """How pure ice's conductivity and heat capacity change below 0 °C, as linear fits
    (see tissues.yaml), and its volumetric latent heat (to derive a tissue's ice fraction)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    conductivity_slope_w_mk2: NonNegativeFloat
    heat_capacity_slope_j_m3k2: NonNegativeFloat
    volumetric_latent_heat_j_m3: PositiveFloat
    sources: dict[str, str]

    def fraction_of(self, latent_heat_j_m3: float) -> float:
        """Ice volume fraction of a frozen tissue from its latent heat: L / L_ice, at most 1
        (only the water that freezes releases latent heat)."""
        return min(latent_heat_j_m3 / self.volumetric_latent_heat_j_m3, 1.0)


class Blood(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    volumetric_heat_capacity_j_m3k: PositiveFloat
    temperature_c: float
    sources: dict[str, str]


class Library(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    blood: Blood
    ice: Ice
    tissues: dict[str, TissueSpec]


@lru_cache(maxsize=1)
def load_library() -> Library:
    """The packaged tissue library (validated once)."""
    text = resources.files("cryoplan.tissues").joinpath("tissues.yaml").read_text("utf-8")
    return Library.model_validate(load_yaml(text))


def merge_tissue(name: str, base: TissueSpec | None, override: TissueSpec | None) -> TissueSpec:
    """Case values over library values; sources of overridden values say 'case file'."""
    if base is None and override is None:
        raise KeyError(name)
    if override is None:
        return base  # type: ignore[return-value]
    given = override.model_dump(exclude_none=True, exclude={"sources", "like"})
    sources = dict(base.sources) if base is not None else {}
    sourced = (*VALUE_FIELDS, "ice_fraction")
    sources.update({k: override.sources.get(k, "case file") for k in given if k in sourced})
    merged = (base.model_dump() if base is not None else {}) | given | {"sources": sources}
    return TissueSpec.model_validate(merged)


def complete_tissue(name: str, spec: TissueSpec, ice: Ice | None = None) -> Tissue:
    """A `Tissue` from a spec that defines every value (caller checks `spec.missing()`); an
    ice fraction not given is derived from the latent heat with the library's `ice`."""
    ice = ice or load_library().ice
    sources = dict(spec.sources)
    ice_fraction = spec.ice_fraction
    if ice_fraction is None:
        ice_fraction = ice.fraction_of(spec.latent_heat_j_m3)  # type: ignore[arg-type]
        sources["ice_fraction"] = (
            f"[D] latent heat {spec.latent_heat_j_m3:.3g} J/m³ over ice's "
            f"{ice.volumetric_latent_heat_j_m3:.3g} J/m³ (at most 1)"
        )
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
        ice_fraction=ice_fraction,
        sources=sources,
    )
