"""Visible checks for the model exercises of notebooks 6, 7 and 9 (run by the students).

`check_function(name, fn)` runs a few quick, seeded checks of one exercise and raises an
AssertionError whose message names the input, the expected and the actual value, and the
likely misconception. The contract kernels (`dead_fraction` among them) are checked by
`nonlinearity.checks.check_kernel`; the exercises here take torch models or layers:

- `revive_dead_units(layer, preacts, generator=None) -> int`          (notebook 6)
- `layer_grad_norms(model, x, y, loss_fn) -> np.ndarray (n_linear,)`  (notebook 7)
- `init_std(fan_in, fan_out, kind) -> float`                          (notebook 7)
- `output_choices`: task -> (output activation, loss), its form only (notebook 9)

Nothing here writes to stderr: warnings raised by the student's code become AssertionErrors.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def no_warnings(name: str):
    """Turn any warning raised inside the block into one AssertionError (nothing reaches stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with np.errstate(all="warn"):
            yield
    if caught:
        first = caught[0]
        raise AssertionError(f"{name} raised a warning: {first.category.__name__}: {first.message}")


def check_function(name: str, fn: Callable) -> None:
    """Run the visible checks of exercise `name` on the student's function `fn`."""
    checks = {
        "revive_dead_units": _check_revive_dead_units,
        "layer_grad_norms": _check_layer_grad_norms,
        "init_std": _check_init_std,
    }
    if name not in checks:
        raise KeyError(f"no visible checks for {name!r}; known: {sorted(checks)}")
    with no_warnings(name):
        checks[name](fn)
    print(f"{name}: visible checks passed.")


# ---------------------------------------------------------------- notebook 6


def _check_revive_dead_units(fn: Callable) -> None:
    gen = torch.Generator().manual_seed(0)
    layer = nn.Linear(50, 4)
    with torch.no_grad():
        layer.weight.normal_(0.0, 1.0, generator=gen)
        layer.bias.fill_(0.5)
    weight, bias = layer.weight, layer.bias
    before_w = layer.weight.detach().clone()
    before_b = layer.bias.detach().clone()
    # units 1 and 3 are dead (<= 0 on every sample; unit 3 touches 0 exactly), 0 and 2 alive
    preacts = np.array([[1.0, -1.0, -2.0, 0.0],
                        [-1.0, -0.5, 0.1, -3.0],
                        [0.5, -2.0, -1.0, 0.0]])
    preacts_copy = preacts.copy()
    n = fn(layer, preacts, torch.Generator().manual_seed(1))
    assert np.array_equal(preacts, preacts_copy), "revive_dead_units modified `preacts` in place"
    assert layer.weight is weight and layer.bias is bias, (
        "revive_dead_units replaced layer.weight or layer.bias by new tensors; change their rows "
        "in place (under torch.no_grad()) so that an optimizer holding them still sees the change"
    )
    assert n is not None and int(n) == 2, (
        f"preacts\n{preacts}\nhas 2 dead units (columns 1 and 3: <= 0 on every row; a pre-activation "
        f"of exactly 0 counts as dead), so revive_dead_units should return 2, got {n!r}"
    )
    alive = [0, 2]
    W, b = layer.weight.detach(), layer.bias.detach()
    assert torch.equal(W[alive], before_w[alive]) and torch.equal(b[alive], before_b[alive]), (
        "the live units 0 and 2 changed: only dead units may be re-initialised"
    )
    for i in (1, 3):
        assert not torch.equal(W[i], before_w[i]), f"dead unit {i} kept its old weights"
        assert float(b[i]) == 0.0, f"dead unit {i}: bias should be reset to 0, got {float(b[i])}"
    std = float(W[[1, 3]].std())
    expected = math.sqrt(2.0 / 50)
    assert 0.6 * expected < std < 1.5 * expected, (
        f"new weights of a layer with in_features=50 should have std sqrt(2/50) = {expected:.3f} "
        f"(He initialisation), got {std:.3f}"
    )


# ---------------------------------------------------------------- notebook 7


def _small_model(gen: torch.Generator) -> nn.Sequential:
    model = nn.Sequential(nn.Linear(3, 5), nn.Sigmoid(), nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 1))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 1.0, generator=gen)
    return model


def _reference_norms(model: nn.Module, x, y, loss_fn) -> np.ndarray:
    weights = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(loss_fn(model(x), y), weights)
    return np.array([float(g.double().norm()) for g in grads])


def _check_layer_grad_norms(fn: Callable) -> None:
    gen = torch.Generator().manual_seed(0)
    model = _small_model(gen)
    x = torch.randn(8, 3, generator=gen)
    y = torch.randn(8, 1, generator=gen)
    loss_fn = nn.MSELoss()
    expected = _reference_norms(model, x, y, loss_fn)
    before = [p.detach().clone() for p in model.parameters()]
    actual = fn(model, x, y, loss_fn)
    assert isinstance(actual, np.ndarray), (
        f"layer_grad_norms should return a numpy array, got {type(actual).__name__}"
    )
    assert actual.shape == (3,), (
        f"a model with 3 nn.Linear layers needs 3 norms (shape (3,)), got shape {actual.shape}"
    )
    symmetric = np.allclose(expected, expected[::-1], rtol=1e-5)
    if np.allclose(actual, expected[::-1], rtol=1e-5) and not symmetric:
        raise AssertionError("the norms come last layer first: return them first layer first")
    if np.allclose(actual, expected**2, rtol=1e-5):
        raise AssertionError("these are squared norms: take the square root (torch.linalg.norm)")
    assert np.allclose(actual, expected, rtol=1e-5), (
        f"expected the Frobenius norms of dLoss/dW of each nn.Linear, {np.round(expected, 6).tolist()}, "
        f"got {np.round(actual, 6).tolist()}"
    )
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)), (
        "layer_grad_norms changed the model's parameters: only measure, never take an optimizer step"
    )
    again = fn(model, x, y, loss_fn)
    assert np.allclose(again, expected, rtol=1e-5), (
        f"a second call gave {np.round(again, 6).tolist()} instead of {np.round(expected, 6).tolist()}: "
        "gradients accumulate in .grad across backward passes; clear them first (model.zero_grad())"
    )


def _check_init_std(fn: Callable) -> None:
    cases = [(100, 100, "xavier", math.sqrt(2 / 200)), (100, 100, "he", math.sqrt(2 / 100)),
             (300, 100, "xavier", math.sqrt(2 / 400)), (300, 100, "he", math.sqrt(2 / 300))]
    for fan_in, fan_out, kind, expected in cases:
        actual = fn(fan_in, fan_out, kind)
        call = f"init_std({fan_in}, {fan_out}, {kind!r})"
        assert actual is not None and np.ndim(actual) == 0, f"{call} should return one number, got {actual!r}"
        if math.isclose(float(actual), expected**2, rel_tol=1e-9):
            raise AssertionError(
                f"{call} returned the variance {expected**2:.6g}; return the std {expected:.6g}"
            )
        assert math.isclose(float(actual), expected, rel_tol=1e-9), (
            f"{call} should be {expected:.6g}, got {float(actual):.6g}"
        )
    try:
        fn(10, 10, "uniform")
    except ValueError:
        pass
    else:
        raise AssertionError("init_std(10, 10, 'uniform') should raise ValueError (unknown kind)")


# ---------------------------------------------------------------- notebook 9

OUTPUT_ACTIVATIONS = ("identity", "sigmoid", "softmax", "relu", "tanh")
OUTPUT_LOSSES = ("squared_error", "binary_cross_entropy", "cross_entropy")


def choice_text(choice) -> str:
    """An (activation, loss) pair as one line of text, "sigmoid + binary_cross_entropy".

    Names are compared without case or surrounding spaces; a malformed choice raises an
    AssertionError that says what the answer should look like.
    """
    assert isinstance(choice, tuple | list) and len(choice) == 2, (
        f"each answer should be a pair (activation, loss), e.g. (\"identity\", \"squared_error\"); "
        f"got {choice!r}")
    activation, loss = (str(part).strip().lower() for part in choice)
    assert activation in OUTPUT_ACTIVATIONS, (
        f"{activation!r} is not one of the output activations {OUTPUT_ACTIVATIONS}")
    assert loss in OUTPUT_LOSSES, f"{loss!r} is not one of the losses {OUTPUT_LOSSES}"
    return f"{activation} + {loss}"


def check_output_choice(choices, task: str) -> None:
    """Visible check of notebook 9's exercise: the answer for `task` is there and well formed.

    Only the format is checked here; whether the choice is right is for the hidden tests.
    """
    assert isinstance(choices, dict), f"output_choices should be a dict, got {type(choices).__name__}"
    assert task in choices, f"output_choices has no answer for task {task!r}"
    print(f"task {task}: {choice_text(choices[task])} (well formed; graded when you hand in)")
