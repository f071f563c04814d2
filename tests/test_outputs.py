"""nonlinearity.outputs: the softmax temperature explorer and the wrong-output-activation demos.

Fast (about 2 s in all; the regression demo trains two tiny networks once per module).
"""

import warnings

import ipywidgets as ipw
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from IPython.display import Image

from nonlinearity import outputs, widgets


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def regression_demo():
    return outputs.regression_output_demo(seed=0)


# softmax_with_temperature --------------------------------------------------------------------

def test_temperature_one_is_the_seed_example():
    probs = outputs.softmax_with_temperature(outputs.SEED_LOGITS)
    np.testing.assert_allclose(probs, [0.659, 0.242, 0.099], atol=5e-4)


@pytest.mark.parametrize("temperature", [0.05, 0.5, 1.0, 3.0, 50.0])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_temperature_matches_torch_and_sums_to_one(temperature, axis):
    logits = np.random.default_rng(0).normal(size=(4, 6)) * 5
    probs = outputs.softmax_with_temperature(logits, temperature, axis=axis)
    expected = torch.softmax(torch.as_tensor(logits) / temperature, dim=axis).numpy()
    assert probs.shape == logits.shape
    np.testing.assert_allclose(probs, expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(probs.sum(axis=axis), 1.0, rtol=1e-12)


def test_temperature_limits_are_argmax_and_uniform():
    logits = np.array([2.0, 1.0, 0.1])
    np.testing.assert_allclose(outputs.softmax_with_temperature(logits, 1e-3), [1, 0, 0],
                               atol=1e-12)
    np.testing.assert_allclose(outputs.softmax_with_temperature(logits, 1e6), [1 / 3] * 3,
                               atol=1e-6)


def test_temperature_is_stable_for_huge_logits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probs = outputs.softmax_with_temperature([1e4, -1e4, 0.0], 0.05)
    np.testing.assert_array_equal(probs, [1.0, 0.0, 0.0])


def test_temperature_does_not_modify_input():
    logits = np.array([3.0, 1.0, -2.0])
    outputs.softmax_with_temperature(logits, 0.5)
    np.testing.assert_array_equal(logits, [3.0, 1.0, -2.0])


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan")])
def test_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError, match="temperature"):
        outputs.softmax_with_temperature([1.0, 2.0], temperature)


def test_entropy_bits():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 * log 0 must not warn
        assert outputs.entropy_bits([1.0, 0.0, 0.0]) == 0.0
    assert outputs.entropy_bits(np.full(8, 1 / 8)) == pytest.approx(3.0)
    np.testing.assert_allclose(outputs.entropy_bits([[0.5, 0.5], [1.0, 0.0]]), [1.0, 0.0])


# temperature figure and explorer ---------------------------------------------------------------

def _assert_labelled(fig):
    for ax in fig.axes:
        assert ax.get_title(), "every panel needs a title"
        assert ax.get_xlabel() and ax.get_ylabel(), "every panel needs labelled axes"


def test_temperature_figure_shows_bars_and_sweep():
    fig = outputs.plot_softmax_temperature(outputs.SEED_LOGITS, 0.5,
                                           class_names=["cat", "dog", "fox"])
    assert len(fig.axes) == 2
    _assert_labelled(fig)
    bar_ax, sweep_ax = fig.axes
    heights = [patch.get_height() for patch in bar_ax.patches]
    np.testing.assert_allclose(heights, outputs.softmax_with_temperature(outputs.SEED_LOGITS, 0.5))
    assert "0.50" in bar_ax.get_title()
    assert sweep_ax.get_xscale() == "log"
    assert [t.get_text() for t in bar_ax.get_xticklabels()] == ["cat", "dog", "fox"]


def test_temperature_figure_rejects_bad_input():
    with pytest.raises(ValueError, match="1-d"):
        outputs.plot_softmax_temperature([[1.0, 2.0]], 1.0)
    with pytest.raises(ValueError, match="class names"):
        outputs.plot_softmax_temperature([1.0, 2.0], 1.0, class_names=["a"])


def test_explorer_shows_a_static_figure_then_a_slider_that_redraws(monkeypatch):
    shown, updates = [], []

    class Handle:
        def update(self, obj):
            updates.append(obj)

    def fake_display(obj, display_id=False):
        shown.append(obj)
        return Handle() if display_id else None

    monkeypatch.setattr(widgets, "display", fake_display)
    outputs.softmax_temperature_explorer(outputs.SEED_LOGITS)
    assert isinstance(shown[0], Image), "the static figure must come first"
    box = shown[1]
    sliders = [w for w in box.children if isinstance(w, ipw.FloatSlider)]
    assert [s.description for s in sliders] == ["temperature"]
    assert sliders[0].value == 1.0
    sliders[0].value = 0.25
    assert len(updates) == 1 and isinstance(updates[0], Image)
    assert not plt.get_fignums(), "the explorer must not leave figures open"


# sigmoid vs softmax on a multi-class problem ---------------------------------------------------

def test_sigmoid_per_class_does_not_sum_to_one_softmax_does():
    result = outputs.sigmoid_vs_softmax(outputs.DEMO_LOGITS)
    assert result["sigmoid"].shape == result["softmax"].shape == (3, 3)
    np.testing.assert_allclose(result["softmax_sum"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(result["sigmoid_sum"], [2.1368, 2.7575, 0.4356], atol=1e-4)
    np.testing.assert_allclose(result["softmax"][0], [0.659, 0.242, 0.099], atol=5e-4)


def test_sigmoid_vs_softmax_accepts_one_vector():
    result = outputs.sigmoid_vs_softmax([2.0, 1.0, 0.1])
    assert result["sigmoid"].shape == (3,)
    assert np.ndim(result["softmax_sum"]) == 0


def test_sigmoid_vs_softmax_figure():
    fig = outputs.plot_sigmoid_vs_softmax()
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_title() and ax.get_xlabel()
    assert fig.axes[0].get_ylabel()
    stacks = len(outputs.DEMO_LOGITS) * 3
    assert [len(ax.patches) for ax in fig.axes] == [stacks, stacks]


# sigmoid on a regression target ----------------------------------------------------------------

def test_regression_sigmoid_output_is_squashed(regression_demo):
    demo = regression_demo
    assert demo["y"].min() < -3 and demo["y"].max() > 7
    sig = demo["sigmoid"]["pred"]
    assert sig.shape == demo["grid"].shape
    assert sig.min() >= 0.0 and sig.max() <= 1.0
    ident = demo["identity"]["pred"]
    assert ident.min() < -3 and ident.max() > 7
    assert demo["identity"]["mse"] < 0.5, "the identity output should fit a line well"
    assert demo["sigmoid"]["mse"] > 5, "the sigmoid output cannot reach the targets"


def test_regression_demo_is_deterministic_and_leaves_torch_rng_alone(regression_demo):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    again = outputs.regression_output_demo(seed=0, steps=20)
    after = torch.rand(3)
    np.testing.assert_array_equal(before.numpy(), after.numpy())
    first = outputs.regression_output_demo(seed=0, steps=20)
    np.testing.assert_array_equal(first["sigmoid"]["pred"], again["sigmoid"]["pred"])


def test_regression_figure(regression_demo):
    fig = outputs.plot_regression_output_demo(regression_demo)
    _assert_labelled(fig)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert any("identity" in label for label in labels)
    assert any("sigmoid" in label for label in labels)
