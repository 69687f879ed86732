"""Sweep descriptions: grid expansion, seeds and tasks, row keys, TOML errors naming the file and the field."""

from __future__ import annotations

import textwrap

import pytest

from neuro_hw.sweep import SweepSpec, SweepSpecError, load, load_spec, spec_from_dict
from neuro_hw.sweep.spec import expand_values, row_key

Q = "neuro_hw.sweep.examples:quadratic"
VERSIONS = {"neuro-hw": "0.1.0", "numpy": "1"}


def test_grid_is_the_product_of_the_axes_in_order_crossed_with_points_and_backends():
    spec = SweepSpec(
        name="g",
        evaluate=Q,
        params={"steps": 10},
        grid={"a": [1, 2], "target.weights.bits": [4, 6, 8]},
        points=[{"b": "x"}, {"b": "y"}],
        backends=["emulator", "reference"],
        baseline="reference",
    )
    points = spec.expand()
    # the baseline first; on the reference backend the target settings do not apply: 2 x 2 points, not 2 x 2 x 3
    ref = [p for p in points if p.backend == "reference"]
    emu = [p for p in points if p.backend == "emulator"]
    assert points[: len(ref)] == ref and len(ref) == 4 and len(emu) == 12
    assert all(p.target is None for p in ref)
    assert [(p.params["b"], p.params["a"], p.target["weights.bits"]) for p in emu[:4]] == [
        ("x", 1, 4), ("x", 1, 6), ("x", 1, 8), ("x", 2, 4),
    ]  # fmt: skip
    assert all(p.params["steps"] == 10 for p in points)
    assert [p.index for p in points] == list(range(16))
    assert emu[0].columns == {"param.steps": 10, "param.b": "x", "param.a": 1, "param.target.weights.bits": 4}
    assert spec.axes == ["a", "target.weights.bits", "b"]


def test_seed_groups_and_tasks():
    spec = SweepSpec(name="s", evaluate=Q, grid={"x0": [0.0, 1.0]}, backends=["reference"], seeds=[3, 1, 4, 5, 9])
    assert spec.seed_groups() == [(3, 1, 4, 5, 9)]
    spec.seeds_per_task = 2
    assert spec.seed_groups() == [(3, 1), (4, 5), (9,)]
    tasks = spec.tasks(VERSIONS)
    assert len(tasks) == 6 and tasks[0].seeds == (3, 1) and tasks[3].point.params == {"x0": 1.0}
    keys = [k for t in tasks for k in t.keys]
    assert len(set(keys)) == 10


def test_ranges():
    assert expand_values({"from": 2, "to": 8}, "f", None) == [2, 3, 4, 5, 6, 7, 8]
    assert expand_values({"from": 0, "to": 1, "step": 0.25}, "f", None) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert expand_values({"from": 1, "to": 100, "num": 3, "log": True}, "f", None) == pytest.approx([1, 10, 100])
    assert expand_values({"from": 0, "to": 1, "num": 3}, "f", None) == [0.0, 0.5, 1.0]


def test_row_keys_are_stable_and_change_with_what_determines_the_numbers():
    spec = SweepSpec(name="k", evaluate=Q, grid={"target.weights.bits": [6, 7]}, params={"a": 0.5})
    p6, p7 = spec.expand()
    fp6, fp7 = spec.target_fingerprint(p6), spec.target_fingerprint(p7)
    key = row_key(p6, 0, Q, fp6, VERSIONS)
    assert key == row_key(spec.expand()[0], 0, Q, spec.target_fingerprint(spec.expand()[0]), dict(VERSIONS))
    assert key != row_key(p6, 1, Q, fp6, VERSIONS)  # seed
    assert key != row_key(p7, 0, Q, fp7, VERSIONS)  # target variant
    assert key != row_key(p6, 0, "m:f", fp6, VERSIONS)  # evaluation
    assert key != row_key(p6, 0, Q, fp6, {**VERSIONS, "numpy": "2"})  # versions
    other = SweepSpec(name="other-name", evaluate=Q, grid={"target.weights.bits": [6]}, params={"a": 0.5}).expand()[0]
    assert key == row_key(other, 0, Q, fp6, VERSIONS)  # the sweep's name is not part of a run's identity
    changed = SweepSpec(name="k", evaluate=Q, grid={"target.weights.bits": [6]}, params={"a": 0.25}).expand()[0]
    assert key != row_key(changed, 0, Q, fp6, VERSIONS)


def _write(tmp_path, text: str):
    path = tmp_path / "s.toml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = """
    [sweep]
    name = "t"
    evaluate = "neuro_hw.sweep.examples:quadratic"
    backends = ["emulator"]
    seeds = 3
    seeds_per_task = 2

    [params]
    noise = 0.0

    [grid]
    x0 = { from = 0, to = 2 }
    "target.learning.trace_bits" = [5, 7]

    [[plots]]
    kind = "param"
    metric = "loss"
    x = "x0"
"""


def test_toml_file_loads(tmp_path):
    spec = load(_write(tmp_path, GOOD))
    assert spec.seeds == [0, 1, 2] and spec.seeds_per_task == 2 and spec.grid["x0"] == [0, 1, 2]
    assert len(spec.expand()) == 6 and spec.plots[0].x == "x0"
    assert spec.source.endswith("s.toml")


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (('name = "t"', ""), "sweep.name", "missing key"),
        (("[sweep]", "[sweeps]"), "sweeps", "unknown section"),
        (('backends = ["emulator"]', 'backends = ["loihi"]'), "sweep.backends", "unknown backend 'loihi'"),
        (("seeds = 3", "seeds = [1, 1]"), "sweep.seeds", "a seed is listed twice"),
        (("seeds_per_task = 2", "seeds_per_task = 0"), "sweep.seeds_per_task", "positive integer"),
        (("x0 = { from = 0, to = 2 }", "x0 = { from = 0, upto = 2 }"), "grid.x0", "a range is"),
        (("x0 = { from = 0, to = 2 }", "x0 = []"), "grid.x0", "non-empty list"),
        (("[5, 7]", "[5, 16]"), "grid.target.learning.trace_bits", "trace_bits=16: must lie in 1..15"),
        (('"target.learning.trace_bits"', '"target.learning.tracebits"'), "grid.target.learning.tracebits",
         "unknown target setting"),
        (("quadratic", "nothere"), "sweep.evaluate", "has no 'nothere'"),
        (("neuro_hw.sweep.examples:", "neuro_hw.no_such_module:"), "sweep.evaluate", "cannot import module"),
        (('x = "x0"', 'x = "x9"'), "plots[0]", "'x9' is not an axis"),
        (('kind = "param"', 'kind = "pie"'), "plots[0].kind", "unknown plot kind"),
        (("noise = 0.0", "x0 = 1.0"), "params.x0", "both a fixed parameter and a grid axis"),
        (("[params]", "[params"), None, "invalid TOML"),
    ],
)  # fmt: skip
def test_toml_errors_name_the_file_and_field(tmp_path, edit, field, message):
    text = textwrap.dedent(GOOD).replace(*edit)
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SweepSpecError) as info:
        load_spec(path)
    err = info.value
    assert err.file == str(path) and message in err.reason
    if field is not None:
        assert err.field == field
    assert str(path) in str(err)


def test_population_file_is_refused_by_load_spec_and_missing_file(tmp_path):
    path = _write(tmp_path, GOOD.replace("[[plots]]", "[population]\nmetric = 'loss'\n[[plots]]"))
    with pytest.raises(SweepSpecError, match="describes a population"):
        load_spec(path)
    with pytest.raises(SweepSpecError, match="no such sweep file"):
        load_spec(tmp_path / "missing.toml")


def test_python_spec_errors():
    with pytest.raises(SweepSpecError, match="baseline 'reference' is not one of the backends"):
        SweepSpec(name="b", evaluate=Q, baseline="reference")
    with pytest.raises(SweepSpecError, match="must be importable as module:function"):
        SweepSpec(name="b", evaluate=lambda *a: None)
    with pytest.raises(SweepSpecError, match="target.<section>.<key>"):
        SweepSpec(name="b", evaluate=Q, grid={"target.bits": [1]})
    with pytest.raises(SweepSpecError, match="sweep.target"):
        spec_from_dict({"sweep": {"name": "b", "evaluate": Q, "target": 3}})
