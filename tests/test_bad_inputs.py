"""A catalogue of bad case files, one line each: exit status 2, one line on stderr naming the
file and the field, and nothing written. With the tables of test_cli.py (bad cases, files,
lesions, Markups) and test_results_folder.py (output folders, damaged results) it covers
every class of mistake the command line meets; each entry is a mistake a user could make.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cryoplan.cli import app

runner = CliRunner()
GOOD = {
    "name": "catalogue",
    "domain": {"box": {"size_mm": [30, 30, 40], "tissue": "gel"}},
    "grid": {"spacing_mm": 2.0},
    "probes": [{"model": "generic-17g", "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]}],
    "protocol": [{"phase": "freeze", "duration_min": 1}],
}
DELETE = object()
INLINE = {"diameter_mm": 1.5, "active_length_mm": 20, "wall_temperature_c": -150,
          "tip_mm": [0, 0, -10], "entry_mm": [0, 0, 50]}  # fmt: skip
VESSEL = {"from_mm": [-15, 5, -20], "to_mm": [15, 5, -20], "diameter_mm": 4}
PLANNING_CASE = {"target": "tumour", "domain": {"phantom": "liver-tumour"}}


def mutate(*changes: tuple[tuple, object]) -> dict:
    """GOOD with each (path, value) applied (DELETE removes the key)."""
    data = copy.deepcopy(GOOD)
    for path, value in changes:
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return data


# name → (case data, the field the line must name)
CATALOGUE = {
    # the case's top level
    "name is a list": (mutate((("name",), [1, 2])), "name"),
    "unknown top-level field": (mutate((("probs",), [])), "probs"),
    "no domain": (mutate((("domain",), DELETE)), "domain"),
    "outer boundary misspelt": (mutate((("outer_boundary",), "cold")), "outer_boundary"),
    "frozen properties misspelt": (mutate((("frozen_properties",), "ice")), "frozen_properties"),
    "negative margin": (mutate((("margin_mm",), -5)), "margin_mm"),
    "target not a tissue": (mutate((("target",), "tumor")), "target"),
    "margin as text": (mutate((("margin_mm",), "five")), "margin_mm"),
    # the domain
    "box and phantom": (mutate((("domain", "phantom"), "liver-tumour")), "domain"),
    "empty domain": (mutate((("domain",), {})), "domain"),
    "unknown phantom": (mutate((("domain",), {"phantom": "brain"})), "domain.phantom"),
    "box of two sides": (mutate((("domain", "box", "size_mm"), [30, 30])), "size_mm"),
    "box of zero size": (mutate((("domain", "box", "size_mm"), [30, 0, 40])), "size_mm"),
    "box of negative size": (mutate((("domain", "box", "size_mm"), [-30, 30, 40])), "size_mm"),
    "box side infinite": (
        mutate((("domain", "box", "size_mm"), [30, 30, float("inf")])), "size_mm"),
    "vessel of zero diameter": (
        mutate((("domain", "box", "vessels"), [{**VESSEL, "diameter_mm": 0}])), "diameter_mm"),
    "vessel of an unknown tissue": (
        mutate((("domain", "box", "vessels"), [{**VESSEL, "tissue": "artery"}])), "vessels[0]"),
    "vessel with one end": (
        mutate((("domain", "box", "vessels"), [{"from_mm": [0, 0, 0], "diameter_mm": 4}])),
        "vessels[0]"),
    # the grid
    "negative spacing": (mutate((("grid", "spacing_mm"), -1)), "grid.spacing_mm"),
    "spacing as text": (mutate((("grid", "spacing_mm"), "1 mm")), "grid.spacing_mm"),
    "spacing NaN": (mutate((("grid", "spacing_mm"), float("nan"))), "grid.spacing_mm"),
    "grid dtype float32": (mutate((("grid", "dtype"), "float32")), "grid.dtype"),
    "negative crop margin": (mutate((("grid", "crop_margin_mm"), -3)), "grid.crop_margin_mm"),
    "region upside down": (
        mutate((("grid", "region_mm"), {"lo_mm": [5, 5, 5], "hi_mm": [0, 0, 0]})), "region_mm"),
    # probes
    "no probes": (mutate((("probes",), [])), "probes"),
    "probe without a tip": (mutate((("probes", 0, "tip_mm"), DELETE)), "probes[0]"),
    "probe tip of two numbers": (mutate((("probes", 0, "tip_mm"), [0, 0])), "probes[0].tip_mm"),
    "probe tip NaN": (mutate((("probes", 0, "tip_mm"), [0, 0, float("nan")])), "probes[0].tip_mm"),
    "probe entry infinite": (
        mutate((("probes", 0, "entry_mm"), [0, 0, float("inf")])), "probes[0].entry_mm"),
    "inline probe without a wall": (
        mutate((("probes", 0), {k: v for k, v in INLINE.items() if k != "wall_temperature_c"})),
        "probes[0]"),
    "model and a wall": (mutate((("probes", 0, "wall_temperature_c"), -150)), "probes[0]"),
    "two probes of one name": (
        mutate((("probes",), [{**INLINE, "name": "a"}, {**INLINE, "name": "a",
                                                         "tip_mm": [5, 0, -10],
                                                         "entry_mm": [5, 0, 50]}])),
        "probes"),
    "probe of zero length": (mutate((("probes", 0), {**INLINE, "active_length_mm": 0})),
                             "probes[0].active_length_mm"),
    "probe active length 1 km": (mutate((("probes", 0), {**INLINE, "active_length_mm": 1e6})),
                                 "probes[0].active_length_mm"),
    "probe a string": (mutate((("probes", 0), "argon-17g")), "probes[0]"),
    # protocol
    "no protocol phases": (mutate((("protocol",), [])), "protocol"),
    "unknown phase": (mutate((("protocol", 0, "phase"), "chill")), "protocol[0]"),
    "two durations": (mutate((("protocol", 0, "duration_s"), 60)), "protocol[0]"),
    "zero duration": (mutate((("protocol", 0, "duration_min"), 0)), "protocol[0]"),
    "duration as text": (mutate((("protocol", 0, "duration_min"), "ten")), "protocol[0]"),
    "phase probes not a list": (mutate((("protocol", 0, "probes"), "p1")), "protocol[0]"),
    "active thaw of an inline probe without its temperature": (
        mutate((("probes", 0), INLINE),
               (("protocol",), [{"phase": "freeze", "duration_min": 1},
                                {"phase": "active_thaw", "duration_min": 1}])),
        "active_thaw_temperature_c"),
    "protocol of nine hours": (
        mutate((("protocol",), [{"phase": "freeze", "duration_min": 100}] * 5)), "protocol"),
    # sensors and output
    "sensor without a name": (mutate((("sensors",), [{"at_mm": [1, 0, 0]}])), "sensors[0]"),
    "sensor of two coordinates": (
        mutate((("sensors",), [{"name": "s", "at_mm": [1, 0]}])), "sensors[0].at_mm"),
    "sensor named time_s": (
        mutate((("sensors",), [{"name": "time_s", "at_mm": [1, 0, 0]}])), "sensors[0].name"),
    "negative snapshot time": (
        mutate((("output",), {"snapshot_times_min": [-1]})), "snapshot_times_min"),
    "snapshot after the protocol": (
        mutate((("output",), {"snapshot_times_min": [30]})), "snapshot_times_min"),
    "zero sensor interval": (mutate((("output",), {"sensor_interval_s": 0})), "sensor_interval_s"),
    # tissues
    "tissue like an unknown one": (mutate((("tissues",), {"jelly": {"like": "jam"}})),
                                   "tissues.jelly.like"),
    "conductivity without its frozen value": (
        mutate((("tissues",), {"gel": {"conductivity_w_mk": {"unfrozen": 0.6}}})),
        "tissues.gel.conductivity_w_mk"),
    "freezing range as text": (
        mutate((("tissues",), {"gel": {"freezing_range_c": "-1 to 0"}})),
        "tissues.gel.freezing_range_c"),
    "ice fraction 2": (mutate((("tissues",), {"gel": {"ice_fraction": 2}})),
                       "tissues.gel.ice_fraction"),
    "negative perfusion": (mutate((("tissues",), {"gel": {"perfusion_1_s": -0.01}})),
                           "tissues.gel.perfusion_1_s"),
    "unknown tissue value": (mutate((("tissues",), {"gel": {"density": 1000}})), "tissues.gel"),
    # injury, limits and planning
    "unknown injury model": (mutate((("injury",), {"model": "arrhenius"})), "injury.model"),
    "critical structure of an unknown tissue": (
        mutate((("critical_structures",), [{"tissue": "bowel", "keep_above_c": 0}])),
        "critical_structures[0]"),
    "critical limit as text": (
        mutate((("critical_structures",), [{"tissue": "gel", "keep_above_c": "zero"}])),
        "critical_structures[0].keep_above_c"),
    "planning without a target": (mutate((("planning",), {})), "target"),
    "planning of zero probes": (
        mutate((("domain",), PLANNING_CASE["domain"]), (("target",), "tumour"),
               (("probes",), DELETE), (("planning",), {"max_probes": 0})),
        "planning.max_probes"),
    "planning of a hundred probes": (
        mutate((("domain",), PLANNING_CASE["domain"]), (("target",), "tumour"),
               (("probes",), DELETE), (("planning",), {"max_probes": 100})),
        "planning.max_probes"),
    "planning with an unknown probe model": (
        mutate((("domain",), PLANNING_CASE["domain"]), (("target",), "tumour"),
               (("probes",), DELETE), (("planning",), {"probe_models": ["ice-pick"]})),
        "planning.probe_models"),
    "planning of one Monte Carlo sample": (
        mutate((("domain",), PLANNING_CASE["domain"]), (("target",), "tumour"),
               (("probes",), DELETE), (("planning",), {"robustness": {"samples": 1}})),
        "planning"),
    "negative placement error": (
        mutate((("domain",), PLANNING_CASE["domain"]), (("target",), "tumour"),
               (("probes",), DELETE),
               (("planning",), {"placement_error_mm": {"lateral": -1}})),
        "planning.placement_error_mm.lateral"),
    "probability above 1": (
        mutate((("domain",), PLANNING_CASE["domain"]), (("target",), "tumour"),
               (("probes",), DELETE), (("planning",), {"min_success_probability": 1.5})),
        "planning.min_success_probability"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_catalogued_mistake_is_one_line_exit_2_and_nothing_written(
    name: str, tmp_path: Path
) -> None:
    data, field = CATALOGUE[name]
    case_file = tmp_path / "case.yaml"
    case_file.write_text(yaml.safe_dump(data), "utf-8")
    out = tmp_path / "out"
    command = "plan" if "planning" in data else "simulate"
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, [command, str(case_file), "--out", str(out), "-q"])
    assert result.exit_code == 2, (result.output, result.exception)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert str(case_file) in lines[0]
    assert field in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
