"""pytest plugin: run one test suite on any target.

Registered through the ``pytest11`` entry point of the neuro-hw distribution, so it is active wherever
neuro-hw is installed::

    pytest --target=reference     # default: the float64 reference
    pytest --target=emulator      # compiled for Loihi 2, bit-exact emulator
    pytest --target=lava          # compiled for Loihi 2, Lava fixed_pt (needs neuro-hw[lava])
    pytest --target=lava-float    # Lava floating_pt

* fixture ``target``: a :class:`~neuro_hw.runner.Runner` for a backend given with ``--target``
  (``target.run(circuit, inputs, steps, dt, seed)``); a test using it runs once per ``--target`` given
  (``pytest --target=reference --target=emulator``); tests written against it are the backend-neutral
  suite (``tests/backend_neutral``).  A test on a backend that cannot run here (Lava not installed, or
  ``lava-hw``) is skipped with the reason;
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
        action="append",
        default=None,
        choices=tuple(BACKENDS),
        help="backend the `target` fixture runs circuits on (default: reference); repeat the option to run every "
        "test that uses `target` once per backend, e.g. --target=reference --target=emulator",
    )
    group.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="re-record golden traces used through the `golden` fixture instead of comparing",
    )


def chosen_targets(config: pytest.Config) -> list[str]:
    """The backends given with ``--target`` (in order, without repeats); ``["reference"]`` by default."""
    return list(dict.fromkeys(config.getoption("--target") or ["reference"]))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hardware: needs a Loihi 2 board (neuro-hw has no hardware backend yet)")
    config.addinivalue_line("markers", "fixed_point: meaningful on fixed-point targets only (skipped on reference)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "target" in metafunc.fixturenames:
        names = chosen_targets(metafunc.config)
        metafunc.parametrize("target", names, ids=names, indirect=True)


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("target") if callspec is not None else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        backend = _backend_of(item)
        if item.get_closest_marker("hardware") is not None:
            item.add_marker(pytest.mark.skip(reason=f"needs a Loihi 2 board: {backend_unavailable('lava-hw')}"))
            continue
        if backend is None:
            continue
        why = backend_unavailable(backend)
        if why:
            item.add_marker(pytest.mark.skip(reason=f"--target={backend} cannot run here: {why}"))
        elif item.get_closest_marker("fixed_point") is not None and not BACKENDS[backend].fixed_point:
            item.add_marker(pytest.mark.skip(reason="fixed-point only; run with --target=emulator or lava"))


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Runner:
    """A :class:`~neuro_hw.runner.Runner` for one backend given with ``--target`` (tests using it run once per
    backend)."""
    return Runner(getattr(request, "param", None) or chosen_targets(request.config)[0])


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
