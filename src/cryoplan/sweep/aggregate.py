"""From the stored samples to the sweep's results: the table, the maps, the sensitivity
indices and the summary.

Everything here reads the samples in the sweep's fixed order (`samples.samples_of`) and sums
in float64 in that order, so that the results depend on the samples alone, not on which
worker ran which sample or when.

- `samples.parquet`: one row per sample, its inputs (`samples.inputs_row`), its metrics
  (`worker.sample_metrics`) and its error (empty if it ran);
- per case (and protocol variant) under `maps/<case>[/<protocol>]/`, over the samples that
  ran: `lethal_probability.nii.gz` (the fraction of samples in which each voxel dies),
  `tmin_mean_c.nii.gz` and `tmin_sd_c.nii.gz` (mean and sample standard deviation of
  T_min [°C]) on the simulation grid, and for an image case the same `…_on_image.nii.gz` on
  the input image's grid;
- `sensitivity.json` (a Morris or Sobol' design): SALib's indices of the minimum margin and
  of the lethal volume to each parameter, per case and protocol;
- `summary.json` and `summary.html` (plots).
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cryoplan.outputs import finite, json_text, write_nifti, written_whole
from cryoplan.preparation import PreparedCase
from cryoplan.sweep.folder import SweepFolder
from cryoplan.sweep.samples import Sample, inputs_row, unit_design
from cryoplan.sweep.spec import SweepSpec

SENSITIVITY_OUTPUTS = ("margin_min_mm", "lethal_volume_ml")


@dataclass
class MapSums:
    """Running sums of one case and protocol's fields, in sample order."""

    ran: int
    lethal: np.ndarray  # float64: samples in which each voxel died
    tmin: np.ndarray  # float64: Σ T_min
    tmin_sq: np.ndarray  # float64: Σ T_min²

    @classmethod
    def empty(cls, shape: tuple[int, ...]) -> MapSums:
        return cls(0, np.zeros(shape), np.zeros(shape), np.zeros(shape))

    def add(self, tmin_c: np.ndarray, lethal: np.ndarray) -> None:
        t = tmin_c.astype(np.float64)
        self.ran += 1
        self.lethal += lethal
        self.tmin += t
        self.tmin_sq += t * t

    def maps(self) -> dict[str, np.ndarray]:
        n = self.ran
        mean = self.tmin / n
        # sample variance from the sums; clipped at 0 where rounding leaves a tiny negative
        # (one sample has no spread to tell: NaN)
        var = (self.tmin_sq - n * mean * mean) / (n - 1) if n > 1 else np.full_like(mean, np.nan)
        return {
            "lethal_probability": (self.lethal / n).astype(np.float32),
            "tmin_mean_c": mean.astype(np.float32),
            "tmin_sd_c": np.sqrt(np.maximum(var, 0.0)).astype(np.float32),
        }


def map_folder(spec: SweepSpec, case_names: list[str], sample: Sample) -> str:
    """maps/<n>-<case>[/<m>-<protocol>]: numbered (unique) and named, the names reduced to
    letters, digits, '_', '.' and '-' (names are free text; a path is not)."""
    folder = f"maps/{sample.case_index + 1:03d}-{_path_safe(case_names[sample.case_index])}"
    if spec.vary.protocols:
        name = spec.vary.protocols[sample.protocol_index].name
        folder += f"/{sample.protocol_index + 1:02d}-{_path_safe(name)}"
    return folder


def _path_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "unnamed"


def aggregate(
    folder: SweepFolder,
    spec: SweepSpec,
    samples: list[Sample],
    prepared: list[PreparedCase],
) -> dict[str, Any]:
    """Write the table, maps, sensitivity and summary from the stored samples (module
    docstring); returns summary.json's content."""
    import pandas as pd  # noqa: PLC0415  (the table's writer; only sweeps need it)

    case_names = [p.case.name for p in prepared]
    rows = []
    sums: dict[str, MapSums] = {}
    for sample in samples:
        result = folder.load(sample.key)
        rows.append(inputs_row(sample, spec, case_names) | result.metrics
                    | {"error": result.error or ""})  # fmt: skip
        if result.tmin_c is None:
            continue
        where = map_folder(spec, case_names, sample)
        if where not in sums:
            sums[where] = MapSums.empty(result.tmin_c.shape)
        sums[where].add(result.tmin_c, result.lethal)  # type: ignore[arg-type]
    table = pd.DataFrame(rows)
    with written_whole(folder.root / "samples.parquet") as tmp:
        table.to_parquet(tmp, engine="pyarrow", index=False)
    written_maps = _write_maps(folder.root, spec, samples, prepared, case_names, sums)
    sensitivity = _sensitivity(spec, table) if spec.sensitivity is not None else None
    if sensitivity is not None:
        with written_whole(folder.root / "sensitivity.json") as tmp:
            tmp.write_text(json_text(sensitivity), "utf-8")
    summary = _summary(spec, table, written_maps, sensitivity)
    with written_whole(folder.root / "summary.json") as tmp:
        tmp.write_text(json_text(summary), "utf-8")
    with written_whole(folder.root / "summary.html") as tmp:
        tmp.write_text(
            _html(spec, table, summary, sensitivity, sums, prepared, samples, case_names), "utf-8"
        )
    return summary


def _write_maps(
    root: Path,
    spec: SweepSpec,
    samples: list[Sample],
    prepared: list[PreparedCase],
    case_names: list[str],
    sums: dict[str, MapSums],
) -> dict[str, list[str]]:
    case_of = {map_folder(spec, case_names, s): s.case_index for s in samples}
    written: dict[str, list[str]] = {}
    for where, acc in sums.items():
        case = prepared[case_of[where]]
        out = root / where
        out.mkdir(parents=True, exist_ok=True)
        names = []
        source = case.tissue_map.source_grid
        for name, field in acc.maps().items():
            with written_whole(out / f"{name}.nii.gz") as tmp:
                write_nifti(tmp, field, case.grid)
            names.append(f"{name}.nii.gz")
            if source is not None:
                from cryoplan.anatomy.images import Volume, resample, write_image  # noqa: PLC0415

                # outside the simulated crop: no death, body temperature, no spread
                outside = float(case.body_temperature_c) if name == "tmin_mean_c" else 0.0
                on_image = resample(Volume(field, case.grid), source, nearest=False,
                                    default=outside)  # fmt: skip
                with written_whole(out / f"{name}_on_image.nii.gz") as tmp:
                    write_image(tmp, on_image.astype(np.float32), source)
                names.append(f"{name}_on_image.nii.gz")
        written[where] = names
    return written


def _sensitivity(spec: SweepSpec, table) -> dict[str, Any]:
    """SALib's indices of each output in SENSITIVITY_OUTPUTS, per case and protocol."""
    from SALib.analyze import morris, sobol  # noqa: PLC0415

    assert spec.sensitivity is not None
    names = [p.name for p in spec.vary.parameters]
    problem = {"num_vars": len(names), "names": names, "bounds": [[0.0, 1.0]] * len(names)}
    design = unit_design(spec)
    out: dict[str, Any] = {
        "method": spec.sensitivity.method,
        "parameters": names,
        "note": "indices of each output to each parameter's factor over its whole range "
        "(the design spans [0, 1] of each factor's distribution)",
        "results": [],
    }
    for (_, protocol), unsorted in table.groupby(["case_index", "protocol"], sort=True):
        group = unsorted.sort_values("sample")
        entry: dict[str, Any] = {"case": group["case"].iloc[0], "protocol": protocol}
        for output in SENSITIVITY_OUTPUTS:
            if output not in group:
                entry[output] = {"not_computed": "the case has no target"}
                continue
            y = group[output].to_numpy(dtype=float)
            if not np.all(np.isfinite(y)):
                failed = int((~np.isfinite(y)).sum())
                entry[output] = {"not_computed": f"{failed} of {y.size} samples have no value"}
                continue
            if np.ptp(y) == 0.0:  # no spread to apportion (e.g. below the grid's resolution)
                entry[output] = {"not_computed": f"the same in every sample ({y[0]:g})"}
                continue
            if spec.sensitivity.method == "morris":
                res = morris.analyze(problem, design, y, num_levels=spec.sensitivity.levels,
                                     seed=spec.seed)  # fmt: skip
                keys = ("mu", "mu_star", "sigma", "mu_star_conf")
            else:
                res = sobol.analyze(problem, y, calc_second_order=False, seed=spec.seed)
                keys = ("S1", "S1_conf", "ST", "ST_conf")
            entry[output] = {
                name: {k: finite(float(res[k][j])) for k in keys} for j, name in enumerate(names)
            }
        out["results"].append(entry)
    return out


def _summary(
    spec: SweepSpec,
    table,
    maps: dict[str, list[str]],
    sensitivity: dict[str, Any] | None,
) -> dict[str, Any]:
    ran = table[table["error"] == ""]
    groups = []
    for (_, protocol), every in table.groupby(["case_index", "protocol"], sort=True):
        group = every[every["error"] == ""]
        # the samples that did not run are not in the figures: how many, said beside them
        entry: dict[str, Any] = {
            "case": every["case"].iloc[0],
            "protocol": protocol,
            "runs": len(every),
            "failed": len(every) - len(group),
        }
        for column in ("lethal_volume_ml", "coverage_lethal_percent", "margin_min_mm"):
            if column in group:
                values = group[column].to_numpy(dtype=float)
                finite = values[np.isfinite(values)]
                # a margin of −∞: no lethal zone at all, the worst outcome; counted, not averaged
                entry[column] = {"non_finite": int(values.size - finite.size)}
                if finite.size:
                    entry[column] |= {
                        "mean": float(finite.mean()),
                        "sd": float(finite.std(ddof=1)) if finite.size > 1 else None,
                        "p5": float(np.percentile(finite, 5)),
                        "p95": float(np.percentile(finite, 95)),
                    }
        if "complete_with_margin" in group:
            complete = group["complete_with_margin"].dropna()
            if len(complete):
                entry["probability_complete_with_margin"] = float(complete.astype(bool).mean())
        groups.append(entry)
    failed = table[table["error"] != ""]
    return {
        "name": spec.name,
        "runs": len(table),  # samples × protocol variants × cases
        "ran": len(ran),
        "failed": [
            {"key": k, "error": e} for k, e in zip(failed["key"], failed["error"], strict=True)
        ],
        "seed": spec.seed,
        "design": spec.sensitivity.method if spec.sensitivity else "monte_carlo",
        "groups": groups,
        "maps": maps,
        "sensitivity": None if sensitivity is None else "sensitivity.json",
        "table": "samples.parquet",
    }


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def _figure(width_in: float, height_in: float):
    """A figure and its axes, made without pyplot (no backend chosen for the caller)."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(width_in, height_in))
    return fig, fig.subplots()


def _html(
    spec: SweepSpec,
    table,
    summary: dict[str, Any],
    sensitivity: dict[str, Any] | None,
    sums: dict[str, MapSums],
    prepared: list[PreparedCase],
    samples: list[Sample],
    case_names: list[str],
) -> str:
    """A page with the groups' figures, the distributions of the margin and lethal volume,
    each map's middle slice and the sensitivity indices (PNG pictures inlined)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined  # noqa: PLC0415

    ran = table[table["error"] == ""]
    pictures = []
    for column, label in (("margin_min_mm", "minimum margin [mm]"),
                          ("lethal_volume_ml", "lethal volume [mL]")):  # fmt: skip
        if column not in ran or not len(ran):
            continue
        fig, ax = _figure(5.5, 3)
        for (_, protocol), group in ran.groupby(["case_index", "protocol"], sort=True):
            values = group[column].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            ax.hist(values, bins=20, alpha=0.6, label=f"{group['case'].iloc[0]} · {protocol}")
        ax.set_xlabel(label)
        ax.set_ylabel("runs")
        ax.legend(fontsize=7)
        pictures.append({"title": f"Distribution of the {label}", "png": _png(fig)})
    case_of = {map_folder(spec, case_names, s): s.case_index for s in samples}
    for where, acc in sums.items():
        case = prepared[case_of[where]]
        probability = acc.lethal / acc.ran  # the map written by _write_maps
        k = probability.shape[2] // 2
        if case.case.target is not None:
            target = case.tissue_mask(case.case.target)
            k = round(np.argwhere(target)[:, 2].mean())
        # the axial slice in LPS millimetres along the grid's first two axes (L and P for the
        # phantoms and for axis-aligned images), anterior at the top
        grid = case.grid
        x_mm = grid.lps_from_index(np.stack([np.arange(grid.shape[0]), 0 * np.arange(
            grid.shape[0]), np.full(grid.shape[0], k)], axis=1))[:, 0]  # fmt: skip
        y_mm = grid.lps_from_index(np.stack([0 * np.arange(grid.shape[1]), np.arange(
            grid.shape[1]), np.full(grid.shape[1], k)], axis=1))[:, 1]  # fmt: skip
        fig, ax = _figure(4.5, 4)
        shown = ax.pcolormesh(x_mm, y_mm, probability[:, :, k].T, cmap="magma", vmin=0, vmax=1,
                              shading="nearest")  # fmt: skip
        if case.case.target is not None:
            ax.contour(x_mm, y_mm, case.tissue_mask(case.case.target)[:, :, k].T.astype(float),
                       [0.5], colors="cyan", linewidths=1)  # fmt: skip
        ax.set_aspect("equal")
        ax.set_ylim(max(y_mm), min(y_mm))
        fig.colorbar(shown, ax=ax, label="P(lethal)")
        z_mm = grid.lps_from_index(np.array([0.0, 0.0, k]))[2]
        ax.set_title(f"axial slice z = {z_mm:.1f} mm (target outlined)", fontsize=8)
        ax.set_xlabel("x [mm] (towards the left)")
        ax.set_ylabel("y [mm] (towards posterior)")
        pictures.append({"title": f"Probability of lethal freezing, {where}", "png": _png(fig)})
    env = Environment(
        loader=PackageLoader("cryoplan.sweep", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
    )
    if sensitivity is not None:
        pictures += _sensitivity_pictures(sensitivity)
    return env.get_template("summary.html.j2").render(
        spec=spec, summary=summary, pictures=pictures, sensitivity=sensitivity
    )


def _sensitivity_pictures(sensitivity: dict[str, Any]) -> list[dict[str, str]]:
    """One bar chart per case, protocol and output: μ* (Morris) or S1 and ST (Sobol')."""
    keys = ("mu_star",) if sensitivity["method"] == "morris" else ("S1", "ST")
    names = sensitivity["parameters"]
    out = []
    for entry in sensitivity["results"]:
        for output in SENSITIVITY_OUTPUTS:
            indices = entry.get(output, {})
            if "not_computed" in indices:
                continue
            fig, ax = _figure(5, 0.5 + 0.4 * len(names))
            y = np.arange(len(names))
            height = 0.8 / len(keys)
            for j, key in enumerate(keys):
                values = [indices[n][key] or 0.0 for n in names]
                ax.barh(y + j * height, values, height=height, label=key)
            ax.set_yticks(y + height * (len(keys) - 1) / 2, names)
            ax.set_xlabel(f"{'/'.join(keys)} of {output}")
            ax.legend(fontsize=7)
            title = f"Sensitivity of {output}, {entry['case']} · {entry['protocol']}"
            out.append({"title": title, "png": _png(fig)})
    return out
