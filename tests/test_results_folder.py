"""Results folders are published whole: never half-written, never mixed with an earlier run,
never written over without --overwrite; an interrupt leaves the old folder or the new one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cryoplan.cli import app
from cryoplan.errors import CaseError
from cryoplan.outputs import (
    COMPLETE_MARKER,
    STAGING_PREFIX,
    check_complete,
    is_complete,
    results_folder,
)

runner = CliRunner()
# a small, fast case: one probe in gel, one 2-min freeze on a 2 mm grid
SMALL = {
    "name": "small",
    "domain": {"box": {"size_mm": [40, 40, 50], "tissue": "gel"}},
    "grid": {"spacing_mm": 2.0},
    "probes": [{"model": "argon-17g", "tip_mm": [0, 0, -11], "entry_mm": [0, 0, 60]}],
    "protocol": [{"phase": "freeze", "duration_min": 2}],
}
# long enough to be interrupted while solving: 60 min on a 1 mm grid
LONG = SMALL | {"grid": {"spacing_mm": 1.0}, "protocol": [{"phase": "freeze", "duration_min": 60}]}


def case_file(folder: Path, data: dict, name: str = "case.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(data), "utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a folder and its bytes (what "unchanged" is checked against)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, result.output
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_published_folder_is_whole_and_marked(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["simulate", str(case_file(tmp_path, SMALL)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert is_complete(out)
    marker = json.loads((out / COMPLETE_MARKER).read_text("utf-8"))
    assert {"summary.json", "tmin.nii.gz", "sensors.csv"} <= set(marker["files"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
    # a file the marker names, removed: the report refuses the folder in one line
    (out / "tmin.nii.gz").unlink()
    line = one_error_line(runner.invoke(app, ["report", str(out)]))
    assert str(out) in line
    assert COMPLETE_MARKER in line
    assert not (out / "report.html").exists()


def test_an_existing_folder_is_refused_and_overwrite_replaces_it_whole(tmp_path: Path) -> None:
    case = case_file(tmp_path, SMALL)
    out = tmp_path / "run"
    assert runner.invoke(app, ["simulate", str(case), "--out", str(out)]).exit_code == 0
    (out / "notes.txt").write_text("the user's own file", "utf-8")
    before = snapshot(out)
    line = one_error_line(runner.invoke(app, ["simulate", str(case), "--out", str(out)]))
    assert "--out" in line
    assert "--overwrite" in line
    assert snapshot(out) == before  # not touched
    again = runner.invoke(app, ["simulate", str(case), "--out", str(out), "--overwrite"])
    assert again.exit_code == 0, again.output
    assert not (out / "notes.txt").exists()  # replaced whole, not merged
    assert is_complete(out)
    # reruns are byte-identical apart from timings
    fresh, old = json.loads((out / "summary.json").read_text()), json.loads(before["summary.json"])
    fresh.pop("timing"), old.pop("timing")
    assert fresh == old


@pytest.mark.parametrize("out", ["", ".", "./"])
def test_the_current_folder_is_refused(tmp_path: Path, out: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    case = case_file(tmp_path, SMALL)
    before = snapshot(tmp_path)
    line = one_error_line(runner.invoke(app, ["simulate", str(case), "--out", out]))
    assert "--out" in line
    assert snapshot(tmp_path) == before


def test_a_failure_while_writing_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with results_folder(out) as staging:
        (staging / "summary.json").write_text("{}", "utf-8")
    before = snapshot(out)

    def fail_half_way() -> None:
        with results_folder(out, overwrite=True) as staging:
            (staging / "summary.json").write_text('{"new": true}', "utf-8")
            raise RuntimeError("a failure half-way")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_full_disk_is_one_line_on_out(tmp_path: Path) -> None:
    out = tmp_path / "run"

    def fill_the_disk() -> None:
        with results_folder(out) as staging:
            (staging / "x").write_text("", "utf-8")
            raise OSError(28, "No space left on device")

    with pytest.raises(CaseError) as error:
        fill_the_disk()
    message = str(error.value)
    assert message.startswith(f"{out}: --out: ")
    assert "No space left on device" in message
    assert "\n" not in message
    assert not out.exists()


def test_staging_left_by_a_killed_run_is_removed_by_the_next(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    leftover = tmp_path / f"{STAGING_PREFIX}{int(dead.stdout)}.abc123"
    leftover.mkdir()
    (leftover / "summary.json").write_text("{}", "utf-8")
    mine = tmp_path / f"{STAGING_PREFIX}{os.getpid()}.live"  # a live run's: kept
    mine.mkdir()
    with results_folder(tmp_path / "run") as staging:
        (staging / "summary.json").write_text("{}", "utf-8")
    assert not leftover.exists()
    assert mine.exists()
    check_complete(tmp_path / "run")


def _cryoplan(*args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from cryoplan.cli import main; main()", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_until_solving(process: subprocess.Popen, seconds: float = 6.0) -> None:
    """Long enough for the case to load and the solver to start (no output marks it), or
    until the process ends."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.25)


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_run_leaves_the_old_folder_whole(tmp_path: Path, how) -> None:
    out = tmp_path / "run"
    with results_folder(out) as staging:  # an earlier result
        (staging / "summary.json").write_text('{"earlier": true}', "utf-8")
    before = snapshot(out)
    case = case_file(tmp_path, LONG)
    process = _cryoplan("simulate", str(case), "--out", str(out), "--overwrite", cwd=tmp_path)
    _wait_until_solving(process)
    assert process.poll() is None, process.communicate()
    process.send_signal(how)
    _, stderr = process.communicate(timeout=60)
    assert snapshot(out) == before
    if how == signal.SIGINT:
        assert process.returncode == 130
        assert stderr.strip().splitlines() == ["cryoplan: interrupted; nothing written"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["case.yaml", "run"]


def _corrupt_summary(out: Path) -> None:
    (out / "summary.json").write_text("{}", "utf-8")


def _empty_sensors(out: Path) -> None:
    (out / "sensors.csv").write_text("", "utf-8")


def _words_in_sensors(out: Path) -> None:
    (out / "sensors.csv").write_text("time_s,t\n0,warm\n", "utf-8")


def _truncated_tmin(out: Path) -> None:
    data = (out / "tmin.nii.gz").read_bytes()
    (out / "tmin.nii.gz").write_bytes(data[: len(data) // 2])


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("published")
    out = folder / "run"
    case = case_file(folder, SMALL)
    assert runner.invoke(app, ["simulate", str(case), "--out", str(out)]).exit_code == 0
    return out


@pytest.mark.parametrize(
    ("damage", "names"),
    [
        (_corrupt_summary, "summary.json"),
        (_empty_sensors, "sensors.csv"),
        (_words_in_sensors, "sensors.csv"),
        (_truncated_tmin, "tmin.nii.gz"),
    ],
    ids=["summary {}", "empty sensors.csv", "words in sensors.csv", "truncated tmin"],
)
def test_report_on_damaged_files_is_one_line(published: Path, tmp_path: Path, damage, names):
    """Damaged after publishing (the marker still vouches for the files): the reader says
    which file, in one line, and writes no report."""
    out = tmp_path / "copy"
    shutil.copytree(published, out)
    damage(out)
    line = one_error_line(runner.invoke(app, ["report", str(out)]))
    assert names in line
    assert not (out / "report.html").exists()


KILLED_WHILE_STAGING = """
import os, signal, sys
from cryoplan.outputs import results_folder
with results_folder(sys.argv[1], overwrite=True) as staging:
    (staging / "summary.json").write_text('{"new": true}', "utf-8")
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_sigkill_while_staging_leaves_the_old_folder_and_the_next_run_cleans(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    with results_folder(out) as staging:
        (staging / "summary.json").write_text('{"earlier": true}', "utf-8")
    before = snapshot(out)
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_STAGING, str(out)], check=False)
    assert killed.returncode == -signal.SIGKILL
    assert snapshot(out) == before
    left = [p for p in tmp_path.iterdir() if p.name.startswith(STAGING_PREFIX)]
    assert len(left) == 1  # the killed run's staging, until the next run beside it
    with results_folder(tmp_path / "other") as staging:
        (staging / "summary.json").write_text("{}", "utf-8")
    assert not left[0].exists()
    assert snapshot(out) == before


def test_an_interrupt_while_staging_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with results_folder(out) as staging:
        (staging / "summary.json").write_text('{"earlier": true}', "utf-8")
    before = snapshot(out)

    def interrupted() -> None:
        with results_folder(out, overwrite=True) as staging:
            (staging / "summary.json").write_text('{"new": true}', "utf-8")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_no_output_byte_names_the_input_path(tmp_path: Path) -> None:
    """Input paths often carry a patient's name or ID: none is written (digests instead)."""
    folder = tmp_path / "Doe_Jane_PID12345"
    folder.mkdir()
    case = case_file(folder, SMALL)
    out = tmp_path / "run"
    result = runner.invoke(app, ["simulate", str(case), "--out", str(out), "--report"])
    assert result.exit_code == 0, result.output
    for path in (p for p in out.rglob("*") if p.is_file()):
        assert b"Doe_Jane" not in path.read_bytes(), path.name


def test_a_mount_point_is_published_in_place(tmp_path: Path, monkeypatch) -> None:
    """--out a mount point (rename across filesystems fails with EXDEV): staged inside it,
    the old files replaced and the marker moved last."""
    out = tmp_path / "mnt"
    out.mkdir()
    (out / "old.txt").write_text("earlier", "utf-8")
    monkeypatch.setattr("cryoplan.outputs.os.path.ismount", lambda p: Path(p) == out)
    with results_folder(out, overwrite=True) as staging:
        assert staging.parent == out
        (staging / "summary.json").write_text("{}", "utf-8")
    assert sorted(p.name for p in out.iterdir()) == [COMPLETE_MARKER, "summary.json"]
    check_complete(out)


def test_a_dangling_link_or_a_name_too_long_is_one_line(tmp_path: Path) -> None:
    case = case_file(tmp_path, SMALL)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    line = one_error_line(runner.invoke(app, ["simulate", str(case), "--out", str(link)]))
    assert "dangling" in line
    long = tmp_path / ("x" * 250)
    line = one_error_line(runner.invoke(app, ["simulate", str(case), "--out", str(long)]))
    assert "folder name of at most" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.yaml", "link"]


KILLED_WHILE_PUBLISHING = """
import os, signal, sys
import cryoplan.outputs as outputs
if sys.argv[2] == "no-exchange":
    outputs._exchange = lambda a, b: False  # the two-rename path of systems without it
real_replace = outputs.Path.replace
def replace_then_die(self, target):
    result = real_replace(self, target)
    if sys.argv[2] == "no-exchange" or ".cryoplan-replaced." in str(target):
        os.kill(os.getpid(), signal.SIGKILL)  # between the two renames
    return result
outputs.Path.replace = replace_then_die
rmtree = outputs.shutil.rmtree
def die_before_cleaning(path, *args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)  # after the exchange, before the old is removed
if sys.argv[2] == "exchange":
    outputs.shutil.rmtree = die_before_cleaning
with outputs.results_folder(sys.argv[1], overwrite=True) as staging:
    (staging / "summary.json").write_text('{"new": true}', "utf-8")
"""


@pytest.mark.parametrize("path", ["exchange", "no-exchange"])
def test_sigkill_while_publishing_leaves_the_old_folder_or_the_new_one(
    tmp_path: Path, path: str
) -> None:
    out = tmp_path / "run"
    with results_folder(out) as staging:
        (staging / "summary.json").write_text('{"earlier": true}', "utf-8")
    before = snapshot(out)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_WHILE_PUBLISHING, str(out), path], check=False
    )
    assert killed.returncode == -signal.SIGKILL
    with results_folder(tmp_path / "other") as staging:  # the next run beside it
        (staging / "summary.json").write_text("{}", "utf-8")
    after = snapshot(out)
    if path == "exchange":  # killed after the atomic swap: the new folder, whole
        assert after["summary.json"] == b'{"new": true}'
    else:  # killed between the two renames: the old folder, put back by the next run
        assert after == before
    check_complete(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "run"]


def test_a_read_only_filesystem_is_one_line_on_out(tmp_path: Path, monkeypatch) -> None:
    """(The tests run as root, which writes through permissions: the filesystem's refusal is
    stood in for.)"""

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("cryoplan.outputs.tempfile.mkdtemp", read_only)
    case = case_file(tmp_path, SMALL)
    out = tmp_path / "run"
    line = one_error_line(runner.invoke(app, ["simulate", str(case), "--out", str(out)]))
    assert line.startswith(f"cryoplan: error: {out}: --out: ")
    assert "Read-only file system" in line
    assert not out.exists()


def test_summaries_are_standard_json() -> None:
    """A measure with nothing to measure (a margin with no lethal zone: −inf) is null, so that
    every JSON reader, a browser's included, accepts the file."""
    from cryoplan.outputs import json_text  # noqa: PLC0415

    text = json_text(
        {"margin_mm": float("-inf"), "values": [float("nan"), 1.5, (2.0, float("inf"))]}
    )
    assert json.loads(text) == {"margin_mm": None, "values": [None, 1.5, [2.0, None]]}
    assert "Infinity" not in text
    assert "NaN" not in text
