"""Small-network training helpers for the dead-ReLU and vanishing-gradient notebooks.

One room for everything the notebooks need to train and probe small PyTorch MLPs:
device selection (CUDA, else Apple MPS, else CPU), seeding, a deterministic 2-D data set,
MLP builders with a choice of activation and initialisation, a compact training loop that
returns a per-epoch history, and probes (hidden pre-activations, per-layer gradient norms).

Experiment size: the notebooks run a laptop-sized version by default (about a minute on a
2-core CPU). Set the environment variable ``NONLINEARITY_FULL=1`` before starting Jupyter
(or before ``import nonlinearity.training``; `full_size()` reads it at call time) to run the
full-size experiments: more samples, more epochs, more seeds, finer grids.
``NONLINEARITY_DEVICE=cpu`` (or ``cuda``, ``mps``) forces a device.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from nonlinearity.data import make_moons

FULL_ENV = "NONLINEARITY_FULL"
DEVICE_ENV = "NONLINEARITY_DEVICE"

# name -> factory; Leaky ReLU uses torch's default slope 0.01, as in the glossary card's example.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}
INITS = ("default", "xavier", "he")


def full_size() -> bool:
    """True when the environment variable NONLINEARITY_FULL is 1, true or yes (as in nonlinearity.cnn)."""
    return os.environ.get(FULL_ENV, "").strip().lower() in {"1", "true", "yes"}


def pick(small, full):
    """`full` for the full-size experiment (NONLINEARITY_FULL=1), else `small`."""
    return full if full_size() else small


def select_device(prefer: str | None = None) -> torch.device:
    """CUDA if available, else Apple MPS if available, else CPU.

    `prefer` (or the NONLINEARITY_DEVICE environment variable) names a device to use instead;
    asking for one that is not available raises RuntimeError rather than silently falling back.
    """
    prefer = prefer or os.environ.get(DEVICE_ENV) or None
    if prefer is not None:
        kind = torch.device(prefer).type
        available = {
            "cpu": True,
            "cuda": torch.cuda.is_available(),
            "mps": _mps_available(),
        }.get(kind, False)
        if not available:
            raise RuntimeError(f"device {prefer!r} was asked for but is not available here")
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch (all devices); returns a CPU torch.Generator with that seed."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS generators
    return torch.Generator().manual_seed(seed)


def limit_threads(n: int = 2) -> int:
    """Use at most n CPU threads in torch (small models gain nothing from more); returns the count."""
    n = max(1, min(int(n), torch.get_num_threads()))
    torch.set_num_threads(n)
    return n


# ---------------------------------------------------------------- data


def two_moons(n: int = 512, *, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """make_moons, standardised (zero mean, unit variance per feature): what an MLP trains on.

    X float32 (n, 2), y int64 (n,); the same seed always gives the same points.
    """
    X, y = make_moons(n, noise=noise, seed=seed)
    return ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32), y


# ---------------------------------------------------------------- models


def make_mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: int,
    *,
    activation: str = "relu",
    init: str = "default",
    bias: float | None = None,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """Linear -> activation -> ... -> Linear, one activation after each hidden Linear.

    activation: a key of ACTIVATIONS. init: "default" (torch's own: uniform, std 1/sqrt(3 fan_in)),
    "xavier" (normal, std sqrt(2 / (fan_in + fan_out))) or "he" (normal, std sqrt(2 / fan_in)).
    bias: if given, every hidden layer's bias starts at this constant (a negative one kills
    ReLU units); else the init's own bias (torch's uniform for "default", zeros otherwise).
    generator: makes the weights reproducible without touching the global seed.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {INITS}")
    sizes = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        linear = nn.Linear(fan_in, fan_out)
        _init_linear(linear, init, generator)
        is_hidden = i < len(sizes) - 2
        if is_hidden and bias is not None:
            with torch.no_grad():
                linear.bias.fill_(bias)
        layers.append(linear)
        if is_hidden:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def _init_linear(linear: nn.Linear, init: str, generator: torch.Generator | None) -> None:
    fan_out, fan_in = linear.weight.shape
    with torch.no_grad():
        if init == "default":
            # torch's reset_parameters, but drawn from `generator` when one is given
            bound = 1.0 / np.sqrt(fan_in)
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
            return
        std = np.sqrt(2.0 / (fan_in + fan_out)) if init == "xavier" else np.sqrt(2.0 / fan_in)
        linear.weight.normal_(0.0, std, generator=generator)
        linear.bias.zero_()


BLOCKS = ("plain", "batchnorm", "layernorm", "residual")


class HiddenBlock(nn.Module):
    """One hidden layer of a deep MLP, h -> phi(norm(h @ W.T + b)), with an optional skip.

    norm: None, "batchnorm" (per unit over the batch) or "layernorm" (per sample over the units),
    placed between the Linear and the activation. residual=True returns h + phi(h @ W.T + b):
    the skip connection gives the gradient a path that no activation multiplies.
    """

    def __init__(self, width: int, activation: str, *, norm: str | None = None, residual: bool = False):
        super().__init__()
        self.linear = nn.Linear(width, width)
        norms = {None: nn.Identity, "batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}
        self.norm = norms[norm](width)
        self.activation = ACTIVATIONS[activation]()
        self.residual = residual

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        out = self.activation(self.norm(self.linear(h)))
        return h + out if self.residual else out


def make_deep_mlp(
    depth: int,
    *,
    width: int = 64,
    in_features: int = 16,
    out_features: int = 1,
    activation: str = "sigmoid",
    init: str = "xavier",
    gain: float = 1.0,
    block: str = "plain",
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """An MLP with `depth` Linear layers (depth - 1 activations) of constant width.

    gain multiplies every initial weight (gain > 1: weights too large, as in the exploding-gradient
    figure). block: "plain" (Linear -> activation), "batchnorm" or "layernorm" (a normalisation
    between each hidden Linear of width x width and its activation) or "residual" (h + phi(Linear(h))
    for those layers); the first and the last Linear are always plain.
    """
    if depth < 1:
        raise ValueError("depth must be at least 1")
    if block not in BLOCKS:
        raise ValueError(f"unknown block {block!r}; choose from {BLOCKS}")
    if block == "plain":
        model = make_mlp(in_features, [width] * (depth - 1), out_features,
                         activation=activation, init=init, generator=generator)
    else:
        if depth < 2:
            raise ValueError(f"a {block} network needs depth >= 2")
        norm = block if block in ("batchnorm", "layernorm") else None
        model = nn.Sequential(
            nn.Linear(in_features, width), ACTIVATIONS[activation](),
            *[HiddenBlock(width, activation, norm=norm, residual=block == "residual")
              for _ in range(depth - 2)],
            nn.Linear(width, out_features))
        for linear in linear_layers(model):
            _init_linear(linear, init, generator)
    if gain != 1.0:
        with torch.no_grad():
            for linear in linear_layers(model):
                linear.weight.mul_(gain)
    return model


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The nn.Linear modules of a model, first layer first."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


# ---------------------------------------------------------------- training


@dataclass
class History:
    """Per-epoch record of a training run; `probes` holds whatever the on_epoch callback returned."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    probes: list[object] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.loss)


def train(
    model: nn.Module,
    X,
    y,
    *,
    epochs: int = 20,
    lr: float = 0.1,
    batch_size: int = 64,
    optimizer: str = "sgd",
    momentum: float = 0.0,
    seed: int = 0,
    device: torch.device | str | None = None,
    on_epoch: Callable[[nn.Module], object] | None = None,
) -> History:
    """Train a classifier with cross-entropy; return the per-epoch History.

    X: (N, D) floats; y: (N,) integer classes. The batches are shuffled by a generator seeded
    with `seed`, so the same model, data and seed give the same history. `on_epoch(model)` is
    called after every epoch, and once before the first (entry 0 of `probes`), in eval mode
    under torch.no_grad(); loss and accuracy are measured on the whole of X after each epoch.
    A run whose loss becomes NaN or infinite stops early (the history says so by its length).
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    model.to(device)
    X = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
    y = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
    if optimizer == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    elif optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}: use 'sgd' or 'adam'")
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    history = History()
    if on_epoch is not None:
        history.probes.append(_probe(model, on_epoch))
    n = X.shape[0]
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(n, generator=generator).split(batch_size):
            idx = idx.to(device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            logits = model(X)
            loss = float(loss_fn(logits, y))
            accuracy = float((logits.argmax(dim=1) == y).float().mean())
        if not np.isfinite(loss):
            break
        history.loss.append(loss)
        history.accuracy.append(accuracy)
        if on_epoch is not None:
            history.probes.append(_probe(model, on_epoch))
    return history


def _probe(model: nn.Module, on_epoch: Callable[[nn.Module], object]) -> object:
    model.eval()
    with torch.no_grad():
        return on_epoch(model)


# ---------------------------------------------------------------- probes


def hidden_preacts(model: nn.Sequential, X) -> list[np.ndarray]:
    """Pre-activations of every hidden layer: a list of float64 arrays of shape (N, units).

    A hidden layer is an nn.Linear followed directly by an activation module; its output (the
    input of the activation) is what decides whether a ReLU unit is alive.
    """
    modules = list(model)
    device = next(model.parameters()).device
    h = torch.as_tensor(np.asarray(X, dtype=np.float32), device=device)
    out = []
    with torch.no_grad():
        for i, module in enumerate(modules):
            h = module(h)
            followed_by_activation = i + 1 < len(modules) and not isinstance(modules[i + 1], nn.Linear)
            if isinstance(module, nn.Linear) and followed_by_activation:
                out.append(h.detach().cpu().double().numpy())
    return out


def count_dead(preacts) -> float:
    """Fraction of units (columns) whose pre-activation is <= 0 on every sample (row), via torch.

    The notebooks use this only until the student's own `dead_fraction` works.
    """
    t = torch.as_tensor(np.asarray(preacts))
    return float((t <= 0).all(dim=0).double().mean())


def gradient_norms(model: nn.Module, x, y, loss_fn: Callable, *, of: str = "weight") -> np.ndarray:
    """Per-layer gradient norms for one forward/backward pass on (x, y); first layer first.

    of="weight": Frobenius norm of dLoss/dW for every nn.Linear (what the figures plot);
    of="bias": the same for the bias vectors. Uses torch.autograd.grad, so the parameters'
    .grad fields are neither read nor changed. Returns float64, shape (n_linear,).
    """
    layers = linear_layers(model)
    params = [layer.weight if of == "weight" else layer.bias for layer in layers]
    if of not in ("weight", "bias"):
        raise ValueError("of must be 'weight' or 'bias'")
    device = params[0].device
    x = torch.as_tensor(x, device=device)
    y = torch.as_tensor(y, device=device)
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params)
    return np.array([float(g.detach().double().norm()) for g in grads])


class DeadUnitTracker:
    """A metric for dead_relu_run that also keeps, after every epoch, which units were dead.

    Called with a (N, units) pre-activation matrix it returns the dead fraction, as the course's
    `dead_fraction` does, and appends the boolean mask of dead units to `masks`.
    """

    def __init__(self):
        self.masks: list[np.ndarray] = []

    def __call__(self, preacts) -> float:
        dead = np.all(np.asarray(preacts) <= 0, axis=0)
        self.masks.append(dead)
        return float(dead.mean())

    def came_back(self) -> int:
        """How many units were dead at some probe and alive at the next one."""
        back = np.zeros_like(self.masks[0]) if self.masks else np.zeros(0, dtype=bool)
        for before, after in zip(self.masks[:-1], self.masks[1:], strict=True):
            back |= before & ~after
        return int(back.sum())


def with_fallback(fn: Callable, fallback: Callable, note: str) -> Callable:
    """fn, except that while fn raises NotImplementedError, fallback answers instead.

    The note is printed once, the first time the fallback is used, so a student notebook runs
    top to bottom before its exercises are done.
    """
    noted = False

    def call(*args, **kwargs):
        nonlocal noted
        try:
            return fn(*args, **kwargs)
        except NotImplementedError:
            if not noted:
                print(note)
                noted = True
            return fallback(*args, **kwargs)

    return call


# ---------------------------------------------------------------- the dead-ReLU experiment

# One ReLU layer of 64 units on the two moons, trained with Adam. A large step size plus a
# negative starting bias leaves most units silent on every point; each "fix" changes one knob.
DEAD_RELU_HIDDEN = 64
KILLING = {"activation": "relu", "lr": 0.1, "bias": -1.0, "init": "default"}
HEALTHY = {"activation": "relu", "lr": 0.01, "bias": 0.0, "init": "he"}


def dead_relu_run(
    *,
    activation: str = "relu",
    lr: float = 0.1,
    bias: float | None = -1.0,
    init: str = "default",
    epochs: int | None = None,
    seed: int = 0,
    metric: Callable = count_dead,
    data: tuple[np.ndarray, np.ndarray] | None = None,
    model: nn.Sequential | None = None,
) -> tuple[nn.Sequential, History]:
    """Train the dead-ReLU model; history.probes[e] = metric(hidden pre-activations) after epoch e.

    probes[0] is measured before training. `metric` takes the (N, 64) pre-activations of the
    hidden layer on the whole training set (a float64 array), e.g. the student's dead_fraction.
    data: (X, y), default two_moons(512, seed=0) (2048 points with NONLINEARITY_FULL=1).
    model: continue training this model instead of building a new one (activation, bias and
    init are then ignored). epochs default: 30 (100 with NONLINEARITY_FULL=1).
    """
    X, y = data if data is not None else two_moons(pick(512, 2048), seed=0)
    generator = seed_everything(seed)
    if model is None:
        model = make_mlp(2, [DEAD_RELU_HIDDEN], 2, activation=activation, init=init, bias=bias,
                         generator=generator)
    history = train(model, X, y, epochs=epochs or pick(30, 100), lr=lr, batch_size=64,
                    optimizer="adam", seed=seed,
                    on_epoch=lambda m: float(metric(hidden_preacts(m, X)[0])))
    return model, history
