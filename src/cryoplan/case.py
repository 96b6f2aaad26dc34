"""The case file (contract in ARCHITECTURE.md): model, loading and validation.

`load_case(path)` returns a validated `Case` or raises `CaseError` with one line naming the
file, the field path (e.g. `probes[1].tip_mm`) and what was expected. Checks that need the
grid (a probe outside the domain) happen in `cryoplan.discretise`, also before any output.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from cryoplan.anatomy.phantoms import PHANTOMS
from cryoplan.errors import CaseError
from cryoplan.markups import probes_from_markups
from cryoplan.probes.catalogue import load_catalogue
from cryoplan.tissues import TissueSpec, load_library

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Vec3 = tuple[float, float, float]
PositiveVec3 = tuple[PositiveFloat, PositiveFloat, PositiveFloat]


class _Strict(BaseModel):
    """Unknown keys are errors (a typo must not be silently ignored); no NaN or infinity."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Vessel(_Strict):
    """A straight synthetic vessel: a cylinder of `diameter_mm` around the segment from
    `from_mm` to `to_mm` (LPS; the ends may lie outside the box, the cylinder is clipped)."""

    from_mm: Vec3
    to_mm: Vec3
    diameter_mm: PositiveFloat
    tissue: str = "vessel"

    @model_validator(mode="after")
    def _has_length(self) -> Vessel:
        if math.dist(self.from_mm, self.to_mm) == 0.0:
            raise ValueError("from_mm and to_mm must differ (a vessel needs a direction)")
        return self


class BoxDomain(_Strict):
    size_mm: PositiveVec3
    tissue: str
    vessels: list[Vessel] = Field(default_factory=list)


class Lesion(_Strict):
    """A synthetic lesion placed into the label map: a sphere or an axis-aligned ellipsoid."""

    centre_mm: Vec3
    diameter_mm: PositiveFloat | None = None
    diameters_mm: PositiveVec3 | None = None  # along LPS x, y, z
    tissue: str = "tumour"

    @model_validator(mode="after")
    def _one_size(self) -> Lesion:
        if (self.diameter_mm is None) == (self.diameters_mm is None):
            raise ValueError("give the lesion's size as diameter_mm or diameters_mm (one)")
        return self

    @property
    def radii_mm(self) -> tuple[float, float, float]:
        d = self.diameters_mm or (self.diameter_mm,) * 3
        return tuple(x / 2 for x in d)  # type: ignore[return-value,operator]


class ImageDomain(_Strict):
    """A patient image and its label map (paths relative to the case file).

    `tissues` maps label values, or TotalSegmentator 'total' label names, to tissues; label 0
    and labels not mapped take `default_tissue`.
    """

    file: str | None = None
    labels: str
    tissues: dict[int | str, str]
    default_tissue: str = "muscle"
    lesions: list[Lesion] = Field(default_factory=list)


class Domain(_Strict):
    """Exactly one of box | phantom | image."""

    box: BoxDomain | None = None
    phantom: str | None = None
    image: ImageDomain | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Domain:
        given = [k for k in ("box", "phantom", "image") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of box, phantom, image (got {given or 'none'})")
        return self


class GridSpec(_Strict):
    spacing_mm: PositiveFloat = 1.0
    crop_margin_mm: NonNegativeFloat | None = None
    dtype: Literal["float64"] = "float64"


class ProbeSpec(_Strict):
    """A catalogue probe (`model`) or an inline one (diameter, active length, wall temperature)."""

    name: str | None = None
    model: str | None = None
    diameter_mm: PositiveFloat | None = None
    active_length_mm: PositiveFloat | None = None
    wall_temperature_c: float | None = None
    active_thaw_temperature_c: float | None = None
    tip_mm: Vec3
    entry_mm: Vec3

    @model_validator(mode="after")
    def _geometry(self) -> ProbeSpec:
        if math.dist(self.tip_mm, self.entry_mm) < 1e-9:
            raise ValueError("tip_mm and entry_mm are the same point; the probe needs a direction")
        if self.model is None:
            missing = [
                f
                for f in ("diameter_mm", "active_length_mm", "wall_temperature_c")
                if getattr(self, f) is None
            ]
            if missing:
                raise ValueError("an inline probe (no `model`) needs " + ", ".join(missing))
        elif self.wall_temperature_c is not None:
            raise ValueError("give either `model` or `wall_temperature_c`, not both")
        return self


class Phase(_Strict):
    phase: Literal["freeze", "passive_thaw", "active_thaw"]
    duration_min: PositiveFloat | None = None
    duration_s: PositiveFloat | None = None
    probes: list[str] | None = None

    @model_validator(mode="after")
    def _one_duration(self) -> Phase:
        if (self.duration_min is None) == (self.duration_s is None):
            raise ValueError("give the phase's duration as duration_min or duration_s (one)")
        return self

    @property
    def seconds(self) -> float:
        return self.duration_s if self.duration_s is not None else 60.0 * self.duration_min  # type: ignore[operator]


class Sensor(_Strict):
    name: str
    at_mm: Vec3


class OutputSpec(_Strict):
    snapshot_times_min: list[NonNegativeFloat] = Field(default_factory=list)
    sensor_interval_s: PositiveFloat = 5.0


class InjurySpec(_Strict):
    model: Literal["threshold", "logistic"] = "threshold"


class CriticalStructure(_Strict):
    """A tissue that must stay above a temperature (e.g. bowel above 0 °C)."""

    tissue: str
    keep_above_c: float


class Case(_Strict):
    name: str = "case"
    body_temperature_c: float | None = None  # default: the library's arterial blood temperature
    outer_boundary: Literal["body_temperature", "insulated"] = "body_temperature"
    domain: Domain
    target: str | None = None
    margin_mm: NonNegativeFloat = 5.0
    grid: GridSpec = Field(default_factory=GridSpec)
    tissues: dict[str, TissueSpec] = Field(default_factory=dict)
    probes: list[ProbeSpec] = Field(min_length=1)
    protocol: list[Phase] = Field(min_length=1)
    sensors: list[Sensor] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)
    injury: InjurySpec = Field(default_factory=InjurySpec)
    critical_structures: list[CriticalStructure] = Field(default_factory=list)

    _source: str = PrivateAttr(default="<case>")

    @property
    def source(self) -> str:
        """The file the case came from (for error messages)."""
        return self._source

    def resolve_path(self, relative: str) -> Path:
        """A path given in the case, relative to the case file's folder."""
        p = Path(relative)
        base = Path(self._source).parent if self._source != "<case>" else Path.cwd()
        return p if p.is_absolute() else base / p

    def probe_names(self) -> list[str]:
        return [p.name or f"p{i + 1}" for i, p in enumerate(self.probes)]

    def total_duration_s(self) -> float:
        return sum(p.seconds for p in self.protocol)


def _field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid value"))
    msg = msg.removeprefix("Value error, ")
    if error.get("type") in {"missing"}:
        return "required field is missing"
    if error.get("type") == "extra_forbidden":
        return "unknown field (check the spelling; see docs/case-file.md)"
    given = error.get("input")
    if (
        given is not None
        and not isinstance(given, dict | list)
        and error.get("type") != "value_error"
    ):
        return f"{msg} (got {given!r})"
    return msg


def _probes_from_markups(data: dict[str, Any], source: str) -> dict[str, Any]:
    """`probe_markups: {file, model}` → probes appended from a 3D Slicer Markups file's lines
    (tip, then entry), each of the given catalogue model."""
    spec = data.get("probe_markups")
    if spec is None:
        return data
    if not isinstance(spec, dict) or set(spec) - {"file", "model"} or "file" not in spec:
        raise CaseError(source, "probe_markups", "a mapping with `file` (and optionally `model`)")
    base = Path(source).parent if source != "<case>" else Path.cwd()
    path = Path(spec["file"]) if Path(spec["file"]).is_absolute() else base / spec["file"]
    model = spec.get("model", "argon-17g")
    added = [{**p, "model": model} for p in probes_from_markups(path)]
    rest = {k: v for k, v in data.items() if k != "probe_markups"}
    return rest | {"probes": list(data.get("probes") or []) + added}


def case_from_dict(data: Any, source: str = "<case>") -> Case:
    """Validate a parsed case mapping; raise `CaseError` on the first problem."""
    if not isinstance(data, dict):
        raise CaseError(source, "(top level)", "expected a mapping of case fields (YAML keys)")
    data = _probes_from_markups(data, source)
    try:
        case = Case.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise CaseError(source, _field_path(tuple(first["loc"])), _describe(first) + more) from None
    case._source = source
    check_references(case)
    return case


def load_case(path: str | Path) -> Case:
    """Read and validate a case file (YAML)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise CaseError(
            str(p),
            "",
            f"cannot read the case file ({reason})",
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(unknown place)"
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise CaseError(str(p), where, f"malformed YAML: {problem}") from None
    return case_from_dict(data, str(p))


def known_tissues(case: Case) -> set[str]:
    return set(load_library().tissues) | set(case.tissues)


def check_references(case: Case) -> None:
    """Names that must exist: tissues, probe models, probes named by phases, complete tissues."""
    src = case.source
    library = load_library()
    tissues = known_tissues(case)
    for name, spec in case.tissues.items():
        if spec.like is not None and spec.like not in library.tissues:
            raise CaseError(
                src, f"tissues.{name}.like", _unknown_tissue(spec.like, set(library.tissues))
            )
        if name not in library.tissues and spec.like is None and spec.missing():
            raise CaseError(
                src,
                f"tissues.{name}",
                "a new tissue needs every value; missing " + ", ".join(spec.missing()),
            )
    if case.domain.box is not None:
        box = case.domain.box
        if box.tissue not in tissues:
            raise CaseError(src, "domain.box.tissue", _unknown_tissue(box.tissue, tissues))
        for i, vessel in enumerate(box.vessels):
            if vessel.tissue not in tissues:
                raise CaseError(
                    src, f"domain.box.vessels[{i}].tissue", _unknown_tissue(vessel.tissue, tissues)
                )
    if case.domain.image is not None:
        image = case.domain.image
        named = [(f"tissues.{label}", t) for label, t in image.tissues.items()]
        named.append(("default_tissue", image.default_tissue))
        named += [(f"lesions[{i}].tissue", lesion.tissue) for i, lesion in enumerate(image.lesions)]
        for field, tissue in named:
            if tissue not in tissues:
                raise CaseError(src, f"domain.image.{field}", _unknown_tissue(tissue, tissues))
    if case.domain.phantom is not None and case.domain.phantom not in PHANTOMS:
        raise CaseError(
            src,
            "domain.phantom",
            f"unknown phantom {case.domain.phantom!r}; built in: {', '.join(PHANTOMS)}",
        )
    if case.target is not None and case.target not in tissues:
        raise CaseError(src, "target", _unknown_tissue(case.target, tissues))
    for i, c in enumerate(case.critical_structures):
        if c.tissue not in tissues:
            raise CaseError(
                src, f"critical_structures[{i}].tissue", _unknown_tissue(c.tissue, tissues)
            )
    catalogue = load_catalogue().probes
    for i, probe in enumerate(case.probes):
        if probe.model is not None and probe.model not in catalogue:
            raise CaseError(
                src,
                f"probes[{i}].model",
                f"unknown probe model {probe.model!r}; "
                f"the catalogue has {', '.join(sorted(catalogue))}",
            )
    names = case.probe_names()
    if len(set(names)) != len(names):
        raise CaseError(src, "probes", "probe names must be unique")
    for i, phase in enumerate(case.protocol):
        for name in phase.probes or []:
            if name not in names:
                raise CaseError(
                    src,
                    f"protocol[{i}].probes",
                    f"no probe named {name!r} (probes: {', '.join(names)})",
                )
    for i, t in enumerate(case.output.snapshot_times_min):
        if t * 60.0 > case.total_duration_s() + 1e-9:
            raise CaseError(
                src,
                f"output.snapshot_times_min[{i}]",
                f"a time within the protocol's {case.total_duration_s() / 60:g} min (got {t})",
            )


def _unknown_tissue(name: str, tissues: set[str]) -> str:
    return f"unknown tissue {name!r}; known tissues: {', '.join(sorted(tissues))}"
