"""3D Slicer Markups JSON: planned probes out (one line per probe, tip → entry) and back in.

Slicer's markups schema (markups-schema-v1.0.3) stores control points with a coordinate
system of "LPS" or "RAS"; cryoplan writes LPS and reads either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cryoplan.errors import CaseError

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


def probes_from_markups(path: str | Path) -> list[dict[str, Any]]:
    """Probe placements ({name, tip_mm, entry_mm}, LPS) from a Slicer Markups file's lines.

    The first control point of each line is the tip, the second the entry (as cryoplan
    writes them); RAS coordinates are converted to LPS.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CaseError(str(p), "", f"a readable Markups JSON file ({exc})") from None
    probes = []
    for i, markup in enumerate(doc.get("markups", [])):
        if markup.get("type") != "Line":
            continue
        points = markup.get("controlPoints", [])
        if len(points) != 2:
            raise CaseError(str(p), f"markups[{i}].controlPoints", "two points: tip and entry")
        sign = [-1.0, -1.0, 1.0] if markup.get("coordinateSystem", "LPS") == "RAS" else [1.0] * 3
        tip, entry = (
            [s * float(v) for s, v in zip(sign, pt["position"], strict=True)] for pt in points
        )
        probes.append({"name": markup.get("name", f"p{i + 1}"), "tip_mm": tip, "entry_mm": entry})
    if not probes:
        raise CaseError(str(p), "markups", "at least one line markup (a probe: tip and entry)")
    return probes
