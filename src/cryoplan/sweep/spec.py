"""The sweep file: which cases, what varies, how many samples, which seed (docs/sweep.md).

    name: phantom-robustness
    cases: [../single-probe-gel.yaml]      # one or more case files; several: a cohort
    samples: 32
    seed: 7
    vary:
      placement_error_mm: {lateral: 2.0, depth: 2.0}
      parameters:
        - name: liver_perfusion
          tissue: liver
          property: perfusion_1_s
          factor: {uniform: [0.5, 1.5]}
          source: "..."
      protocols:
        - {name: 10-5-10, phases: [...]}
    sensitivity: {method: morris}          # or sobol; none: plain Monte Carlo

A parameter varies one value of the case by a dimensionless factor drawn from its
distribution: a tissue's property (`tissue:` with `property:` one of `TISSUE_PROPERTIES`) or
a gas-cooled probe model's film coefficient (`probe_model:` with `property:
heat_transfer_w_m2k`). Its `source` says where the spread comes from, as every value of the
tissue library does.

Mistakes raise `CaseError` naming the sweep file and the field, like a case file's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cryoplan.case import PlacementError, ProtocolOption, _case_error
from cryoplan.errors import CaseError
from cryoplan.yamlio import load_yaml_file

# tissue values a parameter may scale; "conductivity_w_mk" scales the frozen and the
# unfrozen value together, ".frozen"/".unfrozen" one of them
TISSUE_PROPERTIES = (
    "perfusion_1_s",
    "metabolic_w_m3",
    "conductivity_w_mk",
    "conductivity_w_mk.frozen",
    "conductivity_w_mk.unfrozen",
    "heat_capacity_j_m3k",
    "heat_capacity_j_m3k.frozen",
    "heat_capacity_j_m3k.unfrozen",
    "latent_heat_j_m3",
)
PROBE_PROPERTIES = ("heat_transfer_w_m2k",)
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
TRUNCATE_SD = 4.0  # normal and log-normal factors are cut at ± this many σ


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Uniform(_Strict):
    uniform: tuple[Positive, Positive]

    @model_validator(mode="after")
    def _ordered(self) -> Uniform:
        if self.uniform[0] >= self.uniform[1]:
            raise ValueError("uniform: [low, high] with low < high")
        return self


class Triangular(_Strict):
    triangular: tuple[Positive, Positive, Positive]

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        low, mode, high = self.triangular
        if not low <= mode <= high or low == high:
            raise ValueError("triangular: [low, mode, high] with low ≤ mode ≤ high, low < high")
        return self


class Normal(_Strict):
    """Gaussian, cut at mean ± 4 sd (TRUNCATE_SD) so that a factor stays positive."""

    normal: tuple[Positive, Positive]  # mean, standard deviation

    @model_validator(mode="after")
    def _positive(self) -> Normal:
        mean, sd = self.normal
        if mean - TRUNCATE_SD * sd <= 0:
            raise ValueError(
                "normal: [mean, sd] with mean − 4 sd > 0 (a factor must stay positive; "
                "use lognormal for a wide spread)"
            )
        return self


class LogNormal(_Strict):
    """Log-normal, its logarithm cut at ± 4 σ (TRUNCATE_SD)."""

    lognormal: tuple[Positive, Positive]  # median, σ of the logarithm


Distribution = Uniform | Triangular | Normal | LogNormal
BOUNDED = (Uniform, Triangular)


class Parameter(_Strict):
    """A value of the case scaled by a factor drawn from `factor`."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
    tissue: str | None = None
    probe_model: str | None = None
    property: str
    factor: Distribution
    source: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _one_owner(self) -> Parameter:
        if (self.tissue is None) == (self.probe_model is None):
            raise ValueError("give exactly one of tissue or probe_model")
        allowed = TISSUE_PROPERTIES if self.tissue is not None else PROBE_PROPERTIES
        if self.property not in allowed:
            raise ValueError(f"property: one of {', '.join(allowed)}, got {self.property!r}")
        return self


class Variation(_Strict):
    placement_error_mm: PlacementError | None = None
    parameters: list[Parameter] = Field(default_factory=list)
    protocols: Annotated[list[ProtocolOption], Field(min_length=1)] | None = None


class Sensitivity(_Strict):
    """Global sensitivity of the margin and the lethal volume to the parameters (SALib):
    Morris elementary effects (`samples` trajectories of parameters + 1 runs each) or Sobol'
    indices (`samples` a power of 2; parameters + 2 runs each, first and total order)."""

    method: Literal["morris", "sobol"]
    levels: Annotated[int, Field(ge=2, le=16)] = 4  # Morris grid levels


class SweepSpec(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "sweep"
    cases: Annotated[list[str], Field(min_length=1)]
    samples: Annotated[int, Field(ge=1, le=100_000)]
    seed: Annotated[int, Field(ge=0)] = 0
    vary: Variation = Field(default_factory=Variation)
    sensitivity: Sensitivity | None = None

    @property
    def design_block(self) -> int:
        """Rows of the design that are compared with each other: a Morris trajectory
        (parameters + 1), a Sobol' base sample with its cross rows (parameters + 2), or one
        Monte Carlo sample. They share their placement error (`samples.placement_shifts`)."""
        d = len(self.vary.parameters)
        if self.sensitivity is None:
            return 1
        return d + 1 if self.sensitivity.method == "morris" else d + 2

    @property
    def runs_per_sample_set(self) -> int:
        """Runs per case and protocol: the design's rows."""
        return self.samples * self.design_block


def _phases(p: Parameter) -> set[str]:
    """The phases of its property a parameter scales ({""} for a value with no phases)."""
    field, _, phase = p.property.partition(".")
    if field in ("conductivity_w_mk", "heat_capacity_j_m3k"):
        return {phase} if phase else {"frozen", "unfrozen"}
    return {""}


def check_design(spec: SweepSpec, source: str) -> None:
    """What the fields cannot check alone; a `CaseError` naming the field."""
    names = [p.name for p in spec.vary.parameters]
    for k, name in enumerate(names):
        if name in names[:k]:
            raise CaseError(source, f"vary.parameters[{k}].name", f"a name of its own ({name!r} "
                            "is taken)")  # fmt: skip
    # two parameters on one value would overwrite each other: each value once
    for k, p in enumerate(spec.vary.parameters):
        for j, q in enumerate(spec.vary.parameters[:k]):
            same_owner = (p.tissue, p.probe_model) == (q.tissue, q.probe_model)
            same_field = p.property.partition(".")[0] == q.property.partition(".")[0]
            if same_owner and same_field and _phases(p) & _phases(q):
                raise CaseError(
                    source, f"vary.parameters[{k}].property",
                    f"a value no other parameter scales ({q.name!r}, vary.parameters[{j}], "
                    f"already scales {q.tissue or q.probe_model} {q.property})",
                )  # fmt: skip
    protocols = [p.name for p in spec.vary.protocols or []]
    for k, name in enumerate(protocols):
        if name in protocols[:k]:
            raise CaseError(source, f"vary.protocols[{k}].name",
                            f"a name of its own ({name!r} is taken)")  # fmt: skip
    if spec.sensitivity is None:
        return
    if not spec.vary.parameters:
        raise CaseError(source, "sensitivity", "vary.parameters to find the sensitivity to")
    for k, p in enumerate(spec.vary.parameters):
        if not isinstance(p.factor, BOUNDED):
            raise CaseError(
                source, f"vary.parameters[{k}].factor",
                "a uniform or triangular factor: a sensitivity design spans each factor's range",
            )  # fmt: skip
    if spec.sensitivity.method == "sobol" and spec.samples & (spec.samples - 1):
        raise CaseError(source, "samples",
                        "a power of 2 for Sobol' indices (SALib's Sobol' sequence)")  # fmt: skip


def sweep_from_dict(data: Any, source: str) -> SweepSpec:
    """Validate a parsed sweep mapping; `CaseError` naming `source` and the field."""
    if not isinstance(data, dict):
        raise CaseError(source, "(top level)", "expected a mapping of sweep fields (YAML keys)")
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as exc:
        raise _case_error(source, exc) from None
    check_design(spec, source)
    return spec


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file (its case paths are relative to it)."""
    path = Path(path)
    spec = sweep_from_dict(load_yaml_file(path, "sweep file"), str(path))
    for i, case in enumerate(spec.cases):
        if not (path.parent / case).is_file():
            raise CaseError(str(path), f"cases[{i}]", f"a case file; {case!r} does not exist")
    return spec


def case_paths(spec: SweepSpec, source: str | Path) -> list[Path]:
    """The spec's case files, relative to the sweep file's folder."""
    base = Path(source).parent
    return [base / c for c in spec.cases]

