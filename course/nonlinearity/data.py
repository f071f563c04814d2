"""Small two-dimensional toy data sets, generated with numpy: deterministic for a given seed.

Both return (X, y): X float32 of shape (n, 2), y int64 of shape (n,) with labels 0 and 1,
half of the points in each class. No file and no network is involved.
"""

from __future__ import annotations

import numpy as np


def _shuffled(X: np.ndarray, y: np.ndarray, rng: np.random.Generator):
    order = rng.permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.int64)


def make_xor(n: int = 200, *, noise: float = 0.35, seed: int = 0):
    """XOR: four clouds around (±1, ±1); label 1 where the two coordinates differ in sign.

    No straight line separates the classes: opposite corners share a label.
    n: number of points (even); noise: standard deviation of each cloud; seed: RNG seed.
    """
    if n < 4 or n % 2:
        raise ValueError(f"n must be an even number >= 4, got {n}")
    rng = np.random.default_rng(seed)
    signs = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=np.float64)
    corner = np.arange(n) % 4  # corners 0, 1 are class 0; corners 2, 3 are class 1
    X = signs[corner] + noise * rng.standard_normal((n, 2))
    y = (corner >= 2).astype(np.int64)
    return _shuffled(X, y, rng)


def make_moons(n: int = 200, *, noise: float = 0.15, seed: int = 0):
    """Two interleaving half circles ("two moons"), as in scikit-learn's make_moons.

    Class 0: the upper arc (cos t, sin t); class 1: the lower arc (1 - cos t, 0.5 - sin t),
    t in [0, pi], each point moved by Gaussian noise of standard deviation `noise`.
    """
    if n < 2 or n % 2:
        raise ValueError(f"n must be an even number >= 2, got {n}")
    rng = np.random.default_rng(seed)
    half = n // 2
    t = np.linspace(0.0, np.pi, half)
    upper = np.column_stack([np.cos(t), np.sin(t)])
    lower = np.column_stack([1.0 - np.cos(t), 0.5 - np.sin(t)])
    X = np.vstack([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.repeat(np.array([0, 1], dtype=np.int64), half)
    return _shuffled(X, y, rng)
