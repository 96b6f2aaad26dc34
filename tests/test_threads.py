"""The solver's thread count and wait policy (`thermal.threads`), and the compiled entries'
specialisations (`thermal.jit`)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cryoplan.thermal import threads

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _fake_cgroup(root: Path, proc_cgroup: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "proc_cgroup").write_text(proc_cgroup)
    return root


def test_the_cgroup_quota_caps_the_threads_v2_and_v1(tmp_path, monkeypatch) -> None:
    real_read = Path.read_text

    def read(self: Path, *args, **kwargs) -> str:
        if str(self) == "/proc/self/cgroup":
            return real_read(tmp_path / "proc_cgroup")
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read)
    _fake_cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "150000 100000\n"})
    assert threads._cgroup_cpu_quota(tmp_path) == pytest.approx(1.5)
    _fake_cgroup(tmp_path, "0::/job\n", {"job/cpu.max": "max 100000\n"})
    assert threads._cgroup_cpu_quota(tmp_path) is None
    _fake_cgroup(
        tmp_path,
        "4:memory:/x\n3:cpu,cpuacct:/batch\n",
        {
            "cpu,cpuacct/batch/cpu.cfs_quota_us": "50000\n",
            "cpu,cpuacct/batch/cpu.cfs_period_us": "100000\n",
        },
    )
    assert threads._cgroup_cpu_quota(tmp_path) == pytest.approx(0.5)
    _fake_cgroup(
        tmp_path,
        "3:cpu,cpuacct:/batch\n",
        {
            "cpu,cpuacct/batch/cpu.cfs_quota_us": "-1\n",
            "cpu,cpuacct/batch/cpu.cfs_period_us": "100000\n",
        },
    )
    assert threads._cgroup_cpu_quota(tmp_path) is None


def test_available_cpus_follow_the_affinity_and_the_quota(monkeypatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: None)
    assert threads.available_cpus() == 4
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: 1.5)
    assert threads.available_cpus() == 2  # a part of a CPU still gets a thread
    monkeypatch.setattr(threads, "_cgroup_cpu_quota", lambda: 0.2)
    assert threads.available_cpus() == 1


def test_the_thread_setting_overrides_and_is_checked(monkeypatch) -> None:
    monkeypatch.setattr(threads, "available_cpus", lambda: 1)
    monkeypatch.delenv(threads.THREADS_VARIABLE, raising=False)
    assert threads.solver_threads() == 1
    monkeypatch.setenv(threads.THREADS_VARIABLE, "1")
    assert threads.solver_threads() == 1
    for bad in ("0", "-2", "two", ""):
        monkeypatch.setenv(threads.THREADS_VARIABLE, bad)
        with pytest.raises(ValueError, match=threads.THREADS_VARIABLE):
            threads.solver_threads()


def test_small_sweeps_run_on_one_thread() -> None:
    assert threads.threads_for(threads.SERIAL_BELOW_VOXELS - 1, 2) == 1
    assert threads.threads_for(threads.SERIAL_BELOW_VOXELS, 2) == 2
    assert threads.threads_for(10**9, 1) == 1


def _run_python(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=600,
        check=True,
    )
    return result.stdout


def test_threads_wait_passively_unless_the_user_says_otherwise() -> None:
    code = "import os, cryoplan.thermal.threads; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "passive"
    assert _run_python(code, OMP_WAIT_POLICY="active").strip() == "active"


def test_a_run_compiles_each_entry_once_with_its_declared_types() -> None:
    """A run (fresh interpreter) leaves one specialisation per compiled entry, the one its
    `entry` declares: a literal or a read-only array passed somewhere would add a second
    one, compiled on every cold start."""
    out = _run_python(
        """
        import os, cryoplan, numba
        from cryoplan.thermal.stepping import solver_entries
        from cryoplan.thermal import CpuMultirateBackend
        case = cryoplan.load_case(os.environ["EXAMPLE"])
        spacing = case.grid.model_copy(update={"spacing_mm": 4.0})
        cryoplan.simulate(case.model_copy(update={"grid": spacing}))
        for d in solver_entries(CpuMultirateBackend):
            args, _ = numba.core.sigutils.normalize_signature(d.entry.signature)
            print(d.entry.name, len(d.signatures), tuple(args) in d.overloads)
        """,
        EXAMPLE=str(EXAMPLES / "single-probe-gel.yaml"),
    )
    lines = [line.split() for line in out.strip().splitlines()]
    assert len(lines) >= 15
    for name, count, declared in lines:
        assert (count, declared) == ("1", "True"), name
