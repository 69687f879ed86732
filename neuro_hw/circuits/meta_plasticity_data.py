"""Episodes for seed circuit P3 (meta-learned plasticity): few-shot, online classification tasks.

Protocol (Shervani-Tabar & Rosenbaum 2023, adapted to sklearn's digits; ``docs/meta-plasticity.md``):

* an **episode** draws ``ways`` = 5 distinct classes, ``K`` = 50 training and ``Q`` = 10 query images of
  each; the ``ways * K`` = 250 training images are shown once, in a random order, batch 1; the query images
  are classified after the last update.  Labels are the classes' positions ``0..ways-1`` in the episode (so
  the network has ``ways`` outputs);
* **pools**: meta-training episodes draw from the first ``meta_train_per_class`` = 60 images of each class
  (dataset order), evaluation episodes only from the other images of each class (the digits have 174..183
  images per class, so 114..123 remain: enough for 60 per episode);
* episode ``s`` of a pool is a pure function of ``(pool, s)``: ``rng = np.random.default_rng([s, pool id])``
  draws the classes (``rng.choice(n_classes, ways, replace=False)``), per class a permutation of its pool
  images (the first ``K`` train, the next ``Q`` query), then the training order (``rng.permutation``).

Deviation from the paper, stated: it draws the episode's classes *with* replacement from EMNIST's 47 classes
(an episode may hold a class twice under two labels) and always uses a class's first 50 images for training
and the next 10 as queries; with the digits' 10 classes a draw with replacement would repeat a class in 70 %
of the episodes, so classes are drawn without replacement and images are drawn from the pool per episode.

Inputs are in ``[0, 1]``: digits pixels / 16; a user data set comes from an ``.npz`` file with ``x`` (N, d)
in [0, 1] and ``y`` (N,) integer labels (:func:`load_npz_dataset`, e.g. MNIST or EMNIST-balanced flattened
to 784 and scaled to [0, 1]), with the same protocol.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from neuro_hw.errors import InputError

#: Pool identifiers mixed into the episode seeds (meta-training and evaluation episodes never coincide).
POOLS = {"meta_train": 1, "eval": 2}


@dataclass(frozen=True)
class Protocol:
    """Episode sizes: ``ways`` classes, ``k_train`` training and ``q_query`` query images per class, and the
    number of images per class (from the start, in dataset order) reserved for meta-training."""

    ways: int = 5
    k_train: int = 50
    q_query: int = 10
    meta_train_per_class: int = 60

    def __post_init__(self) -> None:
        for name in ("ways", "k_train", "q_query", "meta_train_per_class"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.meta_train_per_class < self.k_train + self.q_query:
            raise ValueError(
                f"meta_train_per_class={self.meta_train_per_class} is fewer than k_train + q_query = "
                f"{self.k_train + self.q_query} images per class"
            )

    @property
    def n_train(self) -> int:
        return self.ways * self.k_train

    @property
    def n_query(self) -> int:
        return self.ways * self.q_query


@dataclass(frozen=True)
class Dataset:
    """Images ``x`` (N, d) float64 in [0, 1], labels ``y`` (N,) int64 and the per-class index lists of the two
    pools (:class:`Protocol`)."""

    name: str
    x: np.ndarray
    y: np.ndarray
    n_classes: int
    meta_train: tuple[np.ndarray, ...]  # per class: indices into x, the meta-training pool
    eval: tuple[np.ndarray, ...]  # per class: indices into x, the evaluation pool

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])


@dataclass(frozen=True)
class Episodes:
    """A batch of ``E`` episodes (:func:`episodes`).

    ``x_train`` (E, N, d) in presentation order, ``y_train`` (E, N) episode labels ``0..ways-1``, ``x_query``
    (E, Q, d), ``y_query`` (E, Q); ``classes`` (E, ways) the dataset classes behind the labels; ``seeds`` (E,)
    the episode seeds (they also seed the initial weights, :func:`..meta_plasticity_numpy.init_weights`).
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_query: np.ndarray
    y_query: np.ndarray
    classes: np.ndarray
    seeds: np.ndarray
    pool: str

    def __len__(self) -> int:
        return int(self.x_train.shape[0])

    def subset(self, index: slice | Sequence[int] | np.ndarray) -> Episodes:
        return Episodes(
            self.x_train[index], self.y_train[index], self.x_query[index], self.y_query[index],
            self.classes[index], self.seeds[index], self.pool,
        )  # fmt: skip


def _split_pools(y: np.ndarray, n_classes: int, protocol: Protocol, name: str) -> tuple[tuple, tuple]:
    meta, evaluation = [], []
    need = protocol.k_train + protocol.q_query
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        if idx.size < protocol.meta_train_per_class + need:
            raise InputError(
                f"class {c} has {idx.size} images; the protocol needs {protocol.meta_train_per_class} for "
                f"meta-training plus {need} for evaluation episodes",
                file=name,
                field="y",
            )
        meta.append(idx[: protocol.meta_train_per_class])
        evaluation.append(idx[protocol.meta_train_per_class :])
    return tuple(meta), tuple(evaluation)


def load_digits_dataset(protocol: Protocol | None = None) -> Dataset:
    """``sklearn.datasets.load_digits`` (1797 8x8 images, 10 classes, bundled: no download), pixels / 16."""
    from sklearn.datasets import load_digits

    protocol = protocol or Protocol()
    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64) / 16.0
    y = np.asarray(data.target, dtype=np.int64)
    meta, evaluation = _split_pools(y, 10, protocol, "sklearn digits")
    return Dataset("digits", x, y, 10, meta, evaluation)


def load_npz_dataset(path: str | os.PathLike[str], protocol: Protocol | None = None) -> Dataset:
    """A user data set from ``.npz`` (arrays ``x`` (N, d) in [0, 1], ``y`` (N,) integer labels ``0..C-1``;
    validated by :func:`neuro_hw.circuits.digits.load_npz`, refusals name the file and field), split into
    the two pools by :class:`Protocol`; every class needs ``meta_train_per_class + k_train + q_query`` images."""
    from neuro_hw.circuits.digits import load_npz

    protocol = protocol or Protocol()
    file = os.fspath(path)
    x, y = load_npz(file, n_classes=2**31 - 1)  # validates the file, shapes, ranges and integer labels
    n_classes = int(y.max()) + 1
    if n_classes < protocol.ways:
        raise InputError(f"{n_classes} classes, fewer than the {protocol.ways} an episode needs", file=file, field="y")
    meta, evaluation = _split_pools(y, n_classes, protocol, file)
    return Dataset(os.path.basename(file), x, y, n_classes, meta, evaluation)


def episode_seed_sequence(seed: int, pool: str) -> np.random.Generator:
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    return np.random.default_rng([int(seed), POOLS[pool]])


def episodes(
    dataset: Dataset, seeds: Sequence[int] | np.ndarray, pool: str, protocol: Protocol | None = None
) -> Episodes:
    """The episodes with seeds ``seeds`` from ``pool`` (``"meta_train"`` or ``"eval"``), stacked (module doc)."""
    protocol = protocol or Protocol()
    seeds = np.asarray(list(seeds), dtype=np.int64).reshape(-1)
    per_class = dataset.meta_train if pool == "meta_train" else dataset.eval
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {sorted(POOLS)}, got {pool!r}")
    if protocol.ways > dataset.n_classes:
        raise ValueError(f"{protocol.ways}-way episodes need >= {protocol.ways} classes, {dataset.name} has "
                         f"{dataset.n_classes}")  # fmt: skip
    n_e, d = len(seeds), dataset.n_features
    k, q, ways = protocol.k_train, protocol.q_query, protocol.ways
    x_train = np.zeros((n_e, ways * k, d))
    y_train = np.zeros((n_e, ways * k), dtype=np.int64)
    x_query = np.zeros((n_e, ways * q, d))
    y_query = np.zeros((n_e, ways * q), dtype=np.int64)
    classes = np.zeros((n_e, ways), dtype=np.int64)
    for i, s in enumerate(seeds):
        rng = episode_seed_sequence(int(s), pool)
        chosen = rng.choice(dataset.n_classes, ways, replace=False)
        classes[i] = chosen
        tr, qu = [], []
        for label, c in enumerate(chosen):
            pick = per_class[c][rng.permutation(per_class[c].size)[: k + q]]
            tr.append((pick[:k], label))
            qu.append((pick[k:], label))
        tr_idx = np.concatenate([p for p, _ in tr])
        tr_lab = np.concatenate([np.full(k, lab) for _, lab in tr])
        order = rng.permutation(tr_idx.size)
        x_train[i], y_train[i] = dataset.x[tr_idx[order]], tr_lab[order]
        q_idx = np.concatenate([p for p, _ in qu])
        x_query[i], y_query[i] = dataset.x[q_idx], np.concatenate([np.full(q, lab) for _, lab in qu])
    return Episodes(x_train, y_train, x_query, y_query, classes, seeds, pool)
