"""The helper modules students import: nonlinearity.plots, .widgets and .data.

Figures carry titles, labelled axes and the Okabe–Ito palette; compare_with_torch turns only
NotImplementedError into a hint; the explorers build and redraw without a frontend; the toy
data sets are deterministic. Fast: a few seconds in all.
"""

from __future__ import annotations

import subprocess
import sys

import ipywidgets as ipw
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from IPython.display import Image

from nonlinearity import data, plots, widgets

OKABE_ITO = {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7"}


@pytest.fixture(autouse=True)
def _course_style_and_cleanup():
    with matplotlib.rc_context():
        plots.use_course_style()
        yield
    plt.close("all")


def _relu(x):
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def _relu_grad(x):
    return (np.asarray(x) > 0).astype(np.float64)


def _leaky(x, negative_slope=0.01):
    x = np.asarray(x, dtype=np.float64)
    return np.where(x > 0, x, negative_slope * x)


def _leaky_grad(x, negative_slope=0.01):
    return np.where(np.asarray(x) > 0, 1.0, negative_slope)


def _not_yet(x):
    raise NotImplementedError()


def _assert_labelled(ax):
    assert ax.get_title(), "every axes needs a title"
    assert ax.get_xlabel(), "every axes needs an x label"
    assert ax.get_ylabel(), "every axes needs a y label"


def _line_colours(ax):
    return {matplotlib.colors.to_hex(line.get_color()).upper() for line in ax.get_lines()}


# --- plots -------------------------------------------------------------------------------


def test_palette_is_okabe_ito_and_style_uses_it():
    assert {c.upper() for c in plots.PALETTE} == OKABE_ITO
    assert len(plots.PALETTE) == 8
    cycle = [c.upper() for c in matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]]
    assert cycle == [c.upper() for c in plots.PALETTE]
    assert plots.PALETTE[-1].upper() == "#F0E442", "pale yellow goes last (poor on white)"


def test_importing_plots_changes_no_matplotlib_settings():
    code = (
        "import matplotlib as mpl; before = dict(mpl.rcParams); "
        "import nonlinearity.plots, nonlinearity.widgets, nonlinearity.data; "
        "changed = [k for k, v in mpl.rcParams.items() if before[k] != v]; "
        "assert not changed, changed"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"MPLBACKEND": "Agg"})


def test_plot_functions_titles_labels_palette_legend():
    fig = plots.plot_functions({"relu": _relu, "tanh": np.tanh}, title="two", ylabel="f(x)")
    (ax,) = fig.axes
    _assert_labelled(ax)
    assert ax.get_title() == "two"
    assert _line_colours(ax) >= {plots.PALETTE[0].upper(), plots.PALETTE[1].upper()}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["relu", "tanh"]
    curve = ax.get_lines()[0]
    assert len(curve.get_xdata()) == 501 and curve.get_xdata()[0] == -5.0


def test_plot_functions_draws_on_a_given_axes():
    fig, (left, right) = plt.subplots(1, 2)
    returned = plots.plot_functions({"relu": _relu}, [-1.0, 0.0, 1.0], title="t", ax=right)
    assert returned is fig
    assert len(right.get_lines()) >= 1 and not left.get_lines()


def test_plot_with_derivative_two_labelled_panels():
    fig = plots.plot_with_derivative({"relu": (_relu, _relu_grad)}, title="relu and relu'")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        _assert_labelled(ax)
        assert plots.PALETTE[0].upper() in _line_colours(ax)
    assert fig._suptitle.get_text() == "relu and relu'"


def test_compare_with_torch_overlays_and_measures_the_difference():
    fig = plots.compare_with_torch("relu", _relu, torch.relu)
    assert fig is not None
    top, bottom = fig.axes  # they share the x axis: its label sits under the bottom panel
    assert top.get_title() and top.get_ylabel()
    assert bottom.get_xlabel() and bottom.get_ylabel()
    assert "0.00e+00" in bottom.get_title(loc="right")


def test_compare_with_torch_derivative_uses_autograd():
    fig = plots.compare_with_torch("relu_grad", _relu_grad, torch.relu, derivative=True)
    assert "0.00e+00" in fig.axes[1].get_title(loc="right")
    wrong = plots.compare_with_torch("wrong", lambda x: 1.0 - _relu_grad(x), torch.relu,
                                     derivative=True)
    assert "1.00e+00" in wrong.axes[1].get_title(loc="right")


def test_compare_with_torch_turns_only_not_implemented_into_a_hint(capsys):
    before = plt.get_fignums()
    assert plots.compare_with_torch("relu", _not_yet, torch.relu) is None
    assert "Implement `relu` above first" in capsys.readouterr().out
    assert plt.get_fignums() == before, "no empty figure is left behind"

    def broken(x):
        raise ValueError("a bug in the student's code")

    with pytest.raises(ValueError, match="a bug"):
        plots.compare_with_torch("relu", broken, torch.relu)
    with pytest.raises(ValueError, match="same shape"):
        plots.compare_with_torch("relu", lambda x: _relu(x)[:-1], torch.relu)


def test_compare_with_torch_does_not_modify_the_callers_x():
    x = np.linspace(-2.0, 2.0, 9)

    def in_place(a):
        a[a < 0] = 0.0
        return a

    plots.compare_with_torch("relu", in_place, torch.relu, x)
    assert x[0] == -2.0


def test_torch_adapters_match_numpy():
    x = np.linspace(-3, 3, 13)
    np.testing.assert_allclose(plots.torch_as_numpy(torch.relu)(x), _relu(x))
    slope = plots.torch_derivative(torch.nn.functional.leaky_relu)(x, negative_slope=0.2)
    np.testing.assert_allclose(slope, np.where(x > 0, 1.0, 0.2))


def test_plot_decision_boundaries_titles_accuracy_and_one_panel_each():
    X, y = data.make_xor(n=40, seed=1)

    def perfect(points):
        return (points[:, 0] * points[:, 1] < 0).astype(float)

    fig = plots.plot_decision_boundaries({"rule": perfect, "coin": lambda p: 0.4 + 0 * p[:, 0]},
                                         X, y, title="xor")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        _assert_labelled(ax)
    assert "accuracy" in fig.axes[0].get_title()
    assert fig._suptitle.get_text() == "xor"
    single = plots.plot_decision_boundaries({"rule": perfect}, X, y, title="only one")
    assert single.axes[0].get_title().startswith("only one")


def test_show_matrix_labelled():
    fig = plots.show_matrix(np.arange(6.0).reshape(2, 3), title="W")
    _assert_labelled(fig.axes[0])


# --- widgets -----------------------------------------------------------------------------


class _FakeHandle:
    def __init__(self):
        self.updates = []

    def update(self, obj):
        self.updates.append(obj)


def test_activation_explorer_displays_without_a_frontend(capsys):
    widgets.activation_explorer({"ReLU": (_relu, _relu_grad), "Leaky": (_leaky, _leaky_grad)},
                                params={"negative_slope": (0.0, 1.0, 0.01, 0.1)}, title="t")
    out = capsys.readouterr().out
    assert "Image" in out and "VBox" in out, "a static picture first, then the controls"
    assert not plt.get_fignums(), "the explorer closes its figures (no double display)"


def test_activation_explorer_redraws_with_slider_values():
    seen = []

    def leaky(x, negative_slope):
        seen.append(negative_slope)
        return _leaky(x, negative_slope)

    explorer = widgets._build_activation_explorer(
        {"Leaky": (leaky, _leaky_grad), "ReLU": (_relu, _relu_grad)},
        params={"negative_slope": (0.0, 1.0, 0.01, 0.1)},
    )
    assert isinstance(explorer.controls["activation"], ipw.Dropdown)
    assert isinstance(explorer.controls["negative_slope"], ipw.FloatSlider)
    assert isinstance(explorer.image(), Image)
    explorer.handle = _FakeHandle()
    explorer.controls["negative_slope"].value = 0.3
    explorer.controls["activation"].value = "ReLU"  # ReLU takes no slope: it must not get one
    assert len(explorer.handle.updates) == 2
    assert all(isinstance(u, Image) for u in explorer.handle.updates)
    assert 0.3 in seen
    assert not plt.get_fignums()


def test_activation_explorer_survives_unimplemented_kernels():
    explorer = widgets._build_activation_explorer(
        {"mine": (_not_yet, _not_yet), "ReLU": (_relu, _relu_grad)})
    assert isinstance(explorer.image(), Image)
    explorer.handle = _FakeHandle()
    explorer.controls["activation"].value = "ReLU"
    assert len(explorer.handle.updates) == 1


def test_explorer_reports_redraw_errors_beside_the_controls():
    def draw(a=0.5):
        if a > 0.6:
            raise ValueError("bad value")
        return plots.plot_functions({"a": lambda x: a * x}, title="line")

    explorer = widgets._Explorer(draw, widgets._sliders({"a": (0.0, 1.0, 0.1, 0.5)}))
    explorer.handle = _FakeHandle()
    explorer.controls["a"].value = 0.9  # must not raise inside the widget callback
    assert explorer.handle.updates == []
    assert explorer._has_message
    explorer.controls["a"].value = 0.2
    assert len(explorer.handle.updates) == 1 and not explorer._has_message


def test_slider_figure_and_slider_kinds(capsys):
    calls = []

    def draw(depth=2, scale=1.0):
        calls.append((depth, scale))
        return plots.plot_functions({"line": lambda x: scale * depth * x}, title="d")

    widgets.slider_figure(draw, {"depth": (1, 8, 1, 3), "scale": (0.0, 2.0, 0.1, 1.0)},
                          title="sliders")
    assert calls == [(3, 1.0)], "the static figure shows the defaults"
    assert "Image" in capsys.readouterr().out
    sliders = widgets._sliders({"depth": (1, 8, 1, 3), "scale": (0.0, 2.0, 0.1, 1.0)})
    assert isinstance(sliders["depth"], ipw.IntSlider)
    assert isinstance(sliders["scale"], ipw.FloatSlider)
    with pytest.raises(ValueError, match="outside"):
        widgets._sliders({"bad": (0.0, 1.0, 0.1, 2.0)})


def test_relu_sum_error_falls_as_units_are_added():
    """The universal-approximation picture: more ReLUs, a closer fit to sin on [-pi, pi]."""
    errors = [plots.relu_sum_error(np.sin, n, -np.pi, np.pi) for n in range(1, 21)]
    assert all(b <= a + 1e-9 for a, b in zip(errors[:-1], errors[1:], strict=True)), errors
    assert errors[0] > 0.9, "one unit is a straight line: about 0.95 away from sin somewhere"
    assert errors[-1] < 0.01 and errors[-1] < errors[0] / 50


def test_relu_sum_is_a_relu_network_with_the_fitted_weights():
    model = plots.fit_relu_sum(np.sin, 4, -np.pi, np.pi)
    np.testing.assert_allclose(model.kinks, -np.pi + 2 * np.pi * np.arange(4) / 4)
    x = np.linspace(-np.pi, np.pi, 9)
    hidden = torch.relu(torch.as_tensor(x)[:, None] - torch.as_tensor(model.kinks))
    by_torch = (hidden @ torch.as_tensor(model.weights) + model.bias).numpy()
    np.testing.assert_allclose(model(x), by_torch, atol=1e-12)
    with pytest.raises(ValueError, match="at least one unit"):
        plots.fit_relu_sum(np.sin, 0, -1.0, 1.0)


def test_plot_relu_sum_labelled_with_the_error_and_one_line_per_unit():
    fig = plots.plot_relu_sum(np.sin, 5, -np.pi, np.pi, name="sin(x)", title="t")
    ax_fit, ax_units = fig.axes
    for ax in fig.axes:
        _assert_labelled(ax)
    assert "largest error" in ax_fit.get_title()
    assert plots.OKABE_ITO["vermillion"] in _line_colours(ax_fit)
    assert len(ax_units.get_lines()) >= 5
    assert _line_colours(fig.axes[1]) <= OKABE_ITO | {"#999999"}


def test_relu_sum_explorer_displays_then_redraws_per_unit_count(capsys):
    widgets.relu_sum_explorer()
    assert "Image" in capsys.readouterr().out and not plt.get_fignums()
    explorer = widgets._relu_sum_explorer(np.sin, lo=-np.pi, hi=np.pi, name="sin(x)",
                                          max_units=20, units=3)
    slider = explorer.controls["units"]
    assert isinstance(slider, ipw.IntSlider) and (slider.min, slider.max, slider.value) == (1, 20, 3)
    explorer.handle = _FakeHandle()
    slider.value = 20
    assert len(explorer.handle.updates) == 1 and isinstance(explorer.handle.updates[0], Image)
    assert not plt.get_fignums()


# --- data --------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [data.make_xor, data.make_moons])
def test_data_is_deterministic_balanced_and_typed(make):
    X, y = make(n=200, seed=3)
    X2, y2 = make(n=200, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(n=200, seed=4)
    assert not np.array_equal(X, X3), "another seed gives other points"
    assert X.shape == (200, 2) and X.dtype == np.float32
    assert y.shape == (200,) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1} and np.sum(y) == 100
    assert np.all(np.isfinite(X))
    with pytest.raises(ValueError):
        make(n=7)


def test_data_default_is_the_same_in_a_fresh_process():
    code = ("from nonlinearity import data; import hashlib; X, y = data.make_moons(); "
            "print(hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest())")
    fresh = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                           text=True).stdout.strip()
    import hashlib

    X, y = data.make_moons()
    assert fresh == hashlib.sha256(X.tobytes() + y.tobytes()).hexdigest()


@pytest.mark.parametrize("make", [data.make_xor, data.make_moons])
def test_no_straight_line_separates_the_toy_sets(make):
    X, y = make(n=400, seed=0)
    features = np.column_stack([X, np.ones(len(X))]).astype(np.float64)
    w, *_ = np.linalg.lstsq(features, 2.0 * y - 1.0, rcond=None)
    accuracy = np.mean((features @ w > 0) == (y == 1))
    assert accuracy < 0.95, f"a linear classifier should not fit {make.__name__} ({accuracy:.0%})"


def test_xor_labels_follow_the_corners():
    X, y = data.make_xor(n=400, noise=0.1, seed=0)
    assert np.all((X[:, 0] * X[:, 1] < 0) == (y == 1))
