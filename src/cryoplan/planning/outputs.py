"""Writing a plan's directory, all or nothing (as `cryoplan.outputs` writes a result):

- plan.yaml: the chosen plan as a complete case (probes from the skin, protocol, the
  `planning:` section kept) that `cryoplan simulate` runs unchanged; a staged plan writes
  stage-1.yaml … stage-K.yaml instead, one per session (and stage-k.probes.mrk.json);
- summary.json: the `plan` section (status, probes with depth, direction and clearance,
  protocol, the verified score, the search model's score, robustness, alternatives);
- probes.mrk.json: the probes as 3D Slicer Markups lines (tip, skin entry);
- lethal_probability.nii.gz: per voxel, the share of placement-error samples in which it
  was lethally frozen (a staged plan: in at least one session), on the case's grid; for
  an image case also lethal_probability_on_image.nii.gz on the input image's grid.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import yaml

from cryoplan.markups import probes_to_markups
from cryoplan.outputs import json_text, results_folder, write_nifti
from cryoplan.planning.planner import Candidate, PlanResult


def plan_yaml(result: PlanResult, folder: Path | None = None, session: int = 0) -> str:
    """A plan file's text (a staged plan: that session's, from 0): a header that says what
    it is, then the case."""
    chosen = result.candidates[session]
    staged = result.staged
    robust = chosen.robustness if staged is None else staged.robustness
    header = [
        f"# Planned by cryoplan for case {result.case.name!r}: {chosen.count} × "
        f"{chosen.probe_model}, protocol {chosen.protocol.name}.",
    ]
    if staged is not None:
        part = staged.sessions[session]
        header.append(
            f"# STAGED PLAN: stage {session + 1} of {staged.count}, treating "
            f"{part.part_ml(result.prepared.grid):.1f} mL of the target around LPS "
            f"{part.part_centre_lps(result.prepared.grid)} mm ({staged.reason}). Simulated "
            "alone it leaves the rest of the target to the other sessions."
        )
    if robust is not None:
        lo, hi = robust.interval
        what = (
            "objective met"
            if staged is None
            else f"objective met after all {staged.count} sessions"
        )
        header.append(
            f"# P({what}) = {robust.probability:.2f} (95 % interval {lo:.2f}–{hi:.2f}) "
            f"under placement error σ {robust.lateral_sigma_mm:g} mm lateral, "
            f"{robust.depth_sigma_mm:g} mm depth ({robust.samples} samples)."
        )
    if result.verified is not None:
        verdict = "meets" if result.verified.met else "does NOT meet"
        subject = "the plan" if staged is None else f"the {staged.count} sessions together"
        header.append(f"# Solved at the case's spacing, {subject} {verdict} the objective.")
    if result.blocked is not None:
        header.append(f"# NOT A COMPLETE PLAN: {result.blocked}.")
    header.append("# Probe entry points lie on the skin; run with `cryoplan simulate`.")
    body = yaml.safe_dump(result.plan_case(folder, session), sort_keys=False, allow_unicode=True)
    return "\n".join(header) + "\n" + body


def plan_files(result: PlanResult) -> list[tuple[str, str]]:
    """(plan file, markups file) per session: plan.yaml for one session, stage-k.yaml
    for each of a staged plan's."""
    if result.staged is None:
        return [("plan.yaml", "probes.mrk.json")]
    return [
        (f"stage-{k}.yaml", f"stage-{k}.probes.mrk.json") for k in range(1, result.staged.count + 1)
    ]


def write_plan(result: PlanResult, out_dir: str | Path, overwrite: bool = False) -> Path:
    """Write the plan's files into `out_dir` (module docstring), published whole
    (`cryoplan.outputs.results_folder`)."""
    out = Path(out_dir)
    with results_folder(out, overwrite) as staging:
        summary = result.summary()
        (staging / "summary.json").write_text(json_text(summary), "utf-8")
        if result.candidates:
            for k, (plan_name, markups_name) in enumerate(plan_files(result)):
                (staging / plan_name).write_text(plan_yaml(result, out, k), "utf-8")
                markups = _markups(result, result.candidates[k])
                (staging / markups_name).write_text(markups, "utf-8")
            probability = result.lethal_probability
            if probability is not None:
                _write_probability(staging, result, probability)
    return out


def _markups(result: PlanResult, chosen: Candidate) -> str:
    model = result.case.probe_models[chosen.probe_model]
    probes = [
        SimpleNamespace(
            name=p["name"],
            model=p["model"],
            diameter_mm=model.diameter_mm,
            active_length_mm=model.active_length_mm,
            tip_mm=p["tip_mm"],
            entry_mm=p["entry_mm"],
        )
        for p in chosen.probes()
    ]
    return json.dumps(probes_to_markups(probes), indent=2) + "\n"


def _write_probability(folder: Path, result: PlanResult, probability: np.ndarray) -> list[str]:
    grid = result.prepared.grid
    write_nifti(folder / "lethal_probability.nii.gz", probability.astype(np.float32), grid)
    written = ["lethal_probability.nii.gz"]
    source = result.prepared.tissue_map.source_grid
    if source is not None:
        from cryoplan.anatomy.images import Volume, resample, write_image  # noqa: PLC0415

        on_image = resample(Volume(probability, grid), source, nearest=False, default=0.0)
        write_image(
            folder / "lethal_probability_on_image.nii.gz", on_image.astype(np.float32), source
        )
        written.append("lethal_probability_on_image.nii.gz")
    return written
