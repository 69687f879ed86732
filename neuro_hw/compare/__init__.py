"""Compare Results: exact (first divergence) or statistical (tolerance profiles), metrics and plots.

::

    from neuro_hw.compare import compare, assert_equivalent
    c = compare(reference, fixed, "fixed-vs-float")
"""

from neuro_hw.compare.comparison import PROFILES, Comparison, Divergence, Profile, assert_equivalent, compare

__all__ = ["PROFILES", "Comparison", "Divergence", "Profile", "assert_equivalent", "compare"]
