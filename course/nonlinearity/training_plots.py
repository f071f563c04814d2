"""Figures and explorers for the dead-ReLU (6) and vanishing-gradient (7) notebooks.

Every figure function returns a matplotlib Figure (course palette, titles, labelled axes).
The explorers follow nonlinearity.widgets: a static figure of the initial state first, then
the controls, so a notebook executed headless still shows a real picture.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import ipywidgets as ipw
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator
from torch import nn

from nonlinearity import training, widgets
from nonlinearity.plots import PALETTE

LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1))]


# ---------------------------------------------------------------- notebook 6


def plot_dead_fraction(histories: Mapping[str, training.History], *, title: str):
    """Left: dead fraction per epoch (history.probes); right: training loss. Returns the Figure."""
    fig, (ax_dead, ax_loss) = plt.subplots(1, 2, figsize=(11.5, 4.2))
    for i, (label, history) in enumerate(histories.items()):
        style = {"color": PALETTE[i % len(PALETTE)], "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        ax_dead.plot(np.arange(len(history.probes)), history.probes, label=label, **style)
        ax_loss.plot(np.arange(1, history.epochs + 1), history.loss, label=label, **style)
    ax_dead.set(title="dead units (pre-activation <= 0 on every point)", xlabel="epoch",
                ylabel="dead fraction", ylim=(-0.02, 1.02))
    ax_loss.set(title="training loss", xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax_dead.legend(fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_unit_lines(model: nn.Sequential, X, y, *, title: str, ax=None):
    """The two moons with each hidden unit's boundary w.x + b = 0; dead units dashed, vermillion.

    A unit of the first hidden layer is dead when w.x + b <= 0 on every point of X: its whole
    boundary line then lies beside the data, with all points on the negative side.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.4, 4.6))
    else:
        fig = ax.figure
    first = training.linear_layers(model)[0]
    W = first.weight.detach().cpu().double().numpy()
    b = first.bias.detach().cpu().double().numpy()
    dead = np.all(X @ W.T + b <= 0, axis=0)
    for label, marker, color in ((0, "o", PALETTE[0]), (1, "^", PALETTE[3])):
        pts = X[y == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=8, marker=marker, color=color, alpha=0.6, label=f"class {label}")
    lo, hi = X.min(axis=0) - 1.0, X.max(axis=0) + 1.0
    t = np.array([-20.0, 20.0])
    for (w0, w1), bi, is_dead in zip(W, b, dead, strict=True):
        norm = np.hypot(w0, w1)
        if norm == 0:
            continue
        p0 = -bi * np.array([w0, w1]) / norm**2  # the point of the line closest to the origin
        direction = np.array([-w1, w0]) / norm
        ax.plot(p0[0] + direction[0] * t, p0[1] + direction[1] * t,
                color=PALETTE[1] if is_dead else "0.3", linestyle="--" if is_dead else "-",
                linewidth=0.9, alpha=0.9 if is_dead else 0.35)
    ax.plot([], [], color=PALETTE[1], linestyle="--", label=f"dead unit ({int(dead.sum())})")
    ax.plot([], [], color="0.3", alpha=0.5, label=f"live unit ({int((~dead).sum())})")
    ax.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), title=title, xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(False)
    return fig


def dead_fraction_explorer(metric: Callable, *, epochs: int = 20) -> None:
    """Sliders for log10(learning rate) and the starting bias; trains live and plots the dead fraction."""
    data = training.two_moons(training.pick(512, 2048), seed=0)

    def draw(log10_lr=-1.0, bias=-1.0):
        lr = 10.0**log10_lr
        curves = {}
        for activation in ("relu", "gelu"):
            _, history = training.dead_relu_run(activation=activation, lr=lr, bias=bias, epochs=epochs,
                                                metric=metric, data=data)
            curves[f"{activation}, lr={lr:.3g}, bias={bias:+.2f}"] = history
        return plot_dead_fraction(curves, title="move the sliders: when do ReLU units die?")

    widgets.slider_figure(draw, {"log10_lr": (-3.0, -0.5, 0.25, -1.0), "bias": (-2.0, 0.5, 0.25, -1.0)},
                          title="learning rate (log10) and starting bias of the hidden layer")


# ---------------------------------------------------------------- notebook 7


def plot_grad_norms(curves: Mapping[str, np.ndarray], *, title: str, bound_from: str | None = None,
                    ax=None):
    """Per-layer gradient norms (log scale), layer 1 = first layer.

    bound_from: a key of curves; draws norm_last * 0.25**(L - l), the sigmoid bound's trend
    anchored at that curve's last layer.
    """
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
    else:
        fig = ax.figure
    for i, (label, norms) in enumerate(curves.items()):
        layers = np.arange(1, len(norms) + 1)
        ax.plot(layers, norms, marker="o", markersize=3, label=label, color=PALETTE[i % len(PALETTE)],
                linestyle=LINESTYLES[i % len(LINESTYLES)])
    if bound_from is not None and bound_from in curves:
        norms = np.asarray(curves[bound_from])
        depth = len(norms)
        layers = np.arange(1, depth + 1)
        ax.plot(layers, norms[-1] * 0.25 ** (depth - layers), color="k", linewidth=1, linestyle=":",
                label="$0.25^{L-l}$ trend (sigmoid bound)")
    ax.set(yscale="log", title=title, xlabel="layer l (1 = next to the input)",
           ylabel="gradient norm ||dLoss/dW_l||")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return fig


def plot_depth_sweep(ratios: Mapping[str, tuple[np.ndarray, np.ndarray]], *, title: str):
    """First-layer over last-layer gradient norm against depth, with 0.25^(depth-1)."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    depths_all = []
    for i, (label, (depths, ratio)) in enumerate(ratios.items()):
        ax.plot(depths, ratio, marker="o", markersize=3, label=label, color=PALETTE[i % len(PALETTE)],
                linestyle=LINESTYLES[i % len(LINESTYLES)])
        depths_all.extend(depths)
    d = np.arange(min(depths_all), max(depths_all) + 1)
    ax.plot(d, 0.25 ** (d - 1.0), color="k", linewidth=1, linestyle=":", label="$0.25^{depth-1}$")
    ax.set(yscale="log", title=title, xlabel="depth (number of Linear layers)",
           ylabel="||dLoss/dW_1|| / ||dLoss/dW_L||")
    ax.legend(fontsize=8)
    return fig


def grad_norm_explorer(norms_fn: Callable, *, depth: int = 20, activation: str = "sigmoid",
                       init: str = "xavier") -> None:
    """Depth slider plus activation and initialisation menus; redraws the per-layer norms.

    norms_fn(depth, activation, init) -> np.ndarray of per-layer norms.
    """

    def draw(depth=depth, activation=activation, init=init):
        norms = norms_fn(depth, activation, init)
        return plot_grad_norms({f"{activation}, {init} init": norms},
                               title=f"depth {depth}: per-layer gradient norms",
                               bound_from=f"{activation}, {init} init" if activation == "sigmoid" else None)

    controls = {
        "depth": ipw.IntSlider(value=depth, min=2, max=30, step=1, description="depth",
                               continuous_update=False),
        "activation": ipw.Dropdown(options=["sigmoid", "tanh", "relu", "gelu"], value=activation,
                                   description="activation"),
        "init": ipw.Dropdown(options=["xavier", "he", "default"], value=init, description="init"),
    }
    # widgets._Explorer is the shared static-figure-then-controls machinery behind slider_figure;
    # slider_figure itself takes numeric sliders only, and this explorer needs two menus.
    widgets._Explorer(draw, controls, "").show()
