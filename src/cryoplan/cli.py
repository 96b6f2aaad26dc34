"""The `cryoplan` command (contract in ARCHITECTURE.md).

    cryoplan simulate CASE.yaml --out DIR [--report] [--pdf] [--vtk]
    cryoplan plan CASE.yaml --out DIR
    cryoplan sweep SWEEP.yaml --out DIR [--scheduler ADDRESS] [--workers N]
    cryoplan report DIR [--pdf]
    cryoplan demo [--out DIR]

Exit status 0 on success and 2 on bad input, with one line on stderr naming the file, the
field and what was expected. Nothing is written unless the whole run succeeds.

Each command imports what it uses when it runs (the solver, images, report): at import this
module loads only typer and rich, so that `cryoplan --help` and a mistyped command answer at
once.
"""

from __future__ import annotations

import enum
import json
import signal
import sys
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cryoplan.errors import CaseError

if TYPE_CHECKING:
    from cryoplan.case import Case
    from cryoplan.simulation import SimulationResult


class Solver(enum.StrEnum):
    fast = "fast"
    reference = "reference"


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Plan and simulate cryoablation: freeze–thaw protocols, probes and ice balls.",
)
console = Console()
err_console = Console(stderr=True)

# the --quiet option every command that runs the solver takes
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")]
# and --overwrite, every command that publishes a results folder
OverwriteOption = Annotated[
    bool,
    typer.Option("--overwrite", help="Replace an existing --out folder, whole (else refused)."),
]

DEMO_SOURCE = "cryoplan demo (built-in case cryoplan/data/demo.yaml)"
MAX_LABEL = 65535  # label maps are written as unsigned 16-bit at most


def demo_case() -> Case:
    """The built-in default case: the liver–tumour–vessel phantom with three probes."""
    from cryoplan.case import case_from_dict  # noqa: PLC0415
    from cryoplan.yamlio import load_yaml  # noqa: PLC0415

    text = resources.files("cryoplan.data").joinpath("demo.yaml").read_text("utf-8")
    return case_from_dict(load_yaml(text), DEMO_SOURCE)


def _fail(error: CaseError) -> typer.Exit:
    sys.stderr.write(f"cryoplan: error: {error}\n")
    return typer.Exit(code=2)


def _run(
    case: Case,
    out: Path,
    quiet: bool,
    solver: str = "fast",
    vtk: bool = False,
    overwrite: bool = False,
    report: bool = False,
    pdf: bool = False,
) -> tuple[SimulationResult, list[Path]]:
    """Simulate and publish the results folder whole, with the report in it if asked for;
    returns the result and the report files (as published in `out`)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from cryoplan.outputs import check_output_dir, write_result  # noqa: PLC0415
    from cryoplan.report import write_report  # noqa: PLC0415
    from cryoplan.simulation import simulate  # noqa: PLC0415

    check_output_dir(out, overwrite)  # before a long simulation, not after
    show = not quiet and err_console.is_terminal
    _compile_solver(solver, quiet)
    with Progress(
        TextColumn("[bold]simulating[/] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not show,
    ) as bar:
        task = bar.add_task(case.name, total=case.total_duration_s())
        result = simulate(
            case,
            progress=lambda t, _total: bar.update(task, completed=t),
            backend=solver,  # type: ignore[arg-type]
        )
    reports: list[Path] = []

    def write_reports(staging: Path) -> None:
        written = write_report(staging, pdf=pdf, require_complete=False)
        reports.extend(out / path.name for path in written)

    write_result(
        result, out, vtk=vtk, overwrite=overwrite, report=write_reports if report or pdf else None
    )
    return result, reports


def _compile_solver(solver: str, quiet: bool) -> None:
    """Compile the solver's kernels before the run if numba's cache lacks them (the first
    run after an install or an upgrade), saying so: that time is not simulation time."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from cryoplan.thermal import SOLVERS, compile_solver  # noqa: PLC0415
    from cryoplan.thermal.jit import missing_entries  # noqa: PLC0415
    from cryoplan.thermal.stepping import solver_entries  # noqa: PLC0415

    factory = SOLVERS[solver]
    if not missing_entries(solver_entries(factory)):
        return
    if not quiet and not err_console.is_terminal:
        err_console.print("compiling the solver (first run only) …", highlight=False)
    with Progress(
        TextColumn("[bold]compiling the solver[/] (first run only)"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=quiet or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("compile", total=None)
        report = compile_solver(
            factory,
            progress=lambda done, total, _name: bar.update(task, completed=done, total=total),
        )
    if not quiet:
        err_console.print(
            f"compiled the solver in {report.seconds:.0f} s; later runs load it from the cache",
            highlight=False,
        )


def _print_summary(result: SimulationResult, out: Path) -> None:
    from rich.table import Table  # noqa: PLC0415

    from cryoplan.outputs import snapshot_file_name  # noqa: PLC0415

    s = result.summary()
    table = Table(title=f"{s['name']}: ice ball after the protocol (minimum temperature reached)")
    table.add_column("isotherm")
    table.add_column("volume mL", justify="right")
    table.add_column("extent x × y × z mm (LPS)", justify="right")
    for key, iso in s["isotherms"].items():
        ext = " × ".join(f"{e:.0f}" for e in iso["extent_mm"])
        table.add_row(f"{key} °C", f"{iso['volume_ml']:.1f}", ext)
    console.print(table)
    verdict = s["outcome"]["verdict"]["text"]
    colour = {True: "green", False: "red", None: "white"}[
        s["outcome"]["verdict"]["complete_ablation_with_margin"]
    ]
    console.print(f"[bold {colour}]verdict:[/] {verdict}", highlight=False)
    planned = s.get("planning_objective")
    if planned is not None:
        words = "met" if planned["met"] else "NOT met: " + "; ".join(planned["missed"])
        margin = s["outcome"]["target"]["required_margin_mm"]
        console.print(
            f"[bold]planning objective[/] (all lethal, ice {margin:g} mm beyond): {words}",
            highlight=False,
        )
    for warning in s["outcome"]["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    t = s["timing"]
    e = s["energy_balance"]
    console.print(
        f"lethal zone (each tissue's lethal temperature): {s['lethal_zone']['volume_ml']:.1f} mL; "
        f"coldest point {s['minimum_temperature_c']:.1f} °C"
    )
    console.print(
        f"energy balance error {e['relative_error']:.1e}; "
        f"{t['simulated_s'] / 60:.1f} min simulated "
        f"in {t['wall_time_s']:.1f} s ({t['steps']} steps, {t['voxels']} voxels)"
    )
    console.print(f"results in {out}/ (summary.json, tmin.nii.gz, sensors.csv)")
    if result.history.snapshots_c:
        console.print(
            "temperature snapshots: "
            + ", ".join(snapshot_file_name(t) for t in sorted(result.history.snapshots_c))
        )


@app.command("simulate")
def simulate_command(
    case_file: Annotated[Path, typer.Argument(help="The case file (YAML).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the results.")],
    quiet: QuietOption = False,
    report: Annotated[bool, typer.Option("--report", help="Also write report.html.")] = False,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also write report.pdf (implies --report).")
    ] = False,
    solver: Annotated[
        Solver,
        typer.Option(
            "--solver",
            help="fast: multirate steps (default); reference: one global step (docs/solver.md).",
        ),
    ] = Solver.fast,
    vtk: Annotated[
        bool,
        typer.Option(
            "--vtk", help="Also write fields.vti and isotherm_<T>c.vtp (VTK XML, for ParaView)."
        ),
    ] = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Simulate a case file and write summary.json, tmin.nii.gz and sensors.csv into --out."""
    from cryoplan.case import load_case  # noqa: PLC0415

    try:
        case = load_case(case_file)
        result, reports = _run(case, out, quiet, solver.value, vtk, overwrite, report, pdf)
    except CaseError as error:
        raise _fail(error) from None
    if not quiet:
        _print_summary(result, out)
        for path in reports:
            console.print(f"report: {path}")


@app.command("plan")
def plan_command(
    case_file: Annotated[Path, typer.Argument(help="The case file (YAML) with a target.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the plan.")],
    quiet: QuietOption = False,
    report: Annotated[
        bool,
        typer.Option(
            "--report",
            help="Also simulate the plan (each session) into --out/simulated… with report.html.",
        ),
    ] = False,
    pdf: Annotated[
        bool, typer.Option("--pdf", help="Also write report.pdf (implies --report).")
    ] = False,
    overwrite: OverwriteOption = False,
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="A Dask scheduler's address: the search's runs go to its cluster.",
        ),
    ] = None,
) -> None:
    """Plan probes (count, paths from the skin, layout) and protocol for a case.

    Writes plan.yaml (a staged plan: stage-1.yaml, …), summary.json, probes.mrk.json and
    the lethal-probability map into --out."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    from cryoplan.case import load_case  # noqa: PLC0415
    from cryoplan.outputs import check_output_dir  # noqa: PLC0415
    from cryoplan.planning import plan, write_plan  # noqa: PLC0415
    from cryoplan.thermal.threads import available_cpus  # noqa: PLC0415

    try:
        case = load_case(case_file)
        check_output_dir(out, overwrite)
        _compile_solver("fast", quiet)
        with Progress(
            TextColumn("[bold]planning[/] {task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=quiet or not err_console.is_terminal,
        ) as bar:
            task = bar.add_task(case.name, total=1.0)
            with ExitStack() as stack:
                client = None
                if scheduler is not None:
                    from cryoplan.sweep.runner import dask_client  # noqa: PLC0415

                    client = stack.enter_context(dask_client(scheduler, None))
                result = plan(
                    case,
                    progress=lambda what, done: bar.update(task, completed=done, description=what),
                    workers=min(2, available_cpus()),
                    client=client,
                )
        write_plan(result, out, overwrite)
    except CaseError as error:
        raise _fail(error) from None
    if not quiet:
        _print_plan(result, out)
    if report or pdf:
        _report_plan(result, out, quiet, pdf)
    if result.blocked is not None:
        raise typer.Exit(code=1)


def _report_plan(result, out: Path, quiet: bool, pdf: bool) -> None:
    """Each plan file written into `out`, simulated as any case into its own folder, with
    the report (which shows how the plan was chosen, from out/summary.json)."""
    from cryoplan.case import load_case  # noqa: PLC0415
    from cryoplan.planning.outputs import plan_files  # noqa: PLC0415

    if not result.candidates:
        return
    for plan_name, _ in plan_files(result):
        stem = Path(plan_name).stem
        folder = out / ("simulated" if stem == "plan" else f"simulated-{stem}")
        try:
            _, reports = _run(load_case(out / plan_name), folder, quiet, report=True, pdf=pdf)
            for path in reports:
                if not quiet:
                    console.print(f"report: {path}")
        except CaseError as error:
            raise _fail(error) from None


def _print_plan(result, out: Path) -> None:
    s = result.summary()["plan"]
    if s["status"] == "blocked":
        console.print(f"[bold red]no plan meets the objective:[/] {s['blocked']}", highlight=False)
        if s["probe_count"] is None:
            console.print(f"summary in {out}/summary.json")
            return
        console.print("the closest plan follows (its plan file says it misses)")
    error = s["settings"]["placement_error_mm"]
    under = f"under placement error σ {error['lateral']:g} mm lateral, {error['depth']:g} mm depth"
    staged = s["staged"]
    if staged is None:
        console.print(
            f"[bold]plan:[/] {s['probe_count']} probe(s), protocol {s['protocol']}; "
            f"P(objective met) {s['success_probability']:.2f} {under}",
            highlight=False,
        )
        _print_probes(s["probes"])
    else:
        console.print(
            f"[bold]staged plan:[/] {s['sessions']} sessions ({staged['reason']}); "
            f"P(objective met after all sessions) {s['success_probability']:.2f} {under}",
            highlight=False,
        )
        for session in staged["sessions"]:
            console.print(
                f" stage {session['session']}: {session['part_volume_ml']:.1f} mL of the "
                f"target around LPS {session['part_centre_lps_mm']} mm, "
                f"{session['probe_count']} probe(s), protocol {session['protocol']}",
                highlight=False,
            )
            _print_probes(session["probes"])
    v = s["verified"]
    colour = "green" if v["met"] else "red"
    together = "" if staged is None else " (sessions together)"
    console.print(
        f"[bold {colour}]verified at the case's spacing{together}:[/] lethal coverage "
        f"{v['lethal_coverage_percent']:.1f} %, ice margin {v['ice_margin_mm']:.1f} mm"
        + ("" if v["met"] else "; missed: " + "; ".join(v["missed"])),
        highlight=False,
    )
    for note in s["notes"]:
        console.print(f"[dim]note:[/] {note}", highlight=False)
    files = "plan.yaml" if staged is None else f"stage-1.yaml … stage-{s['sessions']}.yaml"
    console.print(f"plan in {out}/{files} (run with `cryoplan simulate`)")


def _print_probes(probes: list[dict]) -> None:
    for p in probes:
        nearest = (
            f"nearest no-fly {p['closest_no_fly']} at {p['clearance_mm']} mm"
            if p["closest_no_fly"] is not None
            else "no no-fly structure near"
        )
        console.print(
            f"  {p['name']}: tip {p['tip_mm']}, skin entry {p['entry_mm']}, depth "
            f"{p['depth_mm']} mm, {nearest}",
            highlight=False,
        )


@app.command("sweep")
def sweep_command(
    spec_file: Annotated[Path, typer.Argument(help="The sweep file (YAML, docs/sweep.md).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the results.")],
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler", help="A Dask scheduler's address (tcp://host:8786); default: local."
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, help="Local worker processes (default: one per available CPU)."
        ),
    ] = None,
    quiet: QuietOption = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Run many samples of one or more cases (placement error, tissue values, protocols, a
    cohort) on Dask, and write samples.parquet, maps, sensitivity and summary.html.

    Each sample is stored as it finishes: the same command again resumes an interrupted
    sweep, running only the samples not yet stored."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from cryoplan.sweep import run_sweep  # noqa: PLC0415

    if scheduler is not None and workers is not None:
        raise _fail(CaseError("--workers", "", "local workers only: not with --scheduler"))
    stored_now = 0
    with Progress(
        TextColumn("[bold]sweep[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=quiet or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(spec_file.name, total=None)

        def progress(stored: int, total: int, result) -> None:
            nonlocal stored_now
            stored_now += result is not None
            bar.update(task, completed=stored, total=total)

        def started(dashboard: str | None) -> None:
            if not quiet and dashboard:
                err_console.print(f"Dask dashboard: {dashboard}", highlight=False)

        try:
            _compile_solver("fast", quiet)
            result = run_sweep(spec_file, out, scheduler, workers, overwrite, progress, started)
        except CaseError as error:
            raise _fail(error) from None
        except KeyboardInterrupt:
            # unlike a results folder, a sweep keeps what it has: say so, not "nothing written"
            _interrupt_said(f"interrupted; {stored_now} samples stored by this run stand in "
                            f"{out}: the same command resumes")  # fmt: skip
            raise typer.Exit(code=130) from None
    if not quiet:
        s = result.summary
        console.print(
            f"{s['runs']} runs ({result.ran_now} now, {s['runs'] - result.ran_now} stored "
            f"before); {len(s['failed'])} did not run",
            highlight=False,
        )
        for group in s["groups"]:
            words = [f"{group['case']} · {group['protocol']}: {group['runs']} runs"]
            if "probability_complete_with_margin" in group:
                words.append(
                    f"P(complete with margin) {group['probability_complete_with_margin']:.2f}"
                )
            if group["failed"]:
                words.append(f"{group['failed']} did not run")
            m = group.get("margin_min_mm", {})
            if "mean" in m:
                words.append(f"minimum margin {m['mean']:.1f} mm (5–95 %: "
                             f"{m['p5']:.1f} to {m['p95']:.1f})")  # fmt: skip
            if m.get("non_finite"):
                words.append(f"{m['non_finite']} with no lethal zone")
            console.print("; ".join(words), highlight=False)
        console.print(f"results in {out}/ (samples.parquet, maps/, summary.html)")


@app.command("report")
def report_command(
    result_dir: Annotated[Path, typer.Argument(help="A directory written by `cryoplan simulate`.")],
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write report.pdf.")] = False,
) -> None:
    """Write report.html (self-contained) and optionally report.pdf into a result directory."""
    from cryoplan.report import write_report  # noqa: PLC0415

    try:
        paths = write_report(result_dir, pdf=pdf)  # refuses a folder not published whole
    except CaseError as error:
        raise _fail(error) from None
    for path in paths:
        console.print(f"report: {path}")


@app.command("demo")
def demo_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the results.")] = Path(
        "cryoplan-demo"
    ),
    overwrite: OverwriteOption = False,
) -> None:
    """Run the built-in liver phantom: 3 cm tumour beside a large vessel, three probes, 10-5-10.

    A results folder an earlier demo (or any cryoplan run) published whole is replaced
    without --overwrite; any other existing folder is refused."""
    from cryoplan.outputs import is_complete  # noqa: PLC0415

    try:
        replace = overwrite or is_complete(out)
        result, (report,) = _run(demo_case(), out, quiet=False, overwrite=replace, report=True)
    except CaseError as error:
        raise _fail(error) from None
    _print_summary(result, out)
    console.print(f"report: {report}")


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@app.command("serve")
def serve_command(
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The store (cases, jobs). Default: $CRYOPLAN_DATA, else ~/.local/share/cryoplan.",
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to bind.")] = 8000,
    workers: Annotated[
        int,
        typer.Option("--workers", min=1, help="Solver job processes (a report one runs beside)."),
    ] = 2,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="CRYOPLAN_TOKEN",
            help="Required of every request; needed to bind beyond loopback.",
        ),
    ] = None,
) -> None:
    """Serve the browser application at http://HOST:PORT/ (loopback unless told otherwise)."""
    import uvicorn  # noqa: PLC0415

    from cryoplan.server.app import create_app  # noqa: PLC0415
    from cryoplan.server.store import default_data_dir  # noqa: PLC0415

    if host not in LOOPBACK and not token:
        raise _fail(
            CaseError(
                "--host",
                "",
                f"binding to {host} needs --token (or "
                "CRYOPLAN_TOKEN): only loopback is served without one",
            )
        )
    folder = data or default_data_dir()
    try:
        application = create_app(folder, workers=workers, token=token)
    except OSError as error:
        raise _fail(
            CaseError(str(folder), "--data", f"a writable folder ({error.strerror})")
        ) from None
    console.print(f"cryoplan: serving http://{host}:{port}/ (data in {folder})")
    uvicorn.run(application, host=host, port=port, log_level="warning")


lesion_app = typer.Typer(help="Synthetic lesions in label maps.", no_args_is_help=True)
app.add_typer(lesion_app, name="lesion")


@lesion_app.command("add")
def lesion_add_command(
    labels: Annotated[Path, typer.Argument(help="Label map (NIfTI, NRRD, MHA).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Label map to write.")],
    centre_mm: Annotated[
        tuple[float, float, float], typer.Option("--centre", help="Centre, LPS mm.")
    ],
    diameter_mm: Annotated[float, typer.Option("--diameter", help="Sphere diameter, mm.")],
    label: Annotated[
        int | None, typer.Option("--label", help="Value for the lesion (default: next free).")
    ] = None,
) -> None:
    """Place a synthetic spherical lesion into a label map; a JSON sidecar says so."""
    import math  # noqa: PLC0415
    import os  # noqa: PLC0415
    import tempfile  # noqa: PLC0415

    from cryoplan.anatomy.images import read_labels, write_image  # noqa: PLC0415
    from cryoplan.anatomy.patient import add_lesion, lesion_mask  # noqa: PLC0415
    from cryoplan.case import Lesion  # noqa: PLC0415
    from cryoplan.outputs import check_output_dir  # noqa: PLC0415
    from cryoplan.simulation import file_sha256  # noqa: PLC0415

    sidecar = out.with_name(out.name.split(".")[0] + ".lesion.json")
    try:
        if not math.isfinite(diameter_mm) or diameter_mm <= 0:
            raise CaseError(str(labels), "--diameter", f"a positive diameter (got {diameter_mm})")
        if not all(math.isfinite(c) for c in centre_mm):
            raise CaseError(str(labels), "--centre", f"three finite coordinates (got {centre_mm})")
        if label is not None and not 1 <= label <= MAX_LABEL:
            raise CaseError(
                str(labels), "--label", f"a label from 1 to {MAX_LABEL} (0 is background)"
            )
        if out.resolve() == labels.resolve() or sidecar.resolve() == labels.resolve():
            raise CaseError(str(out), "--out", "a new file, not the input label map")
        source = read_labels(labels, "labels")
        low, high = source.grid.bounds_mm()
        extent_mm = float(max(high - low))
        if diameter_mm > extent_mm:
            raise CaseError(
                str(labels), "--diameter",
                f"a lesion that fits the label map ({diameter_mm:g} mm is wider than its "
                f"{extent_mm:.0f} mm extent)",
            )  # fmt: skip
        lesion = Lesion(centre_mm=centre_mm, diameter_mm=diameter_mm)
        if not lesion_mask(source.grid, lesion).any():
            raise CaseError(str(labels), "--centre", "a lesion inside the label map's volume")
        label = int(source.array.max()) + 1 if label is None else label
        if label > MAX_LABEL:
            raise CaseError(str(labels), "--label", f"a free label up to {MAX_LABEL}")
        result = add_lesion(source, lesion, label)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaseError(
                str(out), "--out", f"a folder that can be created ({exc.strerror})"
            ) from None
        check_output_dir(out.parent, overwrite=True)
        # both files written beside their final names, then renamed: never half of one
        with tempfile.TemporaryDirectory(prefix=".cryoplan-lesion.", dir=out.parent) as tmp:
            staged = Path(tmp) / out.name
            try:
                write_image(staged, result.array, result.grid)
            except RuntimeError as exc:
                raise CaseError(str(out), "--out", f"a writable image path ({exc})") from None
            doc = {
                "synthetic_lesion": True,
                "source_labels_sha256": file_sha256(labels),
                "label": label,
                "centre_lps_mm": list(centre_mm),
                "diameter_mm": diameter_mm,
                "note": "a synthetic lesion added by cryoplan lesion add; not from the patient",
            }
            (Path(tmp) / sidecar.name).write_text(json.dumps(doc, indent=2) + "\n", "utf-8")
            os.replace(Path(tmp) / sidecar.name, sidecar)
            os.replace(staged, out)
    except OSError as exc:
        raise _fail(CaseError(str(out), "--out", f"a writable place ({exc.strerror})")) from None
    except CaseError as error:
        raise _fail(error) from None
    console.print(f"wrote {out} (lesion label {label}) and {sidecar}")


_INTERRUPT_MESSAGE: list[str] = []  # what a command said of an interrupt, if it said it


def _interrupt_said(message: str) -> None:
    sys.stderr.write(f"cryoplan: {message}\n")
    _INTERRUPT_MESSAGE.append(message)


def main() -> None:
    """The console entry point: typer's, with an interrupt said in one line (exit 130; typer
    exits 130 without a word). The staging folder is removed as the interrupt unwinds."""
    interrupted = False

    def on_interrupt(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    try:
        app()
    except BaseException:
        # typer turns an interrupt into an exit; one that lands in an import or a library's
        # own handler may come out as another exception: either way, one line
        if interrupted:
            if not _INTERRUPT_MESSAGE:
                sys.stderr.write("cryoplan: interrupted; nothing written\n")
            raise SystemExit(130) from None
        raise
