"""Output-layer activations: the softmax temperature explorer and what a wrong one does.

Used by notebook 05. Everything here is a ready-made demonstration, computed with numpy or
torch, so it works before the student has implemented any kernel.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from nonlinearity import plots, widgets

#: The worked example of the course: softmax([2.0, 1.0, 0.1]) is about [0.659, 0.242, 0.099].
SEED_LOGITS = (2.0, 1.0, 0.1)


def _colours(n):
    return [plots.PALETTE[i % len(plots.PALETTE)] for i in range(n)]


def _class_names(n, class_names):
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{n} logits but {len(names)} class names")
    return names


def softmax_with_temperature(logits, temperature=1.0, axis=-1):
    """softmax(logits / temperature) along `axis`, computed stably (max subtracted first).

    logits: array-like of real numbers, any shape; temperature: a number > 0.
    Returns a float64 array of the same shape whose entries along `axis` sum to 1.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def entropy_bits(probs, axis=-1):
    """Shannon entropy in bits of probability vectors along `axis` (0 log 0 counts as 0)."""
    p = np.asarray(probs, dtype=np.float64)
    terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return np.sum(terms, axis=axis)


def plot_softmax_temperature(logits=SEED_LOGITS, temperature=1.0, *, class_names=None,
                             t_range=(0.05, 5.0)):
    """Two panels: the probabilities softmax(logits / T) at one T (bars), and each class's
    probability as T sweeps `t_range` (log scale) with the chosen T marked.

    logits: 1-d array-like of C numbers. Returns the matplotlib Figure.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 1:
        raise ValueError(f"logits must be 1-d, got shape {logits.shape}")
    names = _class_names(logits.size, class_names)
    colours = _colours(logits.size)
    probs = softmax_with_temperature(logits, temperature)

    fig, (ax_bar, ax_sweep) = plt.subplots(1, 2, figsize=(10, 3.8))
    bars = ax_bar.bar(names, probs, color=colours)
    ax_bar.bar_label(bars, labels=[f"{p:.3f}" for p in probs], padding=2)
    ax_bar.axhline(1 / logits.size, color="0.4", linestyle=":", label="uniform 1/C")
    ax_bar.set_ylim(0, 1.1)
    ax_bar.set_xlabel("class")
    ax_bar.set_ylabel("probability")
    ax_bar.set_title(f"softmax(logits / T), T = {temperature:.2f}\n"
                     f"entropy {entropy_bits(probs):.2f} of at most "
                     f"{np.log2(logits.size):.2f} bits")
    ax_bar.legend(loc="upper right")

    temps = np.geomspace(*t_range, 200)
    sweep = softmax_with_temperature(logits[None, :] / temps[:, None])
    for i, (name, colour) in enumerate(zip(names, colours, strict=True)):
        ax_sweep.plot(temps, sweep[:, i], color=colour, label=f"{name} (logit {logits[i]:g})")
    ax_sweep.axvline(temperature, color="0.2", linestyle="--", label=f"T = {temperature:.2f}")
    ax_sweep.set_xscale("log")
    ax_sweep.set_ylim(0, 1.05)
    ax_sweep.set_xlabel("temperature T (log scale)")
    ax_sweep.set_ylabel("probability")
    ax_sweep.set_title("Low T: winner takes all; high T: uniform")
    ax_sweep.legend(loc="center left", fontsize="small")
    fig.tight_layout()
    return fig


def softmax_temperature_explorer(logits=SEED_LOGITS, *, class_names=None,
                                 temperature=(0.05, 5.0, 0.05, 1.0)):
    """Show plot_softmax_temperature for the default T (a static figure), then a T slider.

    temperature: (min, max, step, default) of the slider.
    """
    logits = tuple(float(v) for v in np.asarray(logits, dtype=np.float64).ravel())

    def draw(temperature):
        return plot_softmax_temperature(logits, temperature, class_names=class_names)

    widgets.slider_figure(draw, {"temperature": temperature},
                          title="Softmax temperature: divide the logits by T")


def sigmoid_vs_softmax(logits):
    """Per-class sigmoid and softmax of a batch of logits, and what each sums to.

    logits: array-like (N, C) or (C,). Returns a dict of float64 arrays: "sigmoid" and
    "softmax" (same shape as logits), "sigmoid_sum" and "softmax_sum" (shape (N,) or ()).
    """
    t = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    sig = torch.sigmoid(t).numpy()
    soft = torch.softmax(t, dim=-1).numpy()
    return {"sigmoid": sig, "softmax": soft,
            "sigmoid_sum": sig.sum(axis=-1), "softmax_sum": soft.sum(axis=-1)}


#: Logit vectors for the multi-class demo: confident, undecided-high, undecided-low.
DEMO_LOGITS = ((2.0, 1.0, 0.1), (3.0, 2.5, 2.0), (-1.0, -2.0, -3.0))


def plot_sigmoid_vs_softmax(logits=DEMO_LOGITS, *, class_names=None):
    """Stacked bars of the per-class outputs of sigmoid and of softmax for each logit vector.

    The stack height is the total "probability"; softmax always reaches exactly 1, sigmoid
    applied per class does not. logits: (N, C). Returns the matplotlib Figure.
    """
    logits = np.atleast_2d(np.asarray(logits, dtype=np.float64))
    n, c = logits.shape
    names = _class_names(c, class_names)
    colours = _colours(c)
    result = sigmoid_vs_softmax(logits)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    labels = [", ".join(f"{v:g}" for v in row) for row in logits]
    for ax, key in zip(axes, ("sigmoid", "softmax"), strict=True):
        bottom = np.zeros(n)
        for j in range(c):
            ax.bar(labels, result[key][:, j], bottom=bottom, color=colours[j], label=names[j])
            bottom += result[key][:, j]
        for i, total in enumerate(bottom):
            ax.annotate(f"sum {total:.2f}", (i, total), ha="center", va="bottom",
                        xytext=(0, 2), textcoords="offset points")
        ax.axhline(1.0, color="0.2", linestyle="--", linewidth=1)
        ax.set_xlabel("logits")
        ax.set_title(f"{key} on each class")
    axes[0].set_ylabel("stacked outputs (should total 1)")
    axes[0].set_ylim(0, max(2.2, float(result["sigmoid_sum"].max()) + 0.3))
    axes[1].legend(loc="upper right")
    fig.suptitle("Multi-class output: sigmoid per class does not sum to 1, softmax does")
    fig.tight_layout()
    return fig


def _fit_adam(model, x, y, *, steps, lr, betas=(0.9, 0.999), eps=1e-8):
    """Full-batch Adam on the MSE, written out: the first use of torch.optim imports
    torch._dynamo, which costs seconds, far more than this whole fit."""
    params = list(model.parameters())
    means = [torch.zeros_like(p) for p in params]
    squares = [torch.zeros_like(p) for p in params]
    b1, b2 = betas
    for step in range(1, steps + 1):
        grads = torch.autograd.grad(nn.functional.mse_loss(model(x), y), params)
        with torch.no_grad():
            for p, g, m, v in zip(params, grads, means, squares, strict=True):
                m.mul_(b1).add_(g, alpha=1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p -= lr * (m / (1 - b1**step)) / ((v / (1 - b2**step)).sqrt() + eps)


def regression_output_demo(*, steps=200, seed=0):
    """Fit the same small network to a regression target with two output activations.

    The target is y = 3x + 2 + noise for x in [-2, 2] (values roughly from -4 to 8). The network
    is Linear(1, 16) -> tanh -> Linear(16, 1) -> output activation, trained with MSE and Adam.
    Torch's global random state is left untouched.

    Returns a dict: "x", "y" (float64, shape (100,)), "grid" (shape (200,)) and, per output
    activation "identity" and "sigmoid", a dict with "pred" (predictions on grid) and
    "mse" (training mean squared error, a float).
    """
    rng = np.random.default_rng(seed)
    x = np.sort(rng.uniform(-2, 2, 100))
    y = 3 * x + 2 + rng.normal(0, 0.5, x.size)
    grid = np.linspace(-2.5, 2.5, 200)
    xt = torch.as_tensor(x, dtype=torch.float32)[:, None]
    yt = torch.as_tensor(y, dtype=torch.float32)[:, None]
    out = {"x": x, "y": y, "grid": grid}
    for name, head in (("identity", nn.Identity()), ("sigmoid", nn.Sigmoid())):
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1), head)
        _fit_adam(model, xt, yt, steps=steps, lr=0.03)
        with torch.no_grad():
            mse = float(nn.functional.mse_loss(model(xt), yt))
            pred = model(torch.as_tensor(grid, dtype=torch.float32)[:, None])[:, 0]
        out[name] = {"pred": pred.double().numpy(), "mse": mse}
    return out


def plot_regression_output_demo(demo=None):
    """Targets and the fits of regression_output_demo(): identity output vs sigmoid output.

    demo: the dict regression_output_demo() returns (computed with defaults when None).
    Returns the matplotlib Figure.
    """
    demo = regression_output_demo() if demo is None else demo
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.axhspan(0, 1, color=plots.OKABE_ITO["orange"], alpha=0.2, label="sigmoid range (0, 1)")
    ax.scatter(demo["x"], demo["y"], s=12, color="0.45", label="targets y = 3x + 2 + noise")
    for name, colour in (("identity", plots.OKABE_ITO["blue"]),
                         ("sigmoid", plots.OKABE_ITO["vermillion"])):
        ax.plot(demo["grid"], demo[name]["pred"], color=colour, linewidth=2.5,
                label=f"{name} output (MSE {demo[name]['mse']:.2f})")
    ax.set_xlabel("input x")
    ax.set_ylabel("target / prediction")
    ax.set_title("Regression: a sigmoid output cannot leave (0, 1)")
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
