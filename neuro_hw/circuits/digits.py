"""Data for the error-driven learning task: sklearn's 8x8 digits, split, one-hot targets and the sample order.

Everything that trains on the digits (the numpy ground truth :mod:`neuro_hw.circuits.error_driven_numpy`,
the circuit in the float reference, the fixed-point emulator) takes its data and its sample order from here,
so the three see exactly the same samples in exactly the same order.

* :func:`load_digits_split`: ``sklearn.datasets.load_digits()`` (1797 images, bundled with scikit-learn: no
  download), pixels / 16 in [0, 1]^64, split with ``train_test_split(test_size=0.25, random_state=0,
  stratify=y)``: 1347 training and 450 test samples.
* :func:`epoch_order`: epoch ``k`` visits the training set in the order ``rng.permutation(n)``, the ``k``-th
  permutation drawn from one ``np.random.default_rng(seed)``; the epochs are concatenated.
* :func:`load_npz`: a user-supplied data set (arrays ``x`` (N, d) in [0, 1] and ``y`` (N,) integer labels),
  validated with errors that name the file and the field.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass

import numpy as np

from neuro_hw.errors import InputError

N_CLASSES = 10
#: Largest pixel value of ``load_digits`` (4-bit grey levels): x = pixels / PIXEL_MAX.
PIXEL_MAX = 16.0


@dataclass(frozen=True)
class DigitsSplit:
    """A train/test split: inputs as float64 in [0, 1], labels as int64 in ``0..n_classes-1``."""

    x_train: np.ndarray  # (n_train, d) float64
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray  # (n_test, d) float64
    y_test: np.ndarray  # (n_test,) int64
    n_classes: int = N_CLASSES

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def n_test(self) -> int:
        return int(self.x_test.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x_train.shape[1])

    def subset(self, n_train: int, n_test: int | None = None) -> DigitsSplit:
        """The first ``n_train`` training (and ``n_test`` test) samples: a smaller task for quick checks."""
        n_test = self.n_test if n_test is None else n_test
        return DigitsSplit(
            self.x_train[:n_train], self.y_train[:n_train], self.x_test[:n_test], self.y_test[:n_test], self.n_classes
        )


def load_digits_split(test_size: float = 0.25, random_state: int = 0) -> DigitsSplit:
    """sklearn's digits, pixels / 16, split stratified with ``random_state`` (defaults: 1347 train / 450 test)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float64) / PIXEL_MAX
    y = np.asarray(data.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=random_state, stratify=y
    )
    return DigitsSplit(
        np.ascontiguousarray(x_train),
        np.ascontiguousarray(y_train, dtype=np.int64),
        np.ascontiguousarray(x_test),
        np.ascontiguousarray(y_test, dtype=np.int64),
    )


def one_hot(y: np.ndarray, n_classes: int = N_CLASSES) -> np.ndarray:
    """``(N,)`` integer labels -> ``(N, n_classes)`` float64 one-hot rows."""
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d integer array, got shape {y.shape} dtype {y.dtype}")
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}")
    out = np.zeros((y.shape[0], n_classes), dtype=np.float64)
    out[np.arange(y.shape[0]), y] = 1.0
    return out


def epoch_order(n: int, epochs: int, seed: int) -> np.ndarray:
    """The sample order of ``epochs`` passes over ``n`` samples: ``(epochs * n,)`` int64.

    ``rng = np.random.default_rng(seed)``; epoch ``k`` is ``rng.permutation(n)``, drawn in turn, so the first
    ``k`` epochs of a longer run are the same as a ``k``-epoch run.
    """
    if n < 1 or epochs < 1:
        raise ValueError(f"n and epochs must be positive, got n={n}, epochs={epochs}")
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(n) for _ in range(epochs)]).astype(np.int64)


def load_npz(path: str | os.PathLike[str], n_classes: int = N_CLASSES) -> tuple[np.ndarray, np.ndarray]:
    """A user data set from an ``.npz`` file: ``x`` (N, d) float in [0, 1] and ``y`` (N,) integers in
    ``0..n_classes-1``; returns ``(x float64, y int64)``.

    Every refusal is an :class:`~neuro_hw.errors.InputError` naming the file and the field (``x`` or ``y``):
    unreadable file, missing array, wrong shape, non-numeric or non-finite values, values outside [0, 1],
    non-integer labels, labels out of range, different numbers of samples.
    """
    file = os.fspath(path)
    try:
        with np.load(file, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except FileNotFoundError:
        raise InputError("file not found", file=file) from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"not a readable .npz archive ({exc})", file=file) from None
    for key in ("x", "y"):
        if key not in arrays:
            raise InputError(f"missing array '{key}' (the file has {sorted(arrays)})", file=file, field=key)

    x = arrays["x"]
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)) or x.dtype == bool:
        raise InputError(f"expected a numeric array, got dtype {x.dtype}", file=file, field="x")
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise InputError(f"expected shape (N, d) with N, d >= 1, got {x.shape}", file=file, field="x")
    x = x.astype(np.float64)
    bad = ~np.isfinite(x)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            f"{int(bad.sum())} non-finite value(s) (NaN or inf), first at [{row}, {col}]", file=file, field="x"
        )
    outside = (x < 0.0) | (x > 1.0)
    if outside.any():
        row, col = np.argwhere(outside)[0]
        raise InputError(
            f"values must lie in [0, 1]: {int(outside.sum())} outside, first x[{row}, {col}] = {x[row, col]!r} "
            f"(range {x.min()!r}..{x.max()!r})",
            file=file,
            field="x",
        )

    y = arrays["y"]
    if y.ndim != 1:
        raise InputError(f"expected shape (N,), got {y.shape}", file=file, field="y")
    if y.shape[0] != x.shape[0]:
        raise InputError(f"{y.shape[0]} labels for {x.shape[0]} samples in 'x'", file=file, field="y")
    if np.issubdtype(y.dtype, np.floating):
        if not np.all(np.isfinite(y)):
            raise InputError("labels must be finite integers, found NaN or inf", file=file, field="y")
        if np.any(y != np.round(y)):
            raise InputError("labels must be integers, found fractional values", file=file, field="y")
    elif not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
        raise InputError(f"labels must be integers, got dtype {y.dtype}", file=file, field="y")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= n_classes:
        raise InputError(f"labels must lie in 0..{n_classes - 1}, got {y.min()}..{y.max()}", file=file, field="y")
    return x, y
