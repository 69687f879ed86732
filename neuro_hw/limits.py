"""Limits on the size of what neuro-hw reads, builds and records -- the one place they are defined.

Every limit is checked *before* the memory is allocated or the data is read, and the error names the limit
(``neuro_hw.limits.MAX_POPULATION`` ...) so a user who really needs more knows what to change.  The table with
the reasons is in ``docs/limits.md``.  The numbers are chosen so that one array within a limit fits in about
1 GiB as float64 and a run within the recording limit in about 2 GiB; they are far above the circuits of this
project (the largest seed circuit has 1,100 neurons and 10^5 synapses) and below what makes a 2-core, 8-GB
machine swap.

Environment overrides (read at import): ``NEURO_HW_READ_TIMEOUT`` (seconds, float) for
:data:`READ_TIMEOUT_S`.
"""

from __future__ import annotations

import math
import os

import numpy as np

# -- circuits -------------------------------------------------------------------------------------------------------
#: Largest number of values of one node's input or output (a population, an Input, ...): 2^24 = 16,777,216.
MAX_POPULATION = 2**24
#: Largest number of elements of one array: a parameter, a weight matrix (n_post * n_pre), a dataset of a file or a
#: stimulus: 2^27 = 134,217,728 (1 GiB as float64).
MAX_ARRAY_ELEMENTS = 2**27
#: Largest number of nodes of a circuit (after flattening subgraphs).
MAX_NODES = 100_000
#: Largest number of edges of a circuit, and of rows of an edge list in a file.
MAX_EDGES = 1_000_000
#: Most values (elements of all datasets together) one circuit file may hold: 2^28 (2 GiB as float64).
MAX_FILE_VALUES = 2**28
#: Deepest nesting of subgraphs (and of HDF5 groups in a file).
MAX_DEPTH = 32
#: Largest magnitude of a finite circuit parameter (weights, biases, thresholds, r, trace impulses, rule
#: coefficients, w_bounds other than +-inf): 10^15.  Larger values overflow float64 sums and rule products to
#: inf/NaN within a few steps.
MAX_ABS_VALUE = 1e15
#: Longest learning epoch, in steps.
MAX_T_EPOCH = 2**31 - 1
#: Longest delay of a ``Delay`` node, in steps (the delay line holds ``delay + 1`` rows of the node's size).
MAX_DELAY_STEPS = 10**6

# -- rules ----------------------------------------------------------------------------------------------------------
#: Longest rule string, in characters.
MAX_RULE_LENGTH = 10_000
#: Most products (terms) in one rule.
MAX_RULE_TERMS = 256
#: Most factors in one product.
MAX_RULE_FACTORS = 32

# -- runs and results -----------------------------------------------------------------------------------------------
#: Most steps of one run.
MAX_STEPS = 10**9
#: Most values one run may record, or one Result file may hold: steps x batch x (recorded spike and state widths)
#: plus the sampled weights: 2^28 = 268,435,456 (2 GiB as float64).
MAX_RECORDED_VALUES = 2**28
#: Largest batch of trials.
MAX_BATCH = 2**20
#: Seeds are unsigned 32-bit integers (what numpy's and Lava's generators take without wrapping).
MAX_SEED = 2**32 - 1

# -- files ----------------------------------------------------------------------------------------------------------
#: Largest JSON attribute (the plasticity extension, a Result's metadata), in bytes: 64 MiB.
MAX_JSON_BYTES = 64 * 2**20
#: Most objects (groups + datasets) walked in one file.
MAX_FILE_OBJECTS = 1_000_000
#: Wall-clock time the guarded reader gives the HDF5 library to read a file before declaring it corrupt: this
#: many seconds plus :data:`READ_SECONDS_PER_MB` per MB of file (a corrupt heap can make HDF5 loop forever).
READ_TIMEOUT_S = float(os.environ.get("NEURO_HW_READ_TIMEOUT", "30"))
#: Extra read time per MB of file, in seconds (gzip-compressed datasets decode at >= 50 MB/s on a slow core).
READ_SECONDS_PER_MB = 0.05
#: Address space the guarded reader may add to the reading process, in bytes: 2 x the largest file content
#: (MAX_RECORDED_VALUES float64 values) plus 1 GiB for the HDF5 library's caches.
READ_MEMORY_BYTES = 2 * 8 * MAX_RECORDED_VALUES + 2**30


def limit_name(name: str) -> str:
    """``"MAX_POPULATION"`` -> ``"neuro_hw.limits.MAX_POPULATION = 16,777,216, docs/limits.md"``, for errors."""
    value = globals()[name]
    shown = f"{value:,}" if isinstance(value, int) else f"{value:g}"
    return f"neuro_hw.limits.{name} = {shown}, docs/limits.md"


def element_count(shape) -> int:
    """Number of elements of ``shape``, as an exact Python int (``np.prod`` wraps around in int64: a
    ``2^32 x 2^32`` shape gives 0).  Raises ``ValueError`` for a negative or non-integer dimension."""
    count = 1
    for dim in shape:
        if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, float, np.integer, np.floating)):
            raise ValueError(f"dimension {dim!r} is not a non-negative integer")
        if not math.isfinite(dim) or int(dim) != dim or dim < 0:
            raise ValueError(f"dimension {dim!r} is not a non-negative integer")
        count *= int(dim)
    return count


# -- argument checks (one wording for every entry point) ------------------------------------------------------------
def check_steps(steps, field: str = "steps") -> int:
    """``steps`` as an int in ``1..MAX_STEPS``; booleans, floats and strings are refused, not coerced."""
    from neuro_hw.errors import InputError

    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InputError(f"steps must be a positive integer, got {steps!r}", field=field)
    if steps > MAX_STEPS:
        raise InputError(f"steps = {int(steps):,} is more than {limit_name('MAX_STEPS')}", field=field)
    return int(steps)


def check_dt(dt, field: str = "dt") -> float:
    """``dt`` as a positive finite float; booleans and strings are refused."""
    from neuro_hw.errors import InputError

    if isinstance(dt, (bool, np.bool_)) or not isinstance(dt, (int, float, np.integer, np.floating)):
        raise InputError(f"dt must be a positive finite number, got {dt!r}", field=field)
    if not math.isfinite(float(dt)) or dt <= 0:
        raise InputError(f"dt must be a positive finite number, got {dt!r}", field=field)
    return float(dt)


def check_seed(seed, field: str = "seed") -> int:
    """``seed`` as an int in ``0..MAX_SEED`` (checked before a run starts, not after it)."""
    from neuro_hw.errors import InputError

    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}", field=field)
    if not 0 <= seed <= MAX_SEED:
        raise InputError(f"seed must lie in 0..{MAX_SEED} (an unsigned 32-bit integer), got {seed}", field=field)
    return int(seed)


def check_every(value, field: str) -> int:
    """A sampling interval in steps (``weights_every``): a positive integer."""
    from neuro_hw.errors import InputError

    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{field} must be a positive integer (steps), got {value!r}", field=field)
    return int(value)


def check_recording(values: int, what: str, field: str = "steps") -> None:
    """Refuse a run that would record more than :data:`MAX_RECORDED_VALUES` values, before allocating them."""
    from neuro_hw.errors import InputError

    if values > MAX_RECORDED_VALUES:
        raise InputError(
            f"{what} would record {values:,} values, more than {limit_name('MAX_RECORDED_VALUES')}; run fewer steps, "
            "record less or split the run",
            field=field,
        )
