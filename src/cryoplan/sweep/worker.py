"""What a worker does with one sample: vary the case, run it, measure it.

`run_sample(prepared, parameters, sample)` runs on a Dask worker. `prepared` is the base
case's `PreparedCase`, sent to each worker once (`Client.scatter(..., broadcast=True)`) and
shared by every task of that case there; a sample that varies tissue values prepares its
variant on the same anatomy (`preparation.prepare_on`: no image is read again). The result is
plain values: the table's metrics and the two fields the maps are made of (T_min and the
lethal zone on the simulation grid), or the one-line reason the sample could not run.
`run_and_encode` is the task a sweep submits: the same, compressed on the worker into the
bytes of the sample's file, so that the client only writes them (its one thread would
otherwise compress every sample of the cluster) and less travels to it.
"""

from __future__ import annotations

import dataclasses
import os
import traceback
from typing import Any

import numpy as np

from cryoplan.case import Case, case_from_dict
from cryoplan.errors import CaseError
from cryoplan.outcome import evaluate
from cryoplan.preparation import PreparedCase, prepare_on
from cryoplan.simulator import Simulator
from cryoplan.sweep.result import EncodedSample, SampleResult, encode
from cryoplan.sweep.samples import Sample
from cryoplan.sweep.spec import Parameter

# isotherms whose volumes the table carries [°C]
TABLE_ISOTHERMS_C = (0.0, -20.0, -40.0)


def variant_case(case: Case, parameters: list[Parameter], factors: dict[str, float]) -> Case:
    """The case with each parameter's value scaled by its factor (validated as a case file,
    so that a factor taking a value out of its plausible range is refused as it would be)."""
    tissues = {name: spec.model_dump(exclude_none=True) for name, spec in case.tissues.items()}
    probe_models = {}
    for p in parameters:
        f = factors[p.name]
        if p.tissue is not None:
            base = case.resolved_tissues[p.tissue]
            entry = tissues.setdefault(p.tissue, {})
            field, _, phase = p.property.partition(".")
            value = getattr(base, field)
            if hasattr(value, "frozen"):  # a frozen/unfrozen pair: one or both phases
                pair = dict(entry.get(field) or value.model_dump())
                for which in [phase] if phase else ["frozen", "unfrozen"]:
                    pair[which] = getattr(value, which) * f
                entry[field] = pair
            else:
                entry[field] = value * f
        else:
            model = probe_models.get(p.probe_model) or case.probe_models[p.probe_model]  # type: ignore[index]
            cooling = model.cooling.model_copy(
                update={p.property: getattr(model.cooling, p.property) * f}
            )
            probe_models[p.probe_model] = model.model_copy(update={"cooling": cooling})
    data = case.model_dump(mode="json", exclude_none=True) | {"tissues": tissues}
    return case_from_dict(data, case.source, probe_models=probe_models)


def sample_metrics(run, prepared: PreparedCase) -> tuple[dict[str, Any], np.ndarray]:
    """The table's metrics of one run: volumes, coverage, margin, verdict, collateral (per
    tissue other than the target: its lethal volume and coldest point) and the energy
    ledger's closure; and the run's lethal zone."""
    outcome = evaluate(run, prepared, {"coverage", "margin", "verdict"})
    tmin = run.history.minimum_temperature_c
    voxel_ml = prepared.grid.voxel_volume_ml
    row: dict[str, Any] = {
        "lethal_volume_ml": int(outcome.lethal_zone.sum()) * voxel_ml,
        "coldest_c": float(tmin.min()),
    }
    for level in TABLE_ISOTHERMS_C:
        row[f"volume_{level:g}c_ml".replace("-", "minus")] = int((tmin <= level).sum()) * voxel_ml
    if outcome.coverage is not None and outcome.margin is not None:
        coverage = outcome.coverage["coverage_percent"]
        margin = outcome.margin
        row |= {
            "coverage_lethal_percent": coverage["lethal"],
            "coverage_minus20_percent": coverage["-20"],
            "margin_min_mm": margin["margin_mm"]["minimum"],
            "margin_mean_mm": margin["margin_mm"]["mean"],
            "margin_coverage_percent": margin["margin_coverage_percent"][
                f"{margin['required_margin_mm']:g}"
            ],
        }
    verdict = outcome.verdict or {}
    row["complete_with_margin"] = verdict.get("complete_ablation_with_margin")
    row["limits_met"] = not verdict.get("violated")
    target = prepared.case.target
    for index, tissue in enumerate(prepared.tissues):
        if tissue.name == target:
            continue
        region = prepared.material == index
        row[f"{tissue.name}_lethal_ml"] = int((region & outcome.lethal_zone).sum()) * voxel_ml
        row[f"{tissue.name}_coldest_c"] = float(tmin[region].min())
    row["energy_relative_error"] = float(run.history.ledger.relative_error)
    return row, outcome.lethal_zone


def run_sample(
    prepared: PreparedCase, parameters: list[Parameter], protocol: list[dict] | None, sample: Sample
) -> SampleResult:
    """Run one sample (module docstring). A mistake of the sample's own (a probe moved out
    of the domain, a factor beyond a plausible value) is its error, in one line; so is a
    failure of the code, as "internal error: …" with its last frame, so that one bad sample
    does not lose the sweep."""
    case = prepared.case
    try:
        if parameters:
            varied = variant_case(case, parameters, dict(sample.factors))
            if any(p.tissue is not None for p in parameters):  # new properties, basal state
                prepared = prepare_on(varied, prepared.tissue_map)
            else:  # probe models only: they act in the run, the prepared case stands
                prepared = dataclasses.replace(prepared, case=varied)
        run = Simulator(prepared).run(probes=sample.probes(case), protocol=protocol)
        metrics, lethal = sample_metrics(run, prepared)
        tmin = run.history.minimum_temperature_c.astype(np.float32)
        return SampleResult(sample.key, metrics, tmin, lethal)
    except CaseError as error:
        return SampleResult(sample.key, {}, None, None, str(error))
    except Exception as error:  # recorded in the sample's row (docstring)
        frame = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{os.path.basename(frame.filename)}:{frame.lineno}"
        return SampleResult(sample.key, {}, None, None,
                            f"internal error: {type(error).__name__}: {error} ({where})",
                            retry=True)  # fmt: skip



def run_and_encode(
    prepared: PreparedCase, parameters: list[Parameter], protocol: list[dict] | None, sample: Sample
) -> EncodedSample:
    """`run_sample`, encoded for the results folder (module docstring)."""
    result = run_sample(prepared, parameters, protocol, sample)
    return EncodedSample(result.key, result.error, encode(result), result.retry)
