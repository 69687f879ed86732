"""Shared test fixtures and hypothesis profiles."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("slow", max_examples=400, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

pytest_plugins = ["pytester"]


def pytest_collection_modifyitems(config, items):
    """Tests marked ``lava`` need lava-nc (the ``neuro-hw[lava]`` extra): skipped with the reason without it."""
    import pytest

    from neuro_hw.backends import lava_missing

    why = lava_missing()
    if why is None:
        return
    for item in items:
        if item.get_closest_marker("lava") is not None:
            item.add_marker(pytest.mark.skip(reason=why))
