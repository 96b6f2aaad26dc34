"""Cell death from the thermal history: probability of death per voxel.

Models take the minimum temperature reached (T_min, °C), the freeze–thaw cycle count and the
tissue of each voxel, and return p ∈ [0, 1]. The lethal zone is p ≥ 0.5.

- `threshold` (default): p = 1 where T_min ≤ the tissue's lethal temperature, else 0.
- `logistic`: p = 1/(1 + exp((T_min − T50)/width)) with per-tissue parameters from
  injury.yaml (each with its source); a voxel frozen twice or more may be credited by
  shifting T50 warmer by `second_cycle_shift_c` (0 by default: no sourced value). Tissues
  without parameters use their threshold.

Neither model is validated beyond its sources (physics.md §5); the report says which was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Protocol

import numpy as np

from cryoplan.tissues import Tissue
from cryoplan.yamlio import load_yaml

LETHAL_PROBABILITY = 0.5


class InjuryModel(Protocol):
    name: str

    def probability_of_death(
        self,
        minimum_temperature_c: np.ndarray,
        freeze_thaw_cycles: np.ndarray,
        material: np.ndarray,
        tissues: tuple[Tissue, ...],
    ) -> np.ndarray: ...

    def notes(self, tissues: tuple[Tissue, ...]) -> list[str]: ...


@dataclass(frozen=True)
class ThresholdInjury:
    """p = 1 where T_min reached the tissue's lethal temperature."""

    name: str = "threshold"

    def probability_of_death(self, minimum_temperature_c, freeze_thaw_cycles, material, tissues):
        lethal = np.array([t.lethal_temperature_c for t in tissues])[material]
        return (minimum_temperature_c <= lethal).astype(np.float64)

    def notes(self, tissues: tuple[Tissue, ...]) -> list[str]:
        return [
            "cell death: threshold on the minimum temperature at each tissue's lethal "
            "temperature ("
            + ", ".join(f"{t.name} {t.lethal_temperature_c:g} °C" for t in tissues)
            + ")"
        ]


@dataclass(frozen=True)
class LogisticParameters:
    t50_c: float
    width_c: float
    sources: dict[str, str]


@lru_cache(maxsize=1)
def _injury_data() -> dict:
    text = resources.files("cryoplan").joinpath("injury.yaml").read_text("utf-8")
    return load_yaml(text)


def logistic_parameters() -> dict[str, LogisticParameters]:
    return {
        name: LogisticParameters(float(v["t50_c"]), float(v["width_c"]), dict(v["sources"]))
        for name, v in _injury_data()["logistic"].items()
    }


@dataclass(frozen=True)
class LogisticInjury:
    """Logistic probability of death in T_min, with an optional second-cycle credit."""

    name: str = "logistic"
    parameters: dict[str, LogisticParameters] = field(default_factory=logistic_parameters)
    second_cycle_shift_c: float = field(
        default_factory=lambda: float(_injury_data()["second_cycle_shift_c"]["value"])
    )

    def probability_of_death(self, minimum_temperature_c, freeze_thaw_cycles, material, tissues):
        p = ThresholdInjury().probability_of_death(
            minimum_temperature_c, freeze_thaw_cycles, material, tissues
        )
        for index, tissue in enumerate(tissues):
            par = self.parameters.get(tissue.name)
            if par is None:
                continue
            here = material == index
            t50 = par.t50_c + self.second_cycle_shift_c * (freeze_thaw_cycles[here] >= 2)
            z = np.clip((minimum_temperature_c[here] - t50) / par.width_c, -60.0, 60.0)
            p[here] = 1.0 / (1.0 + np.exp(z))
        return p

    def notes(self, tissues: tuple[Tissue, ...]) -> list[str]:
        fitted = [t.name for t in tissues if t.name in self.parameters]
        other = [t for t in tissues if t.name not in self.parameters]
        notes = [
            "cell death: logistic in the minimum temperature for "
            f"{', '.join(fitted) or 'no tissue'} (T50, width: "
            + ", ".join(
                f"{n} {self.parameters[n].t50_c:g} / {self.parameters[n].width_c:g} °C"
                for n in fitted
            )
            + "); lethal zone where p ≥ 0.5"
        ]
        if other:
            notes.append(
                "no logistic parameters for "
                + ", ".join(f"{t.name} (threshold {t.lethal_temperature_c:g} °C)" for t in other)
            )
        notes.append(
            f"second freeze–thaw cycle credit: {self.second_cycle_shift_c:g} K "
            "(no sourced value; see injury.yaml)"
        )
        return notes


INJURY_MODELS = {"threshold": ThresholdInjury, "logistic": LogisticInjury}


def injury_model(name: str) -> InjuryModel:
    return INJURY_MODELS[name]()
