"""Hidden checks for the model exercises of notebooks 6 and 7 (called from their grade cells).

    grade_function("revive_dead_units", revive_dead_units)   # notebook 6
    grade_function("layer_grad_norms", layer_grad_norms)     # notebook 7
    grade_function("init_std", init_std)                     # notebook 7
    grade_function("accuracy", accuracy)                     # notebook 8 (checks in recorders.cnn)

Each check is seeded (the same submission always gets the same verdict), raises AssertionError
with a message that names the likely misconception, and never writes to stderr: warnings from
the student's code become AssertionErrors. `dead_fraction` is a contract kernel, graded by
`autograder.recorders.kernels.grade_kernel`.
"""

from __future__ import annotations

import builtins
import math
import os
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from autograder.recorders import kernels
from autograder.recorders.replayable import REPLAYABLE
from nonlinearity.checks_models import no_warnings


def _checks() -> dict[str, Callable]:
    from autograder.recorders.cnn import grade_accuracy  # notebook 8

    return {
        "revive_dead_units": _grade_revive_dead_units,
        "layer_grad_norms": _grade_layer_grad_norms,
        "init_std": _grade_init_std,
        "accuracy": grade_accuracy,
    }




def grade_function(name: str, fn: Callable) -> None:
    """Run the hidden checks of exercise `name` on the student's function `fn`.

    Inside the grading sandbox (kernels.RECORDS_ENV set), a replayable check also records what fn
    returned, for autograder.judging.trusted to run the same check again on the recording."""
    checks = _checks()
    if name not in checks:
        raise KeyError(f"no hidden checks for {name!r}")
    if not callable(fn):
        raise AssertionError(f"{name} is not a function")
    folder = os.environ.get(kernels.RECORDS_ENV)
    if folder and name in REPLAYABLE:
        recorder = Recorder(fn)
        try:
            with no_warnings(name):
                checks[name](recorder)
        finally:
            recorder.save(folder, name)
        return
    with no_warnings(name):
        checks[name](fn)


class Recorder:
    """Calls fn and keeps what each call returned (kernels.snapshot) or raised, as plain data."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self.calls: list[dict] = []
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, *args, **kwargs):
        try:
            out = self.fn(*args, **kwargs)
        except Exception as exc:
            self.calls.append({"raised": type(exc).__name__, "message": str(exc)[:500]})
            raise
        self.calls.append({"output": kernels.output_meta(kernels.snapshot(out), self.arrays)})
        return out

    def save(self, folder, name: str) -> None:
        kernels.write_record_files(folder, name, {"calls": self.calls}, self.arrays)


def _opaque(kind: str):
    """A stand-in for a returned object that was not an array (a list, a tensor...): an object of
    a class with the same name, so that messages read the same; it fails every value check."""
    cls = type(kind.rsplit(".", 1)[-1], (), {"__repr__": lambda self: f"<{kind}>"})
    return cls()


class _Replayer:
    """Gives back, call by call, what the student's function returned in the kernel."""

    def __init__(self, name: str, calls: list, arrays: dict):
        self.name, self.calls, self.arrays = name, calls, arrays

    def __call__(self, *args, **kwargs):
        if not self.calls:
            raise kernels.RecordsError(f"the hidden checks of {self.name} did not run to the end")
        call = self.calls.pop(0)
        if not isinstance(call, dict):
            raise kernels.RecordsError(f"malformed records for {self.name}")
        if "raised" in call:
            error = getattr(builtins, str(call["raised"]), None)
            if not (isinstance(error, type) and issubclass(error, Exception)):
                error = type(str(call["raised"]), (Exception,), {})
            raise error(str(call.get("message", "")))
        out = kernels.output_from(call.get("output"), self.arrays)
        if out is None or out.kind == "NoneType":
            return None
        if out.kind == "numpy.ndarray":
            return out.value
        if out.value is not None and out.value.ndim == 0:
            return out.value.item() if out.kind in ("float", "int") else out.value[()]
        return _opaque(out.kind)


def replay(folder, name: str) -> str | None:
    """Run the check of `name` again on the recording in `folder`: None (pass) or the message."""
    try:
        meta, arrays = kernels.read_record_files(folder, name)
        calls = meta.get("calls")
        if not isinstance(calls, list):
            return f"malformed records for {name}"
        _checks()[name](_Replayer(name, list(calls), arrays))
    except (AssertionError, kernels.RecordsError) as err:
        return str(err)
    except Exception as err:  # noqa: BLE001 - a recording that breaks the check fails it
        return f"{name}: {type(err).__name__}: {err}"
    return None


# ---------------------------------------------------------------- revive_dead_units


def _layer_and_preacts(seed: int, fan_in: int, units: int, n_dead: int):
    gen = torch.Generator().manual_seed(seed)
    layer = nn.Linear(fan_in, units)
    with torch.no_grad():
        layer.weight.normal_(0.0, 0.3, generator=gen)
        layer.bias.normal_(-1.0, 0.2, generator=gen)
    rng = np.random.default_rng(seed)
    preacts = rng.normal(size=(64, units))
    dead = np.zeros(units, dtype=bool)
    dead[rng.choice(units, size=n_dead, replace=False)] = True
    preacts[:, dead] = -np.abs(preacts[:, dead])
    alive_idx = np.flatnonzero(~dead)
    if len(alive_idx) >= 2 and n_dead >= 2:
        dead_idx = np.flatnonzero(dead)
        preacts[:, dead_idx[0]] = 0.0  # exactly zero everywhere: dead (<= 0)
        # alive by the slimmest margin: negative everywhere but one tiny positive value
        preacts[:, alive_idx[0]] = -np.abs(preacts[:, alive_idx[0]])
        preacts[5, alive_idx[0]] = 1e-9
    return layer, preacts, dead


def _grade_revive_dead_units(fn: Callable) -> None:
    fan_in, units, n_dead = 200, 300, 120
    layer, preacts, dead = _layer_and_preacts(1, fan_in, units, n_dead)
    weight, bias = layer.weight, layer.bias
    before_w = layer.weight.detach().clone()
    before_b = layer.bias.detach().clone()
    preacts_copy = preacts.copy()
    n = fn(layer, preacts, torch.Generator().manual_seed(7))

    assert np.array_equal(preacts, preacts_copy), "revive_dead_units modified `preacts` in place"
    assert layer.weight is weight and layer.bias is bias, (
        "layer.weight / layer.bias were replaced by new tensors: change their rows in place "
        "(under torch.no_grad()) so an optimizer that holds them still sees the change"
    )
    assert layer.weight.requires_grad and layer.bias.requires_grad, (
        "the layer's parameters lost requires_grad"
    )
    changed = ~np.all((layer.weight.detach() == before_w).numpy(), axis=1)
    if changed.sum() == units:
        raise AssertionError(
            "every unit was re-initialised: only units that are dead (<= 0 on every sample) may be"
        )
    zero_col = np.flatnonzero(np.all(preacts == 0.0, axis=0))
    strictly_negative = dead & (preacts != 0).any(axis=0)
    if len(zero_col) and not changed[zero_col[0]] and np.array_equal(changed, strictly_negative):
        raise AssertionError(
            "a unit whose pre-activations are exactly 0 on every sample is dead too: use <= 0, not < 0"
        )
    assert np.array_equal(changed, dead), (
        f"{int((changed & ~dead).sum())} live unit(s) changed and "
        f"{int((dead & ~changed).sum())} dead unit(s) "
        "kept their weights: re-initialise exactly the units whose pre-activation is <= 0 on every sample"
    )
    assert n is not None and np.ndim(n) == 0 and int(n) == n_dead, (
        f"revive_dead_units should return the number of revived units, {n_dead}, got {n!r}"
    )
    assert torch.equal(layer.bias.detach()[~torch.as_tensor(dead)], before_b[~torch.as_tensor(dead)]), (
        "the bias of a live unit changed"
    )
    new_b = layer.bias.detach()[torch.as_tensor(dead)]
    assert torch.all(new_b == 0), (
        f"the bias of a revived unit should be 0 (it was {float(new_b.abs().max()):.3g} somewhere): "
        "a negative bias is what kept it dead"
    )
    new_w = layer.weight.detach()[torch.as_tensor(dead)].double()
    expected_std = math.sqrt(2.0 / fan_in)
    std = float(new_w.std())
    mean = float(new_w.mean())
    lookalikes = (("Xavier", math.sqrt(2.0 / (fan_in + units))),
                  ("torch's default", 1 / math.sqrt(3 * fan_in)),
                  ("the He variance instead of the std", 2.0 / fan_in))
    for label, value in lookalikes:
        if abs(std - value) < 0.03 * value and abs(value - expected_std) > 0.1 * expected_std:
            raise AssertionError(
                f"new weights have std {std:.4f}, which matches {label} ({value:.4f}); "
                f"He initialisation for fan_in={fan_in} has std sqrt(2/fan_in) = {expected_std:.4f}"
            )
    assert abs(std - expected_std) < 0.05 * expected_std, (
        f"new weights should have std sqrt(2/fan_in) = {expected_std:.4f} (He), got {std:.4f}"
    )
    assert abs(mean) < 4 * expected_std / math.sqrt(new_w.numel()), (
        f"new weights should have mean 0, got {mean:.4f}"
    )
    assert float(new_w.std(dim=0).mean()) > 0.5 * expected_std, (
        "the revived units all got the same weights: draw a fresh row for each unit"
    )

    # reproducible: the same generator seed gives the same layer
    a, pa, _ = _layer_and_preacts(2, 30, 40, 10)
    b, pb, _ = _layer_and_preacts(2, 30, 40, 10)
    fn(a, pa, torch.Generator().manual_seed(3))
    fn(b, pb, torch.Generator().manual_seed(3))
    assert torch.equal(a.weight, b.weight), (
        "two calls with generators seeded alike gave different weights: draw the new weights "
        "with torch.randn(..., generator=generator)"
    )

    # no dead unit: nothing changes, 0 returned; a torch tensor of pre-activations works too
    c, pc, _ = _layer_and_preacts(3, 20, 30, 0)
    wc = c.weight.detach().clone()
    n0 = fn(c, torch.as_tensor(np.abs(pc) + 0.1), torch.Generator().manual_seed(0))
    assert n0 is not None and int(n0) == 0 and torch.equal(c.weight, wc), (
        "with no dead unit nothing should change and the function should return 0"
    )


# ---------------------------------------------------------------- layer_grad_norms


def _deep_model(seed: int, sizes, activation: Callable[[], nn.Module]) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(a, b)
        with torch.no_grad():
            linear.weight.normal_(0.0, math.sqrt(2.0 / (a + b)), generator=gen)
            linear.bias.normal_(0.0, 0.5, generator=gen)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _reference(model, x, y, loss_fn, what="weight") -> np.ndarray:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    params = [getattr(m, what) for m in linears]
    grads = torch.autograd.grad(loss_fn(model(x), y), params)
    return np.array([float(g.double().norm()) for g in grads])


def _grade_layer_grad_norms(fn: Callable) -> None:
    cases = []
    gen = torch.Generator().manual_seed(11)
    m1 = _deep_model(11, [10, 32, 32, 32, 32, 32, 32, 1], nn.Sigmoid)
    cases.append((m1, torch.randn(64, 10, generator=gen), torch.randn(64, 1, generator=gen), nn.MSELoss()))
    m2 = _deep_model(12, [4, 16, 8, 5], nn.Tanh)
    cases.append((m2, torch.randn(32, 4, generator=gen), torch.randint(0, 5, (32,), generator=gen),
                  nn.CrossEntropyLoss()))
    m3 = _deep_model(13, [6, 3], nn.ReLU)  # a single Linear layer
    cases.append((m3, torch.randn(16, 6, generator=gen), torch.randn(16, 3, generator=gen), nn.MSELoss()))

    for k, (model, x, y, loss_fn) in enumerate(cases):
        n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
        expected = _reference(model, x, y, loss_fn)
        # stale gradients from an earlier backward pass must not leak into the result
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.37)
        before = [p.detach().clone() for p in model.parameters()]
        x_before, y_before = x.clone(), y.clone()
        actual = fn(model, x, y, loss_fn)
        label = f"model {k + 1} ({n_linear} Linear layer{'s' if n_linear > 1 else ''})"
        assert isinstance(actual, np.ndarray), f"{label}: return a numpy array, got {type(actual).__name__}"
        assert actual.shape == (n_linear,), f"{label}: expected shape ({n_linear},), got {actual.shape}"
        assert np.issubdtype(actual.dtype, np.floating), f"{label}: expected floats, got dtype {actual.dtype}"
        assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True)), (
            f"{label}: the parameters changed: measure the gradients, never take an optimizer step"
        )
        assert torch.equal(x, x_before) and torch.equal(y, y_before), f"{label}: x or y was modified"
        if np.allclose(actual, expected, rtol=1e-4, atol=1e-12):
            continue
        with_bias = np.hypot(expected, _reference(model, x, y, loss_fn, "bias"))
        stale = np.array([float((g_true_plus).norm()) for g_true_plus in _stale_grads(model, x, y, loss_fn)])
        diagnoses = [
            (expected[::-1], "the norms come last layer first: return them first layer first"),
            (expected**2, "these are squared norms: take the square root"),
            (with_bias, "the bias gradient is included: use the weight gradient of each nn.Linear only"),
            (stale, "stale gradients leaked in: .grad already held values from an earlier backward pass; "
                    "clear them first (model.zero_grad()) or use torch.autograd.grad"),
        ]
        for wrong, message in diagnoses:
            if np.allclose(actual, wrong, rtol=1e-4) and not np.allclose(wrong, expected, rtol=1e-4):
                raise AssertionError(f"{label}: {message}")
        raise AssertionError(
            f"{label}: expected the Frobenius norms of dLoss/dW, first layer first, "
            f"{np.array2string(expected, precision=4)}, "
            f"got {np.array2string(np.asarray(actual), precision=4)}"
        )


def _stale_grads(model, x, y, loss_fn):
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    grads = torch.autograd.grad(loss_fn(model(x), y), [m.weight for m in linears])
    return [g + 0.37 for g in grads]


# ---------------------------------------------------------------- init_std


def _grade_init_std(fn: Callable) -> None:
    # non-square first: on a square layer several mistakes give the same number
    fans = [(784, 256), (256, 784), (3, 1000), (4096, 10), (64, 64), (1, 1)]
    for fan_in, fan_out in fans:
        expected = {"xavier": math.sqrt(2.0 / (fan_in + fan_out)), "he": math.sqrt(2.0 / fan_in)}
        for kind, value in expected.items():
            call = f"init_std({fan_in}, {fan_out}, {kind!r})"
            actual = fn(fan_in, fan_out, kind)
            assert actual is not None and np.ndim(actual) == 0, f"{call}: return one number, got {actual!r}"
            actual = float(actual)
            if math.isclose(actual, value, rel_tol=1e-9):
                continue
            other = "he" if kind == "xavier" else "xavier"
            diagnoses = [
                (value**2, "this is the variance; return its square root, the standard deviation"),
                (expected[other], f"this is the {other} value: are the kinds swapped?"),
                (math.sqrt(2.0 / fan_out), "He initialisation divides by fan_in, not fan_out"),
                (math.sqrt(1.0 / (fan_in + fan_out)),
                 "Xavier's variance is 2 / (fan_in + fan_out): the 2 is missing"),
                (math.sqrt(1.0 / fan_in), "He's variance is 2 / fan_in (the 2 makes up for ReLU zeroing half "
                                          "the inputs); 1 / fan_in is LeCun's"),
            ]
            for wrong, message in diagnoses:
                if math.isclose(actual, wrong, rel_tol=1e-9) and not math.isclose(wrong, value, rel_tol=1e-9):
                    raise AssertionError(f"{call} = {actual:.6g}: {message} (expected {value:.6g})")
            raise AssertionError(f"{call} should be {value:.6g}, got {actual:.6g}")
    for kind in ("uniform", ""):
        try:
            fn(10, 10, kind)
        except ValueError:
            continue
        except Exception as error:  # any other exception is the wrong kind of refusal
            raise AssertionError(
                f"init_std(10, 10, {kind!r}) raised {type(error).__name__}; "
                "an unknown kind should raise ValueError"
            ) from None
        raise AssertionError(f"init_std(10, 10, {kind!r}) should raise ValueError (unknown kind)")
