"""How the solver's numba functions are compiled, and compiling them before a run.

Compile time and speed pull against each other in numba: a kernel with all its pieces
inlined into its IR is fast but slow to compile (numba's analysis of a parallel loop grows
with the loop's body: the advance kernel once took 50 s to compile), and a kernel that calls
separately compiled pieces compiles fast but loses speed at each call. The kinds below keep
both, as measured on the 100³ sweeps (A/B against the inlined kernels in one process):

- `inline`: tiny scalar relations (H(T), Φ(T), a region test), inlined into the caller's
  numba IR: for a few lines that is cheaper to compile than a call (30 one-line helpers:
  0.55 s inlined, 0.98 s as calls without Python wrappers, 2.1 s with them).
- `helper`: the pieces of a sweep (one slab, one run of a row), compiled once each and
  called. Two flags make a call as fast as the inlined code (the advance at 1.0–1.2× the
  inlined kernel's speed, the refresh at 0.95×; 0.6× without them): no reference counting
  (`_nrt=False`: each array view made in a callee otherwise costs two atomic operations
  the caller cannot prune; helpers therefore allocate nothing, their callers hand them
  scratch rows), and `noalias` (their array arguments never overlap where one is written,
  as numba assumes of a parallel loop's body), so that LLVM vectorises their loops without
  run-time overlap checks. No Python or C wrapper is built: only compiled code calls them.
- `voxel_helper`: a helper called once per voxel (a face flux, a stability rate), also
  inlined by LLVM (`forceinline`), which costs nothing in numba's compile: as a call it
  slowed the advance by 20 %.
- `entry`: what Python calls, declared with its argument types, so that `compile_entries`
  can compile (or load from numba's on-disk cache) exactly the specialisations a run needs
  before the run starts, report progress while it does, and keep that time out of the
  simulation's wall time. Each parallel loop of an entry only calls a helper per slab.

numba's cache lives beside the source (`__pycache__`) or, where that is not writable, in
numba's per-user cache directory; `numba_cache.drop_stale_cache` keeps it honest about the
files a module inlines from (this one included: its options shape the machine code). Each
cached function is written by an atomic rename, so processes compiling at once (a server's
workers, Dask workers) each find a whole entry or none, and compile the missing one
themselves.

`noalias` is a flag of numba's compiler that its decorators do not expose; it is mapped
here (numba is pinned in pyproject.toml). Where numba lacks it, helpers compile without it.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numba
from numba.core.cpu import CPUTargetOptions
from numba.core.cpu_options import ParallelOptions
from numba.core.options import TargetOptions

_HAS_NOALIAS = hasattr(numba.core.compiler.Flags, "noalias")
if _HAS_NOALIAS and not hasattr(CPUTargetOptions, "noalias"):
    CPUTargetOptions.noalias = TargetOptions.Mapping("noalias")
_NOALIAS = {"noalias": True} if _HAS_NOALIAS else {}

# Only the explicit `numba.prange` loops run in parallel: with numba's other conversions on,
# an allocation such as np.zeros in a parallel kernel becomes a parallel loop of its own (a
# wake-up of every thread), and adjacent loops may be fused (a sweep's refresh must follow
# the whole advance, never slab by slab). An instance, not a dict: numba reads a dict once.
PRANGE_ONLY = ParallelOptions(
    {
        "comprehension": False, "reduction": False, "inplace_binop": False, "setitem": False,
        "numpy": False, "stencil": False, "fusion": False, "prange": True,
    }
)  # fmt: skip

inline = numba.njit(inline="always", cache=True)
_HELPER = {"cache": True, "no_cpython_wrapper": True, "no_cfunc_wrapper": True, "_nrt": False}
helper = numba.njit(**_HELPER, **_NOALIAS)
voxel_helper = numba.njit(**_HELPER, **_NOALIAS, forceinline=True)
# NumPy's error model: no check for a division by zero, which would keep a loop that
# divides from being vectorised (its divisors are capacities and H_l > 0)
helper_numpy_errors = numba.njit(**_HELPER, **_NOALIAS, error_model="numpy")


@dataclass(frozen=True)
class Entry:
    """A function Python calls, with the argument types the solver calls it with."""

    dispatcher: numba.core.registry.CPUDispatcher
    signature: str
    cost_s: float = 0.5  # rough compile time, to share the compiling between two processes

    @property
    def name(self) -> str:
        """The dispatcher's import path, e.g. 'cryoplan.thermal.kernels.sweep'."""
        return f"{self.dispatcher.py_func.__module__}.{self.dispatcher.py_func.__name__}"

    def loaded(self) -> bool:
        """Is the declared specialisation in memory already?"""
        args, _ = numba.core.sigutils.normalize_signature(self.signature)
        return tuple(args) in self.dispatcher.overloads

    def cached(self) -> bool:
        """Is it in memory or in numba's on-disk cache (fresh for the current source)?
        Reads the cache's index only (numba's own layout; any surprise counts as no)."""
        if self.loaded():
            return True
        try:
            cache = self.dispatcher._cache
            key = cache._index_key(self.signature, self.dispatcher.targetctx.codegen())
            return key in cache._cache_file._load_index()
        except Exception:
            return False

    def compile(self) -> bool:
        """Compile or load the declared specialisation; whether it had to be compiled."""
        misses = sum(self.dispatcher.stats.cache_misses.values())
        self.dispatcher.compile(self.signature)
        return sum(self.dispatcher.stats.cache_misses.values()) > misses


def entry(
    signature: str, cost_s: float = 0.5, **options: object
) -> Callable[[Callable], numba.core.registry.CPUDispatcher]:
    """Declare a function Python calls: `@entry("(f8[:, :, ::1], i8)", parallel=True)`.

    `cost_s` is its rough compile time [s] with what it calls (measured on the 2-core
    machine; it only decides which process compiles what). Returns the numba dispatcher
    (called as usual) with `.entry` holding its `Entry`."""

    if options.get("parallel") is True:
        options["parallel"] = PRANGE_ONLY

    def decorate(function: Callable) -> numba.core.registry.CPUDispatcher:
        # nogil: runs in several Python threads at once proceed together (a server's jobs)
        dispatcher = numba.njit(cache=True, nogil=True, **options)(function)
        dispatcher.entry = Entry(dispatcher, signature, cost_s)
        return dispatcher

    return decorate  # type: ignore[return-value]


CompileProgress = Callable[[int, int, str], None]  # (done, total, name of the one done)
# a second Python process's start: importing numba and the kernels, numba's first compile
HELPER_START_S = 2.0


@dataclass(frozen=True)
class CompileReport:
    """What `compile_entries` did: seconds taken, entries compiled (not found in the cache),
    entries loaded, and whether a second process compiled some of them."""

    seconds: float
    compiled: int
    loaded: int
    helper_process: bool = False


def missing_entries(dispatchers: Iterable[numba.core.registry.CPUDispatcher]) -> list[Entry]:
    """The entries of these dispatchers that are neither loaded nor in the disk cache."""
    return [d.entry for d in dict.fromkeys(dispatchers) if not d.entry.cached()]


def compile_entries(
    dispatchers: Iterable[numba.core.registry.CPUDispatcher],
    progress: CompileProgress | None = None,
    processes: int = 1,
) -> CompileReport:
    """Compile, or load from the cache, each dispatcher's declared specialisation, calling
    progress(done, total, name) after each. Loaded ones cost nothing.

    With processes = 2 and more than one entry to compile, a second Python process compiles
    the later entries into numba's cache while this one compiles the first (compiling is
    single-threaded: two cores halve the wait); this process then loads them. Should the
    second process fail, this one compiles what is left itself.
    """
    entries = [d.entry for d in dict.fromkeys(dispatchers)]
    started = time.perf_counter()
    missing = [e for e in entries if not e.cached()]
    here, delegated, helper = entries, [], None
    if processes > 1 and len(missing) > 1:
        # two shares of about equal compile time (longest first, each to the lighter share;
        # the second process starts HELPER_START_S late); this one takes the first share
        shares: tuple[list[Entry], list[Entry]] = ([], [])
        load = [0.0, HELPER_START_S]
        for e in sorted(missing, key=lambda e: -e.cost_s):
            lighter = 0 if load[0] <= load[1] else 1
            shares[lighter].append(e)
            load[lighter] += e.cost_s
        delegated = shares[1]
        here = [e for e in entries if e not in delegated]
        helper = subprocess.Popen(
            [sys.executable, "-m", "cryoplan.thermal.jit", *(e.name for e in delegated)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    done = 0
    for group in (here, delegated):
        if group is delegated and helper is not None:
            helper.wait()  # they are in the cache now (else they compile here)
        for e in group:
            e.compile()
            done += 1
            if progress is not None:
                progress(done, len(entries), e.name)
    return CompileReport(
        time.perf_counter() - started, len(missing), len(entries) - len(missing), helper is not None
    )


def _compile_named(names: list[str]) -> None:
    """Compile the entries named by import path (the second process of `compile_entries`)."""
    for name in names:
        module, _, attribute = name.rpartition(".")
        getattr(importlib.import_module(module), attribute).entry.compile()


if __name__ == "__main__":
    _compile_named(sys.argv[1:])
