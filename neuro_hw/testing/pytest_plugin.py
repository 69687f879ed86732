"""pytest plugin: run one test suite on any target.

Registered through the ``pytest11`` entry point of the neuro-hw distribution, so it is active wherever
neuro-hw is installed::

    pytest --target=reference     # default: the float64 reference
    pytest --target=emulator      # compiled for Loihi 2, bit-exact emulator
    pytest --target=lava          # compiled for Loihi 2, Lava fixed_pt (needs neuro-hw[lava])
    pytest --target=lava-float    # Lava floating_pt

* fixture ``target``: a :class:`~neuro_hw.runner.Runner` for the chosen backend
  (``target.run(circuit, inputs, steps, dt, seed)``); tests written against it are the backend-neutral
  suite (``tests/backend_neutral``).  A test on a Lava target is skipped with the reason when Lava is not
  installed;
* marker ``@pytest.mark.hardware``: the test needs a Loihi 2 board.  neuro-hw has no hardware backend
  (``lava-hw`` is reserved, see :mod:`neuro_hw.backends`), so these tests are always skipped with that
  reason;
* marker ``@pytest.mark.fixed_point``: skipped on the float reference target;
* fixture ``golden``: ``golden(result, "name")`` compares with ``<test dir>/golden/<name>.h5`` (exact by
  default); ``pytest --update-golden`` re-records instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from neuro_hw.backends import BACKENDS, backend_unavailable
from neuro_hw.runner import Runner


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("neuro-hw")
    group.addoption(
        "--target",
        action="store",
        default="reference",
        choices=tuple(BACKENDS),
        help="backend the `target` fixture runs circuits on (default: reference)",
    )
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="re-record golden traces used through the `golden` fixture instead of comparing",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hardware: needs a Loihi 2 board (neuro-hw has no hardware backend yet)")
    config.addinivalue_line("markers", "fixed_point: meaningful on fixed-point targets only (skipped on reference)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = config.getoption("--target")
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=f"needs a Loihi 2 board: {backend_unavailable('lava-hw')}"))
        elif "target" in getattr(item, "fixturenames", ()) and backend_unavailable(chosen):
            item.add_marker(
                pytest.mark.skip(reason=f"--target={chosen} cannot run here: {backend_unavailable(chosen)}")
            )
        if "fixed_point" in item.keywords and chosen == "reference":
            item.add_marker(pytest.mark.skip(reason="fixed-point only; run with --target=emulator or lava"))


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest) -> Runner:
    """The backend selected with ``--target``."""
    return Runner(request.config.getoption("--target"))


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """``golden(result, name, profile="exact", **overrides)``: compare with (or, with --update-golden, record)
    the golden trace ``golden/<name>.h5`` next to the test file."""
    from neuro_hw.testing.golden import check_golden

    update = request.config.getoption("--update-golden")
    folder = Path(request.node.fspath).parent / "golden"

    def check(result, name: str, profile="exact", **overrides):
        folder.mkdir(exist_ok=True)
        return check_golden(result, folder / f"{name}.h5", profile, update=update, **overrides)

    return check
