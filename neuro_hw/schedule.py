"""Sample schedule for error-driven circuits: when a sample is shown and when its weights are updated.

An error-driven circuit learns one sample at a time (online, batch 1): the sample's forward activity and
the error it causes must meet at every plastic synapse in the **same learning epoch**.  Every weight node
delays a signal by one step (a ``Delay`` node by its own steps; graded neurons are memoryless), so each
signal reaches the synapses ``latency`` steps after the input it comes from.  The schedule shows each
sample for ``hold`` steps, then ``gap`` blank (zero) steps; one learning epoch per sample
(``t_epoch = period = hold + gap``) ends at the sample's last step ``L = (k+1) * period`` (1-based)::

    step        kT+1 ........ kT+hold | kT+hold+1 .. kT+T          (T = period, sample k)
    input x     [ sample k ........ ]   [ 0 ... 0 ]                 hold steps, then gap blank steps
    pre of W_l        <- latency d_l ->[ sample k activity ...]     reaches W_l d_l steps later
    error of W_l                 <- latency D_l ->      [ e_k ...]  the factor read at L must be e_k
    learning                                                   ^ L = kT+T: dw from x1 (last nonzero
                                                                 pre in the epoch) and the factor at L

The learning engine reads a graded pre trace as the last nonzero activity in the epoch and a third factor
(or modulator) as its value at the epoch's last step (:mod:`neuro_hw.ir.plasticity`), so the schedule is
right exactly when, for every plastic connection ``l`` with pre latency ``d_l`` and third-factor latency
``D_l`` (steps after the primary input):

* ``d_l <= gap``: the previous sample's activity has left the synapse before the epoch starts (otherwise a
  neuron silent in this sample would learn from the last one's activity), and this sample's activity
  arrives within the epoch;
* ``gap <= D_l <= period - 1``: the factor read at ``L`` was caused by this sample's input.

Hence ``gap = max d_l`` and ``period = max D_l + 1`` (:func:`plan_schedule`).  Inputs that enter the
circuit deeper than the primary input (a target in ``error = output - target``) are shifted so that they
meet the primary input's signal where the paths join (``offsets``).  The float reference and the
fixed-point backends run the same stimuli, so they share the schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from neuro_hw.errors import InputError, ValidationError
from neuro_hw.ir.circuit import WEIGHT_TYPES, Circuit


@dataclass(frozen=True)
class SampleSchedule:
    """How samples are laid out in time (see module doc)."""

    primary: str
    hold: int
    gap: int
    #: Per input, how many steps its column lags the primary input's (e.g. a target 2 steps later).
    offsets: dict[str, int] = field(default_factory=dict)
    #: Per node, its latency in steps after the primary input (for the report and the docs).
    latencies: dict[str, int] = field(default_factory=dict)

    @property
    def period(self) -> int:
        """Steps per sample = the learning epoch ``t_epoch``."""
        return self.hold + self.gap

    def steps(self, n_samples: int) -> int:
        """Steps to run for ``n_samples`` samples (each one's epoch included)."""
        return n_samples * self.period

    def learning_step(self, k: int) -> int:
        """The (1-based) step at whose end sample ``k``'s update is applied."""
        return (k + 1) * self.period

    def apply(self, circuit: Circuit) -> Circuit:
        """Set every plastic connection's ``t_epoch`` to the period (one learning epoch per sample)."""
        for spec in circuit.plasticity.values():
            spec.t_epoch = self.period
        circuit.validate()
        return circuit

    def check(self, circuit: Circuit) -> None:
        """Refuse a circuit whose plastic connections do not learn once per sample of this schedule."""
        for name, spec in circuit.plasticity.items():
            if spec.t_epoch != self.period:
                raise ValidationError(
                    f"t_epoch is {spec.t_epoch} but the schedule's period is {self.period} steps per sample "
                    "(SampleSchedule.apply sets it)",
                    node=name,
                    field="t_epoch",
                )

    def present(self, samples: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stimuli ``{input: (N * period, n)}`` (or ``(B, N * period, n)``) for per-sample values
        ``{input: (N, n)}`` (or ``(B, N, n)``): each held ``hold`` steps, then ``gap`` zeros, shifted by the
        input's offset (values that would fall after the last step are dropped)."""
        out = {}
        for name, values in samples.items():
            arr = np.asarray(values, dtype=np.float64)
            batched = arr.ndim == 3
            if arr.ndim not in (2, 3):
                raise InputError(f"per-sample values must be (N, n) or (B, N, n), got {arr.shape}", node=name)
            if name not in self.offsets:
                raise InputError(f"not an input of the schedule ({sorted(self.offsets)})", node=name)
            a = arr if batched else arr[None]
            b, n_samples, n = a.shape
            held = np.zeros((b, n_samples, self.period, n))
            held[:, :, : self.hold] = a[:, :, None, :]
            seq = held.reshape(b, n_samples * self.period, n)
            shift = self.offsets[name]
            if shift:
                seq = np.concatenate([np.zeros((b, shift, n)), seq[:, : seq.shape[1] - shift]], axis=1)
            out[name] = seq if batched else seq[0]
        return out


def _latencies(circuit: Circuit, source: str, dt: float) -> dict[str, int]:
    """Steps after ``source`` at which each node reachable from it carries ``source``'s signal
    (weight nodes +1, Delay nodes +their steps, everything else +0); refuses unequal path latencies."""
    lat: dict[str, int] = {source: 0}
    frontier = [source]
    while frontier:
        node = frontier.pop()
        for nxt in circuit.successors(node):
            kind = circuit.type_of(node)
            step = 1 if kind in WEIGHT_TYPES else 0
            if kind == "Delay":
                delays = np.rint(np.asarray(circuit.nodes[node].delay, dtype=np.float64) / float(dt)).astype(int)
                if np.ptp(delays) != 0:
                    raise ValidationError("a schedule needs one delay per Delay node", node=node, field="delay")
                step = int(delays.reshape(-1)[0])
            value = lat[node] + step
            if nxt in lat:
                if lat[nxt] != value:
                    raise ValidationError(
                        f"signals from {source!r} reach this node after {lat[nxt]} and after {value} steps; "
                        "a sample schedule needs one latency per node (align the paths with Delay nodes)",
                        node=nxt,
                    )
                continue
            lat[nxt] = value
            frontier.append(nxt)
    return lat


def plan_schedule(circuit: Circuit, primary: str, dt: float, *, hold: int | None = None) -> SampleSchedule:
    """The sample schedule of ``circuit`` driven by input ``primary``, for steps of ``dt`` (see module doc).

    Other inputs are offset so that they meet the primary input's signals where paths join.  ``hold``
    defaults to the shortest that works (``max D_l + 1 - gap``); a longer hold only lengthens the period.
    Raises :class:`ValidationError` when no schedule exists (a third factor that does not depend on the
    primary input, or one that arrives before the pre activity has settled).
    """
    if primary not in circuit.input_names:
        raise ValidationError(f"{primary!r} is not an input of the circuit ({circuit.input_names})", field="primary")
    lat = _latencies(circuit, primary, dt)
    offsets = {primary: 0}
    for other in circuit.input_names:
        if other == primary:
            continue
        theirs = _latencies(circuit, other, dt)
        joins = [n for n in theirs if n in lat and n != other]
        if not joins:
            offsets[other] = 0
            continue
        shifts = {lat[n] - theirs[n] for n in joins}
        if len(shifts) != 1:
            raise ValidationError(
                f"input {other!r} meets {primary!r} at nodes {joins} with different relative latencies {shifts}",
                node=other,
            )
        shift = shifts.pop()
        if shift < 0:
            raise ValidationError(f"input {other!r} would have to lead {primary!r} by {-shift} steps", node=other)
        offsets[other] = shift
    pre_latency, factor_latency = [], []
    for synapse, spec in circuit.plasticity.items():
        if spec.pre not in lat:
            raise ValidationError(f"the pre node {spec.pre!r} does not depend on input {primary!r}", node=synapse)
        pre_latency.append(lat[spec.pre])
        for source in spec.third_factor.values():
            if source not in lat:
                raise ValidationError(
                    f"third factor {source!r} does not depend on input {primary!r}", node=synapse, field="third_factor"
                )
            factor_latency.append(lat[source])
    gap = max(pre_latency, default=0)
    needed = max(factor_latency, default=gap) + 1
    low = [f for f in factor_latency if f < gap]
    if low:
        raise ValidationError(
            f"a third factor arrives {min(low)} steps after the input, before the latest pre activity ({gap} steps): "
            "no epoch sees both for the same sample",
            field="third_factor",
        )
    shortest = max(needed - gap, 1)
    if hold is None:
        hold = shortest
    elif hold < shortest:
        raise ValidationError(f"hold={hold} is too short; the circuit needs at least {shortest} steps", field="hold")
    return SampleSchedule(primary, int(hold), int(gap), offsets, {k: v for k, v in lat.items()})
