"""Figures for the course notebooks: one palette, one style, titled and labelled axes.

Every function here returns a matplotlib Figure made with pyplot, so JupyterLab's inline
backend shows it once at the end of the cell (end the line with `;` or assign the result).
Nothing happens at import time: notebooks call `use_course_style()` in their import cell.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common form of
# colour blindness. Ordered so the first colours have the most contrast on white; the pale
# yellow comes last.
OKABE_ITO = {
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "bluish_green": "#009E73",
    "orange": "#E69F00",
    "reddish_purple": "#CC79A7",
    "sky_blue": "#56B4E9",
    "black": "#000000",
    "yellow": "#F0E442",
}
PALETTE = list(OKABE_ITO.values())

DEFAULT_X = np.linspace(-5.0, 5.0, 501)

_COURSE_RC = {
    "axes.prop_cycle": mpl.cycler(color=PALETTE),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "legend.frameon": False,
    "lines.linewidth": 2.0,
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "savefig.bbox": "tight",
    "image.cmap": "cividis",
}


def use_course_style() -> None:
    """Set matplotlib rcParams for the course: Okabe–Ito colour cycle, light grid, sizes."""
    mpl.rcParams.update(_COURSE_RC)


def _as_x(x) -> np.ndarray:
    return DEFAULT_X if x is None else np.asarray(x, dtype=np.float64)


def _finish_axes(ax, *, title: str, xlabel: str, ylabel: str, legend: bool = True) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.axhline(0.0, color="0.6", linewidth=0.8, zorder=0)
    ax.axvline(0.0, color="0.6", linewidth=0.8, zorder=0)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend()


def plot_functions(
    functions: Mapping[str, Callable],
    x=None,
    *,
    title: str,
    xlabel: str = "x",
    ylabel: str = "f(x)",
    ax=None,
):
    """Plot several curves f(x) on one axes; returns the Figure.

    functions: name -> callable taking a float64 array of shape (n,) and returning shape (n,).
    x: the sample points (default: 501 points on [-5, 5]).
    """
    x = _as_x(x)
    if ax is None:
        fig, ax = plt.subplots()
    else:
        fig = ax.figure
    for i, (name, fn) in enumerate(functions.items()):
        ax.plot(x, np.asarray(fn(x)), label=name, color=PALETTE[i % len(PALETTE)])
    _finish_axes(ax, title=title, xlabel=xlabel, ylabel=ylabel)
    return fig


def plot_with_derivative(
    functions: Mapping[str, tuple[Callable, Callable]],
    x=None,
    *,
    title: str,
    xlabel: str = "x",
):
    """Two panels side by side: f(x) on the left, f'(x) on the right; returns the Figure.

    functions: name -> (f, f_prime), each taking and returning float64 arrays of shape (n,).
    """
    x = _as_x(x)
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(11, 4))
    for i, (name, (fn, grad)) in enumerate(functions.items()):
        color = PALETTE[i % len(PALETTE)]
        ax_f.plot(x, np.asarray(fn(x)), label=name, color=color)
        ax_d.plot(x, np.asarray(grad(x)), label=name, color=color)
    _finish_axes(ax_f, title="activation f(x)", xlabel=xlabel, ylabel="f(x)")
    _finish_axes(ax_d, title="derivative f'(x)", xlabel=xlabel, ylabel="f'(x)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def torch_as_numpy(torch_fn: Callable) -> Callable:
    """Wrap an elementwise torch function as numpy -> numpy (float64), passing keywords on.

    Handy for figures and explorers that should show the true curve whether or not the
    student's kernel is written yet, e.g. `torch_as_numpy(torch.nn.functional.gelu)`.
    """
    import torch  # imported here: the other plots need no torch

    def fn(x, **kwargs):
        out = torch_fn(torch.as_tensor(np.asarray(x, dtype=np.float64)), **kwargs)
        return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)

    return fn


def torch_derivative(torch_fn: Callable) -> Callable:
    """The derivative of an elementwise torch function, by autograd, as numpy -> numpy.

    For an elementwise f, the gradient of sum(f(x)) is f'(x) at every point (at a kink it is
    the one subgradient torch picks, e.g. 0 for relu at 0).
    """
    import torch

    def grad(x, **kwargs):
        t = torch.as_tensor(np.asarray(x, dtype=np.float64)).clone().requires_grad_(True)
        torch_fn(t, **kwargs).sum().backward()
        return t.grad.numpy()

    return grad


def compare_with_torch(
    name: str, student_fn: Callable, torch_fn: Callable, x=None, *, derivative: bool = False
):
    """Overlay the student's kernel and torch's, with their difference below; Figure or None.

    student_fn takes a float64 numpy array of shape (n,) and returns shape (n,); torch_fn takes
    a float64 torch tensor (e.g. `torch.relu`, or
    `lambda t: torch.nn.functional.gelu(t, approximate="tanh")`). With derivative=True the
    student's function is compared with torch_fn's derivative by autograd instead.
    If the student's kernel still raises NotImplementedError, print a hint and return None,
    so a student notebook runs top to bottom before the exercises are done. Any other error
    propagates: it tells the student something about their code.
    """
    x = _as_x(x)
    try:
        mine = np.asarray(student_fn(x.copy()), dtype=np.float64)
    except NotImplementedError:
        print(f"Implement `{name}` above first, then run this cell again.")
        return None
    reference = torch_derivative(torch_fn) if derivative else torch_as_numpy(torch_fn)
    theirs = np.asarray(reference(x), dtype=np.float64)
    if mine.shape != theirs.shape:
        raise ValueError(
            f"`{name}` returned shape {mine.shape} for an input of shape {x.shape}; "
            "an activation must return the same shape as its input."
        )
    label = "torch (autograd)" if derivative else "torch"
    fig, (ax, ax_err) = plt.subplots(
        2, 1, figsize=(6.4, 5.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    ax.plot(x, theirs, color=PALETTE[0], linewidth=4, alpha=0.45, label=label)
    ax.plot(x, mine, color=PALETTE[1], linestyle="--", label=f"your {name}")
    _finish_axes(ax, title=f"your {name} vs {label}", xlabel="", ylabel=f"{name}(x)")
    difference = np.abs(mine - theirs)
    ax_err.plot(x, difference, color=PALETTE[2], linewidth=1)
    _finish_axes(ax_err, title="", xlabel="x", ylabel="|difference|", legend=False)
    worst = np.nanmax(difference) if np.isfinite(difference).any() else np.nan
    ax_err.set_title(f"largest difference: {worst:.2e}", fontsize=10, loc="right")
    fig.tight_layout()
    return fig


def plot_decision_boundaries(
    predictors: Mapping[str, Callable],
    X,
    y,
    *,
    title: str,
    resolution: int = 200,
):
    """One panel per model: its predicted class over the plane, with the data on top.

    predictors: name -> callable mapping float64 points of shape (m, 2) to a score of shape
    (m,); class 1 where the score > 0.5 (a probability), shaded by the score.
    X: (n, 2) points; y: (n,) integer labels 0/1. Returns the Figure.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    pad = 0.5
    (x0_min, x1_min), (x0_max, x1_max) = X.min(axis=0) - pad, X.max(axis=0) + pad
    g0, g1 = np.meshgrid(
        np.linspace(x0_min, x0_max, resolution), np.linspace(x1_min, x1_max, resolution)
    )
    grid = np.column_stack([g0.ravel(), g1.ravel()])
    n = len(predictors)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.0), squeeze=False)
    cmap = mpl.colors.LinearSegmentedColormap.from_list(
        "course_two_class", [OKABE_ITO["sky_blue"], "#FFFFFF", OKABE_ITO["orange"]]
    )
    for ax, (name, predict) in zip(axes[0], predictors.items(), strict=True):
        score = np.asarray(predict(grid), dtype=np.float64).reshape(g0.shape)
        ax.contourf(g0, g1, score, levels=np.linspace(0, 1, 11), cmap=cmap, alpha=0.8)
        ax.contour(g0, g1, score, levels=[0.5], colors="k", linewidths=1.5)
        for label, color, marker in ((0, OKABE_ITO["blue"], "o"), (1, OKABE_ITO["vermillion"], "^")):
            pts = X[y == label]
            ax.scatter(pts[:, 0], pts[:, 1], s=14, color=color, marker=marker,
                       edgecolor="white", linewidth=0.4, label=f"class {label}")
        accuracy = np.mean((np.asarray(predict(X)) > 0.5) == (y == 1))
        # One panel: the figure title goes on the axes, so it is centred over the plot.
        heading = f"{title}\n{name}, accuracy" if n == 1 else f"{name}\naccuracy"
        ax.set_title(f"{heading} {accuracy:.0%}")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
        ax.grid(False)
    axes[0, 0].legend(loc="lower left", markerscale=1.5, frameon=True)
    if n > 1:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_matrix(M, *, title: str, ax=None, xlabel: str = "input index",
                ylabel: str = "output index"):
    """Show a 2-D array as a heat map with a colour bar and a symmetric colour scale; Figure."""
    M = np.asarray(M, dtype=np.float64)
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.6))
    else:
        fig = ax.figure
    limit = float(np.max(np.abs(M))) or 1.0
    image = ax.imshow(M, cmap="PuOr", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    return fig


class ReluSum:
    """A one-hidden-layer ReLU network on 1-D inputs: bias + sum_k weights[k] * ReLU(x - kinks[k]).

    Hidden unit k has input weight 1 and bias -kinks[k], so it switches on at x = kinks[k];
    `weights` are the output weights and `bias` the output bias.
    """

    def __init__(self, kinks, weights, bias: float):
        self.kinks = np.asarray(kinks, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = float(bias)

    def units(self, x) -> np.ndarray:
        """Each unit's contribution weights[k] * ReLU(x - kinks[k]), shape (len(x), n_units)."""
        x = np.asarray(x, dtype=np.float64)
        return np.maximum(x[:, None] - self.kinks[None, :], 0.0) * self.weights[None, :]

    def __call__(self, x) -> np.ndarray:
        return self.bias + self.units(x).sum(axis=1)


def fit_relu_sum(fn: Callable, n_units: int, lo: float, hi: float,
                 n_points: int = 801) -> ReluSum:
    """Least-squares output weights of n_units ReLUs with evenly spaced kinks on [lo, hi).

    The kinks sit at lo + k (hi - lo) / n_units, k = 0 .. n_units - 1 (the first, at lo, is a
    straight line on the interval); only the output weights and bias are fitted, on n_points
    evenly spaced samples of fn (a vectorised function of a float64 array).
    """
    if n_units < 1:
        raise ValueError(f"need at least one unit, got {n_units}")
    x = np.linspace(lo, hi, n_points)
    kinks = lo + (hi - lo) * np.arange(n_units) / n_units
    features = np.column_stack([np.ones_like(x), np.maximum(x[:, None] - kinks[None, :], 0.0)])
    coefficients, *_ = np.linalg.lstsq(features, np.asarray(fn(x), dtype=np.float64), rcond=None)
    return ReluSum(kinks, coefficients[1:], coefficients[0])


def relu_sum_error(fn: Callable, n_units: int, lo: float, hi: float,
                   n_points: int = 801) -> float:
    """The largest |fn(x) - fitted ReLU sum(x)| over n_points evenly spaced x in [lo, hi]."""
    x = np.linspace(lo, hi, n_points)
    model = fit_relu_sum(fn, n_units, lo, hi, n_points)
    return float(np.max(np.abs(np.asarray(fn(x), dtype=np.float64) - model(x))))


def plot_relu_sum(fn: Callable, n_units: int, lo: float, hi: float, *, name: str = "f(x)",
                  title: str = ""):
    """Left: fn and its best sum of n_units ReLUs, kinks marked; right: the units themselves.

    Returns the Figure (two labelled panels; the error is in the left panel's title).
    """
    x = np.linspace(lo, hi, 801)
    model = fit_relu_sum(fn, n_units, lo, hi)
    target = np.asarray(fn(x), dtype=np.float64)
    approximation = model(x)
    worst = float(np.max(np.abs(target - approximation)))
    fig, (ax_fit, ax_units) = plt.subplots(1, 2, figsize=(11, 4))
    ax_fit.plot(x, target, color=OKABE_ITO["black"], linewidth=3, alpha=0.35, label=name)
    ax_fit.plot(x, approximation, color=OKABE_ITO["vermillion"],
                label=f"sum of {n_units} ReLU{'s' if n_units > 1 else ''}")
    ax_fit.plot(model.kinks, model(model.kinks), "o", color=OKABE_ITO["blue"], markersize=5,
                label="kinks (one per unit)")
    _finish_axes(ax_fit, title=f"{n_units} unit{'s' if n_units > 1 else ''}: "
                 f"largest error {worst:.3f}", xlabel="x", ylabel="output")
    contributions = model.units(x)
    for k in range(n_units):
        ax_units.plot(x, contributions[:, k], color=PALETTE[k % 6], linewidth=1.2)
    ax_units.axhline(model.bias, color=OKABE_ITO["black"], linestyle="--", linewidth=1.2,
                     label=f"output bias {model.bias:.2f}")
    _finish_axes(ax_units, title="the units: weight × ReLU(x − kink)", xlabel="x",
                 ylabel="contribution")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
