"""Meta-learning the plasticity coefficients theta of seed circuit P3 by CMA-ES through :mod:`neuro_hw.sweep`.

The paper meta-learns theta by gradient descent through the 250 unrolled online updates; here a gradient-free
optimiser (CMA-ES, ``cma``) searches theta, each candidate evaluated on a batch of meta-training episodes
(:mod:`.meta_plasticity_data`, the first 60 images of each class) as one sweep task:

* **parametrisation** (``docs/meta-plasticity.md``): ``theta_r = s_r * sinh(x_r)`` for the searched terms
  ``r``: a free sign, a magnitude spanning decades (``sinh(3) = 10``, ``sinh(5) = 74``) and steps that are wide
  relative to small values (near 0 a step of 1 in ``x`` is a step of ``s_r``).  ``s_r`` is the term's natural
  scale: ``0.01 * rms(F0) / rms(F^r)`` over the terms' values at the initial weights
  (:func:`term_scales`), so every term starts with updates of the size of a ``theta0 = 0.01`` pseudo-gradient;
* **meta-loss** (the paper's, per episode): the query cross-entropy of ``softmax(z_L)`` plus
  ``lambda * sum_r |theta_r| / s_r`` (L1 on the scale-free magnitudes; the paper penalises the raw theta,
  whose terms have different natural scales here); a diverged episode (non-finite loss) counts as ``10``;
* **common random episodes**: every candidate of every generation is evaluated on the same episodes (the
  population's seeds are episode seeds), so candidates are compared on equal terms (the sweep engine does not
  pass the generation to the evaluation, so the episodes are not redrawn per generation);
* **restarts**: several CMA-ES runs from the same start with different optimiser seeds and a wide initial
  step; the best final mean (re-evaluated on held-out meta-training episodes) wins.

Backends: ``reference`` runs the numpy ground truth (:mod:`.meta_plasticity_numpy`, equal to the circuit in
the float reference to ~1e-16, tested); ``emulator`` runs the compiled circuit (:mod:`.meta_plasticity_circuit`)
on the fixed-point emulator, one Program for the whole search (the rule gains are per-trial weights), so the
search finds theta for the chip's arithmetic.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from neuro_hw.circuits.meta_plasticity_data import Episodes, load_digits_dataset
from neuro_hw.circuits.meta_plasticity_data import episodes as make_episodes
from neuro_hw.circuits.meta_plasticity_numpy import (
    HEBB,
    N_TERMS,
    OJA_LOCAL,
    PRE_ERROR_TERMS,
    NetworkConfig,
    adapt,
    backward,
    forward,
    init_weights,
    output_error,
    theta_vector,
)

#: A diverged episode's loss (the query cross-entropy of a 5-way chance guess is log 5 = 1.61).
DIVERGED_LOSS = 10.0

#: Named network forms (``config`` parameter of the evaluation).
CONFIGS: dict[str, NetworkConfig] = {
    "paper": NetworkConfig(),
    "chip": NetworkConfig(
        output="clipped", activation="hardware", oja="local", w_max=(0.5, 0.5, 0.5, 0.5, 1.0), y_clip=2.0
    ),  # fmt: skip
}


def config_named(name: str) -> NetworkConfig:
    """A named form (:data:`CONFIGS`), optionally with ``+key=value`` changes: ``"paper+feedback=bp"``."""
    base, *changes = name.split("+")
    if base not in CONFIGS:
        raise ValueError(f"unknown network form {base!r}; choose one of {sorted(CONFIGS)}")
    config = CONFIGS[base]
    for change in changes:
        key, _, value = change.partition("=")
        if key not in ("feedback", "output", "activation", "oja"):
            raise ValueError(f"cannot change {key!r} in {name!r}")
        config = config.with_(**{key: value})
    return config


@functools.lru_cache(maxsize=8)
def _dataset() -> Any:
    return load_digits_dataset()


def meta_episodes(seeds: Sequence[int], pool: str = "meta_train") -> Episodes:
    """Digits episodes of ``pool`` (cached dataset)."""
    return make_episodes(_dataset(), list(seeds), pool)


def term_scales(config: NetworkConfig, n_episodes: int = 8, n_samples: int = 20) -> np.ndarray:
    """``s_r = 0.01 * rms(F0) / rms(F^r)`` (module doc) for all 13 terms: the root mean square of each term's
    entries over all layers, evaluated at the initial weights of meta-training episodes ``0..n_episodes-1``
    on their first ``n_samples`` images (no learning)."""
    ep = meta_episodes(range(n_episodes))
    ws, bs = init_weights(config, ep.seeds)
    sq = np.zeros(N_TERMS)
    count = 0
    eye = np.eye(config.sizes[-1])
    for k in range(n_samples):
        ys, zs = forward(config, ws, ep.x_train[:, k])
        e_out, y_out = output_error(config, zs[-1], eye[ep.y_train[:, k]])
        es = backward(config, bs, ys, e_out, down_to=0)
        all_ys = list(ys) + [y_out]
        for layer in range(1, config.n_layers + 1):
            w, b = ws[layer - 1], bs[layer - 1]
            y, yp, e, ep_ = all_ys[layer], all_ys[layer - 1], es[layer], es[layer - 1]
            outer = lambda u, v: u[:, :, None] * v[:, None, :]  # noqa: E731
            wep = np.einsum("eij,ej->ei", w, ep_)
            s67 = (y * wep).sum(-1)[:, None, None]
            s8 = (e * zs[layer - 1]).sum(-1)[:, None, None]
            terms = [
                outer(e, yp), outer(y, ep_), outer(e, ep_), w, np.broadcast_to(ep_[:, None, :], w.shape),
                y.sum(-1)[:, None, None] * outer(e, yp), s67 * outer(y, ep_), s67 * outer(e, yp),
                s8 * outer(y, ep_), outer(y, yp) - y[:, :, None] * np.einsum("eij,ei->ej", w, y)[:, None, :],
                outer(y, yp), (y * y)[:, :, None] * w, (e * e)[:, :, None] * b,
            ]  # fmt: skip
            sq += np.array([float(np.mean(t**2)) * t[0].size for t in terms])
            count += w[0].size
    rms = np.sqrt(sq / count)
    return 0.01 * rms[0] / np.where(rms > 0, rms, np.inf)


@dataclass(frozen=True)
class ThetaSpace:
    """The searched terms and their scales: ``theta_r = scales[r] * sinh(x_r)`` for ``r`` in ``terms``; the
    other entries of theta are ``fixed`` (default 0).  ``positive``: terms whose theta is ``|.|`` (the on-chip
    Oja decay)."""

    terms: tuple[int, ...]
    scales: tuple[float, ...]
    fixed: tuple[float, ...] = (0.0,) * N_TERMS
    positive: tuple[int, ...] = ()

    def theta(self, x: Sequence[float] | np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.size != len(self.terms):
            raise ValueError(f"{len(self.terms)} coordinates expected, got {x.size}")
        th = np.array(self.fixed, dtype=np.float64)
        for r, xr in zip(self.terms, x, strict=True):
            v = self.scales[r] * math.sinh(float(xr))
            th[r] = abs(v) if r in self.positive else v
        return th

    def x_of(self, theta: Sequence[float] | np.ndarray) -> np.ndarray:
        th = theta_vector(theta)
        return np.array([math.asinh(th[r] / self.scales[r]) for r in self.terms])

    def l1(self, theta: np.ndarray) -> float:
        """``sum_r |theta_r| / s_r`` over the searched terms."""
        return float(sum(abs(theta[r]) / self.scales[r] for r in self.terms))


def parse_terms(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"0,2,9"`` -> ``(0, 2, 9)`` (validated)."""
    items = [int(t) for t in text.split(",") if t.strip()] if isinstance(text, str) else [int(t) for t in text]
    if not items or len(set(items)) != len(items) or min(items) < 0 or max(items) >= N_TERMS:
        raise ValueError(f"terms must be distinct indices in 0..{N_TERMS - 1}, got {text!r}")
    return tuple(items)


@functools.lru_cache(maxsize=8)
def _scales(config_name: str) -> tuple[float, ...]:
    return tuple(float(s) for s in term_scales(config_named(config_name)))


def space_for(config_name: str, terms: str | Sequence[int]) -> ThetaSpace:
    """The :class:`ThetaSpace` of ``terms`` for a named form (the chip form keeps the Oja decay >= 0)."""
    terms = parse_terms(terms)
    positive = (OJA_LOCAL,) if config_name.startswith("chip") else ()
    return ThetaSpace(terms, _scales(config_name), positive=positive)


def episode_losses(acc: np.ndarray, ce: np.ndarray) -> np.ndarray:
    """The per-episode query loss with diverged episodes (non-finite) counted as :data:`DIVERGED_LOSS`."""
    return np.where(np.isfinite(ce), np.minimum(ce, DIVERGED_LOSS), DIVERGED_LOSS)


def _x_from_params(params: Mapping[str, Any], n: int) -> np.ndarray:
    return np.array([float(params[f"x{i}"]) for i in range(n)])


def evaluate(params: Mapping[str, Any], target: Any, backend: str, seeds: list[int]) -> list[dict[str, Any]]:
    """Sweep evaluation function: the meta-loss of one candidate on meta-training episodes ``seeds``.

    ``params``: ``config`` (a form of :func:`config_named`, default ``"paper"``), ``terms`` (``"0,2,9"``),
    ``lam`` (L1 weight, default 0), ``x0``, ``x1``, ... (one coordinate per term, :class:`ThetaSpace`),
    ``pool`` (``"meta_train"``); on the emulator also ``box`` (``"theta0,hebb,oja"``, the Program's
    :class:`~.meta_plasticity_circuit.GainBox`).  Metrics per episode: ``loss`` (query CE + lam * L1),
    ``ce``, ``accuracy``, and ``theta<r>`` of the searched terms."""
    config_name = str(params.get("config", "paper"))
    space = space_for(config_name, str(params["terms"]))
    lam = float(params.get("lam", 0.0))
    theta = space.theta(_x_from_params(params, len(space.terms)))
    ep = meta_episodes(seeds, str(params.get("pool", "meta_train")))
    if backend == "reference":
        with np.errstate(all="ignore"):
            res = adapt(config_named(config_name), theta, ep)
        acc, ce = res.query_accuracy, res.query_loss
    elif backend == "emulator":
        from neuro_hw.circuits.meta_plasticity_run import GainBox, run_emulator

        box = GainBox(*(float(v) for v in str(params["box"]).split(",")))
        out = run_emulator(config_named(config_name), np.tile(theta, (len(ep), 1)), ep, box, target=target,
                           seeds=seeds)  # fmt: skip
        acc, ce = out.query_accuracy, out.query_loss
    else:
        raise ValueError(f"backend {backend!r} is not supported here (reference or emulator)")
    loss = episode_losses(acc, ce) + lam * space.l1(theta)
    extra = {f"theta{r}": float(theta[r]) for r in space.terms}
    return [
        {"loss": float(lv), "ce": float(c), "accuracy": float(a), **extra}
        for lv, c, a in zip(loss, ce, acc, strict=True)
    ]


def chip_pool_terms() -> tuple[int, ...]:
    """The terms the learning engine can express (:mod:`.meta_plasticity_circuit`): F0, F3, H, O."""
    return (0, 3, HEBB, OJA_LOCAL)


def paper_pool_terms() -> tuple[int, ...]:
    return tuple(range(10))


__all__ = ["PRE_ERROR_TERMS", "ThetaSpace", "evaluate", "space_for", "term_scales"]


@dataclass
class MetaRun:
    """A meta-learning run (all restarts): the chosen theta, per restart the best theta and its validation
    loss, and the generation history of every restart (``best``, ``mean``, ``best_so_far`` of the loss and the
    best individual's theta per generation)."""

    name: str
    config: str
    terms: tuple[int, ...]
    lam: float
    backend: str
    theta: np.ndarray
    restarts: list[dict[str, Any]]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "config": self.config, "terms": list(self.terms), "lam": self.lam,
            "backend": self.backend, "theta": [float(v) for v in self.theta], "restarts": self.restarts,
            "seconds": self.seconds,
        }  # fmt: skip


def run_meta(
    name: str,
    config: str,
    terms: str | Sequence[int],
    *,
    start: Mapping[int, float] | None = None,
    lam: float = 0.0,
    backend: str = "reference",
    box: str | None = None,
    episodes: int = 32,
    validation: int = 32,
    generations: int = 20,
    size: int = 8,
    sigma: float = 1.5,
    restarts: int = 2,
    out_dir: str = "out/meta_plasticity/meta",
    serial: bool = False,
    workers: int | None = None,
    progress: bool = False,
    limits: Mapping[int, float] | None = None,
) -> MetaRun:
    """CMA-ES over ``theta`` of ``terms`` (module doc) from ``start`` (``{term: theta}``; others 0), ``restarts``
    runs (optimiser seeds 0, 1, ...) of ``generations`` x ``size`` candidates, each on meta-training episodes
    ``0..episodes-1`` (one sweep task per candidate); the best individual of every restart is re-evaluated on
    meta-training episodes ``10000..10000+validation-1`` and the best of those is the result.  ``limits``
    (``{term: bound}``) keeps ``|theta_r| <= bound`` (the CMA-ES bounds of ``x_r``: ``asinh(bound / s_r)``), e.g.
    the gain box of a compiled Program; other terms are bounded by ``|x_r| <= 8``."""
    from neuro_hw.sweep import PopulationSpec, SweepSpec, Variable, run_population

    t0 = time.perf_counter()
    terms_t = parse_terms(terms)
    space = space_for(config, terms_t)
    x_start = space.x_of(theta_vector(dict(start or {})))
    params: dict[str, Any] = {"config": config, "terms": ",".join(map(str, terms_t)), "lam": float(lam)}
    if box is not None:
        params["box"] = box
    results = []
    for restart in range(restarts):
        sweep = SweepSpec(name=f"{name}_r{restart}", evaluate="neuro_hw.circuits.meta_plasticity_meta:evaluate",
                          params=params, backends=[backend], seeds=list(range(episodes)))  # fmt: skip
        bounds = [math.asinh(limits[r] / space.scales[r]) if limits and r in limits else 8.0 for r in terms_t]
        # on the emulator the box's Program takes theta0 >= 0 and thetaH >= 0 only: its gain connections are
        # sign-restricted (me: excitatory, mh: inhibitory); a candidate outside is refused by the per-trial weights
        # (the first emulator run lost 2 of 64 candidates to theta0 < 0)
        lows = [0.0 if backend == "emulator" and r in (0, HEBB) else -b for r, b in zip(terms_t, bounds, strict=True)]
        variables = [Variable(f"x{i}", float(np.clip(x_start[i], lo, b)), lo, b)
                     for i, (lo, b) in enumerate(zip(lows, bounds, strict=True))]  # fmt: skip
        spec = PopulationSpec(sweep, variables, metric="loss", goal="min", method="cma", generations=generations,
                              size=size, sigma=sigma, seed=restart)  # fmt: skip
        pop = run_population(spec, out_dir, serial=serial, workers=workers, progress=progress)
        x_best = np.array([pop.best_params[f"x{i}"] for i in range(len(terms_t))])
        theta = space.theta(x_best)
        val_seeds = list(range(10_000, 10_000 + validation))
        val = evaluate({**params, **{f"x{i}": float(v) for i, v in enumerate(x_best)}}, None if backend == "reference"
                       else _default_target(), backend, val_seeds)  # fmt: skip
        history = [
            {"generation": int(h["generation"]), "best": float(h["best"]), "mean": float(h["mean"]),
             "best_so_far": float(h["best_so_far"]),
             "theta": [float(v) for v in space.theta([h[f"best.x{i}"] for i in range(len(terms_t))])]}
            for h in pop.history
        ]  # fmt: skip
        results.append({
            "restart": restart, "theta": [float(v) for v in theta], "train_loss": float(pop.best_value),
            "validation_loss": float(np.mean([v["loss"] for v in val])),
            "validation_accuracy": float(np.mean([v["accuracy"] for v in val])), "history": history,
            "failures": len(pop.failures), "seconds": pop.seconds,
        })  # fmt: skip
    best = min(results, key=lambda r: r["validation_loss"])
    return MetaRun(name, config, terms_t, float(lam), backend, np.array(best["theta"]), results,
                   time.perf_counter() - t0)  # fmt: skip


def _default_target() -> Any:
    from neuro_hw.compiler.target import load_target

    return load_target("loihi2")
