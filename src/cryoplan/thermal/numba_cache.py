"""Keep numba's on-disk cache honest about the modules a kernel module inlines.

numba re-compiles a cached function when the file that defines it changes, not when a
function it inlines from another file does (`enthalpy.py`'s scalar relations, the column
numbers of `materials.py`): after such an edit the old machine code would be loaded and run
silently (session 4 met it: a fixed division by zero still raised from the cache). Each
kernel module therefore calls `drop_stale_cache(__file__, dependencies…)` on import, which
deletes its cache files when the dependencies' contents changed since they were written.

Only numba's default in-tree cache (`__pycache__` beside the source) is looked after; with
NUMBA_CACHE_DIR set, clear that directory by hand after editing a dependency.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def drop_stale_cache(module_file: str, *dependency_files: str) -> bool:
    """Delete module_file's numba cache (…/__pycache__/<stem>.*.nbi, .nbc) if the digest of
    the dependency files differs from the one recorded beside it; record the new digest.
    Returns whether anything was deleted."""
    module = Path(module_file)
    cache_dir = module.parent / "__pycache__"
    digest = hashlib.sha256()
    for name in dependency_files:
        digest.update(Path(name).read_bytes())
    stamp = cache_dir / f"{module.stem}.numba-dependencies"
    wanted = digest.hexdigest()
    try:
        if stamp.read_text(encoding="utf-8") == wanted:
            return False
    except OSError:
        pass  # no stamp yet: the cache (if any) predates this check
    dropped = False
    for pattern in (f"{module.stem}.*.nbi", f"{module.stem}.*.nbc"):
        for path in cache_dir.glob(pattern):
            path.unlink(missing_ok=True)
            dropped = True
    try:
        cache_dir.mkdir(exist_ok=True)
        stamp.write_text(wanted, encoding="utf-8")
    except OSError:
        pass  # a read-only install: numba then caches elsewhere or not at all
    return dropped
