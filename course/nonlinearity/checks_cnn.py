"""Visible checks for notebook 8's exercises `make_cnn` and `accuracy` (the hidden checks run more
of the same).

    accuracy(logits, labels) -> float

the fraction of rows of logits (N, C) whose largest entry sits at the row's label (labels: (N,)
int64), as a Python float in [0, 1]; inputs unchanged.

The contract, as the notebook states it:

    make_cnn(activation, in_channels=3, n_classes=10, *, width=16, image_size=32) -> nn.Module

three blocks of nn.Conv2d(kernel_size=3, padding=1) -> activation module -> nn.MaxPool2d(2)
(nn.AvgPool2d(2) is accepted too) with width, 2*width, 4*width output channels, then
nn.Flatten() and one nn.Linear to n_classes logits (no softmax). Activation names map to
modules as in ACTIVATION_MODULES. Input float32 (N, in_channels, image_size, image_size) with
image_size divisible by 8; output float32 logits (N, n_classes).

Every check raises AssertionError with a message that names what is wrong; none writes to
stderr (warnings become AssertionErrors), and the torch random state is restored afterwards.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from nonlinearity.cnn import ACTIVATIONS

ACTIVATION_MODULES = ACTIVATIONS  # the activations make_cnn must accept, by name
_ACTIVATION_TYPES = tuple(ACTIVATION_MODULES.values()) + (nn.ELU, nn.Softplus, nn.Hardswish, nn.Mish)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_HARMLESS = (nn.Flatten, nn.Dropout, nn.Identity)


@contextlib.contextmanager
def quiet_torch(seed: int) -> Iterator[None]:
    """Seeded, single-threaded torch; the caller's random state and thread count come back after.

    One thread: these models are tiny, and several threads on a busy machine (a grading batch,
    a laptop running other work) spend far more time waiting for each other than computing.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)


def _call(fn: Callable, *args, **kwargs):
    """fn(*args, **kwargs) with warnings turned into AssertionErrors (nothing reaches stderr)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    if caught:
        w = caught[0]
        raise AssertionError(f"a warning was raised: {w.category.__name__}: {w.message}")
    return result


def build(make_cnn: Callable, activation: str, in_channels: int, n_classes: int, *, width: int,
          image_size: int) -> nn.Module:
    """Call the builder; explain a TypeError about the signature, reject non-modules."""
    label = (f"make_cnn({activation!r}, {in_channels}, {n_classes}, width={width}, "
             f"image_size={image_size})")
    try:
        model = _call(make_cnn, activation, in_channels, n_classes, width=width, image_size=image_size)
    except NotImplementedError:
        raise AssertionError("make_cnn is not implemented yet (it raises NotImplementedError)") from None
    except TypeError as error:
        raise AssertionError(f"{label} raised TypeError: {error}. The signature is make_cnn(activation, "
                             "in_channels=3, n_classes=10, *, width=16, image_size=32)") from None
    if not isinstance(model, nn.Module):
        raise AssertionError(f"{label} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def forward_trace(model: nn.Module, x: torch.Tensor) -> tuple[list[tuple[nn.Module, tuple]], torch.Tensor]:
    """Run model(x) and record (leaf module, output shape) in the order the leaves were called."""
    calls = []
    hooks = [m.register_forward_hook(lambda mod, _inp, out: calls.append((mod, tuple(out.shape))))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            out = _call(model, x)
    except AssertionError:
        raise
    except Exception as error:
        raise AssertionError(f"the forward pass on input of shape {tuple(x.shape)} raised "
                             f"{type(error).__name__}: {error}") from None
    finally:
        for h in hooks:
            h.remove()
    return calls, out


def check_structure(make_cnn: Callable, activation: str, *, in_channels: int = 3, n_classes: int = 10,
                    width: int = 16, image_size: int = 32) -> None:
    """Three conv -> activation -> pool blocks with the asked activation, then a linear head."""
    expected_act = ACTIVATION_MODULES[activation]
    model = build(make_cnn, activation, in_channels, n_classes, width=width, image_size=image_size)
    label = f"make_cnn({activation!r}, width={width}, image_size={image_size})"
    calls, _ = forward_trace(model, torch.zeros(2, in_channels, image_size, image_size))
    layers = [(m, shape) for m, shape in calls if not isinstance(m, _HARMLESS)]
    kinds = [type(m).__name__ for m, _ in layers]
    if layers and isinstance(layers[-1][0], nn.Softmax | nn.LogSoftmax):
        raise AssertionError(f"{label} ends with {kinds[-1]}: return the logits of the Linear layer; "
                             "nn.CrossEntropyLoss applies log-softmax itself")
    for m, _ in layers:
        if isinstance(m, nn.modules.batchnorm._BatchNorm | nn.GroupNorm | nn.LayerNorm):
            raise AssertionError(f"{label} uses {type(m).__name__}: the comparison holds everything but "
                                 "the activation fixed, so the blocks are conv -> activation -> pool only")
    convs = [m for m, _ in layers if isinstance(m, nn.Conv2d)]
    acts = [m for m, _ in layers if isinstance(m, _ACTIVATION_TYPES)]
    if not acts:
        raise AssertionError(f"{label} has no activation module: use layers such as nn.ReLU() (not "
                             "torch.relu inside forward), so the structure can be checked")
    if len(convs) != 3:
        raise AssertionError(f"{label} has {len(convs)} conv block(s) (layers called: {', '.join(kinds)}); "
                             "the network needs exactly three conv -> activation -> pool blocks")
    pattern = kinds[:9]
    for block in range(3):
        conv, act, pool = (layers[3 * block + k][0] if 3 * block + k < len(layers) else None
                           for k in range(3))
        where = f"{label}, block {block + 1}"
        if not isinstance(conv, nn.Conv2d):
            raise AssertionError(f"{where}: expected Conv2d first, found {type(conv).__name__} "
                                 f"(layers called: {', '.join(pattern)})")
        if not isinstance(act, _ACTIVATION_TYPES):
            raise AssertionError(f"{where}: expected the activation after the Conv2d, found "
                                 f"{type(act).__name__} (layers called: {', '.join(pattern)})")
        if type(act) is not expected_act:
            raise AssertionError(f"{where}: activation {activation!r} asks for nn.{expected_act.__name__}, "
                                 f"found nn.{type(act).__name__}")
        if not isinstance(pool, _POOLS):
            found = "nothing" if pool is None else type(pool).__name__
            raise AssertionError(f"{where}: expected a pooling layer (nn.MaxPool2d(2)) after the "
                                 f"activation, found {found} (layers called: {', '.join(pattern)})")
        want = width * 2 ** block
        if conv.out_channels != want:
            raise AssertionError(f"{where}: Conv2d has {conv.out_channels} output channels, expected "
                                 f"{want} (width, 2*width, 4*width)")
        if tuple(conv.kernel_size) != (3, 3):
            raise AssertionError(f"{where}: Conv2d kernel_size is {tuple(conv.kernel_size)}, expected 3")
        spatial = layers[3 * block + 2][1][-2:]
        size = image_size // 2 ** (block + 1)
        if spatial != (size, size):
            raise AssertionError(f"{where}: after pooling the feature maps are {spatial[0]}x{spatial[1]}, "
                                 f"expected {size}x{size} (padding=1 keeps the size, the pool halves it)")
    head = layers[9:]
    if [type(m) for m, _ in head] != [nn.Linear]:
        raise AssertionError(f"{label}: after the three blocks expected Flatten and one Linear layer, found "
                             f"{', '.join(type(m).__name__ for m, _ in head) or 'nothing'}")
    if head[0][0].out_features != n_classes:
        raise AssertionError(f"{label}: the Linear head has {head[0][0].out_features} outputs, expected "
                             f"n_classes = {n_classes}")


def check_output(make_cnn: Callable, activation: str, *, in_channels: int, n_classes: int, width: int,
                 image_size: int, batch: int = 3) -> None:
    """Output shape (batch, n_classes), float32, finite, and logits rather than probabilities."""
    model = build(make_cnn, activation, in_channels, n_classes, width=width, image_size=image_size)
    gen = torch.Generator().manual_seed(batch * 1000 + image_size)
    x = torch.randn(batch, in_channels, image_size, image_size, generator=gen)
    _, out = forward_trace(model, x)
    label = (f"make_cnn({activation!r}, {in_channels}, {n_classes}, width={width}, "
             f"image_size={image_size})")
    if not isinstance(out, torch.Tensor):
        raise AssertionError(f"{label}: the forward pass returned {type(out).__name__}, not a tensor")
    if tuple(out.shape) != (batch, n_classes):
        raise AssertionError(f"{label}: input {tuple(x.shape)} gave output {tuple(out.shape)}, "
                             f"expected {(batch, n_classes)}")
    if out.dtype != torch.float32:
        raise AssertionError(f"{label}: output dtype {out.dtype}, expected torch.float32")
    if not torch.isfinite(out).all():
        raise AssertionError(f"{label}: the output has NaN or inf values")
    if n_classes > 1 and (out >= 0).all() and (out <= 1).all() and torch.allclose(
            out.sum(dim=1), torch.ones(batch), atol=1e-4):
        raise AssertionError(f"{label}: the outputs are probabilities (each row sums to 1); return "
                             "logits, nn.CrossEntropyLoss applies log-softmax itself")


def check_training(make_cnn: Callable, activation: str, *, seed: int = 0, steps: int = 40,
                   factor: float = 0.5) -> None:
    """Overfit one tiny batch: the loss must fall below `factor` times its start, gradients reach conv 1."""
    with quiet_torch(seed):
        model = build(make_cnn, activation, 3, 4, width=8, image_size=16)
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(16, 3, 16, 16, generator=gen)
        y = torch.arange(16) % 4
        params = list(model.parameters())
        if not params:
            raise AssertionError(f"make_cnn({activation!r}) has no trainable parameters")
        optimiser = torch.optim.Adam(params, lr=1e-2)
        loss_fn = nn.CrossEntropyLoss()
        losses = []
        for step in range(steps):
            loss = _call(loss_fn, _call(model, x), y)
            optimiser.zero_grad()
            _call(loss.backward)
            if step == 0:
                first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
                grad = first.weight.grad
                if grad is None or not torch.isfinite(grad).all() or grad.abs().sum() == 0:
                    raise AssertionError(f"make_cnn({activation!r}): no gradient reaches the first Conv2d; "
                                         "is a layer detached or frozen?")
            optimiser.step()
            losses.append(loss.item())
    if not losses[-1] < factor * losses[0]:
        raise AssertionError(f"make_cnn({activation!r}): training on one tiny batch for {steps} Adam steps "
                             f"took the loss from {losses[0]:.3f} only to {losses[-1]:.3f} (expected below "
                             f"{factor * losses[0]:.3f}); does the gradient flow through every layer?")


def check_cnn(make_cnn: Callable) -> None:
    """The visible checks: structure (relu, gelu), output shape, a short training smoke test."""
    with quiet_torch(0):
        for activation in ("relu", "gelu"):
            check_structure(make_cnn, activation)
        check_output(make_cnn, "relu", in_channels=3, n_classes=10, width=16, image_size=32)
        check_output(make_cnn, "sigmoid", in_channels=1, n_classes=4, width=8, image_size=16)
    check_training(make_cnn, "relu")
    print("make_cnn: visible checks passed (structure for relu and gelu, output shapes, "
          "training smoke test).")


# ---------------------------------------------------------------------------------------------
# accuracy(logits, labels) -> float
# ---------------------------------------------------------------------------------------------

def accuracy_case(seed: int, n: int, n_classes: int, *, requires_grad: bool = False):
    """Seeded logits (n, n_classes) without ties, labels (n,) int64 with a known share of hits."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, n_classes, generator=gen)
    labels = torch.randint(0, n_classes, (n,), generator=gen)
    return logits.requires_grad_(requires_grad), labels


def judge_accuracy(accuracy: Callable, logits: torch.Tensor, labels: torch.Tensor) -> None:
    """One call of the student's accuracy, compared with the fraction of argmax hits."""
    n, n_classes = logits.shape
    label = f"accuracy(logits of shape ({n}, {n_classes}), labels of shape ({n},))"
    before = logits.detach().clone(), labels.clone()
    hits = int((logits.detach().argmax(dim=1) == labels).sum())
    expected = hits / n
    try:
        value = accuracy(logits, labels)
    except Exception as error:
        hint = ""
        if "must match the size" in str(error):
            hint = " (one prediction per row: is the argmax over the classes, dim=1?)"
        raise AssertionError(f"{label} raised {type(error).__name__}: {error}{hint}") from None
    if not (torch.equal(logits.detach(), before[0]) and torch.equal(labels, before[1])):
        raise AssertionError(f"{label} changed its inputs in place")
    kind = type(value).__name__
    if kind == "Tensor" or "torch" in repr(type(value)):
        raise AssertionError(f"{label} returned a torch tensor; return a Python float (.item() "
                             "turns a one-element tensor into one)")
    if isinstance(value, bool) or not isinstance(value, float | int | np.floating | np.integer):
        raise AssertionError(f"{label} returned {kind}, not a number; return a Python float")
    value = float(value)
    if math.isclose(value, expected, abs_tol=1e-6):
        return
    wrong_axis = None
    if n == n_classes:  # a square batch: argmax over the classes and over the samples both run
        wrong_axis = int((logits.detach().argmax(dim=0) == labels).sum()) / n
    diagnoses = [
        (float(hits), "this is the number of correct predictions; divide by the number of samples"),
        (100.0 * expected, "this is a percentage; return a fraction between 0 and 1"),
        (1.0 - expected, "this is the error rate (the share of wrong predictions)"),
        (wrong_axis, "the argmax ran over the samples (dim=0); take it over the classes (dim=1), "
                     "one prediction per row"),
    ]
    for wrong, message in diagnoses:
        if wrong is not None and math.isclose(value, wrong, abs_tol=1e-6) and \
                not math.isclose(wrong, expected, abs_tol=1e-6):
            raise AssertionError(f"{label} = {value:.6g}: {message} (expected {expected:.6g}, "
                                 f"{hits} of {n} correct)")
    raise AssertionError(f"{label} = {value:.6g}, expected {expected:.6g} ({hits} of {n} rows have "
                         "their largest logit at the label)")


VISIBLE_ACCURACY_CASES = [(0, 8, 3), (1, 5, 5), (2, 1, 10)]


def check_accuracy(accuracy: Callable) -> None:
    """The visible checks of accuracy: a hand-made example, then seeded random logits."""
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.3, 0.2], [-1.0, -2.0, 4.0], [0.0, 1.0, -1.0]])
    labels = torch.tensor([0, 1, 1, 1])  # rows 0, 1 and 3 are right: 3 of 4
    judge_accuracy(accuracy, logits, labels)
    for seed, n, n_classes in VISIBLE_ACCURACY_CASES:
        judge_accuracy(accuracy, *accuracy_case(seed, n, n_classes))
    print("accuracy: visible checks passed (a hand-made example and 3 random batches).")
