"""The kernel modules' numba cache is dropped when a module they inline from changes."""

from __future__ import annotations

from pathlib import Path

from cryoplan.thermal.numba_cache import drop_stale_cache


def test_cache_dropped_only_when_a_dependency_changes(tmp_path: Path) -> None:
    module = tmp_path / "kernels.py"
    module.write_text("# kernels\n")
    dependency = tmp_path / "enthalpy.py"
    dependency.write_text("A = 1\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    index = cache / "kernels.advance-10.py311.nbi"
    other = cache / "enthalpy.relation-3.py311.nbi"  # another module's cache stays

    index.write_text("old")
    other.write_text("keep")
    assert drop_stale_cache(str(module), str(dependency))  # no record yet: dropped
    assert not index.exists()
    assert other.exists()

    index.write_text("new")
    assert not drop_stale_cache(str(module), str(dependency))  # unchanged: kept
    assert index.exists()

    dependency.write_text("A = 2\n")
    assert drop_stale_cache(str(module), str(dependency))  # changed: dropped
    assert not index.exists()
    assert other.exists()


def test_the_cache_numba_is_told_to_use_is_looked_after_too(tmp_path: Path, monkeypatch) -> None:
    """With NUMBA_CACHE_DIR set (workers sharing a cache), numba caches under it, mirroring
    the source's folder: a changed dependency drops the module's files there as well."""
    import numba  # noqa: PLC0415

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "shared"))
    source = tmp_path / "pkg"
    source.mkdir()
    module = source / "kernels.py"
    module.write_text("# kernels\n")
    dependency = source / "enthalpy.py"
    dependency.write_text("A = 1\n")
    drop_stale_cache(str(module), str(dependency))  # records the digest everywhere
    shared = list((tmp_path / "shared").rglob("kernels.numba-dependencies"))
    assert len(shared) == 1
    cached = shared[0].parent / "kernels.sweep-5.py311.nbi"
    cached.write_text("machine code of the old dependency")

    assert not drop_stale_cache(str(module), str(dependency))
    assert cached.exists()
    dependency.write_text("A = 2\n")
    assert drop_stale_cache(str(module), str(dependency))
    assert not cached.exists()
