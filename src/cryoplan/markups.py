"""3D Slicer Markups JSON: planned probes out (one line per probe, tip → entry) and back in.

Slicer's markups schema (markups-schema-v1.0.3) stores control points with a coordinate
system of "LPS" or "RAS"; cryoplan writes LPS and reads either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError

from cryoplan.errors import CaseError

_Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]

SCHEMA = (
    "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
    "Resources/Schema/markups-schema-v1.0.3.json#"
)


def probes_to_markups(probes: Any) -> dict[str, Any]:
    """Markups document with one `Line` per probe: control points tip, then entry (LPS mm)."""
    return {
        "@schema": SCHEMA,
        "markups": [
            {
                "type": "Line",
                "name": p.name,
                "coordinateSystem": "LPS",
                "coordinateUnits": "mm",
                "description": f"cryoplan probe {p.model or 'inline'}: "
                f"{p.diameter_mm:g} mm, active {p.active_length_mm:g} mm from the tip",
                "controlPoints": [
                    {"label": f"{p.name}-tip", "position": [float(v) for v in p.tip_mm]},
                    {"label": f"{p.name}-entry", "position": [float(v) for v in p.entry_mm]},
                ],
            }
            for p in probes
        ],
    }


class _Point(BaseModel):
    model_config = ConfigDict(extra="allow")
    position: tuple[_Number, _Number, _Number]


class _Markup(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    name: str | None = None
    coordinateSystem: Literal["LPS", "RAS"] = "LPS"  # noqa: N815 (Slicer's key)
    controlPoints: list[_Point] = Field(default_factory=list)  # noqa: N815


class _Document(BaseModel):
    model_config = ConfigDict(extra="allow")
    markups: list[_Markup]


def probes_from_markups(path: str | Path) -> list[dict[str, Any]]:
    """Probe placements ({name, tip_mm, entry_mm}, LPS) from a Slicer Markups file's lines.

    The first control point of each line is the tip, the second the entry (as cryoplan
    writes them); RAS coordinates are converted to LPS. A file not of that shape is a
    one-line `CaseError` naming the first field that is not.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else exc
        raise CaseError(str(p), "(top level)", f"a readable Markups JSON file ({reason})") from None
    try:
        doc = _Document.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in first["loc"])
        raise CaseError(
            str(p), where.lstrip(".") or "(top level)", f"a Slicer Markups document: {first['msg']}"
        ) from None
    probes = []
    for i, markup in enumerate(doc.markups):
        if markup.type != "Line":
            continue
        points = markup.controlPoints
        if len(points) != 2:
            raise CaseError(str(p), f"markups[{i}].controlPoints", "two points: tip and entry")
        sign = [-1.0, -1.0, 1.0] if markup.coordinateSystem == "RAS" else [1.0] * 3
        tip, entry = ([s * v for s, v in zip(sign, pt.position, strict=True)] for pt in points)
        probes.append({"name": markup.name or f"p{i + 1}", "tip_mm": tip, "entry_mm": entry})
    if not probes:
        raise CaseError(str(p), "markups", "at least one line markup (a probe: tip and entry)")
    return probes
