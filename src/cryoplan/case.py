"""The case file (contract in ARCHITECTURE.md): model, loading and validation.

`load_case(path)` returns a validated `Case` or raises `CaseError` with one line naming the
file, the field path (e.g. `probes[1].tip_mm`) and what was expected. Checks that need the
grid (a probe or sensor outside the domain) happen in `cryoplan.preparation` and
`cryoplan.simulator`, also before any output.

A loaded case carries the values it refers to, resolved once when it is validated: the probe
catalogue (with any models the caller put in its place, `case_from_dict(probe_models=…)`),
every tissue it can name completed from the library and its own overrides, and the blood's
properties. Nothing downstream looks a value up in a global table, so a case (and what is
built from it) pickles to another process and gives the same result there. (`model_copy`
keeps the resolved values as they were: after changing `tissues` that way, validate the case
again with `case_from_dict`.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    StrictBool,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from cryoplan.anatomy.phantoms import PHANTOMS
from cryoplan.errors import CaseError
from cryoplan.limits import implausible
from cryoplan.markups import probes_from_markups
from cryoplan.probes.catalogue import ProbeModel, load_catalogue
from cryoplan.tissues import Tissue, TissueSpec, complete_tissue, load_library, merge_tissue
from cryoplan.tissues.library import Blood, Library
from cryoplan.yamlio import load_yaml_file

# Numbers as a case file writes them: an int or a float, never a boolean (YAML's `yes` and
# `true` would otherwise pass as 1) nor a string.
Number = Annotated[float, Strict()]
Count = Annotated[int, Strict()]
PositiveFloat = Annotated[Number, Field(gt=0)]
NonNegativeFloat = Annotated[Number, Field(ge=0)]
Vec3 = tuple[Number, Number, Number]
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


class SkinLayer(_Strict):
    """The body's outer `thickness_mm` (anatomy/body.py's outline) as a tissue, where the
    label map leaves it to the default tissue: a skin the case can protect."""

    thickness_mm: Number = Field(gt=0.0, le=10.0)
    tissue: str = "skin"


class ImageDomain(_Strict):
    """A patient image and its label map (paths relative to the case file).

    `tissues` maps label values, or TotalSegmentator 'total' label names, to tissues; label 0
    and labels not mapped take `default_tissue`. `label_names` names values of the label map
    (beside the map's own names, or TotalSegmentator's): the outputs call those organs by
    them, and `tissues` may map them by name. `skin` makes the body's outer layer a tissue;
    `lesions` are written in last.
    """

    file: str | None = None
    labels: str
    tissues: dict[int | str, str]
    label_names: dict[int, Annotated[str, Field(min_length=1)]] = Field(default_factory=dict)
    default_tissue: str = "muscle"
    skin: SkinLayer | None = None
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


class Region(_Strict):
    """An axis-aligned LPS box [mm] from `lo_mm` to `hi_mm` (each lo below its hi)."""

    lo_mm: Vec3
    hi_mm: Vec3

    @model_validator(mode="after")
    def _ordered(self) -> Region:
        if any(lo >= hi for lo, hi in zip(self.lo_mm, self.hi_mm, strict=True)):
            raise ValueError("lo_mm must lie below hi_mm on every axis (x, y, z)")
        return self

    def corners_mm(self) -> list[Vec3]:
        """The box's eight corners (LPS mm)."""
        lo, hi = self.lo_mm, self.hi_mm
        return [(x, y, z) for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])]


class GridSpec(_Strict):
    """`region_mm` (image domains): a box the simulation grid must cover besides the target
    and the case's probes, so that probes placed later (a planner, a sweep) fall inside a
    grid fixed once by `cryoplan.prepare`."""

    spacing_mm: PositiveFloat = 1.0
    crop_margin_mm: NonNegativeFloat | None = None
    region_mm: Region | None = None
    dtype: Literal["float64"] = "float64"


class ProbeSpec(_Strict):
    """A catalogue probe (`model`) or an inline one (diameter, active length, wall temperature)."""

    name: str | None = None
    model: str | None = None
    diameter_mm: PositiveFloat | None = None
    active_length_mm: PositiveFloat | None = None
    wall_temperature_c: Number | None = None
    active_thaw_temperature_c: Number | None = None
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
    keep_above_c: Number


class PlacementError(_Strict):
    """1-sigma placement error of each probe [mm]: across the shaft (each of two directions)
    and along it (depth)."""

    lateral: NonNegativeFloat = 3.0
    depth: NonNegativeFloat = 2.0


class EntryFace(_Strict):
    """Probes enter a box or phantom through one of its faces (patient directions, LPS)."""

    face: Literal["anterior", "posterior", "left", "right", "superior", "inferior"]


class ProtocolOption(_Strict):
    """One protocol of the planner's menu: a name and its phases (all probes)."""

    name: str
    phases: Annotated[list[Phase], Field(min_length=1)]

    @property
    def seconds(self) -> float:
        return sum(p.seconds for p in self.phases)


class PlanningSpec(_Strict):
    """The `planning:` section: what the planner may choose and what it must respect
    (docs/planning.md). Defaults are the procedure's own; every one is printed in the plan."""

    probe_models: Annotated[list[str], Field(min_length=1)] = ["argon-17g"]
    max_probes: Annotated[Count, Field(ge=1, le=25)] = 8  # per session
    max_sessions: Annotated[Count, Field(ge=1, le=4)] = 3  # a staged plan's sessions at most
    entry: Literal["skin"] | EntryFace | None = None  # None: skin (image), anterior (box)
    no_fly: list[str] | None = None  # None: planning/access.yaml's defaults
    clearance_mm: NonNegativeFloat = 3.0
    min_spacing_mm: PositiveFloat = 8.0
    plane: Literal["any", "axial"] = "any"
    # probes through a template's holes this far apart (a square grid across the probes,
    # centred on the target; prostate templates: 5 mm); paths then never tilt
    template_mm: PositiveFloat | None = None
    placement_error_mm: PlacementError = Field(default_factory=PlacementError)
    min_success_probability: Annotated[Number, Field(gt=0, le=1)] = 0.9
    samples: Annotated[Count, Field(ge=4, le=10_000)] = 24
    seed: Count = 0
    lethal_margin_mm: NonNegativeFloat | None = None
    protocols: Annotated[list[ProtocolOption], Field(min_length=1)] | None = None
    model_spacing_mm: PositiveFloat | None = None  # the search's grid; default below


def probe_names(probes: Sequence[ProbeSpec]) -> list[str]:
    """The probes' names: their own, else p1, p2, … by position."""
    return [p.name or f"p{i + 1}" for i, p in enumerate(probes)]


class Case(_Strict):
    """A validated case file. `probes` and `protocol` may be left out for `cryoplan.prepare`
    (a planner or a sweep supplies them to each run); `simulate` needs both."""

    name: str = "case"
    body_temperature_c: Number | None = None  # default: the library's arterial blood temperature
    outer_boundary: Literal["body_temperature", "insulated"] = "body_temperature"
    # below the solidus: the frozen k and C of the tissue file, or following temperature
    # through each tissue's ice (tissues.yaml `ice`; docs/validation.md compares the two)
    frozen_properties: Literal["constant", "temperature_dependent"] = "constant"
    # values outside cryoplan/limits.yaml's plausible ranges: refused, unless this is set
    # (research), when every output's warnings name them
    allow_unphysical: StrictBool = False
    domain: Domain
    target: str | None = None
    margin_mm: NonNegativeFloat = 5.0
    grid: GridSpec = Field(default_factory=GridSpec)
    tissues: dict[str, TissueSpec] = Field(default_factory=dict)
    probes: Annotated[list[ProbeSpec], Field(min_length=1)] | None = None
    protocol: Annotated[list[Phase], Field(min_length=1)] | None = None
    sensors: list[Sensor] = Field(default_factory=list)
    output: OutputSpec = Field(default_factory=OutputSpec)
    injury: InjurySpec = Field(default_factory=InjurySpec)
    critical_structures: list[CriticalStructure] = Field(default_factory=list)
    planning: PlanningSpec | None = None

    _source: str = PrivateAttr(default="<case>")
    _probe_models: dict[str, ProbeModel] = PrivateAttr(default_factory=dict)
    _resolved_tissues: dict[str, Tissue] = PrivateAttr(default_factory=dict)
    _blood: Blood | None = PrivateAttr(default=None)
    _unphysical: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _resolve_values(self, info: ValidationInfo) -> Case:
        """Resolve the catalogue and the tissues now, once (see the module docstring).

        The validation context may carry `probe_models`: catalogue entries to add or
        replace (calibration tries parameter values this way).
        """
        overrides = (info.context or {}).get("probe_models") or {}
        self._probe_models = {**load_catalogue().probes, **overrides}
        library = load_library()
        self._blood = library.blood
        self._resolved_tissues = resolve_tissue_values(library, self.tissues)
        return self

    @property
    def source(self) -> str:
        """The file the case came from (for error messages)."""
        return self._source

    @property
    def probe_models(self) -> Mapping[str, ProbeModel]:
        """The probe catalogue as loaded with this case (with the caller's overrides)."""
        return self._probe_models

    @property
    def resolved_tissues(self) -> Mapping[str, Tissue]:
        """Every complete tissue the case can name: the library's with the case's overrides,
        and the case's own new tissues."""
        return self._resolved_tissues

    @property
    def unphysical(self) -> list[str]:
        """The values outside their plausible ranges that `allow_unphysical` let through."""
        return list(self._unphysical)

    @property
    def blood(self) -> Blood:
        """Arterial blood (temperature, volumetric heat capacity) from the library."""
        assert self._blood is not None  # set by validation
        return self._blood

    def resolve_path(self, relative: str) -> Path:
        """A path given in the case, relative to the case file's folder."""
        p = Path(relative)
        base = Path(self._source).parent if self._source != "<case>" else Path.cwd()
        return p if p.is_absolute() else base / p

    def probe_names(self) -> list[str]:
        return probe_names(self.probes or [])

    def total_duration_s(self) -> float:
        return sum(p.seconds for p in self.protocol or [])

    def require_plan(self) -> tuple[list[ProbeSpec], list[Phase]]:
        """The case's probes and protocol, or a `CaseError` naming the one it lacks (a case
        without them can be prepared, not simulated)."""
        for field, given in (("probes", self.probes), ("protocol", self.protocol)):
            if given is None:
                raise CaseError(
                    self.source,
                    field,
                    "required field is missing (a case without it can be prepared for runs "
                    "that supply it, but not simulated)",
                )
        return self.probes, self.protocol  # type: ignore[return-value]


def resolve_tissue_values(
    library: Library, overrides: Mapping[str, TissueSpec]
) -> dict[str, Tissue]:
    """Complete tissues by name: library values under the case's overrides (a new tissue may
    start from a library tissue `like` it). Tissues still incomplete are left out: loading
    reports them (`check_references`)."""
    out = {}
    for name in dict.fromkeys([*library.tissues, *overrides]):
        spec = overrides.get(name)
        base = library.tissues.get(name) or (
            library.tissues.get(spec.like) if spec and spec.like else None
        )
        merged = merge_tissue(name, base, spec)
        if not merged.missing():
            out[name] = complete_tissue(name, merged)
    return out


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


def _case_error(source: str, exc: ValidationError, prefix: tuple[Any, ...] = ()) -> CaseError:
    """The first validation error as a `CaseError` (field path under `prefix`)."""
    errors = exc.errors()
    first = errors[0]
    more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
    return CaseError(source, _field_path((*prefix, *first["loc"])), _describe(first) + more)


def case_from_dict(
    data: Any, source: str = "<case>", probe_models: Mapping[str, ProbeModel] | None = None
) -> Case:
    """Validate a parsed case mapping; raise `CaseError` on the first problem.

    `probe_models` adds or replaces catalogue entries for this case only (the packaged
    catalogue is not changed): calibration fits a model's parameters this way.
    """
    if not isinstance(data, dict):
        raise CaseError(source, "(top level)", "expected a mapping of case fields (YAML keys)")
    data = _probes_from_markups(data, source)
    try:
        case = Case.model_validate(data, context={"probe_models": dict(probe_models or {})})
    except ValidationError as exc:
        raise _case_error(source, exc) from None
    case._source = source
    check_references(case)
    check_plausible(case)
    return case


_PROBES = TypeAdapter(Annotated[list[ProbeSpec], Field(min_length=1)])
_PROTOCOL = TypeAdapter(Annotated[list[Phase], Field(min_length=1)])


def probes_from(items: Sequence[ProbeSpec | Mapping[str, Any]], source: str) -> list[ProbeSpec]:
    """Probes given as `ProbeSpec`s or as mappings in the case file's form, validated as the
    case file's `probes` (errors name `probes[i].field`)."""
    try:
        return _PROBES.validate_python(list(items))
    except ValidationError as exc:
        raise _case_error(source, exc, ("probes",)) from None


def protocol_from(items: Sequence[Phase | Mapping[str, Any]], source: str) -> list[Phase]:
    """Phases given as `Phase`s or as mappings in the case file's form, validated as the case
    file's `protocol`."""
    try:
        return _PROTOCOL.validate_python(list(items))
    except ValidationError as exc:
        raise _case_error(source, exc, ("protocol",)) from None


def load_case(path: str | Path) -> Case:
    """Read and validate a case file (YAML)."""
    return case_from_dict(load_yaml_file(path, "case file"), str(path))


def known_tissues(case: Case) -> set[str]:
    return set(load_library().tissues) | set(case.tissues)


def check_plausible(case: Case) -> None:
    """Every physical value within its plausible range (`cryoplan.limits`): the first one
    outside is a `CaseError`, unless `allow_unphysical`, when all are kept for the warnings."""
    outside = implausible(case)
    if outside and not case.allow_unphysical:
        raise CaseError(case.source, outside[0].field, outside[0].expected())
    case._unphysical = [value.note() for value in outside]


def check_references(case: Case) -> None:
    """Names that must exist: tissues, probe models, probes named by phases, complete tissues;
    names that must be unique: sensors."""
    src = case.source
    library = load_library()
    sensor_names = [s.name for s in case.sensors]
    for i, name in enumerate(sensor_names):
        if name in sensor_names[:i] or name == "time_s":
            raise CaseError(
                src, f"sensors[{i}].name", f"a name of its own ({name!r} is taken; time_s is "
                "the time column)",
            )  # fmt: skip
    if case.frozen_properties == "temperature_dependent":
        for name in case.tissues:
            tissue = case.resolved_tissues.get(name)
            if tissue is not None and tissue.coldest_capacity_j_m3k(library.ice) <= 0.0:
                fall = tissue.heat_capacity_j_m3k.frozen - tissue.coldest_capacity_j_m3k(
                    library.ice
                )
                raise CaseError(
                    src,
                    f"tissues.{name}.heat_capacity_j_m3k.frozen",
                    f"{tissue.heat_capacity_j_m3k.frozen:g} J/(m³·K) is too small for an ice "
                    f"fraction of {tissue.ice_fraction:.2f} with frozen_properties "
                    f"temperature_dependent: the capacity would reach zero above absolute zero "
                    f"(expected more than {fall:.3g}, or a smaller ice_fraction)",
                )
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
        if image.skin is not None:
            named.append(("skin.tissue", image.skin.tissue))
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
    if case.grid.region_mm is not None and case.domain.image is None:
        raise CaseError(
            src,
            "grid.region_mm",
            "a region for an image domain only (a box or phantom is simulated whole)",
        )
    if case.planning is not None:
        check_planning(case)
    check_plan(
        src,
        case.probes or [],
        case.protocol,
        case.probe_models,
        case.output.snapshot_times_min,
    )


def check_planning(case: Case) -> None:
    """What a `planning:` section names must exist and fit the domain."""
    src = case.source
    planning = case.planning
    assert planning is not None
    if case.target is None:
        raise CaseError(src, "target", "a target tissue for the planner to destroy")
    for i, model in enumerate(planning.probe_models):
        if model not in case.probe_models:
            raise CaseError(
                src,
                f"planning.probe_models[{i}]",
                f"a probe model of the catalogue ({', '.join(sorted(case.probe_models))}), "
                f"got {model!r}",
            )
        if case.probe_models[model].usable_length_mm is None:
            raise CaseError(
                src,
                f"planning.probe_models[{i}]",
                f"a model with a usable length in the catalogue ({model!r} has none)",
            )
    image = case.domain.image is not None
    if planning.entry == "skin" and not image:
        raise CaseError(
            src, "planning.entry", "a face ({face: anterior}, …) for a box or phantom domain"
        )
    if isinstance(planning.entry, EntryFace) and image:
        raise CaseError(src, "planning.entry", "'skin' for an image domain (faces are for boxes)")


def check_plan(
    source: str,
    probes: Sequence[ProbeSpec],
    protocol: Sequence[Phase] | None,
    models: Mapping[str, ProbeModel],
    snapshot_times_min: Sequence[float] = (),
) -> None:
    """Names a plan must get right: catalogue models, unique probe names, the probes a phase
    names, snapshots within the protocol. With no protocol (a case to be prepared), only the
    probes are checked."""
    for i, probe in enumerate(probes):
        if probe.model is not None and probe.model not in models:
            raise CaseError(
                source,
                f"probes[{i}].model",
                f"unknown probe model {probe.model!r}; "
                f"the catalogue has {', '.join(sorted(models))}",
            )
    names = probe_names(probes)
    if len(set(names)) != len(names):
        raise CaseError(source, "probes", "probe names must be unique")
    if protocol is None:
        return
    if probes:
        for i, phase in enumerate(protocol):
            for name in phase.probes or []:
                if name not in names:
                    raise CaseError(
                        source,
                        f"protocol[{i}].probes",
                        f"no probe named {name!r} (probes: {', '.join(names)})",
                    )
    total_s = sum(p.seconds for p in protocol)
    for i, t in enumerate(snapshot_times_min):
        if t * 60.0 > total_s + 1e-9:
            raise CaseError(
                source,
                f"output.snapshot_times_min[{i}]",
                f"a time within the protocol's {total_s / 60:g} min (got {t})",
            )


def _unknown_tissue(name: str, tissues: set[str]) -> str:
    return f"unknown tissue {name!r}; known tissues: {', '.join(sorted(tissues))}"
