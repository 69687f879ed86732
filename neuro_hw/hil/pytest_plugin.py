"""pytest plugin: run one test suite on any target.

Registered through the ``pytest11`` entry point of the neuro-hw distribution, so it is active wherever
neuro-hw is installed::

    pytest --target=reference     # default
    pytest --target=emulator
    pytest --target=lava
    pytest --target=lava-hw       # a Loihi 2 board; tests marked `hardware` need it

* fixture ``target``: a :class:`~neuro_hw.hil.targets.Runner` for the chosen target
  (``target.run(circuit, inputs, steps, dt, seed)``);
* marker ``@pytest.mark.hardware``: the test needs a board; it is skipped with the reason when the
  target is not ``lava-hw`` or when Intel's runtime is missing;
* marker ``@pytest.mark.fixed_point``: skipped on the float reference target;
* fixture ``golden``: ``golden(result, "name")`` compares with ``<test dir>/golden/<name>.h5`` (exact by
  default); ``pytest --update-golden`` re-records instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neuro_hw.hil.targets import TARGETS, Runner, get_runner, hardware_available


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neuro-hw")
    group.addoption(
        "--target",
        action="store",
        default="reference",
        choices=TARGETS,
        help="backend the `target` fixture runs circuits on (default: reference)",
    )
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="re-record golden traces used through the `golden` fixture instead of comparing",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hardware: needs a Loihi 2 board (run with --target=lava-hw)")
    config.addinivalue_line("markers", "fixed_point: meaningful on fixed-point targets only (skipped on reference)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("--target")
    available, why = hardware_available()
    for item in items:
        if "hardware" in item.keywords:
            if chosen != "lava-hw":
                item.add_marker(
                    pytest.mark.skip(reason=f"needs a Loihi 2 board: run with --target=lava-hw (now {chosen})")
                )
            elif not available:
                item.add_marker(pytest.mark.skip(reason=f"no Loihi 2 board: {why}"))
        if "fixed_point" in item.keywords and chosen == "reference":
            item.add_marker(pytest.mark.skip(reason="fixed-point only; run with --target=emulator or lava"))


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Runner:
    """The backend selected with ``--target``."""
    return get_runner(request.config.getoption("--target"))


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """``golden(result, name, profile="exact", **overrides)``: compare with (or, with --update-golden, record)
    the golden trace ``golden/<name>.h5`` next to the test file."""
    from neuro_hw.hil.golden import check_golden

    update = request.config.getoption("--update-golden")
    folder = Path(request.node.fspath).parent / "golden"

    def check(result, name: str, profile="exact", **overrides):
        folder.mkdir(exist_ok=True)
        return check_golden(result, folder / f"{name}.h5", profile, update=update, **overrides)

    return check
