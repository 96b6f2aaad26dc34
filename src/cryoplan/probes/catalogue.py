"""The probe catalogue: `probes.yaml` (geometry and cooling models, with sources).

The catalogue is read here once; a case carries the catalogue it was loaded with
(`Case.probe_models`, with any entries the caller replaced), and everything downstream reads
the models from the case, never from this module.
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from importlib import resources
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cryoplan.yamlio import load_yaml

PositiveFloat = Annotated[float, Field(gt=0)]


class WallTemperatureCooling(BaseModel):
    """Wall temperature curve [[s since the freeze began, °C], …] (held after the last)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    model: Literal["wall_temperature"]
    wall_curve_c: list[tuple[Annotated[float, Field(ge=0)], float]] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing_times(self) -> WallTemperatureCooling:
        times = [t for t, _ in self.wall_curve_c]
        if any(b <= a for a, b in itertools.pairwise(times)):
            raise ValueError("wall_curve_c times must increase")
        return self


class GasCooling(BaseModel):
    """Expanded gas at a temperature behind a wall film coefficient."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    model: Literal["gas"]
    gas_temperature_c: float
    heat_transfer_w_m2k: PositiveFloat


class ValidationPoint(BaseModel):
    """One published figure the model was checked on but not fitted to (cryoplan.calibration
    names it), and simulated − measured [mm]: negative, the simulated zone is smaller."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    name: str
    residual_mm: float


class ProbeValidation(BaseModel):
    """A model's residuals on its validation points (docs/validation.md), under the case
    setting `frozen_properties` they were simulated with: the uncertainty of its figures."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    frozen_properties: Literal["constant", "temperature_dependent"]
    points: Annotated[list[ValidationPoint], Field(min_length=1)]

    @property
    def mean_abs_residual_mm(self) -> float:
        return sum(abs(p.residual_mm) for p in self.points) / len(self.points)

    @property
    def residual_range_mm(self) -> tuple[float, float]:
        residuals = [p.residual_mm for p in self.points]
        return min(residuals), max(residuals)

    def summary(self) -> dict[str, Any]:
        """The figures summary.json and the report carry."""
        low, high = self.residual_range_mm
        return {
            "frozen_properties": self.frozen_properties,
            "points": len(self.points),
            "mean_abs_residual_mm": round(self.mean_abs_residual_mm, 2),
            "residual_range_mm": [low, high],
        }


class ProbeModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    description: str
    calibrated: bool  # true only where the fit meets its measurements
    calibration_note: str | None = None  # why a fitted model is not calibrated
    validation: ProbeValidation | None = None  # residuals on points not fitted
    diameter_mm: PositiveFloat
    active_length_mm: PositiveFloat
    usable_length_mm: PositiveFloat | None = None  # shaft length that can enter the body
    cooling: WallTemperatureCooling | GasCooling = Field(discriminator="model")
    active_thaw_temperature_c: float
    sources: dict[str, str]


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    probes: dict[str, ProbeModel]


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """The packaged probe catalogue (validated once)."""
    text = resources.files("cryoplan.probes").joinpath("probes.yaml").read_text("utf-8")
    return Catalogue.model_validate(load_yaml(text))
