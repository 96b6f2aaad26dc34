"""How the solver's numba functions are compiled, and compiling them before a run.

Three kinds of function, each compiled the cheapest way that keeps the kernels fast:

- `inline`: tiny scalar relations (H(T), Φ(T), a region test). Inlined into the caller's
  numba IR: for a few lines that is cheaper to compile than a call (measured: 30 one-line
  helpers 0.55 s inlined, 0.98 s as calls without Python wrappers, 2.1 s with them).
- `helper`: the larger pieces of a kernel (a slab of a sweep, a run of one row). Compiled
  once each and called; LLVM inlines or calls them as it sees fit. They are only called
  from compiled code, so no Python or C wrapper is built for them. Inlining these into a
  parallel kernel's IR is what made a kernel cost 50 s to compile: numba's parallel
  analysis grows with the body of the parallel loop, so each parallel kernel keeps only a
  call per slab in its loop.
- `entry`: what Python calls. Each is declared with its argument types, so that
  `compile_entries` can compile (or load from numba's on-disk cache) exactly the
  specialisations a run needs before the run starts, report progress while it does, and
  keep that time out of the simulation's wall time. A call with other types still works
  (numba compiles another specialisation), but the solver's own calls use these.

numba's cache lives beside the source (`__pycache__`) or, where that is not writable, in
numba's per-user cache directory; `numba_cache.drop_stale_cache` keeps it honest about the
files a module inlines from. Each cached function is written by an atomic rename, so
processes compiling at once (a server's workers, Dask workers) each find either a whole
entry or none, and compile the missing one themselves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numba
from numba.core.cpu_options import ParallelOptions

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
helper = numba.njit(cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# NumPy's error model: no check for a division by zero, which would keep a loop that
# divides from being vectorised (the divisors are capacities and H_l > 0)
helper_numpy_errors = numba.njit(
    cache=True, no_cpython_wrapper=True, no_cfunc_wrapper=True, error_model="numpy"
)
# a small parallel piece of a kernel (the probes' exchange), also called by tests
parallel_helper = numba.njit(cache=True, parallel=PRANGE_ONLY)


@dataclass(frozen=True)
class Entry:
    """A function Python calls, with the argument types the solver calls it with."""

    dispatcher: numba.core.registry.CPUDispatcher
    signature: str

    @property
    def name(self) -> str:
        return f"{self.dispatcher.py_func.__module__}.{self.dispatcher.py_func.__name__}"

    def compile(self) -> bool:
        """Compile or load the declared specialisation; whether it had to be compiled."""
        misses = sum(self.dispatcher.stats.cache_misses.values())
        self.dispatcher.compile(self.signature)
        return sum(self.dispatcher.stats.cache_misses.values()) > misses


def entry(signature: str, **options: object) -> Callable[[Callable], Entry]:
    """Declare a function Python calls: `@entry("(f8[:, :, ::1], i8)", parallel=True)`.

    Returns the numba dispatcher (called as usual) with `.entry` holding its `Entry`."""

    if options.get("parallel") is True:
        options["parallel"] = PRANGE_ONLY

    def decorate(function: Callable) -> numba.core.registry.CPUDispatcher:
        dispatcher = numba.njit(cache=True, **options)(function)
        dispatcher.entry = Entry(dispatcher, signature)
        return dispatcher

    return decorate  # type: ignore[return-value]


CompileProgress = Callable[[int, int, str, bool], None]  # (done, total, name, compiled)


@dataclass(frozen=True)
class CompileReport:
    """What `compile_entries` did: seconds taken, and how many it compiled (not loaded)."""

    seconds: float
    compiled: int
    loaded: int


def compile_entries(
    dispatchers: Iterable[numba.core.registry.CPUDispatcher],
    progress: CompileProgress | None = None,
) -> CompileReport:
    """Compile, or load from the cache, each dispatcher's declared specialisation, calling
    progress(done, total, name, compiled) after each. Already loaded ones cost nothing."""
    entries = [d.entry for d in dict.fromkeys(dispatchers)]
    started = time.perf_counter()
    compiled = 0
    for done, e in enumerate(entries, start=1):
        was_compiled = e.compile()
        compiled += was_compiled
        if progress is not None:
            progress(done, len(entries), e.name, was_compiled)
    return CompileReport(time.perf_counter() - started, compiled, len(entries) - compiled)
