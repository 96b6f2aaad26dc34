"""Keep numba's on-disk cache honest about the modules a kernel module inlines.

numba re-compiles a cached function when the file that defines it changes, not when a
function it inlines from another file does (`enthalpy.py`'s scalar relations, the column
numbers of `materials.py`): after such an edit the old machine code would be loaded and run
silently (a fixed division by zero once still raised from the cache). Each
kernel module therefore calls `drop_stale_cache(__file__, dependencies…)` on import, which
deletes its cache files when the dependencies' contents changed since they were written.

The cache is looked after where numba keeps it: beside the source (`__pycache__`) and in
the directory numba's own locators choose for the file (NUMBA_CACHE_DIR, shared by a
server's or a cluster's workers; numba's per-user directory when the installed package is
not writable), so that an upgrade which changes only an inlined module is seen everywhere.
The digest is written by an atomic rename: processes starting at once read a whole one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def _cache_dirs(module: Path) -> list[Path]:
    """Where numba caches the functions of `module`: its `__pycache__` and the directory of
    the first of numba's cache locators that accepts the file (numba's own order)."""
    from numba.core.caching import CacheImpl  # noqa: PLC0415  (numba is pinned; a test covers this)

    def placeholder() -> None:  # a locator wants a function; only its file matters
        pass

    dirs = [module.parent / "__pycache__"]
    for locator_class in CacheImpl._locator_classes:
        locator = locator_class.from_function(placeholder, str(module))
        if locator is not None:
            dirs.append(Path(locator.get_cache_path()))
            break
    return list(dict.fromkeys(d.resolve() for d in dirs))


def drop_stale_cache(module_file: str, *dependency_files: str) -> bool:
    """Delete module_file's numba cache (<stem>.*.nbi, .nbc in each of its cache
    directories) where the digest of the dependency files differs from the one recorded
    beside it; record the new digest. Returns whether anything was deleted."""
    module = Path(module_file)
    digest = hashlib.sha256()
    for name in dependency_files:
        digest.update(Path(name).read_bytes())
    wanted = digest.hexdigest()
    dropped = False
    for cache_dir in _cache_dirs(module):
        dropped |= _drop_if_stale(cache_dir, module.stem, wanted)
    return dropped


def _drop_if_stale(cache_dir: Path, stem: str, wanted: str) -> bool:
    stamp = cache_dir / f"{stem}.numba-dependencies"
    try:
        if stamp.read_text(encoding="utf-8") == wanted:
            return False
    except OSError:
        pass  # no stamp yet: the cache (if any) predates this check
    dropped = False
    for pattern in (f"{stem}.*.nbi", f"{stem}.*.nbc"):
        for path in cache_dir.glob(pattern):
            path.unlink(missing_ok=True)
            dropped = True
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # written whole or not at all: another process may be reading it at this moment
        partial = stamp.with_name(f"{stamp.name}.{os.getpid()}.tmp")
        partial.write_text(wanted, encoding="utf-8")
        partial.replace(stamp)
    except OSError:
        pass  # a read-only install: numba then caches elsewhere or not at all
    return dropped
